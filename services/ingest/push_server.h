// HTTP push of CAP into ingest: a small listener for publishers that push
// (config ingest.push_listen; disabled when empty).
//
//   POST /push            body: one CAP 1.0-1.2 message, or an Atom/RSS feed of them
//   Authorization: Bearer <ingest.push_token>   (required when a token is configured)
//
// The body is checked exactly as the spool will read it (ParseFeedBytes with
// the spool's validation mode and XML limits), then written atomically into
// the spool (<spool_dir>/tmp/ + rename, the same path as polled and dropped
// files) as "push-<unix ms>-<8 hex>.xml"; the spool processes it on its next
// scan. Only after the rename is the request answered:
//   202 {"spool_name": "push-....xml", "format": "cap"}
// Errors are {"error": {"code", "message", "field"}}:
//   400 invalid_argument  empty body, not a CAP document, or rejected by the
//                         check (message = the rejection, as `amparo check` says)
//   401 unauthenticated   missing or wrong bearer token (constant-time compare)
//   404 not_found / 405 method_not_allowed   any other path / method
//   413 payload_too_large body above max_body_bytes (refused before reading it)
//   503 unavailable       the spool file could not be written (retry later)
// Bounds: max_body_bytes, 8 KiB of headers, request_timeout_ms per connection
// (a slow client is cut off), max_connections at once (more are closed
// unanswered), one request per connection.
//
// Threads: Start() runs the server on one thread of its own (Boost.Asio);
// the destructor stops and joins it. stats() is safe from any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

#include "common/clock.h"
#include "common/status.h"
#include "services/ingest/feed_types.h"

namespace amparo::ingest {

struct PushServerOptions {
  std::string listen = "127.0.0.1:0";  // host:port; port 0 picks a free one
  std::string token;                   // "" = no authentication
  int64_t max_body_bytes = 1 << 20;
  int request_timeout_ms = 10000;
  int max_connections = 16;
  std::filesystem::path spool_dir;  // required; its tmp/ must exist (SpoolProcessor::CreateDirectories)
  std::filesystem::path port_file;  // if set, the bound port is written here (atomically)
  // How bodies are checked before they are accepted: validation mode and XML
  // limits as the spool uses them. trust_store must outlive the server.
  FeedContext check_context;
};

struct PushStats {
  uint64_t accepted = 0;      // written to the spool (202)
  uint64_t rejected = 0;      // 400
  uint64_t unauthorized = 0;  // 401
  uint64_t too_large = 0;     // 413
  uint64_t failed = 0;        // 503 and connection errors
};

class PushServer {
 public:
  // Binds, writes the port file and starts the thread. Errors:
  // INVALID_ARGUMENT field "ingest.push_listen" for a bad address,
  // UNAVAILABLE when the address cannot be bound or the port file written.
  static Result<std::unique_ptr<PushServer>> Start(PushServerOptions options, const Clock& clock);
  ~PushServer();
  PushServer(const PushServer&) = delete;
  PushServer& operator=(const PushServer&) = delete;

  uint16_t port() const;
  PushStats stats() const;

  class Impl;

 private:
  explicit PushServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace amparo::ingest
