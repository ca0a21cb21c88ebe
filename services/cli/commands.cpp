#include "services/cli/commands.h"

#include <unistd.h>

#include <boost/json.hpp>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>

#include "common/audit.h"
#include "common/clock.h"
#include "common/config.h"
#include "common/crypto.h"
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
#include "services/gateway/import_export.h"
#include "services/gateway/registry_keys.h"
#include "services/rules/alert_policy.h"
#include "services/rules/decision_replay.h"
#include "common/gazetteer.h"

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
  replay --deterministic [--config FILE] [--db RULES_DB]
      Re-run amparo-rules' recorded decision log (every input, at its
      recorded time, with the policy then in force) in a scratch engine and
      compare every alert with the recorded one. Exit 0 when identical,
      1 with the first difference otherwise.
  token create --state ISO3 --role registrar|operator|admin [--config FILE]
      Create an API token for a state; prints it once.
  token list [--state ISO3] [--config FILE]
  token revoke TOKEN_ID [--config FILE]
  import FILE --state ISO3 [--format csv|ndjson] [--config FILE]
      Bulk-register nationals (streamed; valid rows are imported, invalid
      ones reported by row, field and reason). Exit 1 if any row was rejected.
  export --state ISO3 [--format csv|ndjson] [--output FILE] [--config FILE]
      Write a state's registrants (decrypted; audited).
  demo-data [--config FILE] [--registrants N] [--states A,B,...] [--seed S]
      Register a synthetic population in real cities through the gateway API.
  check [--lenient] FILE...
      Parse feed files exactly as amparo-ingest would; print the normalised
      events as JSON lines or the rejection with its reason. Exit 1 if any
      file is rejected. Strict schema validation unless --lenient.
  audit verify [--config FILE]
      Recompute the hash chain of the gateway's audit log; exit 1 if broken.
  policy check FILE
      Validate an alert policy file (docs/alert-policy.md) as amparo-rules
      would on start or SIGHUP: print "OK <fingerprint>" or the error naming
      the key; exit 1 if it is refused.

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
  static const char* kWithValue[] = {"--config", "--listen", "--state",  "--role",  "--registrants",
                                     "--states", "--seed",   "--format", "--output", "--db"};
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

// Who the CLI acts as, for the audit log.
std::string CliActor() {
  const char* user = std::getenv("USER");
  return "cli:" + std::string(user && *user ? user : std::to_string(getuid()));
}

// Opens the gateway database of `config`, migrated.
Result<Db> OpenGatewayDb(const Config& config) {
  auto db = Db::Open(config.DbPath("gateway"));
  if (!db.ok()) return db.status();
  AMPARO_RETURN_IF_ERROR(gateway::MigrateGatewayDb(*db));
  return db;
}

Result<gateway::RegistryFormat> FormatFor(const Args& a, const std::string& file) {
  std::string f = a.Get("--format");
  if (f.empty()) f = file.ends_with(".ndjson") || file.ends_with(".jsonl") ? "ndjson" : "csv";
  return gateway::ParseRegistryFormat(f);
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

// `amparo replay --deterministic`: see kUsage.
int ReplayDeterministic(const Args& a, const Config& config) {
  const std::filesystem::path db = a.Get("--db", config.DbPath("rules").string());
  std::error_code ec;
  const auto scratch = std::filesystem::temp_directory_path(ec) / ("amparo-replay-" + NewId());
  auto report = rules::ReplayDecisionLog(db, config.rules, scratch);
  std::filesystem::remove_all(scratch, ec);
  if (!report.ok()) return Fail(report.status());
  std::cout << "replayed " << report->inputs << " inputs from " << db.string() << ": " << report->recorded
            << " notifications recorded, " << report->replayed << " made by the replay\n";
  if (!report->identical()) {
    std::cout << "DIFFERENT: " << report->first_difference << "\n";
    return 1;
  }
  std::cout << "identical\n";
  return 0;
}

int Replay(const Args& a) {
  auto config = LoadConfig(a);
  if (!config) return 2;
  if (a.Has("--deterministic")) {
    if (!a.positional.empty()) {
      std::cerr << "amparo replay --deterministic: takes no FILE (it replays the rules database)\n";
      return 2;
    }
    return ReplayDeterministic(a, *config);
  }
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
  auto db = OpenGatewayDb(*config);
  if (!db.ok()) return Fail(db.status());
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
  auto db = OpenGatewayDb(*config);
  if (!db.ok()) return Fail(db.status());
  std::map<std::string, std::string> tokens;
  for (const auto& s : o.states) {
    auto t = gateway::CreateToken(*db, s, gateway::Role::kRegistrar, SystemClock::Instance());
    if (!t.ok()) return Fail(t.status());
    tokens[s] = *t;
  }
  // One bulk import per state through the gateway's import endpoint: the
  // same validation, encryption and audit path as a state's registry uses,
  // and one request instead of thousands (which the per-token rate limit
  // would rightly refuse).
  std::map<std::string, std::string> bodies;
  for (const auto& r : *population) bodies[r.state] += RegistrantJson(r) + "\n";
  std::string url = GatewayUrl(*config) + "/api/v1/registrants:import?format=ndjson";
  HttpClient http(300'000);
  int64_t created = 0, failed = 0;
  for (const auto& [state, body] : bodies) {
    auto resp = http.Request("POST", url, body,
                             {"Authorization: Bearer " + tokens[state], "Content-Type: application/x-ndjson"});
    if (!resp.ok()) return Fail(resp.status());
    boost::system::error_code ec;
    boost::json::value report = boost::json::parse(resp->body, ec);
    if (resp->status != 200 || ec || !report.is_object()) {
      std::cerr << "amparo demo-data: " << state << ": HTTP " << resp->status << " " << resp->body << "\n";
      return 1;
    }
    const auto& o = report.as_object();
    created += o.at("imported").to_number<int64_t>();
    failed += o.at("rejected").to_number<int64_t>();
    for (const auto& e : o.at("errors").as_array()) {
      std::cerr << "amparo demo-data: " << state << " " << boost::json::serialize(e) << "\n";
    }
  }
  std::cout << "registered " << created << " demo nationals (" << failed << " rejected) at " << url << "\n";
  return failed == 0 ? 0 : 1;
}

int Import(const Args& a) {
  auto config = LoadConfig(a);
  if (!config) return 2;
  if (a.positional.size() != 1 || a.Get("--state").empty()) {
    std::cerr << "amparo import: FILE and --state ISO3 expected\n";
    return 2;
  }
  const std::string& file = a.positional[0];
  auto format = FormatFor(a, file);
  if (!format.ok()) return Fail(format.status());
  std::ifstream in(file, std::ios::binary);
  if (!in) return Fail(NotFound(file + ": cannot open"));
  in.seekg(0, std::ios::end);
  const double total = static_cast<double>(in.tellg());
  in.seekg(0);
  auto db = OpenGatewayDb(*config);
  if (!db.ok()) return Fail(db.status());
  auto keys = gateway::RegistryKeys::Load(config->keys_dir);
  if (!keys.ok()) return Fail(keys.status());
  auto gazetteer = Gazetteer::Load(config->gateway.gazetteer.empty() ? Gazetteer::DefaultPath()
                                                                     : config->gateway.gazetteer);
  if (!gazetteer.ok()) return Fail(gazetteer.status());
  if (!gateway::IsIso3(a.Get("--state"))) return Fail(InvalidArgument("must be three uppercase letters", "state"));
  gateway::Token token{CliActor(), a.Get("--state"), gateway::Role::kAdmin};
  gateway::ImportOptions options;
  options.gazetteer = gazetteer->get();
  options.retention_days = config->gateway.retention_days;
  options.batch_rows = config->gateway.import_batch_rows;
  options.source = std::filesystem::path(file).filename().string();
  const bool tty = isatty(STDERR_FILENO);
  options.progress = [&](int64_t rows) {
    if (!tty) return;
    double done = in ? static_cast<double>(in.tellg()) : total;
    int pct = total > 0 ? static_cast<int>(100 * done / total) : 100;
    std::string bar(static_cast<size_t>(pct / 4), '#');
    std::fprintf(stderr, "\r[%-25s] %3d%%  %lld rows", bar.c_str(), pct, static_cast<long long>(rows));
  };
  auto report = gateway::ImportRegistrants(*db, token, in, *format, *keys, SystemClock::Instance(), options);
  if (tty) std::fprintf(stderr, "\n");
  if (!report.ok()) return Fail(report.status());
  for (size_t i = 0; i < report->errors.size() && i < 20; ++i) {
    const auto& e = report->errors[i];
    std::cerr << file << ": row " << e.row << (e.field.empty() ? "" : ", field " + e.field) << ": " << e.reason
              << "\n";
  }
  if (report->errors.size() > 20) std::cerr << "... " << report->rejected - 20 << " more rejected rows\n";
  std::cout << "imported " << report->imported << " registrants of " << token.state << ", rejected "
            << report->rejected << "\n";
  return report->rejected == 0 ? 0 : 1;
}

int Export(const Args& a) {
  auto config = LoadConfig(a);
  if (!config) return 2;
  if (!gateway::IsIso3(a.Get("--state"))) return Fail(InvalidArgument("must be three uppercase letters", "state"));
  std::string output = a.Get("--output");
  auto format = FormatFor(a, output);
  if (!format.ok()) return Fail(format.status());
  auto db = OpenGatewayDb(*config);
  if (!db.ok()) return Fail(db.status());
  auto keys = gateway::RegistryKeys::Load(config->keys_dir);
  if (!keys.ok()) return Fail(keys.status());
  gateway::Token token{CliActor(), a.Get("--state"), gateway::Role::kAdmin};
  std::ofstream file;
  if (!output.empty()) {
    file.open(output, std::ios::binary | std::ios::trunc);
    if (!file) return Fail(Unavailable(output + ": cannot write"));
    std::filesystem::permissions(output, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  }
  std::ostream& out = output.empty() ? std::cout : file;
  auto rows = gateway::ExportRegistrants(*db, token, out, *format, *keys, SystemClock::Instance());
  if (!rows.ok()) return Fail(rows.status());
  std::cerr << "exported " << *rows << " registrants of " << token.state << (output.empty() ? "" : " to " + output)
            << "\n";
  return 0;
}

int TokenList(const Args& a) {
  auto config = LoadConfig(a);
  if (!config) return 2;
  auto db = OpenGatewayDb(*config);
  if (!db.ok()) return Fail(db.status());
  auto tokens = gateway::ListTokens(*db, a.Get("--state"));
  if (!tokens.ok()) return Fail(tokens.status());
  std::cout << "id\tstate\trole\tcreated\trevoked\n";
  for (const auto& t : *tokens) {
    std::cout << t.id << "\t" << t.state << "\t" << gateway::RoleName(t.role) << "\t" << FormatRfc3339(t.created_ms)
              << "\t" << (t.revoked_ms ? FormatRfc3339(t.revoked_ms) : "-") << "\n";
  }
  return 0;
}

int TokenRevoke(const Args& a) {
  auto config = LoadConfig(a);
  if (!config) return 2;
  if (a.positional.size() != 1) {
    std::cerr << "amparo token revoke: exactly one TOKEN_ID expected (see `amparo token list`)\n";
    return 2;
  }
  auto db = OpenGatewayDb(*config);
  if (!db.ok()) return Fail(db.status());
  Status st = gateway::RevokeToken(*db, a.positional[0], SystemClock::Instance());
  if (!st.ok()) return Fail(st);
  std::cout << "revoked " << a.positional[0] << "\n";
  return 0;
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

int PolicyCheck(const std::string& file) {
  auto policy = rules::AlertPolicy::Load(file);
  if (!policy.ok()) return Fail(policy.status());
  std::cout << "OK " << (*policy)->fingerprint() << "\n";
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
    auto a = Parse(args, 2, {"--config", "--exercise", "--deterministic", "--db"});
    return a ? Replay(*a) : 2;
  }
  if (verb == "token") {
    std::string sub = args.size() >= 3 ? args[2] : "";
    if (sub == "create") {
      auto a = Parse(args, 3, {"--config", "--state", "--role"});
      return a ? TokenCreate(*a) : 2;
    }
    if (sub == "list") {
      auto a = Parse(args, 3, {"--config", "--state"});
      return a ? TokenList(*a) : 2;
    }
    if (sub == "revoke") {
      auto a = Parse(args, 3, {"--config"});
      return a ? TokenRevoke(*a) : 2;
    }
    std::cerr << "amparo token: create, list or revoke\n";
    return 2;
  }
  if (verb == "import") {
    auto a = Parse(args, 2, {"--config", "--state", "--format"});
    return a ? Import(*a) : 2;
  }
  if (verb == "export") {
    auto a = Parse(args, 2, {"--config", "--state", "--format", "--output"});
    return a ? Export(*a) : 2;
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
  if (verb == "policy") {
    if (args.size() < 3 || args[2] != "check") {
      std::cerr << "amparo policy: only `policy check FILE` exists\n";
      return 2;
    }
    auto a = Parse(args, 3, {});
    if (!a) return 2;
    if (a->positional.size() != 1) {
      std::cerr << "amparo policy check: exactly one FILE expected\n";
      return 2;
    }
    return PolicyCheck(a->positional[0]);
  }
  if (verb == "demo-data") {
    auto a = Parse(args, 2, {"--config", "--registrants", "--states", "--seed"});
    return a ? DemoData(*a) : 2;
  }
  std::cerr << "amparo: unknown verb '" << verb << "' (see amparo --help)\n";
  return 2;
}

}  // namespace amparo::cli
