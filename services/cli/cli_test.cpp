#include <gtest/gtest.h>

#include <boost/json.hpp>

#include <fstream>
#include <thread>

#include "common/config.h"
#include "common/link.h"
#include "common/testing.h"
#include "services/cli/demo_data.h"
#include "services/cli/init.h"
#include "services/cli/replay.h"
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

TEST(DemoDataTest, DeterministicForASeedAndSpreadOverStates) {
  DemoOptions o;
  o.registrants = 400;
  auto a = GenerateDemoPopulation(o);
  auto b = GenerateDemoPopulation(o);
  ASSERT_TRUE(a.ok());
  ASSERT_EQ(a->size(), 400u);
  for (size_t i = 0; i < a->size(); ++i) {
    EXPECT_EQ((*a)[i].lat, (*b)[i].lat);
    EXPECT_EQ((*a)[i].host_country, (*b)[i].host_country);
  }
  std::map<std::string, int> per_state;
  for (const auto& r : *a) {
    ++per_state[r.state];
    EXPECT_GE(r.household_size, 1);
    EXPECT_LE(r.household_size, 6);
    EXPECT_NE(r.host_country, r.state);  // nationals abroad
  }
  EXPECT_EQ(per_state["PHL"], 100);
  EXPECT_EQ(per_state["ETH"], 100);
  o.seed = 2;
  EXPECT_NE((*GenerateDemoPopulation(o))[0].lat, (*a)[0].lat);
}

TEST(DemoDataTest, UnknownStateIsNamed) {
  DemoOptions o;
  o.states = {"PHL", "XYZ"};
  auto r = GenerateDemoPopulation(o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().field(), "states");
  EXPECT_NE(r.status().message().find("XYZ"), std::string::npos);
}

TEST(DemoDataTest, JsonHasExactlyTheRegistrationFields) {
  DemoRegistrant r{"PHL", "DEMO-PHL-1", "JPN", "Tokyo", 35.6, 139.6, 2, {"fil"}, {"older_person"}};
  boost::json::object o = boost::json::parse(RegistrantJson(r)).as_object();
  std::set<std::string> keys;
  for (const auto& kv : o) keys.insert(std::string(kv.key()));
  EXPECT_EQ(keys, (std::set<std::string>{"external_ref", "host_country", "lat", "lon", "household_size",
                                         "languages", "vulnerabilities"}));
  EXPECT_EQ(o["host_country"].as_string(), "JPN");
  EXPECT_DOUBLE_EQ(o["lat"].to_number<double>(), 35.6);
  EXPECT_EQ(o["vulnerabilities"].as_array()[0].as_string(), "older_person");
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
