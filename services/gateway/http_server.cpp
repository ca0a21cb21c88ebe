#include "services/gateway/http_server.h"

#include <boost/asio.hpp>
#include <boost/beast.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "common/crypto.h"
#include "common/log.h"

namespace amparo::gateway {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
using boost::system::error_code;

namespace {

constexpr auto kAwait = asio::as_tuple(asio::use_awaitable);
constexpr std::string_view kLivePath = "/api/v1/live";

struct LiveClient {
  explicit LiveClient(beast::tcp_stream stream) : ws(std::move(stream)) {}
  websocket::stream<beast::tcp_stream> ws;
  std::deque<std::string> queue;
  bool writing = false;
  bool dropped = false;
  std::string state;
};

std::string_view PathOf(std::string_view target) { return target.substr(0, target.find('?')); }

// A spool file (upload or export) removed when the request is done,
// whichever way it ends.
struct UploadFile {
  std::filesystem::path path;
  void Remove() {
    if (path.empty()) return;
    std::error_code ec;
    std::filesystem::remove(path, ec);
    path.clear();
  }
  ~UploadFile() { Remove(); }
};

}  // namespace

class HttpServer::Impl {
 public:
  Impl(const HttpServerOptions& options, Handler handler, LiveAuthenticator authenticator,
       GatewayMetrics* metrics)
      : options_(options),
        handler_(std::move(handler)),
        authenticator_(std::move(authenticator)),
        metrics_(metrics),
        acceptor_(ioc_) {}

  ~Impl() { Stop(); }

  Status Bind() {
    const std::string& listen = options_.listen;
    size_t colon = listen.rfind(':');
    if (colon == std::string::npos) return InvalidArgument("must be host:port", "gateway.listen");
    std::string host = listen.substr(0, colon);
    std::string port = listen.substr(colon + 1);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    error_code ec;
    tcp::resolver resolver(ioc_);
    auto results = resolver.resolve(host, port, tcp::resolver::passive | tcp::resolver::numeric_service, ec);
    if (ec || results.empty()) {
      return InvalidArgument("cannot resolve '" + listen + "': " + ec.message(), "gateway.listen");
    }
    tcp::endpoint endpoint = results.begin()->endpoint();
    acceptor_.open(endpoint.protocol(), ec);
    if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_.bind(endpoint, ec);
    if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) return Unavailable("cannot listen on " + listen + ": " + ec.message());
    port_ = acceptor_.local_endpoint().port();
    return Status::Ok();
  }

  void Run() {
    asio::co_spawn(ioc_, AcceptLoop(), asio::detached);
    thread_ = std::thread([this] {
      try {
        ioc_.run();
      } catch (const std::exception& e) {
        log::Error("http server stopped", {{"error", e.what()}});
      }
    });
  }

  void Stop() {
    if (stopped_.exchange(true)) return;
    ioc_.stop();
    if (thread_.joinable()) thread_.join();
    bulk_pool_.join();  // a bulk request under way finishes first (its own transactions)
    // Live clients hold sockets of this io_context: release them before it goes.
    clients_.clear();
    std::lock_guard lock(live_states_mu_);
    live_states_.clear();
  }

  void Broadcast(std::string state, std::string frame) {
    asio::post(ioc_, [this, state = std::move(state), frame = std::move(frame)] {
      auto range = clients_.equal_range(state);
      std::vector<std::shared_ptr<LiveClient>> targets;
      for (auto it = range.first; it != range.second; ++it) targets.push_back(it->second);
      for (auto& client : targets) Enqueue(client, frame);
    });
  }

  uint16_t port() const { return port_; }

  bool HasLiveClients(std::string_view state) const {
    std::lock_guard lock(live_states_mu_);
    auto it = live_states_.find(state);
    return it != live_states_.end() && it->second > 0;
  }

 private:
  // The link thread asks HasLiveClients() while clients_ belongs to the
  // server thread: the count per state is kept beside it under a mutex.
  void CountLiveClient(const std::string& state, int delta) {
    std::lock_guard lock(live_states_mu_);
    auto it = live_states_.try_emplace(state, 0).first;
    it->second += delta;
    if (it->second <= 0) live_states_.erase(it);
  }

  asio::awaitable<void> AcceptLoop() {
    while (true) {
      auto [ec, socket] = co_await acceptor_.async_accept(kAwait);
      if (ec == asio::error::operation_aborted) co_return;
      if (ec) {
        // Out of descriptors and the like: back off instead of spinning.
        log::Warn("accept failed", {{"error", ec.message()}});
        asio::steady_timer pause(ioc_, std::chrono::milliseconds(100));
        co_await pause.async_wait(kAwait);
        continue;
      }
      if (connections_ >= options_.max_connections) {
        socket.close(ec);
        continue;
      }
      ++connections_;
      asio::co_spawn(ioc_, Session(std::move(socket)), [this](const std::exception_ptr& e) {
        --connections_;
        if (e) {
          try {
            std::rethrow_exception(e);
          } catch (const std::exception& ex) {
            log::Error("connection failed", {{"error", ex.what()}});
          }
        }
      });
    }
  }

  std::chrono::milliseconds Timeout() const { return std::chrono::milliseconds(options_.request_timeout_ms); }

  void Count(std::string_view target, int status) {
    if (metrics_) metrics_->CountRequest(RouteLabel(target), status);
  }

  // Writes an error and closes: used when the request cannot be read whole.
  asio::awaitable<void> RejectAndClose(beast::tcp_stream& stream, int status, std::string_view code,
                                       std::string_view message, std::string_view target,
                                       const HttpResponse* prepared = nullptr) {
    HttpResponse r = prepared != nullptr ? *prepared : ErrorResponse(status, code, message);
    if (prepared == nullptr) Count(target, status);
    http::response<http::string_body> res{static_cast<http::status>(status), 11};
    res.set(http::field::content_type, r.content_type);
    for (const auto& [name, value] : r.headers) res.set(name, value);
    res.set(http::field::connection, "close");
    res.body() = std::move(r.body);
    res.prepare_payload();
    stream.expires_after(Timeout());
    auto [ec, n] = co_await http::async_write(stream, res, kAwait);
    if (ec) co_return;
    // Lingering close: a client still sending the rejected body would get a
    // reset (and lose our answer) if we closed with unread data. Drain a
    // bounded amount for a bounded time, then close.
    stream.socket().shutdown(tcp::socket::shutdown_send, ec);
    stream.expires_after(std::chrono::seconds(2));
    constexpr size_t kMaxDrainBytes = size_t{16} << 20;
    std::array<char, size_t{16} << 10> sink;
    size_t drained = 0;
    while (drained < kMaxDrainBytes) {
      auto [read_ec, got] = co_await stream.async_read_some(asio::buffer(sink), kAwait);
      if (read_ec) break;
      drained += got;
    }
  }

  asio::awaitable<void> Session(tcp::socket socket) {
    beast::tcp_stream stream(std::move(socket));
    beast::flat_buffer buffer(8192);
    while (true) {
      http::request_parser<http::string_body> parser;
      parser.header_limit(static_cast<uint32_t>(options_.header_limit_bytes));
      // The route decides the real bound once the header is in: start with
      // the larger one.
      parser.body_limit(static_cast<uint64_t>(std::max(options_.max_body_bytes, options_.max_upload_bytes)));
      stream.expires_after(Timeout());
      auto [ec, n] = co_await http::async_read_header(stream, buffer, parser, kAwait);
      std::string target = parser.is_header_done() ? std::string(parser.get().target()) : std::string();
      if (ec == http::error::body_limit) {
        co_await RejectAndClose(stream, 413, "payload_too_large",
                                "the body exceeds " + std::to_string(options_.max_body_bytes) + " bytes",
                                target);
        co_return;
      }
      if (ec == http::error::header_limit) {
        co_await RejectAndClose(stream, 431, "headers_too_large", "the request header is too large", target);
        co_return;
      }
      if (ec == http::error::end_of_stream || ec == beast::error::timeout || ec == asio::error::eof ||
          ec == asio::error::connection_reset || ec == asio::error::operation_aborted) {
        co_return;
      }
      if (ec) {
        co_await RejectAndClose(stream, 400, "invalid_argument", "malformed HTTP request: " + ec.message(),
                                target);
        co_return;
      }
      auto& header = parser.get();
      if (websocket::is_upgrade(header) && PathOf(header.target()) == kLivePath) {
        Count(target, 101);
        stream.expires_never();
        co_await Live(std::move(stream), parser.release());
        co_return;
      }
      HttpRequest request;
      request.method = std::string(header.method_string());
      request.target = std::string(header.target());
      request.authorization = std::string(header[http::field::authorization]);
      request.content_type = std::string(header[http::field::content_type]);
      request.purpose = std::string(header["X-Amparo-Purpose"]);
      const bool upload = IsUploadRoute(request.method, request.target);
      const uint64_t limit =
          static_cast<uint64_t>(upload ? options_.max_upload_bytes : options_.max_body_bytes);
      if (parser.content_length() && *parser.content_length() > limit) {
        co_await RejectAndClose(stream, 413, "payload_too_large",
                                "the body exceeds " + std::to_string(limit) + " bytes", target);
        co_return;
      }
      if (upload && options_.upload_preflight) {
        if (auto refused = options_.upload_preflight(request)) {
          Count(target, refused->status);
          co_await RejectAndClose(stream, refused->status, "", "", target, &*refused);
          co_return;
        }
      }
      if (header[http::field::expect] == "100-continue") {
        http::response<http::empty_body> cont{http::status::continue_, header.version()};
        auto [cec, cn] = co_await http::async_write(stream, cont, kAwait);
        if (cec) co_return;
      }
      unsigned version = header.version();
      bool keep_alive = header.keep_alive();
      UploadFile upload_file;
      if (upload) {
        // The body goes to disk as it arrives: memory stays bounded whatever
        // the file size.
        http::request_parser<http::file_body> file_parser(std::move(parser));
        file_parser.body_limit(limit);
        std::filesystem::path dir =
            options_.upload_dir.empty() ? std::filesystem::temp_directory_path() : options_.upload_dir;
        upload_file.path = dir / ("upload-" + NewId() + ".tmp");
        error_code fec;
        file_parser.get().body().open(upload_file.path.c_str(), beast::file_mode::write, fec);
        if (fec) {
          co_await RejectAndClose(stream, 503, "unavailable", "cannot store the upload", target);
          co_return;
        }
        // A large upload may take minutes: the timeout bounds each read
        // (an idle client), not the whole transfer.
        while (!file_parser.is_done()) {
          stream.expires_after(Timeout());
          auto [bec, bn] = co_await http::async_read_some(stream, buffer, file_parser, kAwait);
          if (bec == http::error::body_limit) {
            co_await RejectAndClose(stream, 413, "payload_too_large",
                                    "the body exceeds " + std::to_string(limit) + " bytes", target);
            co_return;
          }
          if (bec) co_return;
        }
        file_parser.get().body().close();
        request.body_file = upload_file.path;
      } else {
        parser.body_limit(limit);
        if (!parser.is_done()) {
          auto [bec, bn] = co_await http::async_read(stream, buffer, parser, kAwait);
          if (bec == http::error::body_limit) {
            co_await RejectAndClose(stream, 413, "payload_too_large",
                                    "the body exceeds " + std::to_string(limit) + " bytes", target);
            co_return;
          }
          if (bec == beast::error::timeout || bec == http::error::end_of_stream || bec == asio::error::eof ||
              bec == asio::error::connection_reset) {
            co_return;
          }
          if (bec) {
            co_await RejectAndClose(stream, 400, "invalid_argument", "malformed HTTP body: " + bec.message(),
                                    target);
            co_return;
          }
        }
        request.body = std::move(parser.get().body());
      }
      HttpResponse response;
      if (options_.bulk_handler && IsBulkRoute(request.method, request.target)) {
        // On the bulk worker; this coroutine resumes here when it is done,
        // and the server thread serves everyone else meanwhile.
        response = co_await asio::co_spawn(
            bulk_pool_.get_executor(),
            [this, &request]() -> asio::awaitable<HttpResponse> { co_return options_.bulk_handler(request); },
            asio::use_awaitable);
      } else {
        response = handler_(request);
      }
      upload_file.Remove();  // consumed: free the disk before answering

      if (!response.body_file.empty()) {
        UploadFile spooled{response.body_file};  // removed once sent
        http::response<http::file_body> res{static_cast<http::status>(response.status), version};
        res.set(http::field::server, "amparo-gateway");
        res.set(http::field::content_type, response.content_type);
        for (const auto& [name, value] : response.headers) res.set(name, value);
        error_code fec;
        res.body().open(response.body_file.c_str(), beast::file_mode::scan, fec);
        if (fec) break;
        res.keep_alive(keep_alive);
        res.prepare_payload();
        // A large export may take a while to a slow client: the timeout is
        // per write operation, renewed as data moves.
        http::response_serializer<http::file_body> serializer(res);
        bool failed = false;
        while (!serializer.is_done()) {
          stream.expires_after(Timeout());
          auto [wec, wn] = co_await http::async_write_some(stream, serializer, kAwait);
          if (wec) {
            failed = true;
            break;
          }
        }
        if (failed || !keep_alive) break;
        continue;
      }
      http::response<http::string_body> res{static_cast<http::status>(response.status), version};
      res.set(http::field::server, "amparo-gateway");
      if (response.status != 204) res.set(http::field::content_type, response.content_type);
      for (const auto& [name, value] : response.headers) res.set(name, value);
      res.body() = std::move(response.body);
      res.keep_alive(keep_alive);
      res.prepare_payload();
      stream.expires_after(Timeout());
      auto [wec, wn] = co_await http::async_write(stream, res, kAwait);
      if (wec || !res.keep_alive()) break;
    }
    error_code ignored;
    stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
  }

  // ------------------------------------------------------------ live feed

  asio::awaitable<void> Live(beast::tcp_stream stream, http::request<http::string_body> req) {
    auto client = std::make_shared<LiveClient>(std::move(stream));
    auto& ws = client->ws;
    ws.read_message_max(options_.live_message_max);
    websocket::stream_base::timeout auth_phase{};
    auth_phase.handshake_timeout = Timeout();
    auth_phase.idle_timeout = Timeout();  // the token must come within the request timeout
    auth_phase.keep_alive_pings = false;
    ws.set_option(auth_phase);
    ws.set_option(websocket::stream_base::decorator(
        [](websocket::response_type& res) { res.set(http::field::server, "amparo-gateway"); }));
    auto [aec] = co_await ws.async_accept(req, kAwait);
    if (aec) co_return;

    beast::flat_buffer buffer;
    auto [rec, rn] = co_await ws.async_read(buffer, kAwait);
    if (rec) co_return;
    Result<std::string> state =
        ws.got_text() ? authenticator_(beast::buffers_to_string(buffer.data()))
                      : Result<std::string>(InvalidArgument("the first message must be text", "token"));
    if (!state.ok()) {
      HttpResponse error = StatusResponse(state.status());
      std::string frame = R"({"type":"error",)" + error.body.substr(1);
      ws.text(true);
      auto [wec, wn] = co_await ws.async_write(asio::buffer(frame), kAwait);
      if (!wec) co_await ws.async_close(websocket::close_code::policy_error, kAwait);
      co_return;
    }

    websocket::stream_base::timeout live_phase{};
    live_phase.handshake_timeout = Timeout();
    live_phase.idle_timeout = std::chrono::milliseconds(options_.live_idle_timeout_ms);
    live_phase.keep_alive_pings = true;
    ws.set_option(live_phase);
    client->state = *state;
    // Registered before "ready" is queued: every alert broadcast after the
    // client sees "ready" reaches it.
    auto registered = clients_.emplace(client->state, client);
    CountLiveClient(client->state, +1);
    if (metrics_) metrics_->SetLiveClients(static_cast<int64_t>(clients_.size()));
    Enqueue(client, R"({"type":"ready","state":")" + client->state + "\"}");

    // Clients have nothing to say after the token; reading keeps control
    // frames (ping/pong/close) flowing and tells us when they go.
    while (true) {
      buffer.clear();
      auto [ec, n] = co_await ws.async_read(buffer, kAwait);
      if (ec) break;
    }
    client->dropped = true;
    clients_.erase(registered);
    CountLiveClient(client->state, -1);
    if (metrics_) metrics_->SetLiveClients(static_cast<int64_t>(clients_.size()));
  }

  void Enqueue(const std::shared_ptr<LiveClient>& client, std::string frame) {
    if (client->dropped) return;
    if (client->queue.size() >= options_.live_queue_limit) {
      // Too slow to keep up: drop it rather than grow without bound. The
      // read loop then ends and unregisters it.
      log::Warn("live client too slow, disconnecting", {{"state", client->state}});
      client->dropped = true;
      client->queue.clear();
      error_code ignored;
      beast::get_lowest_layer(client->ws).socket().close(ignored);
      return;
    }
    client->queue.push_back(std::move(frame));
    if (!client->writing) {
      client->writing = true;
      asio::co_spawn(ioc_, WriteLoop(client), asio::detached);
    }
  }

  asio::awaitable<void> WriteLoop(std::shared_ptr<LiveClient> client) {
    while (!client->queue.empty() && !client->dropped) {
      client->ws.text(true);
      auto [ec, n] = co_await client->ws.async_write(asio::buffer(client->queue.front()), kAwait);
      if (ec) {
        client->dropped = true;
        client->queue.clear();
        break;
      }
      client->queue.pop_front();
    }
    client->writing = false;
  }

  HttpServerOptions options_;
  Handler handler_;
  LiveAuthenticator authenticator_;
  GatewayMetrics* metrics_;
  asio::io_context ioc_{1};
  asio::thread_pool bulk_pool_{1};  // bulk_handler's worker; after ioc_: joined before it goes
  tcp::acceptor acceptor_;
  std::thread thread_;
  std::atomic<bool> stopped_{false};
  uint16_t port_ = 0;
  int connections_ = 0;                                              // server thread only
  std::multimap<std::string, std::shared_ptr<LiveClient>> clients_;  // server thread only
  mutable std::mutex live_states_mu_;
  std::map<std::string, int, std::less<>> live_states_;  // clients_ counted by state
};

HttpServer::HttpServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
HttpServer::~HttpServer() { Stop(); }

Result<std::unique_ptr<HttpServer>> HttpServer::Start(const HttpServerOptions& options, Handler handler,
                                                      LiveAuthenticator authenticator,
                                                      GatewayMetrics* metrics) {
  auto impl = std::make_unique<Impl>(options, std::move(handler), std::move(authenticator), metrics);
  AMPARO_RETURN_IF_ERROR(impl->Bind());
  impl->Run();
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
}

uint16_t HttpServer::port() const { return impl_->port(); }
void HttpServer::Broadcast(std::string state, std::string frame) {
  impl_->Broadcast(std::move(state), std::move(frame));
}
bool HttpServer::HasLiveClients(std::string_view state) const { return impl_->HasLiveClients(state); }
void HttpServer::Stop() {
  if (impl_) impl_->Stop();
}

Status WritePortFile(const std::string& path, uint16_t port) {
  std::filesystem::path target(path);
  std::filesystem::path tmp = target;
  tmp += ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << port << "\n";
    out.flush();
    if (!out) return Unavailable("cannot write " + tmp.string());
  }
  std::error_code ec;
  std::filesystem::rename(tmp, target, ec);
  if (ec)
    return Unavailable("cannot rename " + tmp.string() + " to " + target.string() + ": " + ec.message());
  return Status::Ok();
}

}  // namespace amparo::gateway
