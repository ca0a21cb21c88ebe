#include "tests/integration/harness.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <regex>
#include <sstream>

#include "common/crypto.h"
#include "common/db.h"

extern char** environ;

namespace amparo::integration {

namespace fs = std::filesystem;
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using namespace std::chrono_literals;

fs::path BinDir() { return AMPARO_BIN_DIR; }
fs::path SharedFixtures() { return fs::path(AMPARO_SOURCE_DIR) / ".." / "shared" / "fixtures"; }

std::string RunTool(const std::vector<std::string>& argv) {
  std::string cmd;
  for (const auto& a : argv) cmd += "'" + a + "' ";
  cmd += "2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  std::array<char, 4096> buf;
  while (size_t n = fread(buf.data(), 1, buf.size(), p)) out.append(buf.data(), n);
  int rc = pclose(p);
  EXPECT_EQ(rc, 0) << cmd << "\n" << out;
  return out;
}

// ---------------------------------------------------------------- Process

Process::Process(std::vector<std::string> argv, fs::path log) : argv_(std::move(argv)), log_(std::move(log)) {}

Process::~Process() {
  if (pid_ > 0) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
}

void Process::Start() {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, log_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  std::vector<char*> argv;
  for (auto& a : argv_) argv.push_back(a.data());
  argv.push_back(nullptr);
  int rc = posix_spawn(&pid_, argv_[0].c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ASSERT_EQ(rc, 0) << "spawning " << argv_[0];
}

void Process::Kill9() {
  ASSERT_GT(pid_, 0);
  kill(pid_, SIGKILL);
  waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

int Process::Terminate() {
  if (pid_ <= 0) return -1;
  kill(pid_, SIGTERM);
  int status = 0;
  for (int i = 0; i < 200; ++i) {
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
    }
    std::this_thread::sleep_for(50ms);
  }
  kill(pid_, SIGKILL);
  waitpid(pid_, &status, 0);
  pid_ = -1;
  return -SIGKILL;
}

bool Process::Running() {
  if (pid_ <= 0) return false;
  int status;
  if (waitpid(pid_, &status, WNOHANG) == pid_) {
    pid_ = -1;
    return false;
  }
  return true;
}

// ---------------------------------------------------------------- receiver

struct WebhookReceiver::Impl {
  asio::io_context io;
  asio::ip::tcp::acceptor acceptor{io, {asio::ip::make_address("127.0.0.1"), 0}};
  std::mutex mu;
  std::vector<Webhook> received;
  std::thread thread;
  std::atomic<bool> stop{false};
  // One thread per connection; joined on destruction after their sockets
  // are shut down, so none outlives the receiver.
  std::vector<std::thread> connections;
  std::vector<int> connection_fds;  // guarded by mu

  void Serve(asio::ip::tcp::socket socket) {
    beast::flat_buffer buffer;
    beast::error_code ec;
    while (!stop) {
      http::request<http::string_body> req;
      http::read(socket, buffer, req, ec);
      if (ec) return;
      Webhook hook;
      for (const auto& field : req) {
        std::string name(field.name_string());
        std::transform(name.begin(), name.end(), name.begin(), ::tolower);
        hook.headers[name] = std::string(field.value());
      }
      hook.target = std::string(req.target());
      hook.body = req.body();
      hook.at = std::chrono::steady_clock::now();
      {
        std::lock_guard lock(mu);
        received.push_back(std::move(hook));
      }
      http::response<http::empty_body> res{http::status::no_content, req.version()};
      res.keep_alive(req.keep_alive());
      http::write(socket, res, ec);
      if (ec || !req.keep_alive()) return;
    }
  }
};

WebhookReceiver::WebhookReceiver() : impl_(std::make_unique<Impl>()) {
  impl_->thread = std::thread([this] {
    while (!impl_->stop) {
      beast::error_code ec;
      asio::ip::tcp::socket socket(impl_->io);
      impl_->acceptor.accept(socket, ec);
      if (ec || impl_->stop) return;
      {
        std::lock_guard lock(impl_->mu);
        impl_->connection_fds.push_back(socket.native_handle());
      }
      impl_->connections.emplace_back([this, s = std::move(socket)]() mutable { impl_->Serve(std::move(s)); });
    }
  });
}

WebhookReceiver::~WebhookReceiver() {
  impl_->stop = true;
  // Wake the blocked accept() by connecting once; the loop then sees `stop`.
  beast::error_code ec;
  asio::ip::tcp::socket poke(impl_->io);
  poke.connect(impl_->acceptor.local_endpoint(ec), ec);
  impl_->thread.join();
  impl_->acceptor.close(ec);
  {
    std::lock_guard lock(impl_->mu);
    for (int fd : impl_->connection_fds) ::shutdown(fd, SHUT_RDWR);  // unblocks their reads
  }
  for (auto& t : impl_->connections) t.join();
}

std::string WebhookReceiver::url(const std::string& path) const {
  return "http://127.0.0.1:" + std::to_string(impl_->acceptor.local_endpoint().port()) + path;
}

std::vector<Webhook> WebhookReceiver::Received() {
  std::lock_guard lock(impl_->mu);
  return impl_->received;
}

bool WebhookReceiver::WaitFor(size_t n, std::chrono::milliseconds timeout) {
  return Eventually([&] { return Received().size() >= n; }, timeout);
}

bool VerifySignature(const Webhook& hook, const std::string& secret) {
  auto get = [&](const char* k) {
    auto it = hook.headers.find(k);
    return it == hook.headers.end() ? std::string() : it->second;
  };
  std::string id = get("webhook-id"), ts = get("webhook-timestamp"), sig = get("webhook-signature");
  if (id.empty() || ts.empty() || secret.rfind("whsec_", 0) != 0) return false;
  auto key = Base64Decode(secret.substr(6));
  if (!key.ok()) return false;
  std::string expected = "v1," + Base64Encode(HmacSha256(*key, id + "." + ts + "." + hook.body));
  // The header may carry several space-separated signatures.
  std::istringstream in(sig);
  for (std::string s; in >> s;) {
    if (s == expected) return true;
  }
  return false;
}

// ---------------------------------------------------------------- deployment

Deployment::Deployment() {
  RunTool({(BinDir() / "amparo").string(), "init", dir().string(), "--listen", "127.0.0.1:0"});
  // Tune for tests: fast resends, retries and scans; a port file for port 0.
  std::ifstream in(config());
  std::stringstream text;
  text << in.rdbuf();
  std::string s = text.str();
  auto set = [&](const std::string& key, const std::string& value) {
    std::regex re("(^|\\n)#? ?" + key + " = [^\\n]*");
    ASSERT_TRUE(std::regex_search(s, re)) << key;
    s = std::regex_replace(s, re, "$1" + key + " = " + value, std::regex_constants::format_first_only);
  };
  set("resend_after_ms", "300");
  set("scan_interval_ms", "50");
  set("backoff_initial_ms", "100");
  set("backoff_max_ms", "1000");
  set("port_file", "\"run/gateway.port\"");
  std::ofstream(config(), std::ios::trunc) << s;
  for (const char* name : {"gateway", "notify", "rules", "ingest"}) {
    std::string bin = (BinDir() / ("amparo-" + std::string(name))).string();
    daemons_[name] = std::make_unique<Process>(std::vector<std::string>{bin, "--config", config().string()},
                                               dir() / (std::string(name) + ".log"));
  }
}

Deployment::~Deployment() {
  for (auto& [name, p] : daemons_) p->Terminate();
  if (::testing::Test::HasFailure()) {
    for (const auto& [name, p] : daemons_) {
      std::ifstream log(dir() / (name + ".log"));
      std::stringstream text;
      text << log.rdbuf();
      std::string s = text.str();
      if (s.size() > 6000) s = "..." + s.substr(s.size() - 6000);
      std::cerr << "---- " << name << ".log ----\n" << s << "\n";
    }
  }
}

void Deployment::StartAll() {
  for (const char* name : {"gateway", "notify", "rules", "ingest"}) daemons_[name]->Start();
  WaitHealthy();
}

int Deployment::StopAll() {
  int failed = 0;
  for (auto& [name, p] : daemons_) {
    failed += !p->Running() || p->Terminate() != 0;
  }
  return failed;
}

void Deployment::SetConfig(const std::string& section, const std::string& key, const std::string& value) {
  std::ifstream in(config());
  std::stringstream text;
  text << in.rdbuf();
  std::string s = text.str();
  const std::string header = "[" + section + "]\n";
  size_t start = s.find(header);
  ASSERT_NE(start, std::string::npos) << "no section " << header;
  start += header.size();
  size_t end = s.find("\n[", start);
  end = end == std::string::npos ? s.size() : end + 1;
  std::string body = s.substr(start, end - start);
  std::regex re("(^|\n)" + key + " = [^\n]*");
  if (std::regex_search(body, re)) {
    body = std::regex_replace(body, re, "$1" + key + " = " + value, std::regex_constants::format_first_only);
  } else {
    body = key + " = " + value + "\n" + body;
  }
  s = s.substr(0, start) + body + s.substr(end);
  std::ofstream(config(), std::ios::trunc) << s;
}

std::string Deployment::Log(const std::string& name) const {
  std::ifstream in(dir() / (name + ".log"));
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

void Deployment::WaitHealthy() {
  fs::path port_file = dir() / "run" / "gateway.port";
  ASSERT_TRUE(Eventually(
      [&] {
        std::ifstream in(port_file);
        int port = 0;
        if (!(in >> port) || port <= 0) return false;
        base_url_ = "http://127.0.0.1:" + std::to_string(port);
        auto r = http_.Request("GET", base_url_ + "/healthz");
        return r.ok() && r->status == 200;
      },
      20s))
      << "gateway did not become healthy";
}

std::string Deployment::Token(const std::string& state, const std::string& role) {
  std::string out = RunTool({(BinDir() / "amparo").string(), "token", "create", "--config", config().string(),
                             "--state", state, "--role", role});
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out.substr(out.rfind('\n') == std::string::npos ? 0 : out.rfind('\n') + 1);
}

void Deployment::WaitRegistryHandedOver() {
  ASSERT_TRUE(Eventually(
      [&] {
        auto db = Db::Open(dir() / "data" / "gateway.db");
        if (!db.ok()) return false;
        auto q = db->Prepare("SELECT count(*) FROM link_outbox WHERE peer = 'rules'");
        if (!q.ok()) return false;
        auto row = q->Step();
        return row.ok() && *row && q->ColumnInt(0) == 0;
      },
      20s));
}

std::string RegistrantBody(const std::string& ref, const std::string& host, double lat, double lon, int household,
                           const std::vector<std::string>& vulnerabilities) {
  boost::json::object o{{"external_ref", ref}, {"host_country", host}, {"lat", lat}, {"lon", lon},
                        {"household_size", household}};
  boost::json::array v;
  for (const auto& f : vulnerabilities) v.push_back(boost::json::value(f));
  o["vulnerabilities"] = std::move(v);
  return boost::json::serialize(o);
}

Deployment::Reply Deployment::Call(const std::string& method, const std::string& path, const std::string& token,
                                   const std::string& body) {
  std::vector<std::string> headers = {"Content-Type: application/json"};
  if (!token.empty()) headers.push_back("Authorization: Bearer " + token);
  auto r = http_.Request(method, base_url_ + path, body, headers);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  if (!r.ok()) return {0, nullptr};
  boost::json::error_code ec;
  boost::json::value v = r->body.empty() ? boost::json::value(nullptr) : boost::json::parse(r->body, ec);
  if (ec) v = boost::json::value(r->body);
  return {r->status, v};
}

}  // namespace amparo::integration
