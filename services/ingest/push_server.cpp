#include "services/ingest/push_server.h"

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>

#include <array>
#include <fstream>
#include <mutex>
#include <optional>
#include <thread>

#include "common/crypto.h"
#include "common/log.h"
#include "services/ingest/feed_detect.h"

namespace amparo::ingest {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
namespace fs = std::filesystem;

namespace {

constexpr uint32_t kMaxHeaderBytes = 8 * 1024;
constexpr size_t kMaxDrainBytes = 64 << 20;

std::string ErrorJson(std::string_view code, std::string_view message, std::string_view field = {}) {
  boost::json::object error{{"code", code}, {"message", message}};
  if (!field.empty()) error["field"] = field;
  return boost::json::serialize(boost::json::object{{"error", std::move(error)}});
}

Status WritePortFileAtomically(const fs::path& target, uint16_t port) {
  fs::path tmp = target;
  tmp += ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << port << "\n";
    out.flush();
    if (!out) return Unavailable("cannot write " + tmp.string());
  }
  std::error_code ec;
  fs::rename(tmp, target, ec);
  if (ec) return Unavailable("cannot rename " + tmp.string() + ": " + ec.message());
  return Status::Ok();
}

}  // namespace

class PushServer::Impl {
 public:
  Impl(PushServerOptions options, const Clock& clock)
      : options_(std::move(options)), clock_(clock), acceptor_(io_) {}
  ~Impl() { Stop(); }

  Status Bind() {
    const std::string& listen = options_.listen;
    const size_t colon = listen.rfind(':');
    if (colon == std::string::npos || colon == 0) {
      return InvalidArgument("must be host:port", "ingest.push_listen");
    }
    std::string host = listen.substr(0, colon);
    if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    int port = 0;
    try {
      port = std::stoi(listen.substr(colon + 1));
    } catch (const std::exception&) {
      return InvalidArgument("port is not a number", "ingest.push_listen");
    }
    if (port < 0 || port > 65535) return InvalidArgument("port out of range 0..65535", "ingest.push_listen");
    boost::system::error_code ec;
    asio::ip::address address = asio::ip::make_address(host == "localhost" ? "127.0.0.1" : host, ec);
    if (ec) return InvalidArgument("not an IP address: " + host, "ingest.push_listen");
    tcp::endpoint endpoint(address, static_cast<uint16_t>(port));
    acceptor_.open(endpoint.protocol(), ec);
    if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_.bind(endpoint, ec);
    if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) return Unavailable("cannot listen on " + listen + ": " + ec.message());
    port_ = acceptor_.local_endpoint().port();
    if (!options_.port_file.empty())
      AMPARO_RETURN_IF_ERROR(WritePortFileAtomically(options_.port_file, port_));
    return Status::Ok();
  }

  void Run() {
    thread_ = std::thread([this] {
      Accept();
      // Exceptions never escape a handler (each catches its own); this only
      // guards the loop itself.
      try {
        io_.run();
      } catch (const std::exception& e) {
        log::Error("push server stopped", {{"error", e.what()}});
      }
    });
  }

  void Stop() {
    asio::post(io_, [this] {
      boost::system::error_code ec;
      acceptor_.close(ec);
    });
    io_.stop();
    if (thread_.joinable()) thread_.join();
  }

  uint16_t port() const { return port_; }
  PushStats stats() const {
    std::lock_guard<std::mutex> lock(stats_mu_);
    return stats_;
  }

 private:
  // One connection: read the header, check auth and size, read the body,
  // answer, close.
  struct Session : std::enable_shared_from_this<Session> {
    Session(Impl& server, tcp::socket socket) : server(server), stream(std::move(socket)) {}
    ~Session() { --server.connections_; }

    void Start() {
      parser.emplace();
      parser->header_limit(kMaxHeaderBytes);
      parser->body_limit(server.options_.max_body_bytes);
      stream.expires_after(std::chrono::milliseconds(server.options_.request_timeout_ms));
      http::async_read_header(
          stream, buffer, *parser,
          [self = shared_from_this()](beast::error_code ec, size_t) { self->OnHeader(ec); });
    }

    void OnHeader(beast::error_code ec) {
      // The parser already compares Content-Length with the body limit.
      if (ec == http::error::body_limit) return TooLarge();
      if (ec) return server.CountFailure();
      const auto& request = parser->get();
      if (request.target() != "/push")
        return Reply(http::status::not_found, ErrorJson("not_found", "no such path"));
      if (request.method() != http::verb::post) {
        return Reply(http::status::method_not_allowed, ErrorJson("method_not_allowed", "use POST"));
      }
      if (!server.options_.token.empty()) {
        const std::string expected = "Bearer " + server.options_.token;
        auto it = request.find(http::field::authorization);
        if (it == request.end() || !ConstantTimeEquals(it->value(), expected)) {
          server.Count(&PushStats::unauthorized);
          return Reply(http::status::unauthorized,
                       ErrorJson("unauthenticated", "missing or wrong bearer token", "Authorization"));
        }
      }
      if (auto length = parser->content_length();
          length && *length > static_cast<uint64_t>(server.options_.max_body_bytes)) {
        return TooLarge();
      }
      http::async_read(stream, buffer, *parser,
                       [self = shared_from_this()](beast::error_code ec, size_t) { self->OnBody(ec); });
    }

    void OnBody(beast::error_code ec) {
      if (ec == http::error::body_limit) return TooLarge();
      if (ec) return server.CountFailure();
      auto [status, body] = server.Accept(parser->get().body());
      Reply(status, std::move(body));
    }

    void TooLarge() {
      server.Count(&PushStats::too_large);
      Reply(http::status::payload_too_large,
            ErrorJson("payload_too_large",
                      "body above " + std::to_string(server.options_.max_body_bytes) + " bytes",
                      "ingest.push_max_body_bytes"));
    }

    void Reply(http::status status, std::string body) {
      response.emplace(status, 11);
      response->set(http::field::content_type, "application/json");
      response->set(http::field::connection, "close");
      response->keep_alive(false);
      response->body() = std::move(body);
      response->prepare_payload();
      http::async_write(stream, *response, [self = shared_from_this()](beast::error_code ec, size_t) {
        if (ec) return;
        // Half-close and drain what the client still sends (a body refused
        // early): closing with unread data would reset the connection and
        // the client might never see the answer. Bounded by the timeout and
        // kMaxDrainBytes.
        beast::error_code ignored;
        self->stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
        self->Drain();
      });
    }

    void Drain() {
      if (drained > kMaxDrainBytes) return;
      stream.async_read_some(asio::buffer(drain_buffer),
                             [self = shared_from_this()](beast::error_code ec, size_t n) {
                               self->drained += n;
                               if (!ec) self->Drain();
                             });
    }

    Impl& server;
    beast::tcp_stream stream;
    beast::flat_buffer buffer;
    std::optional<http::request_parser<http::string_body>> parser;
    std::optional<http::response<http::string_body>> response;
    std::array<char, 4096> drain_buffer;
    size_t drained = 0;
  };

  void Accept() {
    acceptor_.async_accept([this](beast::error_code ec, tcp::socket socket) {
      if (ec) {
        if (ec != asio::error::operation_aborted) Accept();
        return;
      }
      if (connections_ >= options_.max_connections) {
        // At the bound: close unanswered rather than queue without limit.
        CountFailure();
        beast::error_code ignored;
        socket.close(ignored);
      } else {
        ++connections_;
        std::make_shared<Session>(*this, std::move(socket))->Start();
      }
      Accept();
    });
  }

  // Checks and spools one body; returns the HTTP answer.
  std::pair<http::status, std::string> Accept(const std::string& body) {
    if (body.empty()) {
      Count(&PushStats::rejected);
      return {http::status::bad_request,
              ErrorJson("invalid_argument", "empty body: send one CAP message", "body")};
    }
    FeedContext context = options_.check_context;
    context.received_ms = clock_.NowMs();
    Result<ParsedFeed> parsed = ParseFeedBytes(body, context);
    if (auto rejection = FeedRejection(parsed)) {
      Count(&PushStats::rejected);
      return {http::status::bad_request, ErrorJson("invalid_argument", *rejection, "body")};
    }
    if (parsed->format.rfind("cap", 0) != 0) {
      Count(&PushStats::rejected);
      return {http::status::bad_request,
              ErrorJson("invalid_argument", "not a CAP message (detected " + parsed->format + ")", "body")};
    }
    const std::string name =
        "push-" + std::to_string(clock_.NowMs()) + "-" + HexEncode(RandomBytes(4)) + ".xml";
    if (Status st = WriteIntoSpool(name, body); !st.ok()) {
      CountFailure();
      log::Error("push: cannot write into the spool", {{"error", st.ToString()}});
      return {http::status::service_unavailable,
              ErrorJson("unavailable", "cannot write into the spool; retry")};
    }
    Count(&PushStats::accepted);
    log::Info("push accepted", {{"spool_name", name}, {"format", parsed->format}});
    return {http::status::accepted,
            boost::json::serialize(boost::json::object{{"spool_name", name}, {"format", parsed->format}})};
  }

  // tmp/ + rename: the spool never sees half a file.
  Status WriteIntoSpool(const std::string& name, const std::string& body) {
    const fs::path tmp = options_.spool_dir / "tmp" / ("." + name + ".tmp");
    {
      std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
      out.write(body.data(), static_cast<std::streamsize>(body.size()));
      out.flush();
      if (!out) return Unavailable("cannot write " + tmp.string());
    }
    std::error_code ec;
    fs::rename(tmp, options_.spool_dir / name, ec);
    if (ec) {
      fs::remove(tmp, ec);
      return Unavailable("cannot rename " + tmp.string() + " into the spool");
    }
    return Status::Ok();
  }

  void Count(uint64_t PushStats::*counter) {
    std::lock_guard<std::mutex> lock(stats_mu_);
    ++(stats_.*counter);
  }
  void CountFailure() { Count(&PushStats::failed); }

  PushServerOptions options_;
  const Clock& clock_;
  // Declared before io_: sessions still queued in io_ are destroyed with it
  // and count themselves out on the way.
  int connections_ = 0;  // touched only on the server thread
  mutable std::mutex stats_mu_;
  PushStats stats_;
  asio::io_context io_{1};
  tcp::acceptor acceptor_;
  uint16_t port_ = 0;
  std::thread thread_;
};

Result<std::unique_ptr<PushServer>> PushServer::Start(PushServerOptions options, const Clock& clock) {
  if (options.spool_dir.empty()) return InvalidArgument("spool_dir is required", "ingest.spool_dir");
  auto impl = std::make_unique<Impl>(std::move(options), clock);
  AMPARO_RETURN_IF_ERROR(impl->Bind());
  impl->Run();
  return std::unique_ptr<PushServer>(new PushServer(std::move(impl)));
}

PushServer::PushServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
PushServer::~PushServer() = default;
uint16_t PushServer::port() const { return impl_->port(); }
PushStats PushServer::stats() const { return impl_->stats(); }

}  // namespace amparo::ingest
