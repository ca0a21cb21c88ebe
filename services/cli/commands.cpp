#include "services/cli/commands.h"

#include <csignal>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>

#include "common/audit.h"
#include "common/clock.h"
#include "common/config.h"
#include "common/daemon.h"
#include "common/db.h"
#include "common/log.h"
#include "services/cli/demo_data.h"
#include "services/ingest/check.h"
#include "services/cli/http_client.h"
#include "services/cli/init.h"
#include "services/cli/replay.h"
#include "services/cli/supervisor.h"
#include "services/gateway/gateway_store.h"

namespace amparo::cli {
namespace {

constexpr char kUsage[] = R"(Usage: amparo VERB [options]

Verbs:
  init DIR [--listen HOST:PORT] [--force]
      Create a deployment in DIR: amparo.toml, CURVE keys, data and run dirs.
  up [--config FILE]
      Start and supervise every daemon of the config; restart one that dies;
      Ctrl-C stops them all.
  replay [--config FILE] [--exercise] FILE...
      Feed files into amparo-ingest (through its spool directory).
  token create --state ISO3 --role registrar|operator|admin [--config FILE]
      Create an API token for a state; prints it once.
  demo-data [--config FILE] [--registrants N] [--states A,B,...] [--seed S]
      Register a synthetic population in real cities through the gateway API.
  check [--lenient] FILE...
      Parse feed files exactly as amparo-ingest would; print the normalised
      events as JSON lines or the rejection with its reason. Exit 1 if any
      file is rejected. Strict schema validation unless --lenient.
  audit verify [--config FILE]
      Recompute the hash chain of the gateway's audit log; exit 1 if broken.

--config defaults to ./amparo.toml. Options: --help, --version.
)";

// Parsed "--key value" options and positional arguments.
struct Args {
  std::map<std::string, std::string> options;
  std::vector<std::string> flags;
  std::vector<std::string> positional;
  bool Has(const std::string& flag) const {
    return std::find(flags.begin(), flags.end(), flag) != flags.end();
  }
  std::string Get(const std::string& key, const std::string& fallback = {}) const {
    auto it = options.find(key);
    return it == options.end() ? fallback : it->second;
  }
};

// Options that take a value; everything else starting with -- is a flag.
bool TakesValue(const std::string& key) {
  static const char* kWithValue[] = {"--config", "--listen", "--state", "--role",
                                     "--registrants", "--states", "--seed"};
  for (const char* k : kWithValue) {
    if (key == k) return true;
  }
  return false;
}

std::optional<Args> Parse(const std::vector<std::string>& argv, size_t from, const std::vector<std::string>& allowed) {
  Args a;
  for (size_t i = from; i < argv.size(); ++i) {
    const std::string& s = argv[i];
    if (s.rfind("--", 0) == 0) {
      if (std::find(allowed.begin(), allowed.end(), s) == allowed.end()) {
        std::cerr << "amparo: unknown option " << s << " (see amparo --help)\n";
        return std::nullopt;
      }
      if (TakesValue(s)) {
        if (i + 1 >= argv.size()) {
          std::cerr << "amparo: " << s << " needs a value\n";
          return std::nullopt;
        }
        a.options[s] = argv[++i];
      } else {
        a.flags.push_back(s);
      }
    } else {
      a.positional.push_back(s);
    }
  }
  return a;
}

std::optional<Config> LoadConfig(const Args& a) {
  auto c = Config::Load(a.Get("--config", "amparo.toml"));
  if (!c.ok()) {
    std::cerr << "amparo: bad config: " << c.status().ToString() << "\n";
    return std::nullopt;
  }
  return std::move(c).value();
}

int Fail(const Status& st) {
  std::cerr << "amparo: " << st.ToString() << "\n";
  return 1;
}

int Init(const Args& a) {
  if (a.positional.size() != 1) {
    std::cerr << "amparo init: exactly one DIR expected\n";
    return 2;
  }
  InitOptions o;
  o.dir = a.positional[0];
  o.listen = a.Get("--listen", o.listen);
  o.force = a.Has("--force");
  Status st = InitDeployment(o);
  if (!st.ok()) return Fail(st);
  std::cout << "initialised " << std::filesystem::absolute(o.dir).string() << "\n"
            << "  config: " << (o.dir / "amparo.toml").string() << "\n"
            << "next: amparo token create --config " << (o.dir / "amparo.toml").string()
            << " --state PHL --role operator\n";
  return 0;
}

std::atomic<bool> g_up_stop{false};
extern "C" void OnUpSignal(int) { g_up_stop = true; }

int Up(const Args& a) {
  auto config = LoadConfig(a);
  if (!config) return 2;
  log::Init("amparo-up", log::Level::kInfo);
  std::filesystem::path bin = SelfDirectory();
  std::vector<SupervisedProgram> programs;
  // Receivers first so senders find them (they would reconnect anyway).
  for (const char* name : {"amparo-gateway", "amparo-notify", "amparo-rules", "amparo-ingest"}) {
    programs.push_back({name, bin / name, {"--config", config->file.string()}});
    if (!std::filesystem::exists(programs.back().binary)) {
      return Fail(NotFound(programs.back().binary.string() + " not found next to amparo"));
    }
  }
  struct sigaction sa{};
  sa.sa_handler = OnUpSignal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  Supervisor supervisor(std::move(programs), SupervisorOptions{});
  Status st = supervisor.Run(g_up_stop);
  if (!st.ok()) return Fail(st);
  std::cerr << "amparo up: all daemons stopped\n";
  return 0;
}

int Replay(const Args& a) {
  auto config = LoadConfig(a);
  if (!config) return 2;
  if (a.positional.empty()) {
    std::cerr << "amparo replay: at least one FILE expected\n";
    return 2;
  }
  std::vector<std::filesystem::path> files(a.positional.begin(), a.positional.end());
  auto written = ReplayFiles(*config, files, a.Has("--exercise"));
  if (!written.ok()) return Fail(written.status());
  for (const auto& p : *written) std::cout << "queued " << p.string() << "\n";
  return 0;
}

int TokenCreate(const Args& a) {
  auto config = LoadConfig(a);
  if (!config) return 2;
  std::string state = a.Get("--state");
  auto role = gateway::ParseRole(a.Get("--role"));
  if (!role.ok()) return Fail(role.status());
  auto db = Db::Open(config->DbPath("gateway"));
  if (!db.ok()) return Fail(db.status());
  Status st = gateway::MigrateGatewayDb(*db);
  if (!st.ok()) return Fail(st);
  auto token = gateway::CreateToken(*db, state, *role, SystemClock::Instance());
  if (!token.ok()) return Fail(token.status());
  std::cout << *token << "\n";
  return 0;
}

// Where the gateway listens: the port file when configured (port 0), else
// the listen address.
std::string GatewayUrl(const Config& c) {
  std::string listen = c.gateway.listen;
  std::string host = listen.substr(0, listen.rfind(':'));
  std::string port = listen.substr(listen.rfind(':') + 1);
  if (!c.gateway.port_file.empty()) {
    std::ifstream in(c.gateway.port_file);
    std::string p;
    if (in >> p) port = p;
  }
  if (host == "0.0.0.0" || host.empty()) host = "127.0.0.1";
  return "http://" + host + ":" + port;
}

int DemoData(const Args& a) {
  auto config = LoadConfig(a);
  if (!config) return 2;
  DemoOptions o;
  try {
    o.registrants = std::stoi(a.Get("--registrants", std::to_string(o.registrants)));
    o.seed = std::stoull(a.Get("--seed", std::to_string(o.seed)));
  } catch (const std::exception&) {
    std::cerr << "amparo demo-data: --registrants and --seed take whole numbers\n";
    return 2;
  }
  if (a.options.count("--states")) {
    o.states.clear();
    std::string s = a.Get("--states");
    for (size_t start = 0; start <= s.size();) {
      size_t comma = s.find(',', start);
      if (comma == std::string::npos) comma = s.size();
      if (comma > start) o.states.push_back(s.substr(start, comma - start));
      start = comma + 1;
    }
  }
  auto population = GenerateDemoPopulation(o);
  if (!population.ok()) return Fail(population.status());
  auto db = Db::Open(config->DbPath("gateway"));
  if (!db.ok()) return Fail(db.status());
  Status st = gateway::MigrateGatewayDb(*db);
  if (!st.ok()) return Fail(st);
  std::map<std::string, std::string> tokens;
  for (const auto& s : o.states) {
    auto t = gateway::CreateToken(*db, s, gateway::Role::kRegistrar, SystemClock::Instance());
    if (!t.ok()) return Fail(t.status());
    tokens[s] = *t;
  }
  std::string url = GatewayUrl(*config) + "/api/v1/registrants";
  HttpClient http;
  int created = 0, failed = 0;
  for (const auto& r : *population) {
    auto resp = http.Request("POST", url, RegistrantJson(r),
                             {"Authorization: Bearer " + tokens[r.state], "Content-Type: application/json"});
    if (!resp.ok()) return Fail(resp.status());
    if (resp->status == 201) {
      ++created;
    } else {
      ++failed;
      std::cerr << "amparo demo-data: " << r.external_ref << ": HTTP " << resp->status << " " << resp->body << "\n";
    }
  }
  std::cout << "registered " << created << " demo nationals (" << failed << " failed) at " << url << "\n";
  return failed == 0 ? 0 : 1;
}

int AuditVerify(const Args& a) {
  auto config = LoadConfig(a);
  if (!config) return 2;
  auto db = Db::Open(config->DbPath("gateway"));
  if (!db.ok()) return Fail(db.status());
  Status st = MigrateAudit(*db);
  if (!st.ok()) return Fail(st);
  auto report = VerifyAudit(*db);
  if (!report.ok()) return Fail(report.status());
  if (!report->ok()) {
    std::cout << "audit log BROKEN at entry " << report->first_bad_seq << ": " << report->problem << " ("
              << report->entries << " entries checked)\n";
    return 1;
  }
  std::cout << "audit log intact: " << report->entries << " entries, head " << report->head_hash << "\n";
  return 0;
}

}  // namespace

int RunCli(const std::vector<std::string>& args) {
  if (args.size() < 2 || args[1] == "--help" || args[1] == "-h" || args[1] == "help") {
    std::cout << kUsage;
    return args.size() < 2 ? 2 : 0;
  }
  if (args[1] == "--version") {
    std::cout << "amparo " << AMPARO_VERSION << "\n";
    return 0;
  }
  const std::string& verb = args[1];
  if (verb == "init") {
    auto a = Parse(args, 2, {"--listen", "--force"});
    return a ? Init(*a) : 2;
  }
  if (verb == "up") {
    auto a = Parse(args, 2, {"--config"});
    return a ? Up(*a) : 2;
  }
  if (verb == "replay") {
    auto a = Parse(args, 2, {"--config", "--exercise"});
    return a ? Replay(*a) : 2;
  }
  if (verb == "token") {
    if (args.size() < 3 || args[2] != "create") {
      std::cerr << "amparo token: only `token create` exists\n";
      return 2;
    }
    auto a = Parse(args, 3, {"--config", "--state", "--role"});
    return a ? TokenCreate(*a) : 2;
  }
  if (verb == "check") {
    auto a = Parse(args, 2, {"--lenient"});
    if (!a) return 2;
    if (a->positional.empty()) {
      std::cerr << "amparo check: at least one FILE expected\n";
      return 2;
    }
    return ingest::RunCheck(a->positional, a->Has("--lenient"), std::cout, std::cerr);
  }
  if (verb == "audit") {
    if (args.size() < 3 || args[2] != "verify") {
      std::cerr << "amparo audit: only `audit verify` exists\n";
      return 2;
    }
    auto a = Parse(args, 3, {"--config"});
    return a ? AuditVerify(*a) : 2;
  }
  if (verb == "demo-data") {
    auto a = Parse(args, 2, {"--config", "--registrants", "--states", "--seed"});
    return a ? DemoData(*a) : 2;
  }
  std::cerr << "amparo: unknown verb '" << verb << "' (see amparo --help)\n";
  return 2;
}

}  // namespace amparo::cli
