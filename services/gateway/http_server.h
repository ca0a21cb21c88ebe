// The gateway's HTTP and WebSocket transport (Boost.Beast), on its own
// thread with its own asio::io_context. It turns wire requests into
// HttpRequest for a Handler (gateway_api.h) and serves the live alert feed
// at /api/v1/live.
//
// Bounds (what happens when hit):
//   - request body > max_body_bytes (max_upload_bytes for uploads): 413,
//     connection closed;
//   - request header > header_limit_bytes: 431, connection closed;
//   - a request (or an idle keep-alive connection) taking longer than
//     request_timeout_ms: connection closed;
//   - more than max_connections open connections: new ones closed at once;
//   - a live client with more than live_queue_limit frames waiting (it reads
//     too slowly): that client is disconnected; it reconnects and reloads;
//   - live client messages larger than live_message_max bytes: closed.
//
// Live feed protocol: after the WebSocket handshake the client sends
// {"token": "amp_..."} as its first text message within request_timeout_ms.
// The LiveAuthenticator maps it to a state; the server answers
// {"type":"ready","state":"PHL"} and from then on pushes every frame that
// Broadcast() addresses to that state. A refused token gets
// {"type":"error","error":{...}} and close code 1008 (policy violation).
//
// Thread safety: Start(), port(), Broadcast() and Stop() may be called from
// any thread; the Handler and LiveAuthenticator run on the server thread
// only (so the Db they use belongs to that thread).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"
#include "services/gateway/gateway_api.h"

namespace amparo::gateway {

struct HttpServerOptions {
  std::string listen = "127.0.0.1:0";  // host:port; port 0 picks a free port
  int64_t max_body_bytes = 1 << 20;
  // Upload routes (IsUploadRoute: bulk import) stream their body to a file
  // in upload_dir ("" = the system temp dir), up to max_upload_bytes (413
  // beyond). upload_preflight, when set, sees the request without its body
  // first: a response it returns is sent instead (and the body is never
  // read), so an unauthenticated client cannot fill the disk.
  int64_t max_upload_bytes = int64_t{256} << 20;
  std::filesystem::path upload_dir;
  std::function<std::optional<HttpResponse>(const HttpRequest&)> upload_preflight;
  int request_timeout_ms = 30000;
  int header_limit_bytes = 16 * 1024;
  int max_connections = 1024;
  size_t live_queue_limit = 256;
  size_t live_message_max = 4096;
  int live_idle_timeout_ms = 60000;  // pings keep a healthy idle client alive
  // When set, bulk requests (IsBulkRoute: import, export) run here, one at a
  // time on a worker thread, instead of on the server thread, so that a
  // minute-long import never holds up other requests or the live feed. It
  // must not share a database connection with the main handler.
  std::function<HttpResponse(const HttpRequest&)> bulk_handler;
};

class HttpServer {
 public:
  using Handler = std::function<HttpResponse(const HttpRequest&)>;
  // Returns the state whose alerts the client may watch, or the error to
  // report to it.
  using LiveAuthenticator = std::function<Result<std::string>(std::string_view first_message)>;

  // Binds, starts the server thread and returns. kInvalidArgument (field
  // "gateway.listen") for an unusable address, kUnavailable when the port
  // cannot be bound. `metrics` (optional) must outlive the server.
  static Result<std::unique_ptr<HttpServer>> Start(const HttpServerOptions& options, Handler handler,
                                                   LiveAuthenticator authenticator, GatewayMetrics* metrics);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // The bound port (useful with port 0).
  uint16_t port() const;

  // Queues `frame` (a JSON text) for every live client of `state`.
  // Non-blocking; the send happens on the server thread.
  void Broadcast(std::string state, std::string frame);

  // True while at least one authenticated live client of `state` is
  // connected, counted from before its "ready" is queued: a client that
  // was not counted when this returned false gets only later broadcasts,
  // and anything committed before is in the alert list it loads after
  // "ready". Lets the caller skip building frames nobody would receive.
  // Thread-safe.
  bool HasLiveClients(std::string_view state) const;

  // Stops accepting, drops every connection and joins the thread. Idempotent.
  void Stop();

  class Impl;

 private:
  explicit HttpServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Writes `port` and a newline to `path` atomically (temporary file, then
// rename), so a reader never sees a partial number.
Status WritePortFile(const std::string& path, uint16_t port);

}  // namespace amparo::gateway
