#include "services/ingest/ingest_daemon.h"

#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <optional>

#include "common/testing.h"

namespace amparo::ingest {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

const fs::path kSummary =
    fs::path(AMPARO_FIXTURES_DIR) / "usgs/summary-exxamalte/usgs_all_earthquakes_past_day.json";

class IngestDaemonTest : public ::testing::Test {
 protected:
  Config MakeConfig(const std::string& extra = "") {
    const std::string text = "data_dir = \"" + (dir_ / "data").string() + "\"\nrun_dir = \"" +
                             (dir_ / "run").string() +
                             "\"\n[link]\nresend_after_ms = 200\n[ingest]\n"
                             "scan_interval_ms = 20\n" +
                             extra + "[rules]\ninbox = \"" + rules_inbox_ + "\"\n";
    auto config = Config::Parse(text, dir_.path());
    EXPECT_TRUE(config.ok()) << config.status().ToString();
    return *config;
  }

  // Copies a fixture into the spool the way writers must: tmp/ then rename.
  void DropIntoSpool(const fs::path& spool, const fs::path& source, const std::string& name) {
    fs::copy_file(source, spool / "tmp" / name, fs::copy_options::overwrite_existing);
    fs::rename(spool / "tmp" / name, spool / name);
  }

  // Drives the daemon (and the stand-in rules receiver, if any) until `done`
  // or 10 s pass.
  template <typename Pred>
  bool RunUntil(IngestDaemon& daemon, LinkReceiver* rules, Pred done) {
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (std::chrono::steady_clock::now() < deadline) {
      daemon.RunOnce(10ms);
      if (rules) {
        EXPECT_TRUE(rules->Pump().ok());
      }
      if (done()) return true;
    }
    return false;
  }

  testing::TempDir dir_;
  std::string rules_inbox_ = "ipc://" + (dir_ / "rules.ipc").string();
  SystemClock clock_;
};

TEST_F(IngestDaemonTest, DeliversEveryEventOfTheDayFeedToRulesExactlyOnce) {
  Config config = MakeConfig();
  LinkContext ctx;
  auto rules_db = Db::Open(dir_ / "rules.db");
  ASSERT_TRUE(rules_db.ok());
  LinkReceiver rules(ctx, *rules_db, rules_inbox_, config.link, clock_);
  ASSERT_TRUE(rules.Bind().ok());

  auto daemon = IngestDaemon::Create(config, ctx, clock_);
  ASSERT_TRUE(daemon.ok()) << daemon.status().ToString();
  EXPECT_TRUE(fs::is_directory(dir_ / "data/spool/processed"));
  EXPECT_TRUE(fs::exists(dir_ / "data/ingest.db"));

  DropIntoSpool((*daemon)->spool_dir(), kSummary, "day.json");
  std::map<std::string, int> seen;  // event_id -> deliveries
  auto drain = [&] {
    auto n = rules.ProcessPending(
        [&](const v1::Envelope& env, Db&) {
          EXPECT_EQ(env.producer(), "amparo-ingest");
          ++seen[env.crisis_event().event_id()];
          return Status::Ok();
        },
        1000);
    EXPECT_TRUE(n.ok());
  };
  ASSERT_TRUE(RunUntil(**daemon, &rules, [&] {
    drain();
    return seen.size() == 188 && *(*daemon)->sender().Depth() == 0;
  }));
  for (const auto& [event_id, count] : seen) EXPECT_EQ(count, 1) << event_id;
  EXPECT_EQ(seen.count("usgs:us2000hf24"), 1u);

  // The same file again, and a broken one: nothing more reaches rules, the
  // broken file is set aside and ingest keeps going.
  DropIntoSpool((*daemon)->spool_dir(), kSummary, "day-again.json");
  { std::ofstream((*daemon)->spool_dir() / "tmp/bad.json") << "not json"; }
  fs::rename((*daemon)->spool_dir() / "tmp/bad.json", (*daemon)->spool_dir() / "bad.json");
  ASSERT_TRUE(RunUntil(**daemon, &rules, [&] {
    return (*daemon)->counters().spool.files_accepted == 2 && (*daemon)->counters().spool.files_rejected == 1;
  }));
  // Give any (wrong) extra message time to arrive.
  const auto settle = std::chrono::steady_clock::now() + 300ms;
  RunUntil(**daemon, &rules, [&] { return std::chrono::steady_clock::now() > settle; });
  drain();
  EXPECT_EQ(seen.size(), 188u);
  EXPECT_EQ(rules.stats().received, 188u);
  EXPECT_TRUE(fs::exists((*daemon)->spool_dir() / "rejected/bad.json.error"));

  IngestCounters counters = (*daemon)->counters();
  EXPECT_EQ(counters.spool.events_sent, 188u);
  EXPECT_EQ(counters.spool.events_unchanged, 188u);
  EXPECT_EQ(counters.spool.features_rejected, 0u);
  EXPECT_EQ(counters.link.acked, 188u);
}

TEST_F(IngestDaemonTest, EventsWaitInTheOutboxWhileRulesIsDownAndSurviveARestart) {
  Config config = MakeConfig();
  LinkContext ctx;
  {
    auto daemon = IngestDaemon::Create(config, ctx, clock_);
    ASSERT_TRUE(daemon.ok()) << daemon.status().ToString();
    DropIntoSpool((*daemon)->spool_dir(), kSummary, "day.json");
    ASSERT_TRUE(RunUntil(**daemon, nullptr, [&] { return (*daemon)->counters().spool.files_accepted == 1; }));
    EXPECT_EQ((*daemon)->counters().spool.events_sent, 188u);
    EXPECT_EQ(*(*daemon)->sender().Depth(), 188);
  }
  // A new daemon on the same data dir finds the outbox and delivers it.
  auto rules_db = Db::Open(dir_ / "rules.db");
  LinkReceiver rules(ctx, *rules_db, rules_inbox_, config.link, clock_);
  ASSERT_TRUE(rules.Bind().ok());
  auto daemon = IngestDaemon::Create(config, ctx, clock_);
  ASSERT_TRUE(daemon.ok());
  ASSERT_TRUE(RunUntil(**daemon, &rules, [&] { return *(*daemon)->sender().Depth() == 0; }));
  EXPECT_EQ(*rules.Backlog(), 188);
}

TEST_F(IngestDaemonTest, CreateFailsClearlyWhenTheDataDirCannotBeCreated) {
  { std::ofstream(dir_ / "data") << "a file, not a directory"; }
  LinkContext ctx;
  auto daemon = IngestDaemon::Create(MakeConfig(), ctx, clock_);
  ASSERT_FALSE(daemon.ok());
  EXPECT_EQ(daemon.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(daemon.status().message().rfind("cannot create data_dir " + (dir_ / "data").string(), 0), 0u)
      << daemon.status().message();
}

TEST_F(IngestDaemonTest, RefusesToStartWithAnUnreadableTrustStoreNamingTheKey) {
  { std::ofstream(dir_ / "trust.pem") << "-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n"; }
  LinkContext ctx;
  auto daemon = IngestDaemon::Create(MakeConfig("trust_store = \"trust.pem\"\n"), ctx, clock_);
  ASSERT_FALSE(daemon.ok());
  EXPECT_EQ(daemon.status().field(), "ingest.trust_store");
}

}  // namespace
}  // namespace amparo::ingest
