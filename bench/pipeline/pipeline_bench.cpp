// bench/pipeline: the whole pipeline as a user runs it, measured end to end.
//
//   spool file (USGS GeoJSON) -> amparo-ingest -> amparo-rules -> amparo-notify -> webhook
//                                                                 (+ amparo-gateway: registry, alerts API)
//
// A deployment made by `amparo init` in a temp dir, the four real daemon
// binaries as processes over ipc:// links, registrants loaded with `amparo
// demo-data` through the gateway's import API (rules receives them over the
// registry stream, as in production), one webhook subscription per state to
// an HTTP receiver inside this process (127.0.0.1). Then:
//
//  1. Throughput: --events features in spool files of --file-events each
//     (the spool is ingest's fastest input: HTTP push of CAP writes to the
//     same spool after an XSD check of one message per request), all renamed
//     into the spool at once. Wall time from the first rename to the last
//     delivery row committed in notify.db (the alert is durably queued), read
//     from notify.db read-only; also when each stage finished and when the
//     last webhook arrived. CPU seconds of every daemon from /proc.
//  2. Latency: a steady --rate events/s for --seconds, one spool file every
//     --latency-file-events/rate seconds; per webhook, arrival time minus the
//     moment its event's file was renamed into the spool.
//  3. Raw ZeroMQ PUSH/PULL over ipc:// with messages the size of a real
//     Envelope holding a CrisisEvent (taken from rules.db), --raw-messages.
//
// A fraction (--exposed) of the events is an M6.0 earthquake at a registrant's
// position (people exposed: alerts, webhooks); the rest are the same quakes in
// the empty South Pacific (same work for ingest and rules, no alert).
//
//   bench-pipeline [--events N] [--registrants N] [--rate R] [--seconds S] [--exposed F]
//            [--file-events N] [--latency-file-events N] [--scan-interval-ms MS]
//            [--onset-spacing-s S] [--raw-messages N] [--max-ids-per-alert N] [--keep] [--perf] [--perf-dwarf]
//
// --max-ids-per-alert sets rules.max_ids_per_alert (default: the shipped
// 1000) to see what carrying the ids costs; the goals are measured with it
// unset.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sqlite3.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>
#include <zmq.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "amparo/v1/envelope.pb.h"
#include "common/link.h"
#include "services/cli/demo_data.h"
#include "services/cli/http_client.h"
#include "services/ingest/usgs_parser.h"

extern char** environ;

namespace {

namespace fs = std::filesystem;
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;
namespace cli = amparo::cli;
using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;

struct Options {
  int events = 20'000;
  int registrants = 100'000;
  int rate = 1'000;
  int seconds = 10;
  double exposed = 0.05;
  int file_events = 1'000;
  int latency_file_events = 10;
  int scan_interval_ms = 10;
  int raw_messages = 1'000'000;
  int max_ids_per_alert = -1;  // rules.max_ids_per_alert; -1: the shipped default (what users run)
  bool keep = false;
  int onset_spacing_s = 30;  // onset of event i = start - i * spacing (0 = all at the same moment)
  bool perf = false;         // `perf record -g` the four daemons during the throughput run
  bool perf_dwarf = false;   // ... with DWARF call graphs (callers of libm/libc leaves; bigger files)
  std::vector<std::string> states = {"PHL", "IND", "NPL", "ETH"};
};

// The daemons' pids, for a SIGINT/SIGTERM of the bench (async-signal-safe).
pid_t g_daemon_pids[8] = {};

void StopDaemonsOnSignal(int sig) {
  for (pid_t pid : g_daemon_pids) {
    if (pid > 0) kill(pid, SIGTERM);
  }
  _exit(128 + sig);
}

// Set while daemons run, so that Die() does not leave them orphaned.
std::function<void()> g_stop_daemons;

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "pipeline: %s\n", what.c_str());
  if (g_stop_daemons) g_stop_daemons();
  std::exit(1);
}

int64_t UnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}
double UnixMsPrecise() {
  return std::chrono::duration<double, std::milli>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string LoadAverage() {
  double l[3] = {0, 0, 0};
  if (getloadavg(l, 3) != 3) return "n/a";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.2f %.2f %.2f", l[0], l[1], l[2]);
  return buf;
}

std::string Thousands(double v) {
  std::string digits = std::to_string(static_cast<int64_t>(std::llround(v)));
  std::string out;
  int n = 0;
  for (auto it = digits.rbegin(); it != digits.rend(); ++it) {
    if (n && n % 3 == 0 && *it != '-') out.insert(out.begin(), ',');
    out.insert(out.begin(), *it);
    ++n;
  }
  return out;
}

// Runs a shell command; returns stdout+stderr, dies on a non-zero exit.
std::string Run(const std::vector<std::string>& argv) {
  std::string cmd;
  for (const auto& a : argv) cmd += "'" + a + "' ";
  cmd += "2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) Die("cannot run " + cmd);
  std::string out;
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  if (pclose(p) != 0) Die(cmd + " failed:\n" + out);
  return out;
}

// ------------------------------------------------------------------ daemons

// A daemon process, stdout+stderr appended to its log.
class Daemon {
 public:
  Daemon(std::string name, std::vector<std::string> argv, fs::path log)
      : name_(std::move(name)), argv_(std::move(argv)), log_(std::move(log)) {}
  ~Daemon() { Stop(); }
  void Start() {
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, log_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    std::vector<char*> argv;
    for (auto& a : argv_) argv.push_back(a.data());
    argv.push_back(nullptr);
    int rc = posix_spawn(&pid_, argv_[0].c_str(), &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) Die("cannot start " + argv_[0]);
  }
  void Stop() {
    if (pid_ <= 0) return;
    kill(pid_, SIGTERM);
    int status = 0;
    for (int i = 0; i < 100 && waitpid(pid_, &status, WNOHANG) != pid_; ++i)
      std::this_thread::sleep_for(50ms);
    if (kill(pid_, 0) == 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, &status, 0);
    }
    pid_ = -1;
  }
  // Waits for the process to exit by itself.
  void Wait() {
    if (pid_ > 0) waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  bool Running() { return pid_ > 0 && waitpid(pid_, nullptr, WNOHANG) == 0; }
  // User + system CPU seconds so far (all threads), from /proc/<pid>/stat.
  double CpuSeconds() const {
    std::ifstream in("/proc/" + std::to_string(pid_) + "/stat");
    std::string stat((std::istreambuf_iterator<char>(in)), {});
    size_t close = stat.rfind(')');
    if (close == std::string::npos) return 0;
    std::istringstream fields(stat.substr(close + 2));
    std::string f;
    double utime = 0, stime = 0;
    for (int i = 3; fields >> f; ++i) {  // field 3 is the state
      if (i == 14) utime = std::stod(f);
      if (i == 15) {
        stime = std::stod(f);
        break;
      }
    }
    return (utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
  }
  // Bytes handed to write()/pwrite() so far (the WAL, checkpoints, spool
  // moves), from /proc/<pid>/io "wchar"; 0 when unreadable.
  double WrittenBytes() const {
    std::ifstream in("/proc/" + std::to_string(pid_) + "/io");
    std::string key;
    double value = 0;
    while (in >> key >> value) {
      if (key == "wchar:") return value;
    }
    return 0;
  }
  // Seconds its threads spent runnable but waiting for a CPU, so far: the
  // second field of /proc/<pid>/task/<tid>/schedstat, summed over threads.
  double RunQueueSeconds() const {
    std::error_code ec;
    double ns = 0;
    for (const auto& task : fs::directory_iterator("/proc/" + std::to_string(pid_) + "/task", ec)) {
      std::ifstream in(task.path() / "schedstat");
      double on_cpu = 0, waiting = 0;
      if (in >> on_cpu >> waiting) ns += waiting;
    }
    return ns / 1e9;
  }
  const std::string& name() const { return name_; }
  pid_t pid() const { return pid_; }

 private:
  std::string name_;
  std::vector<std::string> argv_;
  fs::path log_;
  pid_t pid_ = -1;
};

// One integer from a daemon's database, opened read-only (WAL readers never
// block the daemon's writer). nullopt when the file or table is not there yet.
// Read-only connections to the daemons' databases, opened once: the drain
// check runs every 20 ms during a phase, and opening a database each time
// (reading its schema and WAL index again) took CPU from the daemons it
// measures on two cores.
class ReadConnections {
 public:
  ~ReadConnections() {
    for (auto& [path, db] : open_) sqlite3_close(db);
  }
  sqlite3* Get(const fs::path& path) {
    auto it = open_.find(path.string());
    if (it != open_.end()) return it->second;
    sqlite3* db = nullptr;
    if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
      sqlite3_close(db);
      return nullptr;
    }
    sqlite3_busy_timeout(db, 1000);
    return open_[path.string()] = db;
  }
  // Closes them (before their files are removed).
  void CloseAll() {
    for (auto& [path, db] : open_) sqlite3_close(db);
    open_.clear();
  }

 private:
  std::map<std::string, sqlite3*> open_;
};
ReadConnections g_read_connections;

std::optional<int64_t> QueryInt(const fs::path& db_path, const std::string& sql) {
  sqlite3* db = g_read_connections.Get(db_path);
  if (db == nullptr) return std::nullopt;
  std::optional<int64_t> out;
  sqlite3_stmt* st = nullptr;
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) {
    out = sqlite3_column_type(st, 0) == SQLITE_NULL ? 0 : sqlite3_column_int64(st, 0);
  }
  sqlite3_finalize(st);
  return out;
}

// ------------------------------------------------------------------ webhook receiver

struct Arrival {
  std::string target;
  std::string body;
  double unix_ms;  // when the request was fully read
};

// HTTP/1.1 server on 127.0.0.1:<ephemeral>, one thread per connection (notify
// keeps at most notify.max_in_flight connections); answers 204 to every POST
// and records the arrival time before answering.
class Receiver {
 public:
  Receiver() {
    accept_thread_ = std::thread([this] {
      while (!stop_) {
        beast::error_code ec;
        asio::ip::tcp::socket socket(io_);
        acceptor_.accept(socket, ec);
        if (ec || stop_) return;
        std::lock_guard lock(mu_);
        fds_.push_back(socket.native_handle());
        connections_.emplace_back([this, s = std::move(socket)]() mutable { Serve(std::move(s)); });
      }
    });
  }
  ~Receiver() {
    stop_ = true;
    beast::error_code ec;
    asio::ip::tcp::socket poke(io_);
    poke.connect(acceptor_.local_endpoint(ec), ec);
    accept_thread_.join();
    acceptor_.close(ec);
    std::vector<std::thread> connections;
    {
      std::lock_guard lock(mu_);
      for (int fd : fds_) ::shutdown(fd, SHUT_RDWR);
      connections.swap(connections_);
    }
    for (auto& t : connections) t.join();
  }
  std::string url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(acceptor_.local_endpoint().port()) + path;
  }
  size_t count() {
    std::lock_guard lock(mu_);
    return arrivals_.size();
  }
  std::vector<Arrival> Take() {
    std::lock_guard lock(mu_);
    std::vector<Arrival> out;
    out.swap(arrivals_);
    return out;
  }

 private:
  void Serve(asio::ip::tcp::socket socket) {
    beast::flat_buffer buffer;
    beast::error_code ec;
    while (!stop_) {
      http::request_parser<http::string_body> parser;
      parser.body_limit(16 << 20);
      http::read(socket, buffer, parser, ec);
      if (ec) return;
      const double at = UnixMsPrecise();
      http::request<http::string_body> req = parser.release();
      {
        std::lock_guard lock(mu_);
        arrivals_.push_back({std::string(req.target()), std::move(req.body()), at});
      }
      http::response<http::empty_body> res{http::status::no_content, req.version()};
      res.keep_alive(req.keep_alive());
      http::write(socket, res, ec);
      if (ec || !req.keep_alive()) return;
    }
  }

  asio::io_context io_;
  asio::ip::tcp::acceptor acceptor_{io_, {asio::ip::make_address("127.0.0.1"), 0}};
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::vector<Arrival> arrivals_;
  std::vector<int> fds_;
  std::vector<std::thread> connections_;
  std::thread accept_thread_;
};

// ------------------------------------------------------------------ events

struct Place {
  double lat, lon;
};

// One USGS summary feature: M6.0 at 10 km depth (strong shaking within ~20 km).
// `updated` (the event's sent time) is the moment the feature is written.
// `onset_ms` is the quake's origin time.
json::object Quake(const std::string& id, Place p, int64_t onset_ms, int64_t now_ms) {
  json::object props{{"mag", 6.0},
                     {"place", "bench " + id},
                     {"time", onset_ms},
                     {"updated", now_ms},
                     {"status", "reviewed"},
                     {"type", "earthquake"},
                     {"title", "M 6.0 - bench " + id},
                     {"url", "https://example.invalid/" + id},
                     {"ids", "," + id + ","},
                     {"alert", nullptr},
                     {"tsunami", 0},
                     {"mmi", nullptr}};
  return json::object{{"type", "Feature"},
                      {"id", id},
                      {"properties", std::move(props)},
                      {"geometry", {{"type", "Point"}, {"coordinates", json::array{p.lon, p.lat, 10.0}}}}};
}

class EventMaker {
 public:
  // Onsets go back in time by `onset_spacing_ms` per event made, as in a
  // replayed month of a feed: ingest's correlator compares each earthquake
  // with every incident within 10 minutes of its onset, so a burst of
  // thousands with the same onset is its quadratic worst case, not a feed.
  EventMaker(std::vector<Place> people, double exposed, int64_t onset_spacing_ms, uint64_t seed)
      : people_(std::move(people)), exposed_(exposed), onset_spacing_ms_(onset_spacing_ms), rng_(seed) {}
  // A feed of `n` features with ids <prefix><first..first+n-1>.
  std::string Feed(const std::string& prefix, int first, int n, int* exposing) {
    json::array features;
    const int64_t now = UnixMs();
    for (int i = first; i < first + n; ++i) {
      char id[32];
      std::snprintf(id, sizeof id, "%s%07d", prefix.c_str(), i);
      Place p;
      if (std::uniform_real_distribution<double>(0, 1)(rng_) < exposed_) {
        p = people_[std::uniform_int_distribution<size_t>(0, people_.size() - 1)(rng_)];
        ++*exposing;
      } else {  // South Pacific, thousands of km from any registrant
        p = {std::uniform_real_distribution<double>(-55, -40)(rng_),
             std::uniform_real_distribution<double>(-150, -100)(rng_)};
      }
      features.push_back(Quake(id, p, start_ms_ - 60'000 - made_++ * onset_spacing_ms_, now));
    }
    json::object feed{{"type", "FeatureCollection"},
                      {"metadata", {{"count", n}, {"title", "bench"}}},
                      {"features", std::move(features)}};
    return json::serialize(feed);
  }

 private:
  std::vector<Place> people_;
  double exposed_;
  int64_t onset_spacing_ms_;
  int64_t start_ms_ = UnixMs();
  int64_t made_ = 0;
  std::mt19937_64 rng_;
};

// ------------------------------------------------------------------ deployment

class Deployment {
 public:
  Deployment(const Options& o, const fs::path& dir) : dir_(dir) {
    const fs::path bin = AMPARO_BIN_DIR;
    Run({(bin / "amparo").string(), "init", dir.string(), "--listen", "127.0.0.1:0"});
    std::ifstream in(config());
    std::string s((std::istreambuf_iterator<char>(in)), {});
    auto set = [&](const std::string& key, const std::string& value) {
      std::regex re("(^|\\n)#? ?" + key + " = [^\\n]*");
      if (!std::regex_search(s, re)) Die("config key not found: " + key);
      s = std::regex_replace(s, re, "$1" + key + " = " + value, std::regex_constants::format_first_only);
    };
    set("port_file", "\"run/gateway.port\"");
    set("scan_interval_ms", std::to_string(o.scan_interval_ms));
    if (o.max_ids_per_alert >= 0) set("max_ids_per_alert", std::to_string(o.max_ids_per_alert));
    std::ofstream(config(), std::ios::trunc) << s;
    for (const char* name : {"gateway", "notify", "rules", "ingest"}) {
      daemons_.push_back(std::make_unique<Daemon>(
          name,
          std::vector<std::string>{(bin / ("amparo-" + std::string(name))).string(), "--config", config()},
          dir / (std::string(name) + ".log")));
    }
  }
  std::string config() const { return (dir_ / "amparo.toml").string(); }
  fs::path db(const std::string& name) const { return dir_ / "data" / (name + ".db"); }
  fs::path spool() const { return dir_ / "data" / "spool"; }
  std::vector<std::unique_ptr<Daemon>>& daemons() { return daemons_; }

  void Start() {
    for (size_t i = 0; i < daemons_.size(); ++i) {
      daemons_[i]->Start();
      g_daemon_pids[i] = daemons_[i]->pid();
    }
    signal(SIGINT, StopDaemonsOnSignal);
    signal(SIGTERM, StopDaemonsOnSignal);
    cli::HttpClient http(2000);
    auto until = SteadyClock::now() + 30s;
    while (SteadyClock::now() < until) {
      std::ifstream in(dir_ / "run" / "gateway.port");
      int port = 0;
      if (in >> port && port > 0) {
        base_url_ = "http://127.0.0.1:" + std::to_string(port);
        auto r = http.Request("GET", base_url_ + "/healthz");
        if (r.ok() && r->status == 200) return;
      }
      std::this_thread::sleep_for(50ms);
    }
    Die("the gateway did not become healthy (logs in " + dir_.string() + ")");
  }
  void Stop() {
    for (auto it = daemons_.rbegin(); it != daemons_.rend(); ++it) (*it)->Stop();
  }
  void CheckRunning() {
    for (auto& d : daemons_) {
      if (!d->Running())
        Die("amparo-" + d->name() + " died (log: " + (dir_ / (d->name() + ".log")).string() + ")");
    }
  }
  std::map<std::string, double> Cpu() const {
    std::map<std::string, double> out;
    for (const auto& d : daemons_) out[d->name()] = d->CpuSeconds();
    return out;
  }
  std::map<std::string, double> RunQueue() const {
    std::map<std::string, double> out;
    for (const auto& d : daemons_) out[d->name()] = d->RunQueueSeconds();
    return out;
  }
  std::map<std::string, double> Written() const {
    std::map<std::string, double> out;
    for (const auto& d : daemons_) out[d->name()] = d->WrittenBytes() / 1e6;
    return out;
  }

  void Subscribe(const std::string& state, const std::string& url) {
    std::string out = Run({(fs::path(AMPARO_BIN_DIR) / "amparo").string(), "token", "create", "--config",
                           config(), "--state", state, "--role", "operator"});
    while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
    const std::string token = out.substr(out.rfind('\n') == std::string::npos ? 0 : out.rfind('\n') + 1);
    cli::HttpClient http(10'000);
    auto r =
        http.Request("POST", base_url_ + "/api/v1/subscriptions", json::serialize(json::object{{"url", url}}),
                     {"Authorization: Bearer " + token, "Content-Type: application/json"});
    if (!r.ok() || r->status != 201) Die("subscription for " + state + " failed: " + (r.ok() ? r->body : ""));
  }

  // True when nothing is left in any hand-off: every spool file processed,
  // every outbox to the next daemon empty, every inbox processed.
  bool Drained(int64_t files_expected) {
    auto files = QueryInt(db("ingest"), "SELECT count(*) FROM ingest_files");
    auto to_rules = QueryInt(db("ingest"), "SELECT count(*) FROM link_outbox WHERE peer = 'rules'");
    auto rules_pending = QueryInt(db("rules"), "SELECT count(*) FROM link_inbox WHERE processed_ms IS NULL");
    auto to_notify = QueryInt(db("rules"), "SELECT count(*) FROM link_outbox WHERE peer = 'notify'");
    auto notify_pending =
        QueryInt(db("notify"), "SELECT count(*) FROM link_inbox WHERE processed_ms IS NULL");
    return files && *files >= files_expected && to_rules && *to_rules == 0 && rules_pending &&
           *rules_pending == 0 && to_notify && *to_notify == 0 && notify_pending && *notify_pending == 0;
  }
  // Deliveries not yet finished (pending or retrying).
  int64_t OpenDeliveries() {
    return QueryInt(db("notify"), "SELECT count(*) FROM deliveries WHERE state IN ('pending', 'retrying')")
        .value_or(-1);
  }

 private:
  fs::path dir_;
  std::string base_url_;
  std::vector<std::unique_ptr<Daemon>> daemons_;
};

template <typename Pred>
bool WaitUntil(Pred pred, std::chrono::milliseconds timeout, std::chrono::milliseconds every = 20ms) {
  auto until = SteadyClock::now() + timeout;
  while (SteadyClock::now() < until) {
    if (pred()) return true;
    std::this_thread::sleep_for(every);
  }
  return pred();
}

void DropIntoSpool(const fs::path& spool, const std::string& name, const std::string& content) {
  std::ofstream(spool / "tmp" / name, std::ios::binary) << content;
  fs::rename(spool / "tmp" / name, spool / name);
}

// ------------------------------------------------------------------ latency figures

struct WebhookFacts {
  std::string incident_id;
  double raised_ms = 0;
};

WebhookFacts Facts(const std::string& body) {
  WebhookFacts f;
  boost::system::error_code ec;
  json::value v = json::parse(body, ec);
  if (ec || !v.is_object()) return f;
  const json::object* data =
      v.as_object().if_contains("data") ? v.as_object().at("data").if_object() : nullptr;
  if (!data) return f;
  if (auto* id = data->if_contains("incident_id"); id && id->is_string()) f.incident_id = id->as_string();
  if (auto* raised = data->if_contains("raised_at"); raised && raised->is_string()) {
    // "YYYY-MM-DDTHH:MM:SS[.mmm]Z"
    std::string s(raised->as_string());
    std::tm tm{};
    if (strptime(s.c_str(), "%Y-%m-%dT%H:%M:%S", &tm)) {
      f.raised_ms = static_cast<double>(timegm(&tm)) * 1000;
      size_t dot = s.find('.');
      if (dot != std::string::npos) f.raised_ms += std::atof(("0" + s.substr(dot, 4)).c_str()) * 1000;
    }
  }
  return f;
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(std::ceil(p / 100.0 * v.size()));
  return v[std::min(v.size() - 1, i == 0 ? 0 : i - 1)];
}

// ------------------------------------------------------------------ raw ZeroMQ

struct RawResult {
  double messages_per_s = 0;
  double seconds = 0;
};

RawResult RawPushPull(const fs::path& dir, const std::string& message, int count) {
  zmq::context_t ctx(1);
  const std::string endpoint = "ipc://" + (dir / "raw.ipc").string();
  zmq::socket_t pull(ctx, zmq::socket_type::pull);
  pull.bind(endpoint);
  std::thread sender([&] {
    zmq::socket_t push(ctx, zmq::socket_type::push);
    push.set(zmq::sockopt::linger, 5000);
    push.connect(endpoint);
    for (int i = 0; i < count; ++i) (void)push.send(zmq::buffer(message), zmq::send_flags::none);
  });
  zmq::message_t msg;
  (void)pull.recv(msg);  // the first message starts the clock (connection set up)
  auto t0 = SteadyClock::now();
  size_t bytes = 0;
  for (int i = 1; i < count; ++i) {
    (void)pull.recv(msg);
    bytes += msg.size();
  }
  const double secs = std::chrono::duration<double>(SteadyClock::now() - t0).count();
  sender.join();
  if (bytes != static_cast<size_t>(count - 1) * message.size()) Die("raw: message sizes differ");
  return {(count - 1) / secs, secs};
}

// An Envelope{CrisisEvent} as amparo-ingest sends it to rules: one of the
// bench's features through ingest's own USGS parser, wrapped by MakeEnvelope.
// (Rules clears stored envelopes once processed, so the real bytes cannot be
// read back.) The correlator's stamp for a lone event is its own event id.
std::string CrisisEnvelope(EventMaker& maker) {
  int exposing = 0;
  auto parsed = amparo::ingest::ParseUsgsGeoJson(maker.Feed("raw", 0, 1, &exposing));
  if (!parsed.ok() || parsed->events.size() != 1) Die("raw: the sample feature does not parse");
  amparo::v1::Envelope envelope = amparo::MakeEnvelope("amparo-ingest", amparo::SystemClock::Instance());
  *envelope.mutable_crisis_event() = std::move(parsed->events[0]);
  envelope.mutable_crisis_event()->set_incident_id(envelope.crisis_event().event_id());
  return envelope.SerializeAsString();
}

// ------------------------------------------------------------------ main

Options ParseOptions(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) Die(a + " needs a value");
      return argv[++i];
    };
    if (a == "--events")
      o.events = std::stoi(next());
    else if (a == "--registrants")
      o.registrants = std::stoi(next());
    else if (a == "--rate")
      o.rate = std::stoi(next());
    else if (a == "--seconds")
      o.seconds = std::stoi(next());
    else if (a == "--exposed")
      o.exposed = std::stod(next());
    else if (a == "--file-events")
      o.file_events = std::stoi(next());
    else if (a == "--latency-file-events")
      o.latency_file_events = std::stoi(next());
    else if (a == "--scan-interval-ms")
      o.scan_interval_ms = std::stoi(next());
    else if (a == "--raw-messages")
      o.raw_messages = std::stoi(next());
    else if (a == "--onset-spacing-s")
      o.onset_spacing_s = std::stoi(next());
    else if (a == "--max-ids-per-alert")
      o.max_ids_per_alert = std::stoi(next());
    else if (a == "--keep")
      o.keep = true;
    else if (a == "--perf")
      o.perf = o.keep = true;
    else if (a == "--perf-dwarf")
      o.perf = o.perf_dwarf = o.keep = true;
    else
      Die("unknown option " + a + " (see the comment at the top of bench/pipeline/pipeline_bench.cpp)");
  }
  if (o.events < 1 || o.registrants < 1 || o.rate < 1 || o.seconds < 1 || o.file_events < 1 ||
      o.latency_file_events < 1 || o.raw_messages < 2 || o.exposed < 0 || o.exposed > 1) {
    Die("option out of range");
  }
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = ParseOptions(argc, argv);
  signal(SIGPIPE, SIG_IGN);
  const fs::path dir = fs::temp_directory_path() / ("amparo-bench-pipeline-" + std::to_string(getpid()));
  fs::create_directories(dir);
  std::printf(
      "bench/pipeline: amparo-ingest -> amparo-rules -> amparo-notify (+ amparo-gateway), real processes,\n"
      "ipc:// links, deployment from `amparo init` in %s (ingest.scan_interval_ms = %d),\n"
      "event onsets %d s apart\n",
      dir.c_str(), o.scan_interval_ms, o.onset_spacing_s);
  if (o.max_ids_per_alert >= 0) std::printf("rules.max_ids_per_alert = %d (not the default)\n", o.max_ids_per_alert);
  std::fflush(stdout);

  Receiver receiver;
  Deployment d(o, dir);
  g_stop_daemons = [&d] { d.Stop(); };
  d.Start();

  // Registrants through the gateway's import API, then the registry stream to rules.
  std::string states;
  for (const auto& s : o.states) states += (states.empty() ? "" : ",") + s;
  auto t_reg = SteadyClock::now();
  Run({(fs::path(AMPARO_BIN_DIR) / "amparo").string(), "demo-data", "--config", d.config(), "--registrants",
       std::to_string(o.registrants), "--states", states, "--seed", "1"});
  const double import_s = std::chrono::duration<double>(SteadyClock::now() - t_reg).count();
  for (const auto& s : o.states) d.Subscribe(s, receiver.url("/" + s));
  const bool synced = WaitUntil(
      [&] {
        return QueryInt(d.db("gateway"), "SELECT count(*) FROM link_outbox WHERE peer = 'rules'")
                       .value_or(1) == 0 &&
               QueryInt(d.db("rules"), "SELECT count(*) FROM link_inbox WHERE processed_ms IS NULL")
                       .value_or(1) == 0 &&
               QueryInt(d.db("notify"), "SELECT count(*) FROM subscriptions").value_or(0) ==
                   static_cast<int64_t>(o.states.size());
      },
      600s, 200ms);
  if (!synced) Die("the registry did not reach rules within 10 minutes");
  std::this_thread::sleep_for(1s);  // rules settles (snapshot/probe exchange)
  const double registry_s = std::chrono::duration<double>(SteadyClock::now() - t_reg).count();
  d.CheckRunning();
  std::printf(
      "registrants: %s (amparo demo-data, states %s): import %.1f s, in rules after %.1f s; load %s\n",
      Thousands(o.registrants).c_str(), states.c_str(), import_s, registry_s, LoadAverage().c_str());
  std::fflush(stdout);

  std::vector<Place> people;
  {
    amparo::cli::DemoOptions demo;
    demo.registrants = o.registrants;
    demo.states = o.states;
    demo.seed = 1;
    auto population = amparo::cli::GenerateDemoPopulation(demo);
    if (!population.ok()) Die(population.status().ToString());
    for (const auto& r : *population) people.push_back({r.lat, r.lon});
  }
  EventMaker maker(std::move(people), o.exposed, int64_t{o.onset_spacing_s} * 1000, 42);

  // ---------------------------------------------------------------- 1. throughput
  const int files = (o.events + o.file_events - 1) / o.file_events;
  int exposing = 0;
  std::vector<std::string> names;
  for (int f = 0; f < files; ++f) {
    const int first = f * o.file_events;
    const int n = std::min(o.file_events, o.events - first);
    names.push_back("tp" + std::to_string(100000 + f) + ".json");
    std::ofstream(d.spool() / "tmp" / names.back(), std::ios::binary)
        << maker.Feed("tp", first, n, &exposing);
  }
  const int64_t files_before = QueryInt(d.db("ingest"), "SELECT count(*) FROM ingest_files").value_or(0);
  const int64_t deliveries_before = QueryInt(d.db("notify"), "SELECT count(*) FROM deliveries").value_or(0);
  receiver.Take();
  const auto cpu0 = d.Cpu();
  const auto written0 = d.Written();
  const auto waited0 = d.RunQueue();
  const std::string load_tp_start = LoadAverage();
  std::unique_ptr<Daemon> perf;
  auto start_perf = [&](const std::string& name) {
    if (!o.perf) return;
    std::string pids;
    for (const auto& daemon : d.daemons()) pids += (pids.empty() ? "" : ",") + std::to_string(daemon->pid());
    perf = std::make_unique<Daemon>(
        "perf",
        o.perf_dwarf
            ? std::vector<std::string>{"/usr/bin/perf", "record", "-F", "997", "--call-graph", "dwarf,16384",
                                       "-p", pids, "-o", (dir / (name + ".perf.data")).string()}
            : std::vector<std::string>{"/usr/bin/perf", "record", "-F", "499", "-g", "-p", pids, "-o",
                                       (dir / (name + ".perf.data")).string()},
        dir / "perf.log");
    perf->Start();
    std::this_thread::sleep_for(1s);  // perf attaches
  };
  auto stop_perf = [&] {
    if (!perf) return;
    kill(perf->pid(), SIGINT);
    perf->Wait();
    perf.reset();
  };
  start_perf("throughput");
  const int64_t t0_ms = UnixMs();
  const auto t0 = SteadyClock::now();
  for (const auto& name : names) fs::rename(d.spool() / "tmp" / name, d.spool() / name);
  if (!WaitUntil([&] { return d.Drained(files_before + files); }, 600s)) Die("throughput run did not drain");
  const double drained_s = std::chrono::duration<double>(SteadyClock::now() - t0).count();
  const auto cpu1 = d.Cpu();
  const auto written1 = d.Written();
  const auto waited1 = d.RunQueue();
  stop_perf();
  const std::string load_tp = LoadAverage();
  auto since = [&](const fs::path& db, const std::string& sql) {
    return (QueryInt(db, sql).value_or(t0_ms) - t0_ms) / 1000.0;
  };
  const double ingest_s = since(d.db("ingest"), "SELECT max(processed_ms) FROM ingest_files");
  const double rules_s = since(d.db("rules"), "SELECT max(processed_ms) FROM link_inbox");
  const double notify_s = since(d.db("notify"), "SELECT max(created_ms) FROM deliveries");
  const int64_t deliveries =
      QueryInt(d.db("notify"), "SELECT count(*) FROM deliveries").value_or(0) - deliveries_before;
  if (!WaitUntil([&] { return d.OpenDeliveries() == 0; }, 600s, 50ms)) Die("webhooks did not finish");
  std::this_thread::sleep_for(300ms);
  std::vector<Arrival> tp_hooks = receiver.Take();
  double last_hook_s = 0;
  for (const auto& h : tp_hooks) last_hook_s = std::max(last_hook_s, (h.unix_ms - t0_ms) / 1000.0);
  // With nobody exposed (--exposed 0) no delivery is made: the events are
  // done when rules has processed them.
  const double done_s = deliveries > 0 ? notify_s : rules_s;
  const double events_per_s = o.events / done_s;
  d.CheckRunning();

  // ---------------------------------------------------------------- 2. latency
  const int lat_files = o.rate * o.seconds / o.latency_file_events;
  const auto interval = std::chrono::duration<double>(static_cast<double>(o.latency_file_events) / o.rate);
  std::map<std::string, double> dropped_ms;  // event id -> unix ms of its file's rename
  int lat_exposing = 0;
  const int64_t lat_files_before = QueryInt(d.db("ingest"), "SELECT count(*) FROM ingest_files").value_or(0);
  const auto cpu2 = d.Cpu();
  const auto written2 = d.Written();
  const auto waited2 = d.RunQueue();
  start_perf("latency");
  const std::string load_lat_start = LoadAverage();
  const auto l0 = SteadyClock::now();
  double behind_ms = 0;  // how late the generator ran at worst
  for (int f = 0; f < lat_files; ++f) {
    const auto due = l0 + std::chrono::duration_cast<SteadyClock::duration>(interval * f);
    std::this_thread::sleep_until(due);
    behind_ms =
        std::max(behind_ms, std::chrono::duration<double, std::milli>(SteadyClock::now() - due).count());
    const int first = f * o.latency_file_events;
    const std::string name = "lt" + std::to_string(100000 + f) + ".json";
    DropIntoSpool(d.spool(), name, maker.Feed("lt", first, o.latency_file_events, &lat_exposing));
    const double at = UnixMsPrecise();
    for (int i = first; i < first + o.latency_file_events; ++i) {
      char id[40];
      std::snprintf(id, sizeof id, "usgs:lt%07d", i);
      dropped_ms[id] = at;
    }
  }
  const double gen_s = std::chrono::duration<double>(SteadyClock::now() - l0).count();
  if (!WaitUntil([&] { return d.Drained(lat_files_before + lat_files); }, 600s))
    Die("latency run did not drain");
  if (!WaitUntil([&] { return d.OpenDeliveries() == 0; }, 600s, 50ms)) Die("webhooks did not finish");
  std::this_thread::sleep_for(300ms);
  const auto cpu3 = d.Cpu();
  const auto written3 = d.Written();
  const auto waited3 = d.RunQueue();
  stop_perf();
  const std::string load_lat = LoadAverage();
  std::vector<double> total, to_raised, to_hook;
  // With --keep, every webhook of the latency run as a CSV row, to see
  // whether the slow ones come together (a stall) or alone.
  std::ofstream csv;
  if (o.keep) {
    csv.open(dir / "latency.csv");
    csv << "dropped_unix_ms,raised_unix_ms,received_unix_ms,incident_id\n";
  }
  for (const auto& h : receiver.Take()) {
    WebhookFacts f = Facts(h.body);
    auto it = dropped_ms.find(f.incident_id);
    if (it == dropped_ms.end()) continue;
    if (csv.is_open()) {
      csv << std::fixed << std::setprecision(3) << it->second << ',' << f.raised_ms << ',' << h.unix_ms << ','
          << f.incident_id << '\n';
    }
    total.push_back(h.unix_ms - it->second);
    if (f.raised_ms > 0) {
      to_raised.push_back(f.raised_ms - it->second);
      to_hook.push_back(h.unix_ms - f.raised_ms);
    }
  }
  const std::string envelope = CrisisEnvelope(maker);
  d.Stop();
  g_stop_daemons = nullptr;

  // ---------------------------------------------------------------- 3. raw ZeroMQ
  const std::string load_raw_start = LoadAverage();
  std::string message = envelope;
  RawResult raw = RawPushPull(dir, message, o.raw_messages);
  const std::string load_raw = LoadAverage();

  // ---------------------------------------------------------------- table
  // "ingest 0.52, rules 1.38, ... (total 3.24)": per daemon, b - a.
  auto per_daemon = [&](const std::map<std::string, double>& a, const std::map<std::string, double>& b,
                        int decimals) {
    std::string s;
    double sum = 0;
    char buf[64];
    for (const char* n : {"ingest", "rules", "notify", "gateway"}) {
      std::snprintf(buf, sizeof buf, "%s%s ", s.empty() ? "" : ", ", n);
      s += buf;
      std::snprintf(buf, sizeof buf, "%.*f", decimals, b.at(n) - a.at(n));
      s += buf;
      sum += b.at(n) - a.at(n);
    }
    std::snprintf(buf, sizeof buf, " (total %.*f)", decimals, sum);
    return s + buf;
  };
  auto cpu_line = [&](const auto& a, const auto& b) { return per_daemon(a, b, 2); };
  auto written_line = [&](const auto& a, const auto& b) { return per_daemon(a, b, 0); };
  std::printf("\n| measure | figure | goal |\n| --- | --- | --- |\n");
  std::printf(
      "| throughput, end to end (durable in %s) | **%s events/s** (%s events in %.3f s) | "
      ">= 20,000 events/s |\n",
      deliveries > 0 ? "notify.db deliveries" : "rules.db, nothing to deliver",
      Thousands(events_per_s).c_str(), Thousands(o.events).c_str(), done_s);
  std::printf("| ... input | %d spool files of %d USGS features, %d exposing (%.0f%%) | |\n", files,
              o.file_events, exposing, 100.0 * exposing / o.events);
  std::printf(
      "| ... stage done at (s after first rename) | ingest committed %.3f, rules processed %.3f, notify "
      "deliveries %.3f, last webhook %.3f (all hand-offs empty at %.3f) | |\n",
      ingest_s, rules_s, deliveries > 0 ? notify_s : 0.0, last_hook_s, drained_s);
  std::printf("| ... alerts -> deliveries / webhooks | %s / %s | |\n", Thousands(deliveries).c_str(),
              Thousands(static_cast<double>(tp_hooks.size())).c_str());
  std::printf("| ... CPU s per daemon | %s | |\n", cpu_line(cpu0, cpu1).c_str());
  std::printf("| ... MB written per daemon (write syscalls) | %s | |\n", written_line(written0, written1).c_str());
  std::printf("| ... s runnable but waiting for a CPU, per daemon | %s | |\n",
              cpu_line(waited0, waited1).c_str());
  std::printf("| ... load average (start -> end) | %s -> %s | |\n", load_tp_start.c_str(), load_tp.c_str());
  std::printf(
      "| latency at %s events/s for %d s, document in spool -> webhook received | p50 %.1f ms, p90 %.1f ms, "
      "**p99 %.1f ms**, max %.1f ms (%zu webhooks) | p99 <= 20 ms |\n",
      Thousands(o.rate).c_str(), o.seconds, Percentile(total, 50), Percentile(total, 90),
      Percentile(total, 99), Percentile(total, 100), total.size());
  std::printf(
      "| ... split: spool -> alert raised by rules | p50 %.1f, p99 %.1f ms (raised_at has ms resolution) | "
      "|\n",
      Percentile(to_raised, 50), Percentile(to_raised, 99));
  std::printf("| ... split: raised -> webhook received | p50 %.1f, p99 %.1f ms | |\n",
              Percentile(to_hook, 50), Percentile(to_hook, 99));
  std::printf(
      "| ... input | %d files of %d features every %.1f ms (%d exposing), generator %.2f s, worst lag "
      "%.1f ms | |\n",
      lat_files, o.latency_file_events, interval.count() * 1000, lat_exposing, gen_s, behind_ms);
  std::printf("| ... CPU s per daemon | %s | |\n", cpu_line(cpu2, cpu3).c_str());
  std::printf("| ... MB written per daemon (write syscalls) | %s | |\n", written_line(written2, written3).c_str());
  std::printf("| ... s runnable but waiting for a CPU, per daemon | %s | |\n",
              cpu_line(waited2, waited3).c_str());
  std::printf("| ... load average (start -> end) | %s -> %s | |\n", load_lat_start.c_str(), load_lat.c_str());
  std::printf(
      "| raw ZeroMQ PUSH/PULL, ipc://, %zu-byte messages (Envelope{CrisisEvent} as ingest sends it) | %s "
      "msg/s (%s in "
      "%.3f s); load %s -> %s | |\n",
      message.size(), Thousands(raw.messages_per_s).c_str(), Thousands(o.raw_messages).c_str(), raw.seconds,
      load_raw_start.c_str(), load_raw.c_str());
  std::printf("| pipeline / raw ZeroMQ | %.4f (1 : %.0f) | |\n", events_per_s / raw.messages_per_s,
              raw.messages_per_s / events_per_s);
  g_read_connections.CloseAll();
  if (!o.keep) {
    std::error_code ec;
    fs::remove_all(dir, ec);
  } else {
    std::printf("\nkept %s (daemon logs, databases)\n", dir.c_str());
  }
  return 0;
}
