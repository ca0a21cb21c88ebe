#include "services/ingest/ingest_daemon.h"

#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <optional>
#include <vector>

#include "amparo/v1/envelope.pb.h"
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
                             "\"\n[link]\nresend_after_ms = 200\n[ingest]\n" +
                             std::string(extra.find("scan_interval_ms") == std::string::npos
                                             ? "scan_interval_ms = 20\n"
                                             : "") +
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

// One USGS feature "ak<n>" in a FeatureCollection.
std::string OneQuakeFeed(int n) {
  const std::string id = "ak" + std::to_string(20255160 + n);
  return R"({"type":"FeatureCollection","metadata":{"generated":1537071067000,"count":1},"features":[)"
         R"({"type":"Feature","properties":{"mag":2,"place":"132km WNW of Arctic Village, Alaska",)"
         R"("time":1537070431969,"updated":1537070826993,)"
         R"("url":"https://earthquake.usgs.gov/earthquakes/eventpage/)" +
         id + R"(","status":"automatic","tsunami":0,"ids":",)" + id +
         R"(,","type":"earthquake","title":"M 2.0 - 132km WNW of Arctic Village, Alaska"},)"
         R"("geometry":{"type":"Point","coordinates":[-148.2799,68.7636,0.1]},"id":")" +
         id + R"("}]})";
}

TEST_F(IngestDaemonTest, FilesArePickedUpWhenTheyLandNotAtTheNextScan) {
  // The timer scan is an hour away: only the spool watcher can explain a
  // pick-up. 40 files are more than one scan takes (max_files_per_scan 32):
  // the rest follow at once too.
  Config config = MakeConfig("scan_interval_ms = 3600000\n");
  LinkContext ctx;
  auto daemon = IngestDaemon::Create(config, ctx, clock_);
  ASSERT_TRUE(daemon.ok()) << daemon.status().ToString();
  const fs::path spool = (*daemon)->spool_dir();
  for (int i = 0; i < 40; ++i) {
    const std::string name = "quake-" + std::to_string(i) + ".json";
    { std::ofstream(spool / "tmp" / name) << OneQuakeFeed(i); }
    fs::rename(spool / "tmp" / name, spool / name);
  }
  ASSERT_TRUE(RunUntil(**daemon, nullptr, [&] { return (*daemon)->counters().spool.files_accepted == 40; }))
      << "accepted " << (*daemon)->counters().spool.files_accepted;
  EXPECT_EQ((*daemon)->counters().spool.events_sent, 40u);
  EXPECT_EQ((*daemon)->counters().spool.files_rejected, 0u);
  // A file written in place (no rename) wakes the daemon too.
  { std::ofstream(spool / "in-place.json") << OneQuakeFeed(40); }
  ASSERT_TRUE(RunUntil(**daemon, nullptr, [&] { return (*daemon)->counters().spool.files_accepted == 41; }));
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

TEST(CorrelationRulesFromTest, TheConfigKeysSetTheProximityBounds) {
  auto config = Config::Parse(
      "[ingest]\ncorrelation_earthquake_window_s = 300\ncorrelation_earthquake_distance_km = 50\n"
      "correlation_earthquake_magnitude_delta = 0.5\ncorrelation_area_window_h = 24\n",
      "/x");
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  CorrelationRules rules = CorrelationRulesFrom(config->ingest);
  EXPECT_EQ(rules.earthquake_window_ms, 300'000);
  EXPECT_DOUBLE_EQ(rules.earthquake_max_distance_km, 50);
  EXPECT_DOUBLE_EQ(rules.earthquake_max_magnitude_delta, 0.5);
  EXPECT_EQ(rules.area_window_ms, 24 * 3'600'000);
  // The defaults are the documented table.
  CorrelationRules defaults = CorrelationRulesFrom(Config::Parse("", "/x")->ingest);
  EXPECT_EQ(defaults.earthquake_window_ms, CorrelationRules{}.earthquake_window_ms);
  EXPECT_DOUBLE_EQ(defaults.earthquake_max_distance_km, CorrelationRules{}.earthquake_max_distance_km);
  EXPECT_EQ(defaults.area_window_ms, CorrelationRules{}.area_window_ms);
  EXPECT_EQ(Config::Parse("[ingest]\ncorrelation_area_window_h = 0\n", "/x").status().field(),
            "ingest.correlation_area_window_h");
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

// An operator-entered event as amparo-gateway sends it (operator_events.h).
v1::CrisisEvent OperatorEvent(int64_t revision, v1::MessageType msg_type) {
  v1::CrisisEvent e;
  e.set_event_id("operator:0123456789abcdef0123456789abcdef");
  e.set_source("operator");
  e.set_source_id("0123456789abcdef0123456789abcdef");
  e.set_revision(revision);
  e.set_status(v1::EVENT_STATUS_ACTUAL);
  e.set_msg_type(msg_type);
  e.set_hazard(v1::HAZARD_KIND_FLOOD);
  e.set_severity(v1::SEVERITY_SEVERE);
  e.set_scope("Restricted");
  e.add_restricted_to_states("PHL");
  e.set_sent_ms(1'700'000'000'000 + revision);
  v1::Area* area = e.add_areas();
  area->set_footprint_model("source");
  v1::Circle* circle = area->add_circles();
  circle->mutable_center()->set_lat(14.6);
  circle->mutable_center()->set_lon(121.0);
  circle->set_radius_km(25);
  e.add_texts()->set_headline("Flooding in Manila");
  return e;
}

// The gateway's side of the link: its own database and sender to ingest.
struct GatewayStandIn {
  GatewayStandIn(LinkContext& ctx, const fs::path& dir, const Config& config, const Clock& clock)
      : db(std::move(*Db::Open(dir / "gateway.db"))),
        sender(ctx, db, "ingest", config.ingest.inbox, config.link, clock),
        clock(clock) {
    EXPECT_TRUE(sender.Start().ok());
  }
  void Send(v1::CrisisEvent event) {
    v1::Envelope envelope = MakeEnvelope("amparo-gateway", clock);
    *envelope.mutable_crisis_event() = std::move(event);
    ASSERT_TRUE(EnqueueOutbound(db, "ingest", envelope).ok());
  }
  Db db;
  LinkSender sender;
  const Clock& clock;
};

TEST_F(IngestDaemonTest, OperatorEventsFromTheLinkTakeTheSpoolsPathToRules) {
  Config config = MakeConfig();
  EXPECT_EQ(config.ingest.inbox, "ipc://" + (dir_ / "run/ingest.ipc").string());
  LinkContext ctx;
  auto rules_db = Db::Open(dir_ / "rules.db");
  ASSERT_TRUE(rules_db.ok());
  LinkReceiver rules(ctx, *rules_db, rules_inbox_, config.link, clock_);
  ASSERT_TRUE(rules.Bind().ok());
  auto daemon = IngestDaemon::Create(config, ctx, clock_);
  ASSERT_TRUE(daemon.ok()) << daemon.status().ToString();
  GatewayStandIn gateway(ctx, dir_.path(), config, clock_);

  std::vector<v1::CrisisEvent> forwarded;
  auto drain = [&] {
    auto n = rules.ProcessPending(
        [&](const v1::Envelope& env, Db&) {
          EXPECT_EQ(env.producer(), "amparo-ingest");
          forwarded.push_back(env.crisis_event());
          return Status::Ok();
        },
        100);
    EXPECT_TRUE(n.ok());
  };
  // Revision 1, the same revision again (a resend with a new message id:
  // deduped), then revision 2 and the cancel.
  gateway.Send(OperatorEvent(1, v1::MESSAGE_TYPE_ALERT));
  gateway.Send(OperatorEvent(1, v1::MESSAGE_TYPE_ALERT));
  gateway.Send(OperatorEvent(2, v1::MESSAGE_TYPE_UPDATE));
  gateway.Send(OperatorEvent(3, v1::MESSAGE_TYPE_CANCEL));
  ASSERT_TRUE(RunUntil(**daemon, &rules, [&] {
    EXPECT_TRUE(gateway.sender.Pump().ok());
    drain();
    return forwarded.size() >= 3 && (*daemon)->counters().operator_events_unchanged == 1;
  }));
  const auto settle = std::chrono::steady_clock::now() + 300ms;
  RunUntil(**daemon, &rules, [&] { return std::chrono::steady_clock::now() > settle; });
  drain();

  ASSERT_EQ(forwarded.size(), 3u);
  const std::string event_id = "operator:0123456789abcdef0123456789abcdef";
  for (const v1::CrisisEvent& e : forwarded) {
    EXPECT_EQ(e.event_id(), event_id);
    EXPECT_EQ(e.incident_id(), event_id);  // stamped by the correlator: a new incident
    EXPECT_GT(e.received_ms(), 0);
    ASSERT_EQ(e.restricted_to_states_size(), 1);
    EXPECT_EQ(e.restricted_to_states(0), "PHL");
    EXPECT_EQ(e.areas(0).circles(0).radius_km(), 25);
  }
  EXPECT_EQ(forwarded[0].revision(), 1);
  EXPECT_EQ(forwarded[0].msg_type(), v1::MESSAGE_TYPE_ALERT);
  EXPECT_EQ(forwarded[1].revision(), 2);
  EXPECT_EQ(forwarded[1].msg_type(), v1::MESSAGE_TYPE_UPDATE);
  EXPECT_EQ(forwarded[2].revision(), 3);
  EXPECT_EQ(forwarded[2].msg_type(), v1::MESSAGE_TYPE_CANCEL);

  IngestCounters counters = (*daemon)->counters();
  EXPECT_EQ(counters.inbox.received, 4u);
  EXPECT_EQ(counters.operator_events_sent, 3u);
  EXPECT_EQ(counters.operator_events_unchanged, 1u);
  EXPECT_EQ(counters.operator_events_rejected, 0u);
  // Recorded in the same table as spool events: a later duplicate from a
  // file or the link is dropped the same way.
  auto q = (*daemon)->db().Prepare("SELECT revision, msg_type FROM ingest_events WHERE event_id = ?");
  q->Bind(1, event_id);
  ASSERT_TRUE(*q->Step());
  EXPECT_EQ(q->ColumnInt(0), 3);
  EXPECT_EQ(q->ColumnInt(1), v1::MESSAGE_TYPE_CANCEL);
}

TEST_F(IngestDaemonTest, TheInboxDeadLettersAnythingButRestrictedOperatorEvents) {
  Config config = MakeConfig();
  LinkContext ctx;
  auto rules_db = Db::Open(dir_ / "rules.db");
  LinkReceiver rules(ctx, *rules_db, rules_inbox_, config.link, clock_);
  ASSERT_TRUE(rules.Bind().ok());
  auto daemon = IngestDaemon::Create(config, ctx, clock_);
  ASSERT_TRUE(daemon.ok()) << daemon.status().ToString();
  GatewayStandIn gateway(ctx, dir_.path(), config, clock_);

  v1::CrisisEvent usgs = OperatorEvent(1, v1::MESSAGE_TYPE_ALERT);
  usgs.set_source("usgs");
  usgs.set_event_id("usgs:us2000hf24");
  v1::CrisisEvent unrestricted = OperatorEvent(1, v1::MESSAGE_TYPE_ALERT);
  unrestricted.clear_restricted_to_states();
  v1::CrisisEvent borrowed_id = OperatorEvent(1, v1::MESSAGE_TYPE_ALERT);
  borrowed_id.set_event_id("usgs:us2000hf24");
  v1::CrisisEvent bad_state = OperatorEvent(1, v1::MESSAGE_TYPE_ALERT);
  bad_state.set_restricted_to_states(0, "Philippines");
  for (const auto& event : {usgs, unrestricted, borrowed_id, bad_state}) gateway.Send(event);
  {
    v1::Envelope not_an_event = MakeEnvelope("amparo-gateway", clock_);
    not_an_event.mutable_registry_change()->set_sequence(1);
    ASSERT_TRUE(EnqueueOutbound(gateway.db, "ingest", not_an_event).ok());
  }
  ASSERT_TRUE(RunUntil(**daemon, &rules, [&] {
    EXPECT_TRUE(gateway.sender.Pump().ok());
    return (*daemon)->counters().operator_events_rejected == 5;
  }));
  const auto settle = std::chrono::steady_clock::now() + 300ms;
  RunUntil(**daemon, &rules, [&] { return std::chrono::steady_clock::now() > settle; });
  EXPECT_EQ(rules.stats().received, 0u);
  EXPECT_EQ((*daemon)->counters().operator_events_sent, 0u);
  EXPECT_EQ((*daemon)->counters().inbox.failed, 5u);

  // Each dead letter keeps its envelope and says why.
  auto q = (*daemon)->db().Prepare("SELECT error FROM link_inbox WHERE error IS NOT NULL ORDER BY seq");
  std::vector<std::string> errors;
  while (*q->Step()) errors.push_back(q->ColumnText(0));
  ASSERT_EQ(errors.size(), 5u);
  EXPECT_NE(errors[0].find("source"), std::string::npos) << errors[0];
  EXPECT_NE(errors[1].find("restricted_to_states"), std::string::npos) << errors[1];
  EXPECT_NE(errors[2].find("event_id"), std::string::npos) << errors[2];
  EXPECT_NE(errors[3].find("not an ISO3 code"), std::string::npos) << errors[3];
  EXPECT_NE(errors[4].find("only crisis_event"), std::string::npos) << errors[4];
  // Nothing was recorded for them.
  auto events = (*daemon)->db().Prepare("SELECT count(*) FROM ingest_events");
  ASSERT_TRUE(*events->Step());
  EXPECT_EQ(events->ColumnInt(0), 0);
}

}  // namespace
}  // namespace amparo::ingest
