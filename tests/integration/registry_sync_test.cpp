// The registry change stream end to end (issue 3, "Change stream to rules"):
// amparo-gateway and amparo-rules in-process over ipc:// in a temp dir, a
// random mix of registrant creates, updates and deletes interleaved with
// restarts of rules (some with rules.db deleted, some restored from an old
// copy), and after quiescence the rules table and index must hold exactly the
// registry's matching fields.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <optional>
#include <random>
#include <sstream>
#include <tuple>

#include <boost/json.hpp>

#include "common/config.h"
#include "common/link.h"
#include "common/testing.h"
#include "services/gateway/gateway_daemon.h"
#include "services/gateway/gateway_store.h"
#include "services/gateway/import_export.h"
#include "services/rules/rules_daemon.h"

namespace amparo {
namespace {

using namespace std::chrono_literals;

// registrant id -> (state, host, admin1, lat, lon, household, flags)
using Content = std::map<std::string, std::tuple<std::string, std::string, std::string, double, double, int64_t,
                                                 int64_t>>;

// Steps `q`, failing the test (and ending the walk) on an error.
bool NextRow(Statement& q) {
  auto row = q.Step();
  EXPECT_TRUE(row.ok()) << row.status().ToString();
  return row.ok() && *row;
}

class RegistrySyncIntegrationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string toml = "data_dir = \"" + (dir_ / "data").string() + "\"\nrun_dir = \"" + (dir_ / "run").string() +
                       "\"\nkeys_dir = \"" + (dir_ / "keys").string() +
                       "\"\n[link]\nresend_after_ms = 300\n[gateway]\nlisten = \"127.0.0.1:0\"\n";
    auto config = Config::Parse(toml, dir_.path());
    ASSERT_TRUE(config.ok()) << config.status().ToString();
    config_ = *config;
    std::filesystem::create_directories(dir_ / "run");
    auto gateway = gateway::GatewayDaemon::Create(config_, ctx_, clock_);
    ASSERT_TRUE(gateway.ok()) << gateway.status().ToString();
    gateway_ = std::move(*gateway);
    auto keys = gateway::RegistryKeys::Load(config_.keys_dir);
    ASSERT_TRUE(keys.ok()) << keys.status().ToString();
    keys_.emplace(std::move(*keys));
    registry_.emplace(std::move(*Db::Open(config_.DbPath("gateway"))));
    sync_options_.gap_timeout_ms = 300;
    sync_options_.probe_interval_ms = 1000;
    sync_options_.snapshot_timeout_ms = 20'000;
  }

  void StartRules() {
    auto rules = rules::RulesDaemon::Create(config_, ctx_, clock_, sync_options_);
    ASSERT_TRUE(rules.ok()) << rules.status().ToString();
    rules_ = std::move(*rules);
  }

  void StopRules() { rules_.reset(); }

  void RemoveRulesDb(const std::filesystem::path& path) {
    for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path.string() + suffix);
  }

  void Pump(int rounds) {
    for (int i = 0; i < rounds; ++i) {
      gateway_->RunOnce(2ms);
      if (rules_) rules_->PollOnce(2ms);
    }
  }

  double Uniform(double lo, double hi) { return std::uniform_real_distribution<double>(lo, hi)(rng_); }
  int Int(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }

  void Randomise(gateway::Registrant& r) {
    static const char* kAdmin1[] = {"", "JP-13", "JP-27", "PH-00", "IN-MH"};
    static const char* kHosts[] = {"JPN", "PHL", "IND", "USA"};
    r.host_country = kHosts[Int(0, 3)];
    r.admin1 = kAdmin1[Int(0, 4)];
    r.lat = Uniform(-60, 60);
    r.lon = Uniform(-179, 179);
    r.household_size = Int(1, 8);
    r.vulnerabilities.clear();
    for (std::string_view name : gateway::kVulnerabilityNames) {
      if (Int(0, 5) == 0) r.vulnerabilities.emplace_back(name);
    }
  }

  // A bulk import of 1-30 rows of one state in batches of 1-8 rows: its
  // changes reach rules in registry_changes messages (a lone change as a
  // registry_change), one per transaction.
  void RandomImport(const std::string& state) {
    std::string csv = "external_ref,host_country,admin1,lat,lon,household_size,vulnerabilities\n";
    std::vector<std::string> refs;
    for (int n = Int(1, 30); n > 0; --n) {
      gateway::Registrant r;
      Randomise(r);
      refs.push_back("ref-" + std::to_string(next_ref_++));
      std::string flags;
      for (const auto& v : r.vulnerabilities) flags += (flags.empty() ? "" : ";") + v;
      csv += refs.back() + "," + r.host_country + "," + r.admin1 + "," + std::to_string(r.lat) + "," +
             std::to_string(r.lon) + "," + std::to_string(r.household_size) + "," + flags + "\n";
    }
    std::istringstream in(csv);
    gateway::ImportOptions options;
    options.batch_rows = Int(1, 8);
    options.commit_rows = Int(1, 16);
    const gateway::Token token{"test-import", state, gateway::Role::kRegistrar};
    auto report = gateway::ImportRegistrants(*registry_, token, in, gateway::RegistryFormat::kCsv, *keys_, clock_,
                                             options);
    ASSERT_TRUE(report.ok()) << report.status().ToString();
    ASSERT_EQ(report->imported, static_cast<int64_t>(refs.size()));
    auto q = registry_->Prepare("SELECT id FROM registrants WHERE state = ? AND external_ref = ?");
    ASSERT_TRUE(q.ok());
    for (const auto& ref : refs) {
      q->Bind(1, state).Bind(2, ref);
      ASSERT_TRUE(NextRow(*q)) << ref;
      ids_.emplace_back(state, q->ColumnText(0));
      q->Reset();
    }
    ++imports_;
  }

  void RandomWrite() {
    static const char* kStates[] = {"PHL", "IND", "NPL"};
    const int op = ids_.size() < 5 ? 0 : Int(0, 10);
    if (op == 10) {
      RandomImport(kStates[Int(0, 2)]);
    } else if (op <= 4) {
      gateway::Registrant r;
      r.state = kStates[Int(0, 2)];
      r.external_ref = "ref-" + std::to_string(next_ref_++);
      r.retention_until = "2099-12-31";
      r.contact.email = "person@example.org";
      Randomise(r);
      auto stored = gateway::InsertRegistrant(*registry_, r, *keys_, access_, clock_);
      ASSERT_TRUE(stored.ok()) << stored.status().ToString();
      ids_.emplace_back(stored->state, stored->id);
    } else if (op <= 7) {
      const auto& [state, id] = ids_[Int(0, static_cast<int>(ids_.size()) - 1)];
      auto updated = gateway::UpdateRegistrant(
          *registry_, state, id,
          [this](const gateway::Registrant& current) -> Result<gateway::Registrant> {
            gateway::Registrant next = current;
            Randomise(next);
            return next;
          },
          *keys_, access_, clock_);
      ASSERT_TRUE(updated.ok()) << updated.status().ToString();
    } else {
      const size_t i = static_cast<size_t>(Int(0, static_cast<int>(ids_.size()) - 1));
      ASSERT_TRUE(gateway::DeleteRegistrant(*registry_, ids_[i].first, ids_[i].second, access_, clock_).ok());
      ids_.erase(ids_.begin() + static_cast<std::ptrdiff_t>(i));
    }
  }

  Content Registry() {
    Content out;
    auto q = registry_->Prepare(
        "SELECT id, state, host_country, admin1, lat, lon, household_size, vulnerabilities FROM registrants");
    EXPECT_TRUE(q.ok());
    while (NextRow(*q)) {
      int64_t flags = 0;
      const std::string text = q->ColumnText(7);
      const boost::json::value names = boost::json::parse(text);
      for (const auto& v : names.as_array()) {
        EXPECT_TRUE(v.is_string()) << text;
        if (!v.is_string()) continue;
        auto bit = gateway::VulnerabilityBit(std::string_view(v.as_string()));
        EXPECT_TRUE(bit.ok());
        flags |= bit.ok() ? *bit : 0;
      }
      out[q->ColumnText(0)] = {q->ColumnText(1), q->ColumnText(2), q->ColumnText(3), q->ColumnDouble(4),
                               q->ColumnDouble(5), q->ColumnInt(6), flags};
    }
    return out;
  }

  Content RulesTable() {
    Content out;
    auto q = rules_->db().Prepare(
        "SELECT registrant_id, state, host_country, admin1, lat, lon, household_size, vulnerability_flags "
        "FROM registrants WHERE deleted = 0");
    EXPECT_TRUE(q.ok());
    while (NextRow(*q)) {
      out[q->ColumnText(0)] = {q->ColumnText(1), q->ColumnText(2), q->ColumnText(3), q->ColumnDouble(4),
                               q->ColumnDouble(5), q->ColumnInt(6), q->ColumnInt(7)};
    }
    return out;
  }

  int64_t RulesBacklog() {
    auto q = rules_->db().Prepare("SELECT count(*) FROM link_inbox WHERE processed_ms IS NULL");
    EXPECT_TRUE(q.ok());
    if (!q.ok() || !NextRow(*q)) return -1;
    return q->ColumnInt(0);
  }

  // Pumps until the rules table equals the registry and nothing is in
  // flight either way, or ~30 s.
  bool Quiesce() {
    for (int i = 0; i < 3000; ++i) {
      Pump(3);
      auto to_rules = PendingOutbound(*registry_, "rules", 1);
      auto to_gateway = PendingOutbound(rules_->db(), "gateway", 1);
      if (to_rules.ok() && to_rules->empty() && to_gateway.ok() && to_gateway->empty() &&
          RulesBacklog() == 0 && RulesTable() == Registry()) {
        return true;
      }
    }
    return false;
  }

  void ExpectIndexMatches(const Content& registry) {
    const rules::ExposureIndex& index = rules_->engine().index();
    ASSERT_EQ(index.Size(), registry.size());
    for (const auto& [id, row] : registry) {
      const auto& [state, host, admin1, lat, lon, household, flags] = row;
      ASSERT_TRUE(index.Contains(id)) << id;
      // Positions are random over the globe: a 50 m circle holds this one only.
      geo::LatLon at = rules::ExposureIndex::StoredPosition({lat, lon});
      rules::Exposure exposure = index.QueryCircle(at, 0.05, 10);
      ASSERT_EQ(exposure.size(), 1u) << id;
      ASSERT_EQ(exposure.begin()->first, rules::ExposureKey(state, host)) << id;
      const rules::GroupExposure& g = exposure.begin()->second;
      EXPECT_EQ(g.counts.registrants, 1u) << id;
      EXPECT_EQ(g.counts.household_members, static_cast<uint32_t>(household)) << id;
      EXPECT_EQ(g.counts.vulnerable, flags != 0 ? 1u : 0u) << id;
      ASSERT_EQ(g.registrant_ids(), std::vector<std::string>{id});
      ASSERT_EQ(g.by_admin1.size(), 1u) << id;
      EXPECT_EQ(g.by_admin1.begin()->first, admin1) << id;
      for (int b = 0; b < 32; ++b) EXPECT_EQ(g.with_flag[b], (flags >> b) & 1 ? 1u : 0u) << id << " bit " << b;
    }
  }

  testing::TempDir dir_;
  SystemClock clock_;
  Config config_;
  LinkContext ctx_;
  std::unique_ptr<gateway::GatewayDaemon> gateway_;
  std::optional<gateway::RegistryKeys> keys_;
  std::optional<Db> registry_;
  gateway::Access access_{"test:registry-sync"};
  rules::RegistrySyncOptions sync_options_;
  std::unique_ptr<rules::RulesDaemon> rules_;
  std::mt19937 rng_{20240917};
  std::vector<std::pair<std::string, std::string>> ids_;  // (state, id) live in the registry
  int next_ref_ = 0;
  int imports_ = 0;
};

TEST_F(RegistrySyncIntegrationTest, RandomWritesAndRulesRestartsEndWithExactlyTheRegistry) {
  StartRules();
  const std::filesystem::path rules_db = config_.DbPath("rules");
  const std::filesystem::path backup = dir_ / "rules-backup.db";
  bool have_backup = false;
  int deleted_db = 0, restored = 0, plain = 0;
  for (int round = 0; round < 12; ++round) {
    const int writes = Int(5, 40);
    for (int w = 0; w < writes; ++w) {
      RandomWrite();
      if (Int(0, 3) == 0) Pump(Int(1, 3));
    }
    Pump(Int(0, 20));
    const int action = round % 4 == 3 ? 3 : Int(0, 3);  // every 4th round restores a backup
    if (action == 0) continue;  // rules keeps running
    StopRules();
    if (action == 1) {
      RemoveRulesDb(rules_db);
      ++deleted_db;
    } else if (action == 2) {
      ++plain;
      if (!have_backup) {
        std::filesystem::copy_file(rules_db, backup);
        have_backup = true;
      }
    } else if (have_backup) {
      RemoveRulesDb(rules_db);
      std::filesystem::copy_file(backup, rules_db);
      ++restored;
    } else {
      std::filesystem::copy_file(rules_db, backup);
      have_backup = true;
    }
    // Writes while rules is down.
    for (int w = Int(0, 15); w > 0; --w) RandomWrite();
    Pump(Int(0, 5));
    StartRules();
  }
  RandomImport("PHL");  // the running rules gets batches at the end in any case
  ASSERT_TRUE(Quiesce()) << "rules never caught up with the registry";
  // Every message was applied, none dead-lettered and repaired by a snapshot.
  auto dead = rules_->db().Prepare("SELECT count(*) FROM link_inbox WHERE error IS NOT NULL");
  ASSERT_TRUE(dead.ok() && NextRow(*dead));
  EXPECT_EQ(dead->ColumnInt(0), 0);
  const Content registry = Registry();
  EXPECT_EQ(RulesTable(), registry);
  EXPECT_EQ(registry.size(), ids_.size());
  ExpectIndexMatches(registry);
  auto state = rules_->engine().sync().State(rules_->db());
  ASSERT_TRUE(state.ok());
  EXPECT_EQ(state->applied_sequence, static_cast<uint64_t>(*gateway::RegistrySequence(*registry_)));
  EXPECT_FALSE(state->has_gap());
  EXPECT_GT(deleted_db + restored, 0);
  EXPECT_GT(imports_, 0);  // batched changes were part of the mix
  ::testing::Test::RecordProperty("restarts", std::to_string(deleted_db + restored + plain));
}

TEST_F(RegistrySyncIntegrationTest, RulesStartedLateOnAFullRegistryLearnsItFromASnapshot) {
  for (int i = 0; i < 60; ++i) RandomWrite();
  // The changes were delivered to nobody and are dropped, as after a lost
  // rules.db whose outbox rows the old rules had acknowledged.
  ASSERT_TRUE(registry_->Exec("DELETE FROM link_outbox WHERE peer = 'rules'").ok());
  StartRules();
  ASSERT_TRUE(Quiesce());
  const Content registry = Registry();
  EXPECT_EQ(RulesTable(), registry);
  ExpectIndexMatches(registry);
  EXPECT_EQ(rules_->engine().stats().snapshots_applied, 1u);
}

}  // namespace
}  // namespace amparo
