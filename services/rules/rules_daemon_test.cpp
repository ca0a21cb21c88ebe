#include "services/rules/rules_daemon.h"

#include <gtest/gtest.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <functional>
#include <map>

#include "common/crypto.h"
#include "common/testing.h"

namespace amparo::rules {
namespace {

using namespace std::chrono_literals;

std::string TestId(uint64_t n) {
  char buf[40];
  std::snprintf(buf, sizeof(buf), "%032llx", static_cast<unsigned long long>(n));
  return buf;
}

// amparo-rules in-process, with link senders standing in for ingest and the
// gateway and a link receiver standing in for notify, over ipc:// in a temp dir.
class RulesDaemonTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string toml = "data_dir = \"" + (dir_ / "data").string() + "\"\nrun_dir = \"" +
                       (dir_ / "run").string() + "\"\n[link]\nresend_after_ms = 300\n";
    auto config = Config::Parse(toml, dir_.path());
    ASSERT_TRUE(config.ok()) << config.status().ToString();
    config_ = *config;
    ingest_db_.emplace(std::move(*Db::Open(dir_ / "ingest.db")));
    gateway_db_.emplace(std::move(*Db::Open(dir_ / "gateway.db")));
    notify_db_.emplace(std::move(*Db::Open(dir_ / "notify.db")));
    ASSERT_TRUE(InitLinkTables(*ingest_db_).ok());
    ASSERT_TRUE(InitLinkTables(*gateway_db_).ok());
  }

  void StartDaemon() {
    daemon_.reset();
    auto daemon = RulesDaemon::Create(config_, ctx_, clock_);
    ASSERT_TRUE(daemon.ok()) << daemon.status().ToString();
    daemon_ = std::move(*daemon);
  }

  void StartPeers() {
    ingest_ =
        std::make_unique<LinkSender>(ctx_, *ingest_db_, "rules", config_.rules.inbox, config_.link, clock_);
    gateway_ =
        std::make_unique<LinkSender>(ctx_, *gateway_db_, "rules", config_.rules.inbox, config_.link, clock_);
    notify_ = std::make_unique<LinkReceiver>(ctx_, *notify_db_, config_.notify.inbox, config_.link, clock_);
    ASSERT_TRUE(ingest_->Start().ok());
    ASSERT_TRUE(gateway_->Start().ok());
    ASSERT_TRUE(notify_->Bind().ok());
  }

  // Runs every party's loop until `done` or ~10 s.
  bool RunUntil(const std::function<bool()>& done) {
    for (int i = 0; i < 1000; ++i) {
      EXPECT_TRUE(ingest_->Pump().ok());
      EXPECT_TRUE(gateway_->Pump().ok());
      daemon_->PollOnce(5ms);
      EXPECT_TRUE(notify_->Pump().ok());
      if (done()) return true;
    }
    return false;
  }

  std::vector<v1::ConsularAlert> DrainNotify() {
    std::vector<v1::ConsularAlert> alerts;
    auto n = notify_->ProcessPending(
        [&](const v1::Envelope& env, Db&) {
          EXPECT_EQ(env.producer(), "amparo-rules");
          alerts.push_back(env.consular_alert());
          return Status::Ok();
        },
        100);
    EXPECT_TRUE(n.ok());
    return alerts;
  }

  void SendRegistrant(uint64_t seq, uint64_t n, const std::string& state, double lat, double lon) {
    v1::Envelope env = MakeEnvelope("amparo-gateway", clock_);
    auto* change = env.mutable_registry_change();
    change->set_sequence(seq);
    change->set_kind(v1::RegistryChange::KIND_UPSERT);
    auto* loc = change->mutable_location();
    loc->set_registrant_id(TestId(n));
    loc->set_state(state);
    loc->set_host_country("JPN");
    loc->set_lat(lat);
    loc->set_lon(lon);
    loc->set_household_size(2);
    ASSERT_TRUE(EnqueueOutbound(*gateway_db_, "rules", env).ok());
  }

  void SendNagoQuake(int64_t revision) {
    v1::Envelope env = MakeEnvelope("amparo-ingest", clock_);
    auto* e = env.mutable_crisis_event();
    e->set_event_id("usgs:us2000hf24");
    e->set_revision(revision);
    e->set_status(v1::EVENT_STATUS_ACTUAL);
    e->set_msg_type(v1::MESSAGE_TYPE_ALERT);
    e->set_hazard(v1::HAZARD_KIND_EARTHQUAKE);
    e->mutable_metrics()->set_magnitude(5.6);
    e->mutable_metrics()->set_depth_km(10);
    e->mutable_origin()->set_lat(26.6579);
    e->mutable_origin()->set_lon(129.5633);
    e->set_place("158km E of Nago, Japan");
    e->set_sent_ms(revision);
    ASSERT_TRUE(EnqueueOutbound(*ingest_db_, "rules", env).ok());
  }

  testing::TempDir dir_;
  SystemClock clock_;
  Config config_;
  LinkContext ctx_;
  std::optional<Db> ingest_db_, gateway_db_, notify_db_;
  std::unique_ptr<LinkSender> ingest_, gateway_;
  std::unique_ptr<LinkReceiver> notify_;
  std::unique_ptr<RulesDaemon> daemon_;
};

TEST_F(RulesDaemonTest, RegistryChangesAndAnEventBecomeAlertsAtNotify) {
  StartDaemon();
  StartPeers();
  SendRegistrant(1, 1, "PHL", 26.70, 129.5633);  // ~4.7 km north: inside
  SendRegistrant(2, 2, "PHL", 26.66, 129.60);    // ~3.7 km east: inside
  SendRegistrant(3, 3, "IDN", 26.68, 129.5633);  // inside
  SendRegistrant(4, 4, "IDN", 27.00, 129.5633);  // ~38 km: outside
  ASSERT_TRUE(RunUntil([&] { return daemon_->engine().index().Size() == 4; }));
  SendNagoQuake(1537026265040);
  ASSERT_TRUE(RunUntil([&] { return *notify_->Backlog() == 2; }));
  auto alerts = DrainNotify();
  ASSERT_EQ(alerts.size(), 2u);
  std::map<std::string, v1::ConsularAlert> by_id;
  for (const auto& a : alerts) by_id[a.alert_id()] = a;
  ASSERT_TRUE(by_id.count("usgs:us2000hf24/PHL/JPN"));
  ASSERT_TRUE(by_id.count("usgs:us2000hf24/IDN/JPN"));
  EXPECT_EQ(by_id["usgs:us2000hf24/PHL/JPN"].exposure().registrants(), 2u);
  EXPECT_EQ(by_id["usgs:us2000hf24/PHL/JPN"].exposure().household_members(), 4u);
  EXPECT_EQ(by_id["usgs:us2000hf24/IDN/JPN"].exposure().registrants(), 1u);
  // Everything acknowledged: the daemon's outbox and the peers' outboxes drain.
  ASSERT_TRUE(RunUntil([&] { return *daemon_->sender().Depth() == 0 && *ingest_->Depth() == 0; }));
  EXPECT_EQ(daemon_->receiver().stats().processed, 5u);
  EXPECT_EQ(daemon_->receiver().stats().failed, 0u);
}

TEST_F(RulesDaemonTest, RestartedDaemonKeepsItsIndexAndDoesNotRepeatAlerts) {
  StartDaemon();
  StartPeers();
  SendRegistrant(1, 1, "PHL", 26.70, 129.5633);
  ASSERT_TRUE(RunUntil([&] { return daemon_->engine().index().Size() == 1; }));
  SendNagoQuake(1537026265040);
  ASSERT_TRUE(RunUntil([&] { return *notify_->Backlog() == 1 && *daemon_->sender().Depth() == 0; }));
  ASSERT_EQ(DrainNotify().size(), 1u);

  daemon_.reset();  // stop, then start again on the same files
  StartDaemon();
  EXPECT_EQ(daemon_->engine().index().Size(), 1u);
  SendRegistrant(2, 2, "PHL", 26.66, 129.60);
  ASSERT_TRUE(RunUntil([&] { return daemon_->engine().index().Size() == 2; }));
  SendNagoQuake(1537026265040);      // a repeat from the source: nothing
  SendNagoQuake(1537026265040 + 1);  // newer, one more exposed: revision 2
  ASSERT_TRUE(RunUntil([&] { return *ingest_->Depth() == 0 && *notify_->Backlog() >= 1; }));
  ASSERT_TRUE(RunUntil([&] { return *daemon_->sender().Depth() == 0; }));
  auto alerts = DrainNotify();
  ASSERT_EQ(alerts.size(), 1u);
  EXPECT_EQ(alerts[0].alert_id(), "usgs:us2000hf24/PHL/JPN");
  EXPECT_EQ(alerts[0].revision(), 2u);
  EXPECT_EQ(alerts[0].exposure().registrants(), 2u);
}


// --- The alert policy: loaded at Create, re-read on SIGHUP -------------------

std::string PolicyWithLevel(const std::string& level) {
  return "[default]\nrepeat_interval = \"1h\"\n[[default.rule]]\nname = \"all\"\nlevel = \"" + level + "\"\n";
}

void WriteFile(const std::filesystem::path& p, const std::string& text) {
  std::ofstream(p, std::ios::binary | std::ios::trunc) << text;
}

// The fixture's config with rules.policy_file = "policy.toml" (relative: the
// config directory).
Config WithPolicyFile(const testing::TempDir& dir) {
  std::string toml = "data_dir = \"" + (dir / "data").string() + "\"\nrun_dir = \"" + (dir / "run").string() +
                     "\"\n[rules]\npolicy_file = \"policy.toml\"\n";
  auto config = Config::Parse(toml, dir.path());
  EXPECT_TRUE(config.ok()) << config.status().ToString();
  return config.ok() ? *config : Config{};
}

TEST(SyncOptionsFromTest, TheRegistrySyncKeysReachTheSyncOptions) {
  RulesOptions options;
  options.registry_gap_timeout_ms = 2500;
  options.registry_snapshot_timeout_ms = 120'000;
  options.registry_probe_interval_ms = 5000;
  options.registry_max_ahead_ranges = 64;
  RegistrySyncOptions sync = SyncOptionsFrom(options);
  EXPECT_EQ(sync.gap_timeout_ms, 2500);
  EXPECT_EQ(sync.snapshot_timeout_ms, 120'000);
  EXPECT_EQ(sync.probe_interval_ms, 5000);
  EXPECT_EQ(sync.max_ahead_ranges, 64);
}

TEST_F(RulesDaemonTest, WithoutAPolicyFileTheBuiltInPolicyIsInForce) {
  StartDaemon();
  EXPECT_TRUE(config_.rules.policy_file.empty());
  EXPECT_EQ(daemon_->policy().fingerprint(), AlertPolicy::Default()->fingerprint());
  EXPECT_EQ(daemon_->policy().fingerprint().rfind("builtin:", 0), 0u);
}

TEST_F(RulesDaemonTest, PolicyFileIsResolvedAgainstTheConfigDirAndMustExist) {
  auto missing = Config::Parse("[rules]\npolicy_file = \"policy.toml\"\n", dir_.path());
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(missing.status().field(), "rules.policy_file");
  EXPECT_EQ(missing.status().message(), "no such file: " + (dir_ / "policy.toml").string());
  WriteFile(dir_ / "policy.toml", PolicyWithLevel("info"));
  EXPECT_EQ(WithPolicyFile(dir_).rules.policy_file, dir_ / "policy.toml");
}

TEST_F(RulesDaemonTest, ABadPolicyFileRefusesToStartNamingTheKey) {
  WriteFile(dir_ / "policy.toml", PolicyWithLevel("urgent"));
  config_ = WithPolicyFile(dir_);
  auto daemon = RulesDaemon::Create(config_, ctx_, clock_);
  ASSERT_FALSE(daemon.ok());
  EXPECT_EQ(daemon.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(daemon.status().message(),
            (dir_ / "policy.toml").string() + ": default.rule[0].level: must be info, warning or critical");
  auto policy = RulesDaemon::LoadPolicy(config_);
  ASSERT_FALSE(policy.ok());
  EXPECT_EQ(policy.status().message(), daemon.status().message());
}

TEST_F(RulesDaemonTest, ReloadSwapsAValidPolicyAndKeepsTheOldOnABadOne) {
  const std::string a = PolicyWithLevel("info"), b = PolicyWithLevel("warning");
  WriteFile(dir_ / "policy.toml", a);
  config_ = WithPolicyFile(dir_);
  StartDaemon();
  EXPECT_EQ(daemon_->policy().fingerprint(), Sha256Hex(a));
  auto held = daemon_->shared_policy();  // a holder keeps its policy across a reload

  WriteFile(dir_ / "policy.toml", b);
  ASSERT_TRUE(daemon_->ReloadPolicy().ok());
  EXPECT_EQ(daemon_->policy().fingerprint(), Sha256Hex(b));
  EXPECT_EQ(held->fingerprint(), Sha256Hex(a));
  PolicyInputs exposed;
  exposed.registrants = 1;
  EXPECT_EQ(daemon_->policy().Evaluate(exposed).level, v1::ALERT_LEVEL_WARNING);

  WriteFile(dir_ / "policy.toml", PolicyWithLevel("warning") + "[state.ph]\n");
  Status bad = daemon_->ReloadPolicy();
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(bad.message(),
            (dir_ / "policy.toml").string() +
                ": state.ph: unknown state: must be an ISO 3166-1 alpha-3 code in upper case, e.g. PHL");
  EXPECT_EQ(daemon_->policy().fingerprint(), Sha256Hex(b));

  std::filesystem::remove(dir_ / "policy.toml");
  EXPECT_FALSE(daemon_->ReloadPolicy().ok());
  EXPECT_EQ(daemon_->policy().fingerprint(), Sha256Hex(b));
}

TEST_F(RulesDaemonTest, SighupReloadsThePolicyFromTheLoop) {
  WriteFile(dir_ / "policy.toml", PolicyWithLevel("info"));
  config_ = WithPolicyFile(dir_);
  StartDaemon();
  InstallStopSignals();  // SIGHUP now sets the reload flag instead of ending the test
  const std::string c = PolicyWithLevel("critical");
  WriteFile(dir_ / "policy.toml", c);
  ASSERT_EQ(std::raise(SIGHUP), 0);
  for (int i = 0; i < 100 && daemon_->policy().fingerprint() != Sha256Hex(c); ++i) daemon_->PollOnce(20ms);
  EXPECT_EQ(daemon_->policy().fingerprint(), Sha256Hex(c));
}

}  // namespace
}  // namespace amparo::rules
