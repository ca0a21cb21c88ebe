#include <gtest/gtest.h>

#include <boost/json.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>
#include <thread>

#include "common/audit.h"
#include "common/config.h"
#include "common/crypto.h"
#include "common/db.h"
#include "services/cli/commands.h"
#include "services/gateway/gateway_store.h"
#include "common/gazetteer.h"
#include "common/geo.h"
#include "common/link.h"
#include "common/testing.h"
#include "services/cli/demo_data.h"
#include "services/cli/init.h"
#include "services/cli/replay.h"
#include "services/rules/rules_engine.h"
#include "services/cli/supervisor.h"

namespace amparo::cli {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

TEST(InitTest, CreatesLoadableConfigKeysAndDirectories) {
  testing::TempDir dir;
  InitOptions o{dir / "deploy", "127.0.0.1:0", false};
  ASSERT_TRUE(InitDeployment(o).ok());
  auto config = Config::Load(dir / "deploy/amparo.toml");
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->gateway.listen, "127.0.0.1:0");
  EXPECT_TRUE(fs::exists(config->DbPath("gateway")));
  for (const char* owner : kKeyOwners) {
    auto keys = ReadCurveKeyPair(config->keys_dir, owner);
    ASSERT_TRUE(keys.ok()) << owner;
    EXPECT_EQ(keys->public_key.size(), 40u);
  }
  EXPECT_EQ(ReadAllowedKeys(config->keys_dir)->size(), std::size(kKeyOwners));
  auto perms = fs::status(config->keys_dir / "rules.key").permissions();
  EXPECT_EQ(perms & (fs::perms::group_all | fs::perms::others_all), fs::perms::none);
}

TEST(InitTest, RefusesToOverwriteWithoutForceAndKeepsKeys) {
  testing::TempDir dir;
  InitOptions o{dir.path(), "127.0.0.1:8080", false};
  ASSERT_TRUE(InitDeployment(o).ok());
  auto before = ReadCurveKeyPair(dir / "keys", "gateway");
  EXPECT_EQ(InitDeployment(o).code(), StatusCode::kAlreadyExists);
  o.force = true;
  ASSERT_TRUE(InitDeployment(o).ok());
  EXPECT_EQ(ReadCurveKeyPair(dir / "keys", "gateway")->secret_key, before->secret_key);
}

TEST(InitTest, BadListenAddressIsRejectedBeforeWritingAnything) {
  testing::TempDir dir;
  Status st = InitDeployment({dir / "d", "nonsense", false});
  EXPECT_EQ(st.field(), "gateway.listen");
  EXPECT_FALSE(fs::exists(dir / "d/amparo.toml"));
}

TEST(ReplayTest, CopiesFilesIntoSpoolUnderUniqueNames) {
  testing::TempDir dir;
  auto config = Config::Parse("", dir.path());
  std::ofstream(dir / "feed.json") << "{\"type\":\"FeatureCollection\",\"features\":[]}";
  auto first = ReplayFiles(*config, {dir / "feed.json"}, false);
  auto second = ReplayFiles(*config, {dir / "feed.json"}, true);
  ASSERT_TRUE(first.ok() && second.ok());
  ASSERT_EQ(first->size(), 1u);
  EXPECT_NE((*first)[0], (*second)[0]);
  EXPECT_EQ((*first)[0].parent_path(), config->ingest.spool_dir);
  EXPECT_TRUE((*second)[0].string().ends_with(".exercise.json"));
  EXPECT_TRUE(fs::is_empty(config->ingest.spool_dir / "tmp"));
}

TEST(ReplayTest, MissingFileWritesNothing) {
  testing::TempDir dir;
  auto config = Config::Parse("", dir.path());
  std::ofstream(dir / "good.json") << "{}";
  auto r = ReplayFiles(*config, {dir / "good.json", dir / "missing.json"}, false);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  size_t files = 0;
  for (const auto& e : fs::directory_iterator(config->ingest.spool_dir)) files += e.is_regular_file();
  EXPECT_EQ(files, 0u);
}

// The bundled gazetteer, loaded once for the DemoData tests.
std::shared_ptr<const Gazetteer> BundledGazetteer() {
  static const std::shared_ptr<const Gazetteer> kGazetteer = [] {
    auto g = Gazetteer::Load(Gazetteer::DefaultPath());
    EXPECT_TRUE(g.ok()) << g.status().ToString();
    return g.ok() ? *g : nullptr;
  }();
  return kGazetteer;
}

DemoOptions DemoWith(int registrants, std::vector<std::string> states, uint64_t seed = 1) {
  DemoOptions o;
  o.registrants = registrants;
  o.states = std::move(states);
  o.seed = seed;
  o.gazetteer = BundledGazetteer();
  return o;
}

TEST(DemoDataTest, DeterministicForASeedAndSpreadOverStates) {
  DemoOptions o = DemoWith(400, {"PHL", "IND", "NPL", "ETH"});
  auto a = GenerateDemoPopulation(o);
  auto b = GenerateDemoPopulation(o);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  ASSERT_TRUE(b.ok());
  ASSERT_EQ(a->size(), 400u);
  for (size_t i = 0; i < a->size(); ++i) {
    EXPECT_EQ(RegistrantJson((*a)[i]), RegistrantJson((*b)[i]));
    EXPECT_EQ((*a)[i].city, (*b)[i].city);
    EXPECT_EQ((*a)[i].members.size(), (*b)[i].members.size());
  }
  std::map<std::string, int> per_state;
  for (const auto& r : *a) ++per_state[r.state];
  EXPECT_EQ(per_state, (std::map<std::string, int>{{"ETH", 100}, {"IND", 100}, {"NPL", 100}, {"PHL", 100}}));
  EXPECT_EQ((*a)[0].external_ref, "DEMO-PHL-1");
  EXPECT_EQ((*a)[5].external_ref, "DEMO-IND-2");
  o.seed = 2;
  auto c = GenerateDemoPopulation(o);
  int same = 0;
  for (size_t i = 0; i < c->size(); ++i) same += (*c)[i].lat == (*a)[i].lat;
  EXPECT_LT(same, 10);
}

TEST(DemoDataTest, PeopleAreAbroadInRealCitiesNearTheirPlace) {
  auto gazetteer = BundledGazetteer();
  ASSERT_NE(gazetteer, nullptr);
  auto population =
      GenerateDemoPopulation(DemoWith(800, {"PHL", "IND", "NPL", "ETH", "MEX", "SYR", "BGD", "IDN"}));
  ASSERT_TRUE(population.ok()) << population.status().ToString();
  std::map<std::string, std::set<std::string>> hosts;
  std::map<std::string, std::vector<Place>> places;  // host -> its gazetteer entries
  for (const auto& r : *population) {
    EXPECT_NE(r.host_country, r.state) << r.external_ref;  // nationals abroad
    hosts[r.state].insert(r.host_country);
    if (!places.count(r.host_country)) places[r.host_country] = gazetteer->InCountry(r.host_country);
    // A real place of that name (names repeat: Glendale AZ and CA) within
    // the largest scatter radius, 30 km.
    bool near_a_place_so_named =
        std::any_of(places[r.host_country].begin(), places[r.host_country].end(), [&r](const Place& p) {
          return p.name == r.city && geo::DistanceKm({r.lat, r.lon}, {p.lat, p.lon}) <= 30.5;
        });
    EXPECT_TRUE(near_a_place_so_named) << r.external_ref << " " << r.city << " " << r.host_country;
    EXPECT_EQ(std::round(r.lat * 1e5) / 1e5, r.lat);
    EXPECT_FALSE(r.languages.empty());
  }
  for (const auto& [state, countries] : hosts) EXPECT_GE(countries.size(), 3u) << state;
  EXPECT_TRUE(hosts["MEX"].count("USA"));
  EXPECT_TRUE(hosts["SYR"].count("TUR"));
}

TEST(DemoDataTest, HouseholdsAreConsistent) {
  auto population = GenerateDemoPopulation(DemoWith(2000, {"PHL", "SYR"}));
  ASSERT_TRUE(population.ok());
  const std::set<std::string> bands = {"0-4", "5-17", "18-59", "60+"};
  const std::set<std::string> flags = {
      "unaccompanied_child", "child",        "older_person", "disability",
      "pregnancy",           "medical_need", "in_detention", "isolated_domestic_worker",
      "trafficking_victim"};
  std::map<std::string, int> singles, mixed_households;
  int with_child_flag = 0, domestic_workers = 0;
  for (const auto& r : *population) {
    ASSERT_GE(r.household_size, 1);
    ASSERT_LE(r.household_size, 7);
    ASSERT_EQ(r.members.size(), static_cast<size_t>(r.household_size - 1)) << r.external_ref;
    singles[r.state] += r.household_size == 1;
    bool has_minor = false, mixed = false;
    for (const auto& m : r.members) {
      EXPECT_TRUE(bands.count(m.age_band)) << m.age_band;
      EXPECT_TRUE(m.nationality == r.state || m.nationality == r.host_country) << m.nationality;
      has_minor |= m.age_band == "0-4" || m.age_band == "5-17";
      mixed |= m.nationality != r.state;
    }
    mixed_households[r.state] += mixed;
    bool child_flag = std::count(r.vulnerabilities.begin(), r.vulnerabilities.end(), "child") > 0;
    EXPECT_EQ(child_flag, has_minor) << r.external_ref;
    with_child_flag += child_flag;
    for (const auto& v : r.vulnerabilities) EXPECT_TRUE(flags.count(v)) << v;
    if (std::count(r.vulnerabilities.begin(), r.vulnerabilities.end(), "isolated_domestic_worker")) {
      ++domestic_workers;
      EXPECT_EQ(r.household_size, 1);
    }
  }
  // Filipinos abroad are mostly single labour migrants; Syrians mostly families.
  EXPECT_GT(singles["PHL"], 400);
  EXPECT_LT(singles["SYR"], 300);
  EXPECT_GT(mixed_households["PHL"] + mixed_households["SYR"], 10);
  EXPECT_GT(with_child_flag, 200);
  EXPECT_GT(domestic_workers, 20);
}

TEST(DemoDataTest, SomeNepaleseAreNearTheTingriEpicentre) {
  auto population = GenerateDemoPopulation(DemoWith(2000, {"PHL", "IND", "NPL", "ETH"}));
  ASSERT_TRUE(population.ok());
  int near_tingri = 0;
  for (const auto& r : *population) {
    if (geo::DistanceKm({r.lat, r.lon}, {28.64, 87.36}) < 100) {
      EXPECT_EQ(r.state, "NPL");
      EXPECT_EQ(r.host_country, "CHN");
      ++near_tingri;
    }
  }
  EXPECT_GE(near_tingri, 8);
}

TEST(DemoDataTest, GazetteerWithoutAFeaturedTownIsNamed) {
  testing::TempDir dir;
  {
    std::ofstream f(dir / "small.tsv");
    for (const char* host : {"QAT", "MYS", "SAU", "IND", "ARE", "KOR", "JPN", "KWT", "CHN", "USA", "AUS"}) {
      f << "Town\t\t" << host << "\t\t10\t20\t5000\n";
    }
  }
  DemoOptions o = DemoWith(10, {"NPL"});
  o.gazetteer = *Gazetteer::Load(dir / "small.tsv");
  auto r = GenerateDemoPopulation(o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(r.status().message().find("Tingri"), std::string::npos) << r.status().ToString();
  o.gazetteer = *Gazetteer::Load(dir / "small.tsv");
  o.states = {"ETH"};  // hosts LBN, ZAF, ... are missing from the small file
  EXPECT_NE(GenerateDemoPopulation(o).status().message().find("no places in"), std::string::npos);
}

TEST(DemoDataTest, UnknownStateIsNamed) {
  DemoOptions o = DemoWith(10, {"PHL", "XYZ"});
  auto r = GenerateDemoPopulation(o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().field(), "states");
  EXPECT_NE(r.status().message().find("XYZ"), std::string::npos);
}

TEST(DemoDataTest, JsonHasExactlyTheRegistrationFields) {
  DemoRegistrant r{"PHL",   "DEMO-PHL-1",     "JPN",           "Tokyo", 35.6, 139.6, 2,
                   {"fil"}, {"older_person"}, {{"60+", "JPN"}}};
  boost::json::object o = boost::json::parse(RegistrantJson(r)).as_object();
  std::set<std::string> keys;
  for (const auto& kv : o) keys.insert(std::string(kv.key()));
  EXPECT_EQ(keys, (std::set<std::string>{"external_ref", "host_country", "lat", "lon", "household_size",
                                         "languages", "vulnerabilities"}));
  EXPECT_EQ(o["host_country"].as_string(), "JPN");
  EXPECT_DOUBLE_EQ(o["lat"].to_number<double>(), 35.6);
  EXPECT_EQ(o["vulnerabilities"].as_array()[0].as_string(), "older_person");
}

TEST(AuditVerifyCommandTest, ReportsIntactChainAndNamesTheFirstTamperedEntry) {
  testing::TempDir dir;
  ASSERT_TRUE(InitDeployment({dir.path(), "127.0.0.1:0", false}).ok());
  std::string config = (dir / "amparo.toml").string();
  {
    auto db = Db::Open(dir / "data/gateway.db");
    ASSERT_TRUE(MigrateAudit(*db).ok());
    FakeClock clock;
    for (int i = 0; i < 3; ++i) {
      ASSERT_TRUE(AppendAudit(*db, {"tok1", "PHL", "registrant.read", "r" + std::to_string(i), "test", ""}, clock).ok());
    }
  }
  ::testing::internal::CaptureStdout();
  EXPECT_EQ(RunCli({"amparo", "audit", "verify", "--config", config}), 0);
  EXPECT_NE(::testing::internal::GetCapturedStdout().find("intact: 3 entries"), std::string::npos);
  {
    auto db = Db::Open(dir / "data/gateway.db");
    // Tamper outside the application: drop the guard, edit an entry.
    ASSERT_TRUE(db->Exec("DROP TRIGGER audit_log_no_update").ok());
    ASSERT_TRUE(db->Exec("UPDATE audit_log SET subject = 'someone-else' WHERE seq = 2").ok());
  }
  ::testing::internal::CaptureStdout();
  EXPECT_EQ(RunCli({"amparo", "audit", "verify", "--config", config}), 1);
  EXPECT_NE(::testing::internal::GetCapturedStdout().find("BROKEN at entry 2"), std::string::npos);
}

TEST(CheckCommandTest, PrintsEventsForAGoodFeedAndFailsOnAHostileOne) {
  fs::path fixtures = fs::path(AMPARO_SOURCE_DIR) / ".." / "shared" / "fixtures";
  fs::path good = fixtures / "cap/oasis-spec-examples/v1dot2_appendix_adot3.xml";
  fs::path hostile = fixtures / "cap/google-cap-library/xee.cap";
  ::testing::internal::CaptureStdout();
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(RunCli({"amparo", "check", good.string()}), 0);
  std::string out = ::testing::internal::GetCapturedStdout();
  ::testing::internal::GetCapturedStderr();
  EXPECT_NE(out.find("\"msgType\":\"Update\""), std::string::npos) << out;
  EXPECT_NE(out.find("earthquake"), std::string::npos) << out;
  ::testing::internal::CaptureStdout();
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(RunCli({"amparo", "check", good.string(), hostile.string()}), 1);
  std::string both = ::testing::internal::GetCapturedStdout() + ::testing::internal::GetCapturedStderr();
  EXPECT_NE(both.find("DOCTYPE declares entities"), std::string::npos) << both;
}

// Runs the CLI, returning {exit code, stdout + stderr}.
std::pair<int, std::string> Cli(const std::vector<std::string>& args) {
  ::testing::internal::CaptureStdout();
  ::testing::internal::CaptureStderr();
  int rc = RunCli(args);
  std::string out = ::testing::internal::GetCapturedStdout();
  return {rc, out + ::testing::internal::GetCapturedStderr()};
}

TEST(PolicyCheckCommandTest, PrintsTheFingerprintOrTheErrorNamingTheKey) {
  fs::path shipped = fs::path(AMPARO_SOURCE_DIR) / "deploy" / "policy.toml";
  std::ifstream in(shipped, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_EQ(Cli({"amparo", "policy", "check", shipped.string()}),
            std::make_pair(0, "OK " + Sha256Hex(text.str()) + "\n"));

  testing::TempDir dir;
  std::ofstream(dir / "bad.toml") << "[default]\n[[default.rule]]\nname = \"all\"\nlevel = \"urgent\"\n";
  EXPECT_EQ(Cli({"amparo", "policy", "check", (dir / "bad.toml").string()}),
            std::make_pair(1, "amparo: INVALID_ARGUMENT: " + (dir / "bad.toml").string() +
                                  ": default.rule[0].level: must be info, warning or critical\n"));
  EXPECT_EQ(Cli({"amparo", "policy", "check"}).first, 2);
  EXPECT_EQ(Cli({"amparo", "policy", "lint", shipped.string()}).first, 2);
}

TEST(ReplayDeterministicCommandTest, ReplaysTheRulesDecisionLogAndReportsADifference) {
  testing::TempDir dir;
  ASSERT_TRUE(InitDeployment({dir.path(), "127.0.0.1:0", false}).ok());
  const std::string config_path = (dir / "amparo.toml").string();
  auto config = Config::Load(config_path);
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  fs::create_directories(config->data_dir);
  {
    // A rules database with a recorded log: two registrants, one PAGER-red quake.
    auto db = Db::Open(config->DbPath("rules"));
    ASSERT_TRUE(db.ok());
    ASSERT_TRUE(rules::RulesEngine::Migrate(*db).ok());
    FakeClock clock(1'750'000'000'000);
    auto engine = rules::RulesEngine::Create(*db, config->rules, clock);
    ASSERT_TRUE(engine.ok());
    auto apply = [&](const v1::Envelope& env) {
      auto tx = Transaction::Begin(*db);
      ASSERT_TRUE(tx.ok());
      ASSERT_TRUE((*engine)->Handle(env, *db).ok());
      ASSERT_TRUE(tx->Commit().ok());
      (*engine)->ConfirmIndexChanges();
      clock.Advance(1000);
    };
    for (int i = 1; i <= 2; ++i) {
      v1::Envelope env = MakeEnvelope("amparo-gateway", clock);
      auto* change = env.mutable_registry_change();
      change->set_sequence(i);
      change->set_kind(v1::RegistryChange::KIND_UPSERT);
      auto* loc = change->mutable_location();
      loc->set_registrant_id(std::string(31, '0') + std::to_string(i));
      loc->set_state(i == 1 ? "PHL" : "NPL");
      loc->set_host_country("CHN");
      loc->set_lat(28.7);
      loc->set_lon(87.4);
      loc->set_household_size(2);
      apply(env);
    }
    v1::Envelope quake = MakeEnvelope("amparo-ingest", clock);
    auto* e = quake.mutable_crisis_event();
    e->set_event_id("usgs:us6000pi9w");
    e->set_source("usgs");
    e->set_revision(1);
    e->set_status(v1::EVENT_STATUS_ACTUAL);
    e->set_msg_type(v1::MESSAGE_TYPE_ALERT);
    e->set_hazard(v1::HAZARD_KIND_EARTHQUAKE);
    e->mutable_metrics()->set_magnitude(7.1);
    e->mutable_metrics()->set_depth_km(10);
    e->mutable_metrics()->set_pager_alert("red");
    e->mutable_origin()->set_lat(28.639);
    e->mutable_origin()->set_lon(87.361);
    apply(quake);
  }
  auto [rc, out] = Cli({"amparo", "replay", "--deterministic", "--config", config_path});
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find(": 2 notifications recorded, 2 made by the replay\nidentical\n"), std::string::npos) << out;

  {
    auto db = Db::Open(config->DbPath("rules"));
    ASSERT_TRUE(db.ok());
    ASSERT_TRUE(db->Exec("UPDATE decisions SET alert = (SELECT alert FROM decisions WHERE seq = 1) WHERE seq = 2").ok());
  }
  auto [drc, dout] = Cli({"amparo", "replay", "--deterministic", "--db", config->DbPath("rules").string(),
                          "--config", config_path});
  EXPECT_EQ(drc, 1) << dout;
  EXPECT_NE(dout.find("DIFFERENT: decision 2 "), std::string::npos) << dout;
  EXPECT_EQ(Cli({"amparo", "replay", "--deterministic", "--db", (dir / "missing.db").string(), "--config",
                 config_path})
                .first,
            1);
}

TEST(ImportExportCommandTest, ImportsValidRowsReportsBadOnesAndRoundTripsThroughExport) {
  testing::TempDir dir;
  ASSERT_TRUE(InitDeployment({dir.path(), "127.0.0.1:0", false}).ok());
  std::string config = (dir / "amparo.toml").string();
  std::ofstream(dir / "people.ndjson")
      << R"({"external_ref":"A-1","host_country":"JPN","lat":35.68,"lon":139.65,"household_size":2,)"
         R"("contact":{"email":"a1@example.org"}})" "\n"
      << R"({"external_ref":"A-2","host_country":"JPN","lat":123,"lon":0})" "\n"
      << R"({"external_ref":"A-3","host_country":"JPN","lat":35,"lon":139,"immigration_status":"x"})" "\n";
  auto [rc, out] = Cli({"amparo", "import", (dir / "people.ndjson").string(), "--state", "PHL", "--config", config});
  EXPECT_EQ(rc, 1) << out;
  EXPECT_NE(out.find("imported 1 registrants of PHL, rejected 2"), std::string::npos) << out;
  EXPECT_NE(out.find("row 2, field lat"), std::string::npos) << out;
  EXPECT_NE(out.find("row 3, field immigration_status"), std::string::npos) << out;

  auto [erc, eout] = Cli({"amparo", "export", "--state", "PHL", "--output", (dir / "phl.csv").string(), "--config",
                          config});
  ASSERT_EQ(erc, 0) << eout;
  EXPECT_NE(eout.find("exported 1 registrants of PHL"), std::string::npos) << eout;
  std::ifstream csv(dir / "phl.csv");
  std::string text((std::istreambuf_iterator<char>(csv)), {});
  EXPECT_NE(text.find("A-1"), std::string::npos);
  EXPECT_NE(text.find("a1@example.org"), std::string::npos);  // decrypted for the state's own export
  EXPECT_EQ(Cli({"amparo", "export", "--state", "NPL", "--config", config}).second.find("A-1"), std::string::npos);

  // The export imports again (here into another state) unchanged.
  auto [rrc, rout] = Cli({"amparo", "import", (dir / "phl.csv").string(), "--state", "NPL", "--config", config});
  EXPECT_EQ(rrc, 0) << rout;
  EXPECT_NE(rout.find("imported 1 registrants of NPL, rejected 0"), std::string::npos) << rout;
  // Every import and export is in the audit log, and the chain holds.
  auto [arc, aout] = Cli({"amparo", "audit", "verify", "--config", config});
  EXPECT_EQ(arc, 0) << aout;
  auto db = Db::Open(dir / "data/gateway.db");
  auto q = db->Prepare("SELECT count(*) FROM audit_log WHERE action IN ('registrant.import', 'registrant.export')");
  ASSERT_TRUE(*q->Step());
  EXPECT_GE(q->ColumnInt(0), 4);
}

TEST(TokenCommandTest, ListsAndRevokes) {
  testing::TempDir dir;
  ASSERT_TRUE(InitDeployment({dir.path(), "127.0.0.1:0", false}).ok());
  std::string config = (dir / "amparo.toml").string();
  auto [crc, token] = Cli({"amparo", "token", "create", "--state", "PHL", "--role", "operator", "--config", config});
  ASSERT_EQ(crc, 0);
  auto [lrc, list] = Cli({"amparo", "token", "list", "--state", "PHL", "--config", config});
  ASSERT_EQ(lrc, 0);
  std::istringstream lines(list);
  std::string header, row;
  std::getline(lines, header);
  std::getline(lines, row);
  std::string id = row.substr(0, row.find('\t'));
  EXPECT_NE(row.find("PHL\toperator"), std::string::npos) << list;
  EXPECT_EQ(list.find(token.substr(0, token.size() - 1)), std::string::npos);  // plaintext never listed
  EXPECT_EQ(Cli({"amparo", "token", "revoke", id, "--config", config}).first, 0);
  auto db = Db::Open(dir / "data/gateway.db");
  std::string plaintext = token.substr(0, token.find('\n'));
  EXPECT_EQ(gateway::Authenticate(*db, plaintext).status().code(), StatusCode::kUnauthenticated);
  EXPECT_EQ(Cli({"amparo", "token", "revoke", id, "--config", config}).first, 1);  // already revoked
}

TEST(SupervisorTest, RestartsAProgramThatDiesAndStopsAllOnRequest) {
  testing::TempDir dir;
  fs::path counter = dir / "runs";
  std::vector<SupervisedProgram> programs = {
      {"crasher", "/bin/sh", {"-c", "echo x >> " + counter.string() + "; exit 3"}},
      {"sleeper", "/bin/sleep", {"60"}},
  };
  SupervisorOptions o;
  o.restart_initial = 20ms;
  o.restart_max = 40ms;
  o.stop_grace = 2s;
  Supervisor s(programs, o);
  std::atomic<bool> stop{false};
  std::thread stopper([&] {
    std::this_thread::sleep_for(600ms);
    stop = true;
  });
  auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(s.Run(stop).ok());
  stopper.join();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);  // sleeper was stopped, not waited for
  EXPECT_GE(s.restarts()[0], 3);
  EXPECT_EQ(s.restarts()[1], 0);
  std::ifstream in(counter);
  int lines = 0;
  for (std::string l; std::getline(in, l);) ++lines;
  // One line per start; the last start may be stopped before it writes.
  EXPECT_GE(lines, s.restarts()[0]);
  EXPECT_LE(lines, s.restarts()[0] + 1);
}

}  // namespace
}  // namespace amparo::cli
