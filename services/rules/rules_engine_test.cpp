#include "services/rules/rules_engine.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <set>

#include "common/crypto.h"
#include "common/link.h"
#include "common/registrant_id.h"
#include "common/testing.h"
#include "services/rules/decision_replay.h"

namespace amparo::rules {
namespace {

constexpr double kKmPerDegreeLat = 111.195;  // on the geo.h sphere

std::string TestId(uint64_t n) {
  char buf[40];
  std::snprintf(buf, sizeof(buf), "%032llx", static_cast<unsigned long long>(n));
  return buf;
}

v1::Envelope Upsert(uint64_t sequence, uint64_t n, const std::string& state, const std::string& host,
                    double lat, double lon, uint32_t household = 1, uint32_t flags = 0) {
  FakeClock clock;
  v1::Envelope env = MakeEnvelope("amparo-gateway", clock);
  auto* change = env.mutable_registry_change();
  change->set_sequence(sequence);
  change->set_kind(v1::RegistryChange::KIND_UPSERT);
  auto* loc = change->mutable_location();
  loc->set_registrant_id(TestId(n));
  loc->set_state(state);
  loc->set_host_country(host);
  loc->set_admin1("");
  loc->set_lat(lat);
  loc->set_lon(lon);
  loc->set_household_size(household);
  loc->set_vulnerability_flags(flags);
  return env;
}

v1::Envelope Delete(uint64_t sequence, uint64_t n, const std::string& state) {
  FakeClock clock;
  v1::Envelope env = MakeEnvelope("amparo-gateway", clock);
  auto* change = env.mutable_registry_change();
  change->set_sequence(sequence);
  change->set_kind(v1::RegistryChange::KIND_DELETE);
  change->mutable_location()->set_registrant_id(TestId(n));
  change->mutable_location()->set_state(state);
  return env;
}

// USGS us2000hf24 as amparo-ingest normalises it (fixtures/usgs/summary-exxamalte).
constexpr double kNagoLat = 26.6579, kNagoLon = 129.5633;
v1::Envelope NagoQuake(int64_t revision = 1537026265040, v1::EventStatus status = v1::EVENT_STATUS_ACTUAL) {
  FakeClock clock;
  v1::Envelope env = MakeEnvelope("amparo-ingest", clock);
  auto* e = env.mutable_crisis_event();
  e->set_event_id("usgs:us2000hf24");
  e->set_source("usgs");
  e->set_source_id("us2000hf24");
  e->set_revision(revision);
  e->set_status(status);
  e->set_msg_type(v1::MESSAGE_TYPE_ALERT);
  e->set_hazard(v1::HAZARD_KIND_EARTHQUAKE);
  e->set_source_hazard_code("earthquake");
  e->mutable_metrics()->set_magnitude(5.6);
  e->mutable_metrics()->set_depth_km(10);
  e->mutable_metrics()->set_pager_alert("green");
  e->mutable_origin()->set_lat(kNagoLat);
  e->mutable_origin()->set_lon(kNagoLon);
  e->set_place("158km E of Nago, Japan");
  e->set_onset_ms(1536998729280);
  e->set_sent_ms(revision);
  auto* text = e->add_texts();
  text->set_language("en");
  text->set_headline("M 5.6 - 158km E of Nago, Japan");
  return env;
}

// USGS us6000pi9w (fixtures/usgs/detail-monty): PAGER red.
constexpr double kTibetLat = 28.639, kTibetLon = 87.3608;
v1::Envelope TibetQuake() {
  FakeClock clock;
  v1::Envelope env = MakeEnvelope("amparo-ingest", clock);
  auto* e = env.mutable_crisis_event();
  e->set_event_id("usgs:us6000pi9w");
  e->set_source("usgs");
  e->set_source_id("us6000pi9w");
  e->set_revision(1736442321636);
  e->set_status(v1::EVENT_STATUS_ACTUAL);
  e->set_msg_type(v1::MESSAGE_TYPE_ALERT);
  e->set_hazard(v1::HAZARD_KIND_EARTHQUAKE);
  e->mutable_metrics()->set_magnitude(7.1);
  e->mutable_metrics()->set_depth_km(10);
  e->mutable_metrics()->set_pager_alert("red");
  e->mutable_origin()->set_lat(kTibetLat);
  e->mutable_origin()->set_lon(kTibetLon);
  e->set_place("2025 Southern Tibetan Plateau Earthquake");
  e->set_sent_ms(1736442321636);
  auto* text = e->add_texts();
  text->set_language("en");
  text->set_headline("M 7.1 - 2025 Southern Tibetan Plateau Earthquake");
  return env;
}

class RulesEngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    options_.earthquake_min_mmi = 6;
    options_.max_ids_per_alert = 1000;
    OpenEngine();
  }

  void OpenEngine() {
    engine_.reset();
    db_.reset();
    auto db = Db::Open(dir_ / "rules.db");
    ASSERT_TRUE(db.ok()) << db.status().ToString();
    db_.emplace(std::move(*db));
    ASSERT_TRUE(RulesEngine::Migrate(*db_).ok());
    auto engine = RulesEngine::Create(*db_, options_, clock_);
    ASSERT_TRUE(engine.ok()) << engine.status().ToString();
    engine_ = std::move(*engine);
  }

  // What LinkReceiver::ProcessPending does: one transaction per message.
  Status Apply(const v1::Envelope& env) {
    auto tx = Transaction::Begin(*db_);
    if (!tx.ok()) return tx.status();
    Status st = engine_->Handle(env, *db_);
    if (!st.ok()) return st;
    AMPARO_RETURN_IF_ERROR(tx->Commit());
    engine_->ConfirmIndexChanges();
    return Status::Ok();
  }

  // Every alert enqueued to notify so far, in order.
  std::vector<v1::Envelope> Outbox() { return *PendingOutbound(*db_, "notify"); }
  std::vector<v1::ConsularAlert> AlertsFrom(size_t first) {
    std::vector<v1::ConsularAlert> alerts;
    auto all = Outbox();
    for (size_t i = first; i < all.size(); ++i) alerts.push_back(all[i].consular_alert());
    return alerts;
  }
  static const v1::ConsularAlert* Find(const std::vector<v1::ConsularAlert>& alerts, const std::string& id) {
    for (const auto& a : alerts) {
      if (a.alert_id() == id) return &a;
    }
    return nullptr;
  }

  // The first column of the first row `sql` gives, as text / as an integer.
  std::string QueryText(const std::string& sql) {
    auto q = db_->Prepare(sql);
    EXPECT_TRUE(q.ok() && *q->Step()) << sql;
    return q->ColumnText(0);
  }
  int64_t QueryInt(const std::string& sql) {
    auto q = db_->Prepare(sql);
    EXPECT_TRUE(q.ok() && *q->Step()) << sql;
    return q->ColumnInt(0);
  }

  // amparo replay --deterministic of the whole log into an empty engine
  // gives every decision recorded, identical.
  void ExpectReplayIdentical() {
    testing::TempDir scratch;
    auto report = ReplayDecisionLog(dir_ / "rules.db", options_, scratch.path());
    ASSERT_TRUE(report.ok()) << report.status().ToString();
    EXPECT_TRUE(report->identical()) << report->first_difference;
    EXPECT_EQ(report->recorded, Outbox().size());
  }

  // decisions as amparo-rules left it before they were keyed by alert: the
  // same rows, with decision_id UNIQUE and decisions_by_alert on (alert_id,
  // revision). The caller sets user_version back past the migration.
  void UnkeyDecisionsAsBefore() {
    ASSERT_TRUE(db_->Exec(R"sql(
        CREATE TABLE old_decisions (
          seq INTEGER PRIMARY KEY AUTOINCREMENT, decision_id TEXT NOT NULL UNIQUE,
          input_seq INTEGER NOT NULL, alert_id TEXT NOT NULL, revision INTEGER NOT NULL,
          notification INTEGER NOT NULL, rule TEXT NOT NULL, inputs TEXT NOT NULL, policy TEXT NOT NULL,
          alert BLOB NOT NULL, ids_digest BLOB);
        INSERT INTO old_decisions SELECT * FROM decisions ORDER BY seq;
        DROP TABLE decisions;
        ALTER TABLE old_decisions RENAME TO decisions;
        CREATE INDEX decisions_by_alert ON decisions (alert_id, revision);
    )sql")
                    .ok());
  }

  // id_lists as amparo-rules left it before the coded form: every list's
  // ids packed (16 bytes each) under the SHA-256 of those, and named so by
  // the rows and the exposure log that refer to it; no `coded` column. The
  // caller sets user_version back past the migration that added it.
  void PackIdListsAsBefore() {
    auto rows = db_->Prepare("SELECT digest, ids FROM id_lists");
    ASSERT_TRUE(rows.ok());
    std::vector<std::pair<std::string, std::string>> lists;
    while (*rows->Step()) {
      std::string packed;
      ASSERT_TRUE(DecodeRegistrantIds(rows->ColumnBlob(1), &packed));
      lists.emplace_back(rows->ColumnBlob(0), std::move(packed));
    }
    ASSERT_FALSE(lists.empty());
    for (const auto& [digest, packed] : lists) {
      const std::string before = Sha256(packed);
      auto list = db_->Prepare("UPDATE id_lists SET ids = ?, digest = ? WHERE digest = ?");
      ASSERT_TRUE(list.ok());
      list->BindBlob(1, packed).BindBlob(2, before).BindBlob(3, digest);
      ASSERT_TRUE(list->Run().ok());
      for (const char* sql : {"UPDATE alert_sources SET ids_digest = ?2 WHERE ids_digest = ?1",
                              "UPDATE decisions SET ids_digest = ?2 WHERE ids_digest = ?1",
                              "UPDATE input_log SET body = replace(body, lower(hex(?1)), lower(hex(?2)))"}) {
        auto q = db_->Prepare(sql);
        ASSERT_TRUE(q.ok()) << sql;
        q->BindBlob(1, digest).BindBlob(2, before);
        ASSERT_TRUE(q->Run().ok()) << sql;
      }
    }
    ASSERT_TRUE(db_->Exec("ALTER TABLE id_lists DROP COLUMN coded").ok());
  }

  // Registrants around the Nago quake (footprint 15.0 km): PHL/JPN three
  // inside (7 people, 1 vulnerable) and one outside; IDN/JPN one inside, one outside.
  void RegisterAroundNago() {
    uint64_t seq = 0;
    ASSERT_TRUE(Apply(Upsert(++seq, 1, "PHL", "JPN", kNagoLat + 5 / kKmPerDegreeLat, kNagoLon, 3)).ok());
    ASSERT_TRUE(Apply(Upsert(++seq, 2, "PHL", "JPN", kNagoLat - 11 / kKmPerDegreeLat, kNagoLon, 2, 4)).ok());
    ASSERT_TRUE(Apply(Upsert(++seq, 3, "PHL", "JPN", kNagoLat + 14.5 / kKmPerDegreeLat, kNagoLon, 2)).ok());
    ASSERT_TRUE(Apply(Upsert(++seq, 4, "PHL", "JPN", kNagoLat + 16 / kKmPerDegreeLat, kNagoLon, 5)).ok());
    ASSERT_TRUE(Apply(Upsert(++seq, 5, "IDN", "JPN", kNagoLat - 2 / kKmPerDegreeLat, kNagoLon)).ok());
    ASSERT_TRUE(Apply(Upsert(++seq, 6, "IDN", "JPN", kNagoLat - 20 / kKmPerDegreeLat, kNagoLon)).ok());
    next_seq_ = seq + 1;
  }

  testing::TempDir dir_;
  FakeClock clock_{1'750'000'000'000};
  RulesOptions options_;
  std::optional<Db> db_;
  std::unique_ptr<RulesEngine> engine_;
  uint64_t next_seq_ = 1;
};

TEST_F(RulesEngineTest, RaisesOneAlertPerStateAndHostWithExactCounts) {
  RegisterAroundNago();
  ASSERT_TRUE(Apply(NagoQuake()).ok());
  auto envelopes = Outbox();
  ASSERT_EQ(envelopes.size(), 2u);
  for (const auto& env : envelopes) {
    EXPECT_EQ(env.producer(), "amparo-rules");
    EXPECT_EQ(env.schema_version(), 1u);
    EXPECT_TRUE(env.has_consular_alert());
  }
  auto alerts = AlertsFrom(0);
  const auto* phl = Find(alerts, "usgs:us2000hf24/PHL/JPN");
  ASSERT_NE(phl, nullptr);
  EXPECT_EQ(phl->incident_id(), "usgs:us2000hf24");
  EXPECT_EQ(phl->revision(), 1u);
  EXPECT_EQ(phl->state(), "PHL");
  EXPECT_EQ(phl->host_country(), "JPN");
  EXPECT_EQ(phl->exposure().registrants(), 3u);
  EXPECT_EQ(phl->exposure().household_members(), 7u);
  EXPECT_EQ(phl->exposure().vulnerable(), 1u);
  // PAGER green (no damage expected) and no flag the default policy
  // escalates for (an older person): nationals exposed, no action yet.
  EXPECT_EQ(phl->level(), v1::ALERT_LEVEL_INFO);
  EXPECT_EQ(phl->policy_rule(), "default:exposed");
  EXPECT_EQ(
      phl->reason(),
      "M5.6 earthquake, 158km E of Nago, Japan: 3 registered nationals (7 people, 1 vulnerable) within 15 km "
      "(strong shaking, MMI>=6)");
  EXPECT_FALSE(phl->exercise());
  EXPECT_FALSE(phl->cancelled());
  EXPECT_EQ(phl->event_status(), "Actual");
  EXPECT_EQ(phl->hazard(), v1::HAZARD_KIND_EARTHQUAKE);
  EXPECT_EQ(phl->headline(), "M 5.6 - 158km E of Nago, Japan");
  EXPECT_EQ(phl->footprint().footprint_model(), "eq-mmi-allen2012");
  EXPECT_EQ(phl->footprint().description(), "MMI>=6 within 15 km of 26.658,129.563");
  EXPECT_EQ(phl->raised_ms(), 1'750'000'000'000);
  EXPECT_EQ(phl->event_sent_ms(), 1537026265040);
  // The vulnerable registrant first, then by id.
  EXPECT_EQ(AlertRegistrantIds(*phl),
            (std::vector<std::string>{TestId(2), TestId(1), TestId(3)}));

  const auto* idn = Find(alerts, "usgs:us2000hf24/IDN/JPN");
  ASSERT_NE(idn, nullptr);
  EXPECT_EQ(idn->exposure().registrants(), 1u);
  EXPECT_EQ(idn->exposure().household_members(), 1u);
  EXPECT_EQ(idn->exposure().vulnerable(), 0u);
  EXPECT_EQ(idn->level(), v1::ALERT_LEVEL_INFO);  // PAGER green, nobody vulnerable
  EXPECT_EQ(
      idn->reason(),
      "M5.6 earthquake, 158km E of Nago, Japan: 1 registered national (1 person, 0 vulnerable) within 15 km "
      "(strong shaking, MMI>=6)");
  EXPECT_EQ(AlertRegistrantIds(*idn),
            (std::vector<std::string>{TestId(5)}));
}

TEST_F(RulesEngineTest, PagerRedMakesEveryAlertCriticalAndOtherEventsDoNotMix) {
  RegisterAroundNago();
  uint64_t seq = next_seq_;
  ASSERT_TRUE(Apply(Upsert(seq++, 10, "IDN", "CHN", kTibetLat + 50 / kKmPerDegreeLat, kTibetLon)).ok());
  ASSERT_TRUE(Apply(Upsert(seq++, 11, "IDN", "CHN", kTibetLat + 10 / kKmPerDegreeLat, kTibetLon, 4)).ok());
  ASSERT_TRUE(Apply(Upsert(seq++, 12, "PHL", "NPL", kTibetLat - 80 / kKmPerDegreeLat, kTibetLon, 2)).ok());
  ASSERT_TRUE(Apply(Upsert(seq++, 13, "PHL", "NPL", kTibetLat - 90 / kKmPerDegreeLat, kTibetLon)).ok());
  ASSERT_TRUE(Apply(TibetQuake()).ok());
  auto alerts = AlertsFrom(0);
  ASSERT_EQ(alerts.size(), 2u);
  const auto* chn = Find(alerts, "usgs:us6000pi9w/IDN/CHN");
  ASSERT_NE(chn, nullptr);
  EXPECT_EQ(chn->exposure().registrants(), 2u);
  EXPECT_EQ(chn->exposure().household_members(), 5u);
  EXPECT_EQ(chn->level(), v1::ALERT_LEVEL_CRITICAL);
  EXPECT_EQ(chn->footprint().description(), "MMI>=6 within 85 km of 28.639,87.361");
  const auto* npl = Find(alerts, "usgs:us6000pi9w/PHL/NPL");
  ASSERT_NE(npl, nullptr);
  EXPECT_EQ(npl->exposure().registrants(), 1u);
  EXPECT_EQ(npl->exposure().household_members(), 2u);
  EXPECT_EQ(npl->level(), v1::ALERT_LEVEL_CRITICAL);
  EXPECT_EQ(npl->reason(),
            "M7.1 earthquake, 2025 Southern Tibetan Plateau Earthquake: 1 registered national (2 people, 0 "
            "vulnerable) within 85 km (strong shaking, MMI>=6)");
}

TEST_F(RulesEngineTest, SameRevisionAgainOrNewerWithSameCountsRaisesNothing) {
  RegisterAroundNago();
  ASSERT_TRUE(Apply(NagoQuake()).ok());
  ASSERT_EQ(Outbox().size(), 2u);
  ASSERT_TRUE(Apply(NagoQuake()).ok());  // a repeat (new message id, same revision)
  EXPECT_EQ(Outbox().size(), 2u);
  EXPECT_EQ(engine_->stats().stale_events, 1u);
  ASSERT_TRUE(Apply(NagoQuake(1537026265040 - 1)).ok());  // older
  EXPECT_EQ(engine_->stats().stale_events, 2u);
  ASSERT_TRUE(Apply(NagoQuake(1537026265040 + 60000)).ok());  // newer, nothing changed
  EXPECT_EQ(Outbox().size(), 2u);
  EXPECT_EQ(engine_->stats().events, 2u);
}

TEST_F(RulesEngineTest, NewRegistrantInsideGivesRevisionTwoForThatGroupOnly) {
  RegisterAroundNago();
  ASSERT_TRUE(Apply(NagoQuake()).ok());
  ASSERT_TRUE(Apply(Upsert(next_seq_++, 20, "PHL", "JPN", kNagoLat, kNagoLon + 0.05, 4)).ok());
  clock_.Advance(60000);
  ASSERT_TRUE(Apply(NagoQuake(1537026265040 + 60000)).ok());
  auto alerts = AlertsFrom(2);
  ASSERT_EQ(alerts.size(), 1u);
  EXPECT_EQ(alerts[0].alert_id(), "usgs:us2000hf24/PHL/JPN");
  EXPECT_EQ(alerts[0].revision(), 2u);
  EXPECT_EQ(alerts[0].exposure().registrants(), 4u);
  EXPECT_EQ(alerts[0].exposure().household_members(), 11u);
  EXPECT_EQ(alerts[0].exposure().vulnerable(), 1u);
  EXPECT_EQ(alerts[0].raised_ms(), 1'750'000'060'000);
  EXPECT_EQ(alerts[0].event_sent_ms(), 1537026265040 + 60000);
}

TEST_F(RulesEngineTest, AFirstReportThatExposesNobodyWritesOnlyItsEventRow) {
  ASSERT_TRUE(Apply(NagoQuake()).ok());  // nobody registered yet
  EXPECT_EQ(engine_->stats().events, 1u);
  EXPECT_EQ(QueryInt("SELECT count(*) FROM events"), 1);
  EXPECT_EQ(QueryInt("SELECT count(*) FROM alert_sources"), 0);
  EXPECT_EQ(QueryInt("SELECT count(*) FROM alerts"), 0);
  EXPECT_TRUE(Outbox().empty());
  // Its next revision, once people are there, raises their alerts; the
  // same revision again is stale.
  RegisterAroundNago();
  ASSERT_TRUE(Apply(NagoQuake(1537026265040 + 1)).ok());
  EXPECT_EQ(AlertsFrom(0).size(), 2u);
  EXPECT_EQ(QueryInt("SELECT revision FROM events"), 1537026265040 + 1);
  ASSERT_TRUE(Apply(NagoQuake(1537026265040 + 1)).ok());
  EXPECT_EQ(engine_->stats().stale_events, 1u);
  EXPECT_EQ(Outbox().size(), 2u);
}

TEST_F(RulesEngineTest, GroupWithNobodyLeftGetsAZeroCountRevision) {
  RegisterAroundNago();
  ASSERT_TRUE(Apply(NagoQuake()).ok());
  // The only exposed IDN registrant moves to Tokyo; another is deleted.
  ASSERT_TRUE(Apply(Upsert(next_seq_++, 5, "IDN", "JPN", 35.68, 139.69)).ok());
  ASSERT_TRUE(Apply(Delete(next_seq_++, 3, "PHL")).ok());
  ASSERT_TRUE(Apply(NagoQuake(1537026265040 + 1)).ok());
  auto alerts = AlertsFrom(2);
  ASSERT_EQ(alerts.size(), 2u);
  const auto* idn = Find(alerts, "usgs:us2000hf24/IDN/JPN");
  ASSERT_NE(idn, nullptr);
  EXPECT_EQ(idn->revision(), 2u);
  EXPECT_EQ(idn->exposure().registrants(), 0u);
  EXPECT_EQ(idn->level(), v1::ALERT_LEVEL_INFO);
  EXPECT_FALSE(idn->cancelled());
  EXPECT_EQ(idn->reason(),
            "M5.6 earthquake, 158km E of Nago, Japan: no registered nationals within 15 km (strong shaking, "
            "MMI>=6) "
            "any more");
  const auto* phl = Find(alerts, "usgs:us2000hf24/PHL/JPN");
  ASSERT_NE(phl, nullptr);
  EXPECT_EQ(phl->revision(), 2u);
  EXPECT_EQ(phl->exposure().registrants(), 2u);
  EXPECT_EQ(phl->exposure().household_members(), 5u);
  // Again: the zero-count alert stays quiet.
  ASSERT_TRUE(Apply(NagoQuake(1537026265040 + 2)).ok());
  EXPECT_EQ(AlertsFrom(4).size(), 0u);
}

TEST_F(RulesEngineTest, MagnitudeRevisedBelowTheThresholdClearsTheAlerts) {
  RegisterAroundNago();
  ASSERT_TRUE(Apply(NagoQuake()).ok());
  auto weaker = NagoQuake(1537026265040 + 1);
  weaker.mutable_crisis_event()->mutable_metrics()->set_magnitude(4.8);
  ASSERT_TRUE(Apply(weaker).ok());
  auto alerts = AlertsFrom(2);
  ASSERT_EQ(alerts.size(), 2u);
  for (const auto& a : alerts) {
    EXPECT_EQ(a.revision(), 2u);
    EXPECT_EQ(a.exposure().registrants(), 0u);
    EXPECT_EQ(
        a.reason(),
        "M4.8 earthquake, 158km E of Nago, Japan: no registered nationals exposed any more (no footprint)");
  }
}

TEST_F(RulesEngineTest, CancelGivesCancelledRevisionsOnce) {
  RegisterAroundNago();
  ASSERT_TRUE(Apply(NagoQuake()).ok());
  auto cancel = NagoQuake(1537026265040 + 5000);
  cancel.mutable_crisis_event()->set_msg_type(v1::MESSAGE_TYPE_CANCEL);
  ASSERT_TRUE(Apply(cancel).ok());
  auto alerts = AlertsFrom(2);
  ASSERT_EQ(alerts.size(), 2u);
  for (const auto& a : alerts) {
    EXPECT_TRUE(a.cancelled());
    EXPECT_EQ(a.revision(), 2u);
    EXPECT_EQ(a.exposure().registrants(), 0u);
    EXPECT_EQ(a.exposure().household_members(), 0u);
    EXPECT_EQ(a.reason(), "cancelled by source");
    EXPECT_EQ(a.level(), v1::ALERT_LEVEL_INFO);
  }
  auto again = NagoQuake(1537026265040 + 6000);
  again.mutable_crisis_event()->set_msg_type(v1::MESSAGE_TYPE_CANCEL);
  ASSERT_TRUE(Apply(again).ok());
  EXPECT_EQ(AlertsFrom(4).size(), 0u);
  // Reinstated by a newer revision: revision 3, not cancelled.
  ASSERT_TRUE(Apply(NagoQuake(1537026265040 + 7000)).ok());
  alerts = AlertsFrom(4);
  ASSERT_EQ(alerts.size(), 2u);
  EXPECT_FALSE(alerts[0].cancelled());
  EXPECT_EQ(alerts[0].revision(), 3u);
}

TEST_F(RulesEngineTest, ExerciseIsLabelledAndNeverTouchesRealAlerts) {
  RegisterAroundNago();
  ASSERT_TRUE(Apply(NagoQuake()).ok());
  ASSERT_TRUE(Apply(NagoQuake(1537026265040, v1::EVENT_STATUS_EXERCISE)).ok());
  auto drill = AlertsFrom(2);
  ASSERT_EQ(drill.size(), 2u);
  const auto* phl = Find(drill, "usgs:us2000hf24~exercise/PHL/JPN");
  ASSERT_NE(phl, nullptr);
  EXPECT_EQ(phl->incident_id(), "usgs:us2000hf24~exercise");
  EXPECT_TRUE(phl->exercise());
  EXPECT_EQ(phl->event_status(), "Exercise");
  EXPECT_EQ(phl->revision(), 1u);
  EXPECT_EQ(phl->exposure().registrants(), 3u);

  ASSERT_TRUE(Apply(NagoQuake(1537026265040, v1::EVENT_STATUS_TEST)).ok());
  auto test = AlertsFrom(4);
  ASSERT_EQ(test.size(), 2u);
  EXPECT_TRUE(test[0].exercise());
  EXPECT_EQ(test[0].event_status(), "Test");

  // Drafts are not actionable.
  ASSERT_TRUE(Apply(NagoQuake(1537026265040, v1::EVENT_STATUS_DRAFT)).ok());
  EXPECT_EQ(Outbox().size(), 6u);
}

TEST_F(RulesEngineTest, RegistrantIdsAreCappedButCountsAreNot) {
  options_.max_ids_per_alert = 2;
  OpenEngine();
  RegisterAroundNago();
  ASSERT_TRUE(Apply(NagoQuake()).ok());
  auto alerts = AlertsFrom(0);
  const auto* phl = Find(alerts, "usgs:us2000hf24/PHL/JPN");
  ASSERT_NE(phl, nullptr);
  EXPECT_EQ(phl->exposure().registrants(), 3u);
  ASSERT_EQ(AlertRegistrantIdCount(*phl), 2u);
  EXPECT_EQ(AlertRegistrantIds(*phl)[0], TestId(2));
  EXPECT_EQ(phl->registrant_ids_size(), 0);  // written packed only
}

TEST_F(RulesEngineTest, AnAlertsIdsAreStoredOnceAndItsRowsHoldTheAlertWithoutThem) {
  RegisterAroundNago();
  ASSERT_TRUE(Apply(NagoQuake()).ok());
  auto sent = AlertsFrom(0);
  ASSERT_EQ(sent.size(), 2u);
  // PHL/JPN's three, IDN/JPN's one: the exposure logged for replay names the same lists.
  EXPECT_EQ(QueryInt("SELECT count(*) FROM id_lists"), 2);
  auto logged = db_->Prepare("SELECT body FROM input_log WHERE kind = 'exposure'");
  ASSERT_TRUE(logged.ok() && *logged->Step());
  const std::string exposure_log = logged->ColumnBlob(0);
  for (const v1::ConsularAlert& alert : sent) {
    EXPECT_NE(exposure_log.find("\"ids_sha256\":\"" + Sha256Hex(alert.registrant_ids_coded()) + "\""),
              std::string::npos)
        << exposure_log;
  }
  EXPECT_EQ(QueryInt("SELECT count(*) FROM alerts WHERE message IS NOT NULL OR last_decision IS NULL"), 0);
  for (const v1::ConsularAlert& alert : sent) {
    ASSERT_FALSE(alert.registrant_ids_coded().empty());
    const std::string digest = Sha256(alert.registrant_ids_coded());
    // The decision and the candidate hold the alert without its ids, and name the list.
    for (const char* sql : {"SELECT alert, ids_digest FROM decisions WHERE alert_id = ?",
                            "SELECT candidate, ids_digest FROM alert_sources WHERE alert_id = ?"}) {
      auto q = db_->Prepare(sql);
      ASSERT_TRUE(q.ok());
      q->Bind(1, alert.alert_id());
      ASSERT_TRUE(*q->Step()) << sql;
      v1::ConsularAlert stored;
      ASSERT_TRUE(stored.ParseFromString(q->ColumnBlob(0)));
      EXPECT_TRUE(stored.registrant_ids_coded().empty()) << sql;
      EXPECT_EQ(stored.exposure().registrants(), alert.exposure().registrants()) << sql;
      EXPECT_EQ(q->ColumnBlob(1), digest) << sql;
    }
    auto list = db_->Prepare("SELECT ids FROM id_lists WHERE digest = ?");
    list->BindBlob(1, digest);
    ASSERT_TRUE(*list->Step());
    EXPECT_EQ(list->ColumnBlob(0), alert.registrant_ids_coded());
  }
  // A new revision takes its ids from the list again: four PHL nationals now.
  ASSERT_TRUE(Apply(Upsert(next_seq_++, 20, "PHL", "JPN", kNagoLat, kNagoLon + 0.05, 4)).ok());
  clock_.Advance(60000);
  ASSERT_TRUE(Apply(NagoQuake(1537026265040 + 60000)).ok());
  auto revised = AlertsFrom(2);
  ASSERT_EQ(revised.size(), 1u);
  auto ids = AlertRegistrantIds(revised[0]);
  std::sort(ids.begin(), ids.end());
  EXPECT_EQ(ids, (std::vector<std::string>{TestId(1), TestId(2), TestId(3), TestId(20)}));
  EXPECT_EQ(QueryInt("SELECT count(*) FROM id_lists"), 3);
}

TEST_F(RulesEngineTest, ANewDatabaseGets8KiBPages) {
  auto q = db_->Prepare("PRAGMA page_size");
  ASSERT_TRUE(q.ok() && *q->Step());
  EXPECT_EQ(q->ColumnInt(0), 8192);
}

TEST_F(RulesEngineTest, RestartRebuildsTheIndexAndKeepsRevisions) {
  RegisterAroundNago();
  ASSERT_TRUE(Apply(Delete(next_seq_++, 6, "IDN")).ok());
  ASSERT_TRUE(Apply(NagoQuake()).ok());
  OpenEngine();  // a new engine on the same file
  EXPECT_EQ(engine_->index().Size(), 5u);
  EXPECT_FALSE(engine_->index().Contains(TestId(6)));
  EXPECT_TRUE(engine_->index().Contains(TestId(4)));
  ASSERT_TRUE(Apply(NagoQuake()).ok());  // still known after the restart
  EXPECT_EQ(Outbox().size(), 2u);
  ASSERT_TRUE(Apply(Upsert(next_seq_++, 21, "IDN", "JPN", kNagoLat, kNagoLon)).ok());
  ASSERT_TRUE(Apply(NagoQuake(1537026265040 + 1)).ok());
  auto alerts = AlertsFrom(2);
  ASSERT_EQ(alerts.size(), 1u);
  EXPECT_EQ(alerts[0].alert_id(), "usgs:us2000hf24/IDN/JPN");
  EXPECT_EQ(alerts[0].revision(), 2u);
  EXPECT_EQ(alerts[0].exposure().registrants(), 2u);
}

TEST_F(RulesEngineTest, RegistryChangesAreIdempotentOnSequence) {
  ASSERT_TRUE(Apply(Upsert(5, 1, "PHL", "JPN", 10, 10)).ok());
  ASSERT_TRUE(Apply(Upsert(4, 1, "PHL", "JPN", 20, 20)).ok());  // older: ignored
  ASSERT_TRUE(Apply(Upsert(5, 1, "PHL", "JPN", 20, 20)).ok());  // repeat: ignored
  EXPECT_EQ(engine_->stats().stale_changes, 2u);
  EXPECT_EQ(engine_->index().QueryCircle({10, 10}, 1, 10).size(), 1u);
  ASSERT_TRUE(Apply(Delete(7, 1, "PHL")).ok());
  EXPECT_FALSE(engine_->index().Contains(TestId(1)));
  ASSERT_TRUE(Apply(Upsert(6, 1, "PHL", "JPN", 10, 10)).ok());  // replayed after the delete: stays deleted
  EXPECT_FALSE(engine_->index().Contains(TestId(1)));
  ASSERT_TRUE(Apply(Upsert(8, 1, "PHL", "JPN", 10, 10)).ok());  // re-registered later
  EXPECT_TRUE(engine_->index().Contains(TestId(1)));
  EXPECT_EQ(engine_->stats().registry_changes, 3u);
}

TEST_F(RulesEngineTest, RejectsBadChangesWithTheFieldAndWritesNothing) {
  ASSERT_TRUE(Apply(Upsert(1, 1, "PHL", "JPN", 10, 10)).ok());
  Status other_state = Apply(Upsert(2, 1, "IDN", "JPN", 10, 10));
  EXPECT_EQ(other_state.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(other_state.field(), "state");
  Status other_delete = Apply(Delete(3, 1, "IDN"));
  EXPECT_EQ(other_delete.field(), "state");
  EXPECT_EQ(Apply(Upsert(4, 2, "PHL", "JPN", 95, 10)).field(), "lat");
  auto bad_id = Upsert(5, 3, "PHL", "JPN", 10, 10);
  bad_id.mutable_registry_change()->mutable_location()->set_registrant_id("not-an-id");
  EXPECT_EQ(Apply(bad_id).field(), "registrant_id");
  auto no_kind = Upsert(6, 4, "PHL", "JPN", 10, 10);
  no_kind.mutable_registry_change()->set_kind(v1::RegistryChange::KIND_UNSPECIFIED);
  EXPECT_EQ(Apply(no_kind).field(), "kind");
  FakeClock clock;
  v1::Envelope ack = MakeEnvelope("amparo-gateway", clock);
  ack.mutable_alert_ack()->set_alert_id("x");
  EXPECT_EQ(Apply(ack).field(), "payload");
  v1::Envelope no_id = NagoQuake();
  no_id.mutable_crisis_event()->clear_event_id();
  EXPECT_EQ(Apply(no_id).field(), "event_id");

  EXPECT_EQ(engine_->index().Size(), 1u);
  auto q = db_->Prepare("SELECT count(*), max(sequence) FROM registrants");
  ASSERT_TRUE(*q->Step());
  EXPECT_EQ(q->ColumnInt(0), 1);
  EXPECT_EQ(q->ColumnInt(1), 1);
}

// A registry_changes batch (a bulk import's) applies each change as if it
// came alone: a change that is invalid on its own is skipped and counted,
// the others apply, and the sequence has advanced past every valid one.
TEST_F(RulesEngineTest, ABatchOfRegistryChangesAppliesEachAndSkipsOnlyTheInvalidOne) {
  ASSERT_TRUE(Apply(Upsert(1, 1, "PHL", "JPN", 10, 10)).ok());
  FakeClock clock;
  v1::Envelope batch = MakeEnvelope("amparo-gateway", clock);
  auto* changes = batch.mutable_registry_changes();
  *changes->add_changes() = Upsert(2, 2, "PHL", "JPN", 20, 20).registry_change();
  *changes->add_changes() = Upsert(3, 3, "PHL", "JPN", 95, 20).registry_change();  // lat out of range
  *changes->add_changes() = Upsert(4, 1, "IDN", "JPN", 10, 10).registry_change();  // another state's id
  *changes->add_changes() = Delete(5, 1, "PHL").registry_change();
  *changes->add_changes() = Upsert(6, 4, "IDN", "KOR", 37.5, 127).registry_change();
  ASSERT_TRUE(Apply(batch).ok());
  EXPECT_EQ(engine_->stats().registry_changes, 4u);  // 1 alone, then 2, 5 and 6
  EXPECT_EQ(engine_->stats().invalid_changes, 2u);
  EXPECT_FALSE(engine_->index().Contains(TestId(1)));
  EXPECT_TRUE(engine_->index().Contains(TestId(2)));
  EXPECT_FALSE(engine_->index().Contains(TestId(3)));
  EXPECT_TRUE(engine_->index().Contains(TestId(4)));
  auto q = db_->Prepare("SELECT registrant_id, state, deleted FROM registrants ORDER BY registrant_id");
  std::string rows;
  while (*q->Step()) rows += q->ColumnText(0).substr(30) + q->ColumnText(1) + std::to_string(q->ColumnInt(2)) + " ";
  EXPECT_EQ(rows, "01PHL1 02PHL0 04IDN0 ");
  // As one message per change: 1-2 applied in order, 3 and 4 never
  // recorded (a gap a snapshot will fill), 5-6 held above it.
  auto sync = engine_->sync().State(*db_);
  ASSERT_TRUE(sync.ok());
  EXPECT_EQ(sync->applied_sequence, 2u);
  EXPECT_EQ(sync->known_sequence, 6u);
  EXPECT_EQ(sync->ahead_ranges, 1);
  // Applied again (a redelivery): nothing moves. 2, 5 and 6 are stale, and
  // so is 4 now that its registrant's deletion (5) is newer; 3 is invalid again.
  ASSERT_TRUE(Apply(batch).ok());
  EXPECT_EQ(engine_->stats().registry_changes, 4u);
  EXPECT_EQ(engine_->stats().stale_changes, 4u);
  EXPECT_EQ(engine_->stats().invalid_changes, 3u);
  EXPECT_TRUE(engine_->index().Contains(TestId(4)));
  v1::Envelope empty = MakeEnvelope("amparo-gateway", clock);
  empty.mutable_registry_changes();
  EXPECT_EQ(Apply(empty).field(), "changes");
}

// A bulk import's batches in order move the high-water mark by the whole
// run, stale changes included; a batch that arrives ahead of the mark is
// held above it and joined when the missing batch comes.
TEST_F(RulesEngineTest, BatchesInOrderMoveTheMarkByTheRunAndAnEarlyBatchWaitsAboveIt) {
  FakeClock clock;
  auto batch_of = [&](uint64_t first, uint64_t count) {
    v1::Envelope env = MakeEnvelope("amparo-gateway", clock);
    for (uint64_t s = first; s < first + count; ++s) {
      *env.mutable_registry_changes()->add_changes() =
          Upsert(s, s, "PHL", "JPN", 10 + static_cast<double>(s) / 1000, 20).registry_change();
    }
    return env;
  };
  ASSERT_TRUE(Apply(batch_of(1, 300)).ok());
  auto sync = engine_->sync().State(*db_);
  EXPECT_EQ(sync->applied_sequence, 300u);
  EXPECT_EQ(sync->ahead_ranges, 0);
  ASSERT_TRUE(Apply(batch_of(501, 100)).ok());  // 301-500 not here yet
  sync = engine_->sync().State(*db_);
  EXPECT_EQ(sync->applied_sequence, 300u);
  EXPECT_EQ(sync->known_sequence, 600u);
  EXPECT_TRUE(sync->has_gap());
  v1::Envelope middle = batch_of(301, 200);
  // One registrant of the run changed later already (a newer single change): stale, still counted.
  ASSERT_TRUE(Apply(Upsert(601, 350, "PHL", "JPN", 50, 50)).ok());
  ASSERT_TRUE(Apply(middle).ok());
  sync = engine_->sync().State(*db_);
  EXPECT_EQ(sync->applied_sequence, 601u);
  EXPECT_EQ(sync->ahead_ranges, 0);
  EXPECT_FALSE(sync->has_gap());
  EXPECT_EQ(engine_->index().Size(), 600u);
  EXPECT_EQ(engine_->stats().stale_changes, 1u);
  EXPECT_EQ(engine_->index().QueryCircle({50, 50}, 1, 10).size(), 1u);  // 350 kept its newer position
}

TEST_F(RulesEngineTest, ReconcileIndexUndoesChangesOfARolledBackTransaction) {
  ASSERT_TRUE(Apply(Upsert(1, 1, "PHL", "JPN", 10, 10)).ok());
  {
    auto tx = Transaction::Begin(*db_);
    ASSERT_TRUE(tx.ok());
    ASSERT_TRUE(engine_->Handle(Upsert(2, 1, "PHL", "JPN", 20, 20), *db_).ok());
    ASSERT_TRUE(engine_->Handle(Upsert(3, 2, "PHL", "JPN", 20, 20), *db_).ok());
    EXPECT_EQ(engine_->index().Size(), 2u);
  }  // rolled back: the commit "failed"
  ASSERT_TRUE(engine_->ReconcileIndex(*db_).ok());
  EXPECT_EQ(engine_->index().Size(), 1u);
  EXPECT_EQ(engine_->index().QueryCircle({10, 10}, 1, 10).size(), 1u);
  EXPECT_TRUE(engine_->index().QueryCircle({20, 20}, 1, 10).empty());
}

TEST_F(RulesEngineTest, SourcePolygonFootprintIsUsed) {
  RegisterAroundNago();
  auto env = NagoQuake();
  auto* area = env.mutable_crisis_event()->add_areas();
  area->set_description("Okinawa east coast");
  auto* p = area->add_polygons();
  // A small box around the epicentre reaching 8 km north and south.
  double d = 8 / kKmPerDegreeLat;
  for (auto [lat, lon] : {std::pair{kNagoLat - d, kNagoLon - d},
                          {kNagoLat - d, kNagoLon + d},
                          {kNagoLat + d, kNagoLon + d},
                          {kNagoLat + d, kNagoLon - d},
                          {kNagoLat - d, kNagoLon - d}}) {
    auto* v = p->add_vertices();
    v->set_lat(lat);
    v->set_lon(lon);
  }
  ASSERT_TRUE(Apply(env).ok());
  auto alerts = AlertsFrom(0);
  ASSERT_EQ(alerts.size(), 2u);
  const auto* phl = Find(alerts, "usgs:us2000hf24/PHL/JPN");
  ASSERT_NE(phl, nullptr);
  EXPECT_EQ(phl->exposure().registrants(), 1u);  // only the one 5 km north
  EXPECT_EQ(phl->footprint().footprint_model(), "source");
  EXPECT_EQ(phl->reason(),
            "M5.6 earthquake, 158km E of Nago, Japan: 1 registered national (3 people, 0 vulnerable) inside "
            "the area "
            "given by the source (Okinawa east coast)");
}

// --- Alert policy, lifecycle, operator actions, decisions (issue 5) -------

// A policy for these tests: red sources critical with phase 4 proposed,
// green sources warning, repeat every hour, unaccompanied children +1.
constexpr char kTestPolicy[] = R"(
[default]
repeat_interval = "1h"
[[default.rule]]
name = "red"
source_level = "red"
level = "critical"
phase = 4
[[default.rule]]
name = "green"
source_level = "green"
level = "warning"
phase = 1
[[default.rule]]
name = "exposed"
level = "info"
[[default.escalate]]
name = "child"
flag = "unaccompanied_child"
min_exposed = 1
steps = 1
)";

class AlertPolicyEngineTest : public RulesEngineTest {
 protected:
  void SetUp() override {
    RulesEngineTest::SetUp();
    auto policy = AlertPolicy::Parse(kTestPolicy, "test-policy.toml");
    ASSERT_TRUE(policy.ok()) << policy.status().ToString();
    engine_->SetPolicy(*policy);
  }

  int Tick() {
    auto tx = Transaction::Begin(*db_);
    EXPECT_TRUE(tx.ok());
    auto sent = engine_->Tick(*db_);
    EXPECT_TRUE(sent.ok()) << sent.status().ToString();
    EXPECT_TRUE(tx->Commit().ok());
    return sent.ok() ? *sent : -1;
  }

  static v1::Envelope Decision(const std::string& id, const std::string& alert_id, const std::string& state,
                               v1::OperatorDecision::Action action, int phase = 0) {
    FakeClock clock;
    v1::Envelope env = MakeEnvelope("amparo-gateway", clock);
    auto* d = env.mutable_operator_decision();
    d->set_decision_id(id);
    d->set_alert_id(alert_id);
    d->set_state(state);
    d->set_action(action);
    d->set_phase(static_cast<v1::CrisisPhase>(phase));
    d->set_by("tok_operator_phl");
    d->set_at_ms(1'750'000'100'000);
    d->set_reason("embassy confirms: roads to the airport are open");
    return env;
  }

  static v1::Envelope SilenceFor(const std::string& id, const std::string& state, const std::string& incident,
                                 int64_t ends_ms, bool expired = false) {
    FakeClock clock;
    v1::Envelope env = MakeEnvelope("amparo-gateway", clock);
    auto* s = env.mutable_silence();
    s->set_silence_id(id);
    s->set_state(state);
    s->set_incident_id(incident);
    s->set_starts_ms(0);
    s->set_ends_ms(ends_ms);
    s->set_created_by("tok_operator_phl");
    s->set_reason("known: embassy already in contact with everyone");
    s->set_expired(expired);
    return env;
  }

  // The Tibet quake reported by GDACS (red) as part of the USGS incident.
  static v1::Envelope GdacsTibet(int64_t revision, const std::string& alert_level) {
    v1::Envelope env = TibetQuake();
    auto* e = env.mutable_crisis_event();
    e->set_event_id("gdacs:EQ:1453380");
    e->set_source("gdacs");
    e->set_incident_id("usgs:us6000pi9w");
    e->set_revision(revision);
    e->mutable_metrics()->clear_pager_alert();
    e->mutable_metrics()->set_gdacs_alert(alert_level);
    return env;
  }

  // The Tibet quake over RegisterAroundTibet(): the alerts it raised,
  // kTibetPhl's among them.
  static constexpr char kTibetPhl[] = "usgs:us6000pi9w/PHL/CHN";
  std::vector<v1::ConsularAlert> RaiseTibetAlerts() {
    RegisterAroundTibet();
    EXPECT_TRUE(Apply(TibetQuake()).ok());
    return AlertsFrom(0);
  }

  void RegisterAroundTibet() {
    ASSERT_TRUE(Apply(Upsert(next_seq_++, 31, "PHL", "CHN", kTibetLat + 10 / kKmPerDegreeLat, kTibetLon, 3)).ok());
    ASSERT_TRUE(Apply(Upsert(next_seq_++, 32, "IDN", "CHN", kTibetLat - 10 / kKmPerDegreeLat, kTibetLon)).ok());
  }
};

TEST_F(RulesEngineTest, DefaultPolicyGradesBySourceAndAnUnaccompaniedChildRaisesTheLevel) {
  RegisterAroundNago();
  ASSERT_TRUE(Apply(NagoQuake()).ok());  // PAGER green: nobody is in danger of damage
  auto alerts = AlertsFrom(0);
  const auto* idn = Find(alerts, "usgs:us2000hf24/IDN/JPN");
  ASSERT_NE(idn, nullptr);
  EXPECT_EQ(idn->level(), v1::ALERT_LEVEL_INFO);
  EXPECT_EQ(idn->policy_rule(), "default:exposed");
  EXPECT_EQ(idn->lifecycle(), v1::ALERT_LIFECYCLE_NEW);
  EXPECT_EQ(idn->phase(), v1::CRISIS_PHASE_UNSPECIFIED);
  EXPECT_EQ(idn->decision_id().size(), 32u);
  // The same group with an unaccompanied child: one step up.
  ASSERT_TRUE(Apply(Upsert(next_seq_++, 40, "IDN", "JPN", kNagoLat, kNagoLon, 1,
                           v1::VULNERABILITY_FLAG_UNACCOMPANIED_CHILD))
                  .ok());
  ASSERT_TRUE(Apply(NagoQuake(1537026265040 + 1000)).ok());
  alerts = AlertsFrom(2);
  idn = Find(alerts, "usgs:us2000hf24/IDN/JPN");
  ASSERT_NE(idn, nullptr);
  EXPECT_EQ(idn->revision(), 2u);
  EXPECT_EQ(idn->level(), v1::ALERT_LEVEL_WARNING);
  EXPECT_EQ(idn->lifecycle(), v1::ALERT_LIFECYCLE_ESCALATED);
  EXPECT_EQ(idn->policy_rule(), "default:exposed+unaccompanied-child");
  EXPECT_EQ(idn->exposure().by_flag().at("unaccompanied_child"), 1u);

  // PAGER red: critical, phase 2 proposed and in force at once.
  ASSERT_TRUE(Apply(Upsert(next_seq_++, 41, "PHL", "CHN", kTibetLat, kTibetLon)).ok());
  ASSERT_TRUE(Apply(TibetQuake()).ok());
  alerts = AlertsFrom(3);
  const auto* chn = Find(alerts, "usgs:us6000pi9w/PHL/CHN");
  ASSERT_NE(chn, nullptr);
  EXPECT_EQ(chn->level(), v1::ALERT_LEVEL_CRITICAL);
  EXPECT_EQ(chn->policy_rule(), "default:red-source");
  EXPECT_EQ(chn->proposed_phase(), v1::CRISIS_PHASE_RESTRICTION);
  EXPECT_EQ(chn->phase(), v1::CRISIS_PHASE_RESTRICTION);
  EXPECT_EQ(std::vector<std::string>(chn->sources().begin(), chn->sources().end()),
            std::vector<std::string>{"usgs"});
}

TEST_F(AlertPolicyEngineTest, PhaseFourIsOnlyProposedUntilAnOperatorOfTheSameStateConfirmsIt) {
  RegisterAroundTibet();
  ASSERT_TRUE(Apply(TibetQuake()).ok());
  const std::string id = "usgs:us6000pi9w/PHL/CHN";
  auto alerts = AlertsFrom(0);
  const auto* phl = Find(alerts, id);
  ASSERT_NE(phl, nullptr);
  EXPECT_EQ(phl->proposed_phase(), v1::CRISIS_PHASE_EVACUATION);
  EXPECT_EQ(phl->phase(), v1::CRISIS_PHASE_RESTRICTION);  // capped at 2 until confirmed
  EXPECT_EQ(phl->policy_rule(), "default:red");

  // Another state's operator: "unknown alert", nothing written.
  Status other = Apply(Decision("d-idn", id, "IDN", v1::OperatorDecision::ACTION_CONFIRM_PHASE, 4));
  EXPECT_EQ(other.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(other.field(), "alert_id");
  EXPECT_EQ(Outbox().size(), 2u);
  EXPECT_EQ(Apply(Decision("d-bad", id, "PHL", v1::OperatorDecision::ACTION_CONFIRM_PHASE, 5)).field(), "phase");

  ASSERT_TRUE(Apply(Decision("d-1", id, "PHL", v1::OperatorDecision::ACTION_CONFIRM_PHASE, 4)).ok());
  ASSERT_TRUE(Apply(Decision("d-1", id, "PHL", v1::OperatorDecision::ACTION_CONFIRM_PHASE, 4)).ok());  // again
  alerts = AlertsFrom(2);
  ASSERT_EQ(alerts.size(), 1u);
  EXPECT_EQ(alerts[0].revision(), 2u);
  EXPECT_EQ(alerts[0].phase(), v1::CRISIS_PHASE_EVACUATION);
  EXPECT_EQ(alerts[0].lifecycle(), v1::ALERT_LIFECYCLE_ESCALATED);
  EXPECT_EQ(alerts[0].phase_confirmation().phase(), v1::CRISIS_PHASE_EVACUATION);
  EXPECT_EQ(alerts[0].phase_confirmation().by(), "tok_operator_phl");
  EXPECT_EQ(alerts[0].phase_confirmation().reason(), "embassy confirms: roads to the airport are open");
  EXPECT_EQ(alerts[0].policy_rule(), "operator:CONFIRM_PHASE");

  // Closed: final, a newer report of the quake changes nothing for it.
  ASSERT_TRUE(Apply(Decision("d-2", id, "PHL", v1::OperatorDecision::ACTION_CLOSE)).ok());
  alerts = AlertsFrom(3);
  ASSERT_EQ(alerts.size(), 1u);
  EXPECT_EQ(alerts[0].lifecycle(), v1::ALERT_LIFECYCLE_CLOSED);
  EXPECT_EQ(alerts[0].revision(), 3u);
  ASSERT_TRUE(Apply(Upsert(next_seq_++, 33, "PHL", "CHN", kTibetLat, kTibetLon)).ok());
  auto newer = TibetQuake();
  newer.mutable_crisis_event()->set_revision(1736442321636 + 1);
  ASSERT_TRUE(Apply(newer).ok());
  EXPECT_EQ(AlertsFrom(4).size(), 0u);
  EXPECT_EQ(Tick(), 0);  // and no repeats
}

TEST_F(AlertPolicyEngineTest, AlertRowsWrittenBeforeIdListsStillGiveTheirIds) {
  const auto sent = RaiseTibetAlerts();
  const std::string id = kTibetPhl;
  const v1::ConsularAlert* phl = Find(sent, id);
  ASSERT_NE(phl, nullptr);
  ASSERT_FALSE(phl->registrant_ids_coded().empty());
  // As an older amparo-rules left them: the whole alert in alerts.message,
  // decisions.alert and alert_sources.candidate, its ids packed, no
  // digests, no lists.
  for (const v1::ConsularAlert& alert : sent) {
    v1::ConsularAlert old = alert;
    ASSERT_TRUE(DecodeRegistrantIds(alert.registrant_ids_coded(), old.mutable_registrant_ids_packed()));
    old.clear_registrant_ids_coded();
    const std::string bytes = old.SerializeAsString();
    for (const char* sql :
         {"UPDATE alerts SET message = ?1, last_decision = NULL WHERE alert_id = ?2",
          "UPDATE decisions SET alert = ?1, ids_digest = NULL WHERE alert_id = ?2",
          "UPDATE alert_sources SET candidate = ?1, ids_digest = NULL WHERE alert_id = ?2"}) {
      auto q = db_->Prepare(sql);
      ASSERT_TRUE(q.ok());
      q->BindBlob(1, bytes).Bind(2, alert.alert_id());
      ASSERT_TRUE(q->Run().ok()) << sql;
    }
  }
  ASSERT_TRUE(db_->Exec("DELETE FROM id_lists").ok());
  // Confirming the phase re-sends the latest notification, read from alerts.message.
  ASSERT_TRUE(Apply(Decision("d-1", id, "PHL", v1::OperatorDecision::ACTION_CONFIRM_PHASE, 4)).ok());
  auto confirmed = AlertsFrom(2);
  ASSERT_EQ(confirmed.size(), 1u);
  EXPECT_EQ(confirmed[0].revision(), 2u);
  EXPECT_EQ(confirmed[0].registrant_ids_coded(), phl->registrant_ids_coded());
  // A newer report re-evaluates from the inline candidates.
  clock_.Advance(60'000);
  ASSERT_TRUE(Apply(GdacsTibet(1, "red")).ok());
  ExpectReplayIdentical();
}

TEST_F(AlertPolicyEngineTest, IdListsOfPackedIdsStillGiveTheirIdsAndNewListsAreCoded) {
  const auto sent = RaiseTibetAlerts();
  const std::string id = kTibetPhl;
  const v1::ConsularAlert* phl = Find(sent, id);
  ASSERT_NE(phl, nullptr);
  std::string packed;
  ASSERT_TRUE(DecodeRegistrantIds(phl->registrant_ids_coded(), &packed));
  ASSERT_EQ(packed.size(), 16 * AlertRegistrantIdCount(*phl));
  ASSERT_GT(packed.size(), phl->registrant_ids_coded().size());
  const int64_t lists = QueryInt("SELECT count(*) FROM id_lists");
  ASSERT_GT(lists, 0);
  EXPECT_EQ(QueryInt("SELECT count(*) FROM id_lists WHERE coded = 1"), lists);
  // As the amparo-rules before the coded form left it: two schema versions
  // back (decisions not keyed by alert yet either).
  const int64_t version = QueryInt("PRAGMA user_version");
  PackIdListsAsBefore();
  UnkeyDecisionsAsBefore();
  ASSERT_TRUE(db_->Exec("PRAGMA user_version=" + std::to_string(version - 2)).ok());
  OpenEngine();  // migrates
  EXPECT_EQ(QueryInt("PRAGMA user_version"), version);
  EXPECT_EQ(QueryInt("SELECT count(*) FROM id_lists WHERE coded = 0"), lists);
  // Confirming the phase re-sends the latest notification with the ids of
  // its packed list, coded as now.
  ASSERT_TRUE(Apply(Decision("d-1", id, "PHL", v1::OperatorDecision::ACTION_CONFIRM_PHASE, 4)).ok());
  const auto confirmed = AlertsFrom(sent.size());
  ASSERT_EQ(confirmed.size(), 1u);
  EXPECT_EQ(confirmed[0].revision(), 2u);
  EXPECT_TRUE(confirmed[0].registrant_ids_packed().empty());
  EXPECT_EQ(confirmed[0].registrant_ids_coded(), phl->registrant_ids_coded());
  EXPECT_EQ(AlertRegistrantIds(confirmed[0]), AlertRegistrantIds(*phl));
  // which is stored again, as a coded list next to the packed one.
  EXPECT_EQ(QueryInt("SELECT count(*) FROM id_lists WHERE coded = 1"), 1);
  // A newer report re-evaluates from the candidates of packed lists; its own
  // exposure is stored as coded lists. The replay of the whole log gives the
  // same decisions.
  clock_.Advance(60'000);
  ASSERT_TRUE(Apply(GdacsTibet(1, "red")).ok());
  EXPECT_GT(QueryInt("SELECT count(*) FROM id_lists WHERE coded = 1"), 0);
  EXPECT_EQ(QueryInt("SELECT count(*) FROM id_lists WHERE coded = 0"), lists);
  ExpectReplayIdentical();
}

TEST_F(AlertPolicyEngineTest, DecisionsAreMigratedWholeAndKeyedByAlertRevisionAndNotification) {
  RegisterAroundTibet();
  ASSERT_TRUE(Apply(TibetQuake()).ok());
  clock_.Advance(60'000);
  ASSERT_TRUE(Apply(GdacsTibet(1, "orange")).ok());
  const std::string kRows =
      "SELECT count(*) || ':' || group_concat(seq || '/' || decision_id || '/' || input_seq || '/' || "
      "alert_id "
      "|| '/' || revision || '/' || notification || '/' || rule || '/' || inputs || '/' || policy || '/' || "
      "hex(alert) || '/' || hex(ids_digest), '|') FROM (SELECT * FROM decisions ORDER BY seq)";
  const std::string kIndexes =
      "SELECT group_concat(name || ':' || \"unique\" || ':' || (SELECT group_concat(name) FROM "
      "pragma_index_info(l.name)), ' ') FROM (SELECT * FROM pragma_index_list('decisions') ORDER BY name) l";
  // As an older amparo-rules left it: one schema version back.
  UnkeyDecisionsAsBefore();
  const std::string rows = QueryText(kRows);
  ASSERT_NE(rows.substr(0, 2), "0:");
  ASSERT_EQ(QueryText(kIndexes),
            "decisions_by_alert:0:alert_id,revision sqlite_autoindex_decisions_1:1:decision_id");
  const int64_t version = std::stoll(QueryText("PRAGMA user_version"));
  const int64_t last_seq = std::stoll(QueryText("SELECT max(seq) FROM decisions"));
  ASSERT_TRUE(db_->Exec("PRAGMA user_version=" + std::to_string(version - 1)).ok());

  OpenEngine();  // migrates
  EXPECT_EQ(QueryText("PRAGMA user_version"), std::to_string(version));
  EXPECT_EQ(QueryText(kRows), rows);
  EXPECT_EQ(QueryText(kIndexes), "decisions_by_alert:1:alert_id,revision,notification");
  // The same guarantee as decision_id's: one decision per alert, revision
  // and notification.
  EXPECT_FALSE(
      db_->Exec("INSERT INTO decisions (decision_id, input_seq, alert_id, revision, notification, rule, "
                "inputs, policy, alert) SELECT 'x', input_seq, alert_id, revision, notification, rule, "
                "inputs, policy, alert FROM decisions LIMIT 1")
          .ok());
  // The engine goes on: new decisions follow the migrated ones, and the
  // replay of the whole log gives the same decisions.
  ASSERT_TRUE(
      Apply(Decision("d-1", "usgs:us6000pi9w/PHL/CHN", "PHL", v1::OperatorDecision::ACTION_CONFIRM_PHASE, 4))
          .ok());
  EXPECT_EQ(QueryText("SELECT count(*) FROM decisions WHERE seq > " + std::to_string(last_seq)), "1");
  ExpectReplayIdentical();
}

TEST_F(AlertPolicyEngineTest, AlertSourcesOfTheWithoutRowidLayoutAreMigratedWhole) {
  RegisterAroundTibet();
  auto usgs = TibetQuake();
  usgs.mutable_crisis_event()->mutable_metrics()->set_pager_alert("green");
  ASSERT_TRUE(Apply(usgs).ok());
  const auto first = AlertsFrom(0);
  ASSERT_EQ(first.size(), 2u);
  const std::string kRows =
      "SELECT count(*) || ':' || group_concat(alert_id || '/' || event_id || '/' || incident_id || '/' || "
      "cancelled || '/' || expires_ms || '/' || repeat_interval_ms || '/' || hex(candidate) || '/' || inputs "
      "|| "
      "'/' || hex(ids_digest), '|') FROM (SELECT * FROM alert_sources ORDER BY alert_id, event_id)";
  const std::string kWithoutRowid = "SELECT wr FROM pragma_table_list WHERE name = 'alert_sources'";
  // As an older amparo-rules left it: id lists of packed ids ...
  PackIdListsAsBefore();
  const std::string rows = QueryText(kRows);
  ASSERT_NE(rows.substr(0, 2), "0:");
  ASSERT_EQ(QueryText(kWithoutRowid), "0");
  // ... decisions not keyed by alert, and the same alert_sources rows
  // WITHOUT ROWID: three schema versions back.
  const int64_t version = std::stoll(QueryText("PRAGMA user_version"));
  ASSERT_TRUE(db_->Exec(R"sql(
      CREATE TABLE old_sources (
        alert_id TEXT NOT NULL, event_id TEXT NOT NULL, incident_id TEXT NOT NULL,
        cancelled INTEGER NOT NULL, expires_ms INTEGER NOT NULL, repeat_interval_ms INTEGER NOT NULL,
        candidate BLOB NOT NULL, inputs TEXT NOT NULL, ids_digest BLOB,
        PRIMARY KEY (alert_id, event_id)) WITHOUT ROWID;
      INSERT INTO old_sources SELECT alert_id, event_id, incident_id, cancelled, expires_ms,
        repeat_interval_ms, candidate, inputs, ids_digest FROM alert_sources;
      DROP TABLE alert_sources;
      ALTER TABLE old_sources RENAME TO alert_sources;
      CREATE INDEX alert_sources_by_event ON alert_sources (incident_id, event_id);
      CREATE INDEX alert_sources_live ON alert_sources (alert_id, cancelled, expires_ms);
  )sql")
                  .ok());
  UnkeyDecisionsAsBefore();
  ASSERT_TRUE(db_->Exec("PRAGMA user_version=" + std::to_string(version - 3)).ok());
  ASSERT_EQ(QueryText(kWithoutRowid), "1");

  OpenEngine();  // migrates
  EXPECT_EQ(QueryText("PRAGMA user_version"), std::to_string(version));
  EXPECT_EQ(QueryText(kWithoutRowid), "0");
  EXPECT_EQ(QueryText(kRows), rows);
  EXPECT_EQ(QueryText("SELECT count(*) FROM dbstat WHERE name = 'alert_sources' AND pagetype = 'overflow'"),
            "0");
  // The engine goes on from the migrated rows: a newer report re-evaluates
  // them, and the replay of the whole log gives the same decisions.
  auto policy = AlertPolicy::Parse(kTestPolicy, "test-policy.toml");
  ASSERT_TRUE(policy.ok());
  engine_->SetPolicy(*policy);
  clock_.Advance(60'000);
  ASSERT_TRUE(Apply(GdacsTibet(1, "red")).ok());  // raises both alerts' level
  const auto raised = AlertsFrom(2);
  ASSERT_EQ(raised.size(), 2u);
  for (const auto& alert : raised) {
    const v1::ConsularAlert* before = Find(first, alert.alert_id());
    ASSERT_NE(before, nullptr) << alert.alert_id();
    EXPECT_EQ(alert.revision(), 2u);
    EXPECT_GT(alert.level(), before->level());
    EXPECT_EQ(alert.registrant_ids_coded(), before->registrant_ids_coded());
  }
  testing::TempDir scratch;
  auto report = ReplayDecisionLog(dir_ / "rules.db", options_, scratch.path());
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_TRUE(report->identical()) << report->first_difference;
}

TEST_F(AlertPolicyEngineTest, RejectingAProposalKeepsThePhaseInForce) {
  RegisterAroundTibet();
  ASSERT_TRUE(Apply(TibetQuake()).ok());
  ASSERT_TRUE(Apply(Decision("d-r", "usgs:us6000pi9w/PHL/CHN", "PHL", v1::OperatorDecision::ACTION_REJECT_PHASE))
                  .ok());
  auto alerts = AlertsFrom(2);
  ASSERT_EQ(alerts.size(), 1u);
  EXPECT_EQ(alerts[0].phase(), v1::CRISIS_PHASE_RESTRICTION);
  EXPECT_EQ(alerts[0].proposed_phase(), v1::CRISIS_PHASE_EVACUATION);
  EXPECT_EQ(alerts[0].lifecycle(), v1::ALERT_LIFECYCLE_UPDATED);
  EXPECT_EQ(alerts[0].phase_confirmation().reason(),
            "proposal of phase 4 rejected: embassy confirms: roads to the airport are open");
}

TEST_F(AlertPolicyEngineTest, AHigherSourceInhibitsALowerOneAndOneSourcesCancelLeavesTheOther) {
  RegisterAroundTibet();
  auto usgs = TibetQuake();
  usgs.mutable_crisis_event()->mutable_metrics()->set_pager_alert("green");
  ASSERT_TRUE(Apply(usgs).ok());
  auto alerts = AlertsFrom(0);
  ASSERT_EQ(alerts.size(), 2u);
  EXPECT_EQ(Find(alerts, "usgs:us6000pi9w/PHL/CHN")->level(), v1::ALERT_LEVEL_WARNING);

  // GDACS says red for the same incident: the alerts follow the higher.
  ASSERT_TRUE(Apply(GdacsTibet(1, "red")).ok());
  alerts = AlertsFrom(2);
  ASSERT_EQ(alerts.size(), 2u);
  const auto* phl = Find(alerts, "usgs:us6000pi9w/PHL/CHN");
  ASSERT_NE(phl, nullptr);
  EXPECT_EQ(phl->revision(), 2u);
  EXPECT_EQ(phl->level(), v1::ALERT_LEVEL_CRITICAL);
  EXPECT_EQ(phl->lifecycle(), v1::ALERT_LIFECYCLE_ESCALATED);
  EXPECT_EQ(std::vector<std::string>(phl->sources().begin(), phl->sources().end()),
            (std::vector<std::string>{"gdacs", "usgs"}));

  // A newer USGS revision, still green: inhibited, no revision.
  usgs.mutable_crisis_event()->set_revision(1736442321636 + 1);
  ASSERT_TRUE(Apply(usgs).ok());
  EXPECT_EQ(AlertsFrom(4).size(), 0u);
  // USGS withdraws its event: GDACS still reports the incident, no all-clear.
  usgs.mutable_crisis_event()->set_revision(1736442321636 + 2);
  usgs.mutable_crisis_event()->set_msg_type(v1::MESSAGE_TYPE_CANCEL);
  ASSERT_TRUE(Apply(usgs).ok());
  alerts = AlertsFrom(4);
  for (const auto& a : alerts) EXPECT_FALSE(a.cancelled()) << a.alert_id();
  // GDACS downgrades to orange: the alert follows it down.
  ASSERT_TRUE(Apply(GdacsTibet(2, "green")).ok());
  alerts = AlertsFrom(4);
  phl = Find(alerts, "usgs:us6000pi9w/PHL/CHN");
  ASSERT_NE(phl, nullptr);
  EXPECT_EQ(phl->level(), v1::ALERT_LEVEL_WARNING);
  EXPECT_EQ(phl->lifecycle(), v1::ALERT_LIFECYCLE_DOWNGRADED);
  const size_t seen = Outbox().size();
  // GDACS cancels too: nobody reports it any more, all-clear to both states.
  auto cancel = GdacsTibet(3, "green");
  cancel.mutable_crisis_event()->set_msg_type(v1::MESSAGE_TYPE_CANCEL);
  ASSERT_TRUE(Apply(cancel).ok());
  alerts = AlertsFrom(seen);
  ASSERT_EQ(alerts.size(), 2u);
  for (const auto& a : alerts) {
    EXPECT_TRUE(a.cancelled());
    EXPECT_EQ(a.lifecycle(), v1::ALERT_LIFECYCLE_CANCELLED);
    EXPECT_EQ(a.phase(), v1::CRISIS_PHASE_UNSPECIFIED);
  }
}

TEST_F(AlertPolicyEngineTest, SilencedAlertsAreMarkedAndNotifiedAgainWhenTheSilenceIsLifted) {
  RegisterAroundTibet();
  ASSERT_TRUE(Apply(SilenceFor("s-1", "PHL", "usgs:us6000pi9w", clock_.NowMs() + 3'600'000)).ok());
  EXPECT_EQ(Apply(SilenceFor("s-bad", "PHL", "", 0)).field(), "ends_ms");
  ASSERT_TRUE(Apply(TibetQuake()).ok());
  auto alerts = AlertsFrom(0);
  ASSERT_EQ(alerts.size(), 2u);
  EXPECT_TRUE(Find(alerts, "usgs:us6000pi9w/PHL/CHN")->silenced());
  EXPECT_EQ(Find(alerts, "usgs:us6000pi9w/PHL/CHN")->silence_id(), "s-1");
  EXPECT_FALSE(Find(alerts, "usgs:us6000pi9w/IDN/CHN")->silenced());  // another state's silence: no effect
  EXPECT_EQ(engine_->stats().silenced, 1u);

  // Another state cannot touch it.
  EXPECT_EQ(Apply(SilenceFor("s-1", "IDN", "", clock_.NowMs() + 1000, true)).field(), "state");
  EXPECT_EQ(Tick(), 0);
  ASSERT_TRUE(Apply(SilenceFor("s-1", "PHL", "usgs:us6000pi9w", clock_.NowMs() + 3'600'000, true)).ok());
  EXPECT_EQ(Tick(), 1);
  alerts = AlertsFrom(2);
  ASSERT_EQ(alerts.size(), 1u);
  EXPECT_EQ(alerts[0].alert_id(), "usgs:us6000pi9w/PHL/CHN");
  EXPECT_FALSE(alerts[0].silenced());
  EXPECT_EQ(alerts[0].revision(), 1u);  // same revision, notified again
  EXPECT_EQ(alerts[0].notification(), 1u);
  EXPECT_EQ(Tick(), 0);
}

TEST_F(AlertPolicyEngineTest, TheTickAsksAboutSourcesThroughACoveringIndexNotTheirRows) {
  // Once a second for every open alert: reading alert_sources rows (with
  // their candidate alerts) made it a 25-31 ms stall with 4,600 open alerts.
  auto plan = db_->Prepare(std::string("EXPLAIN QUERY PLAN ") + RulesEngine::kTickAlertsSql);
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  plan->Bind(1, clock_.NowMs());
  std::vector<std::string> steps;
  while (*plan->Step()) steps.push_back(plan->ColumnText(3));
  int covered = 0;
  for (const std::string& step : steps) {
    if (step.find("alert_sources") == std::string::npos && step.find(" s ") == std::string::npos) continue;
    EXPECT_NE(step.find("COVERING INDEX alert_sources_live"), std::string::npos) << step;
    ++covered;
  }
  EXPECT_EQ(covered, 2);  // both subqueries
}

TEST_F(AlertPolicyEngineTest, TickReadsOnlyAlertsItMayActOnAndTreatsRowsWithoutSilencedAsMaybe) {
  RegisterAroundTibet();
  ASSERT_TRUE(Apply(SilenceFor("s-1", "PHL", "usgs:us6000pi9w", clock_.NowMs() + 3'600'000)).ok());
  ASSERT_TRUE(Apply(TibetQuake()).ok());
  ASSERT_EQ(AlertsFrom(0).size(), 2u);
  auto silenced_flags = [&] {
    auto q = db_->Prepare("SELECT alert_id, ifnull(silenced, -1) FROM alerts ORDER BY alert_id");
    EXPECT_TRUE(q.ok());
    std::vector<std::pair<std::string, int64_t>> out;
    while (*q->Step()) out.emplace_back(q->ColumnText(0), q->ColumnInt(1));
    return out;
  };
  EXPECT_EQ(silenced_flags(), (std::vector<std::pair<std::string, int64_t>>{
                                  {"usgs:us6000pi9w/IDN/CHN", 0}, {"usgs:us6000pi9w/PHL/CHN", 1}}));
  // A row written before the column existed (NULL) must still be looked at:
  // its last notification was silenced, and the silence is lifted now.
  ASSERT_TRUE(db_->Exec("UPDATE alerts SET silenced = NULL").ok());
  ASSERT_TRUE(Apply(SilenceFor("s-1", "PHL", "usgs:us6000pi9w", clock_.NowMs() + 3'600'000, true)).ok());
  EXPECT_EQ(Tick(), 1);
  auto again = AlertsFrom(2);
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].alert_id(), "usgs:us6000pi9w/PHL/CHN");
  EXPECT_FALSE(again[0].silenced());
  EXPECT_EQ(silenced_flags(), (std::vector<std::pair<std::string, int64_t>>{
                                  {"usgs:us6000pi9w/IDN/CHN", -1}, {"usgs:us6000pi9w/PHL/CHN", 0}}));
  EXPECT_EQ(Tick(), 0);
}

TEST_F(AlertPolicyEngineTest, OpenAlertsRepeatAfterTheIntervalAndExpireWithTheirSource) {
  RegisterAroundTibet();
  auto event = TibetQuake();
  event.mutable_crisis_event()->set_expires_ms(clock_.NowMs() + 3 * 3'600'000);
  ASSERT_TRUE(Apply(event).ok());
  ASSERT_EQ(Outbox().size(), 2u);
  clock_.Advance(3'600'000 - 1);
  EXPECT_EQ(Tick(), 0);
  clock_.Advance(1);
  EXPECT_EQ(Tick(), 2);
  auto repeats = AlertsFrom(2);
  ASSERT_EQ(repeats.size(), 2u);
  EXPECT_EQ(repeats[0].revision(), 1u);
  EXPECT_EQ(repeats[0].notification(), 1u);
  EXPECT_EQ(repeats[0].raised_ms(), AlertsFrom(0)[0].raised_ms());
  EXPECT_NE(repeats[0].decision_id(), AlertsFrom(0)[0].decision_id());
  // The repeat carries the ids of the notification it repeats (from id_lists).
  EXPECT_FALSE(repeats[0].registrant_ids_coded().empty());
  EXPECT_EQ(repeats[0].registrant_ids_coded(), AlertsFrom(0)[0].registrant_ids_coded());
  EXPECT_EQ(engine_->stats().repeats, 2u);

  clock_.Advance(2 * 3'600'000);
  EXPECT_EQ(Tick(), 2);
  auto expired = AlertsFrom(4);
  ASSERT_EQ(expired.size(), 2u);
  const auto first = AlertsFrom(0);
  for (const auto& a : expired) {
    EXPECT_EQ(a.lifecycle(), v1::ALERT_LIFECYCLE_EXPIRED);
    EXPECT_EQ(a.revision(), 2u);
    EXPECT_EQ(a.level(), v1::ALERT_LEVEL_INFO);
    // The expiry names the people the alert named.
    const v1::ConsularAlert* raised = Find(first, a.alert_id());
    ASSERT_NE(raised, nullptr);
    EXPECT_FALSE(a.registrant_ids_coded().empty());
    EXPECT_EQ(a.registrant_ids_coded(), raised->registrant_ids_coded());
  }
  clock_.Advance(10 * 3'600'000);
  EXPECT_EQ(Tick(), 0);  // expired alerts do not repeat
}

TEST_F(RulesEngineTest, ACountryLevelDisasterAlertsEveryoneHostedInThatCountry) {
  RegisterAroundNago();
  ASSERT_TRUE(Apply(Upsert(next_seq_++, 60, "PHL", "KOR", 37.5, 127.0)).ok());
  FakeClock clock;
  v1::Envelope env = MakeEnvelope("amparo-ingest", clock);
  v1::CrisisEvent* e = env.mutable_crisis_event();
  e->set_event_id("reliefweb:99999");
  e->set_source("reliefweb");
  e->set_revision(1);
  e->set_status(v1::EVENT_STATUS_ACTUAL);
  e->set_msg_type(v1::MESSAGE_TYPE_ALERT);
  e->set_hazard(v1::HAZARD_KIND_FLOOD);
  e->add_texts()->set_headline("Japan: Floods - Sep 2018");
  v1::Area* area = e->add_areas();
  area->set_description("Japan");
  v1::Geocode* code = area->add_geocodes();
  code->set_name("ISO3");
  code->set_value("JPN");
  ASSERT_TRUE(Apply(env).ok());
  auto alerts = AlertsFrom(0);
  ASSERT_EQ(alerts.size(), 2u);  // PHL/JPN and IDN/JPN; nobody in KOR
  const auto* phl = Find(alerts, "reliefweb:99999/PHL/JPN");
  ASSERT_NE(phl, nullptr);
  EXPECT_EQ(phl->exposure().registrants(), 4u);
  EXPECT_EQ(phl->footprint().footprint_model(), "source-geocode");
  EXPECT_EQ(phl->reason(),
            "Japan: Floods - Sep 2018: 4 registered nationals (12 people, 1 vulnerable) anywhere in Japan (JPN) (the "
            "source names the country or region only)");
  EXPECT_EQ(Find(alerts, "reliefweb:99999/IDN/JPN")->exposure().registrants(), 2u);
}

TEST_F(AlertPolicyEngineTest, PeopleRegisteredInsideAnActiveEventAreCountedAtTheNextTick) {
  RegisterAroundTibet();
  ASSERT_TRUE(Apply(TibetQuake()).ok());
  ASSERT_EQ(Outbox().size(), 2u);
  // The registrations came before the event: re-matched once, no change.
  EXPECT_EQ(Tick(), 0);
  EXPECT_EQ(engine_->stats().reevaluations, 1u);
  EXPECT_EQ(Tick(), 0);  // nothing changed in the registry since: nothing re-matched
  EXPECT_EQ(engine_->stats().reevaluations, 1u);
  // Two more PHL nationals register inside the footprint, one NPL national
  // far away.
  ASSERT_TRUE(Apply(Upsert(next_seq_++, 70, "PHL", "CHN", kTibetLat, kTibetLon + 0.2, 4)).ok());
  ASSERT_TRUE(Apply(Upsert(next_seq_++, 71, "PHL", "CHN", kTibetLat - 0.2, kTibetLon, 1,
                           v1::VULNERABILITY_FLAG_UNACCOMPANIED_CHILD))
                  .ok());
  ASSERT_TRUE(Apply(Upsert(next_seq_++, 72, "NPL", "NPL", 27.7, 85.3)).ok());
  EXPECT_EQ(Tick(), 1);
  auto alerts = AlertsFrom(2);
  ASSERT_EQ(alerts.size(), 1u);
  EXPECT_EQ(alerts[0].alert_id(), "usgs:us6000pi9w/PHL/CHN");
  EXPECT_EQ(alerts[0].revision(), 2u);
  EXPECT_EQ(alerts[0].exposure().registrants(), 3u);
  EXPECT_EQ(alerts[0].exposure().household_members(), 8u);
  EXPECT_EQ(alerts[0].lifecycle(), v1::ALERT_LIFECYCLE_UPDATED);
  EXPECT_EQ(engine_->stats().reevaluations, 2u);
  EXPECT_EQ(Tick(), 0);
  // One of them leaves the area: the count follows.
  ASSERT_TRUE(Apply(Delete(next_seq_++, 70, "PHL")).ok());
  EXPECT_EQ(Tick(), 1);
  EXPECT_EQ(AlertsFrom(3)[0].exposure().registrants(), 2u);
  // Once the source withdrew the event, registry changes no longer touch it.
  auto cancel = TibetQuake();
  cancel.mutable_crisis_event()->set_revision(1736442321636 + 1);
  cancel.mutable_crisis_event()->set_msg_type(v1::MESSAGE_TYPE_CANCEL);
  ASSERT_TRUE(Apply(cancel).ok());
  const size_t seen = Outbox().size();
  ASSERT_TRUE(Apply(Upsert(next_seq_++, 73, "PHL", "CHN", kTibetLat, kTibetLon)).ok());
  EXPECT_EQ(Tick(), 0);
  EXPECT_EQ(Outbox().size(), seen);
}

TEST_F(AlertPolicyEngineTest, RestrictedEventsReachOnlyTheirStates) {
  RegisterAroundTibet();
  auto event = TibetQuake();
  event.mutable_crisis_event()->add_restricted_to_states("IDN");
  ASSERT_TRUE(Apply(event).ok());
  auto alerts = AlertsFrom(0);
  ASSERT_EQ(alerts.size(), 1u);
  EXPECT_EQ(alerts[0].state(), "IDN");
}

TEST_F(AlertPolicyEngineTest, ReplayingTheDecisionLogReproducesEveryAlert) {
  RegisterAroundTibet();
  RegisterAroundNago();
  ASSERT_TRUE(Apply(SilenceFor("s-1", "IDN", "", clock_.NowMs() + 7'200'000)).ok());
  auto usgs = TibetQuake();
  usgs.mutable_crisis_event()->mutable_metrics()->set_pager_alert("green");
  ASSERT_TRUE(Apply(usgs).ok());
  clock_.Advance(60'000);
  ASSERT_TRUE(Apply(GdacsTibet(1, "red")).ok());
  ASSERT_TRUE(Apply(NagoQuake()).ok());
  ASSERT_TRUE(Apply(Upsert(next_seq_++, 50, "PHL", "JPN", kNagoLat, kNagoLon, 2,
                           v1::VULNERABILITY_FLAG_UNACCOMPANIED_CHILD))
                  .ok());
  clock_.Advance(60'000);
  ASSERT_TRUE(Apply(NagoQuake(1537026265040 + 1)).ok());
  ASSERT_TRUE(Apply(Decision("d-1", "usgs:us6000pi9w/PHL/CHN", "PHL", v1::OperatorDecision::ACTION_CONFIRM_PHASE,
                             3))
                  .ok());
  clock_.Advance(3'600'000);
  EXPECT_GT(Tick(), 0);
  auto cancel = NagoQuake(1537026265040 + 2);
  cancel.mutable_crisis_event()->set_msg_type(v1::MESSAGE_TYPE_CANCEL);
  ASSERT_TRUE(Apply(cancel).ok());
  const size_t made = Outbox().size();
  ASSERT_GE(made, 12u);

  testing::TempDir scratch;
  auto report = ReplayDecisionLog(dir_ / "rules.db", options_, scratch.path());
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_TRUE(report->identical()) << report->first_difference;
  EXPECT_EQ(report->recorded, made);
  EXPECT_EQ(report->replayed, made);
  // policy, 7 envelopes (silence, 4 events, decision, cancel), the exposure
  // of each of the 4 non-cancel events, 1 productive tick, and the tick's
  // re-evaluation of the 3 active events (a registrant was added since).
  EXPECT_EQ(report->inputs, 16u);
  // The log keeps nobody's location: no registry change is in it.
  auto logged = db_->Prepare("SELECT body FROM input_log WHERE kind = 'envelope'");
  ASSERT_TRUE(logged.ok());
  int envelopes = 0;
  while (*logged->Step()) {
    v1::Envelope env;
    ASSERT_TRUE(env.ParseFromString(logged->ColumnBlob(0)));
    EXPECT_FALSE(env.has_registry_change());
    ++envelopes;
  }
  EXPECT_EQ(envelopes, 7);

  // A recorded decision that does not follow from the log is found.
  ASSERT_TRUE(db_->Exec("UPDATE decisions SET alert = (SELECT alert FROM decisions WHERE seq = 1) WHERE seq = 3")
                  .ok());
  report = ReplayDecisionLog(dir_ / "rules.db", options_, scratch.path());
  ASSERT_TRUE(report.ok());
  EXPECT_FALSE(report->identical());
  EXPECT_EQ(report->first_difference.rfind("decision 3 ", 0), 0u) << report->first_difference;

  // Recorded ids that do not follow from the log are found: decision 1
  // naming another group's list.
  ASSERT_TRUE(db_->Exec("UPDATE decisions SET ids_digest = (SELECT d.ids_digest FROM decisions d WHERE "
                        "d.ids_digest != decisions.ids_digest LIMIT 1) WHERE seq = 1")
                  .ok());
  ASSERT_EQ(db_->Changes(), 1);
  report = ReplayDecisionLog(dir_ / "rules.db", options_, scratch.path());
  ASSERT_TRUE(report.ok());
  EXPECT_FALSE(report->identical());
  EXPECT_EQ(report->first_difference.rfind("decision 1 ", 0), 0u) << report->first_difference;
}

TEST_F(AlertPolicyEngineTest, AnEventThatExposesNobodyLogsNoExposureAndReplaysTheSame) {
  RegisterAroundTibet();
  ASSERT_TRUE(Apply(TibetQuake()).ok());
  ASSERT_TRUE(Apply(NagoQuake()).ok());  // nobody registered around Nago
  const size_t made = Outbox().size();
  ASSERT_EQ(made, 2u);
  std::map<std::string, int> kinds;
  auto q = db_->Prepare("SELECT kind FROM input_log");
  ASSERT_TRUE(q.ok());
  while (*q->Step()) ++kinds[q->ColumnText(0)];
  EXPECT_EQ(kinds, (std::map<std::string, int>{{"envelope", 2}, {"exposure", 1}, {"policy", 1}}));

  testing::TempDir scratch;
  auto report = ReplayDecisionLog(dir_ / "rules.db", options_, scratch.path());
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_TRUE(report->identical()) << report->first_difference;
  EXPECT_EQ(report->replayed, made);
  EXPECT_EQ(report->inputs, 4u);
}

TEST(ExposureJsonTest, WritesTheDocumentedFormAndReadsItBack) {
  testing::TempDir dir;
  auto db = Db::Open(dir / "rules.db");
  ASSERT_TRUE(db.ok());
  ASSERT_TRUE(RulesEngine::Migrate(*db).ok());
  Exposure exposure;
  GroupExposure& phl = exposure[{"PHL", "JPN"}];
  phl.counts = {2, 5, 1};
  phl.with_flag[3] = 1;
  phl.with_flag[0] = 2;
  ASSERT_TRUE(phl.AddId("0123456789abcdef0123456789abcdef"));
  ASSERT_TRUE(phl.AddId("fedcba9876543210fedcba9876543210"));
  GroupExposure& odd = exposure[{"X\"\\", ""}];  // never valid, but escaped, not broken
  odd.counts = {1, 1, 0};
  auto text = RulesEngine::ExposureToJson(exposure, *db);
  ASSERT_TRUE(text.ok()) << text.status().ToString();
  const std::string digest = Sha256Hex(CodeRegistrantIds(phl.packed_ids));
  const std::string phl_group =
      R"({"state":"PHL","host":"JPN","registrants":2,"household_members":5,"vulnerable":1,)"
      R"("with_flag":{"0":2,"3":1},"ids_sha256":")" +
      digest + R"("})";
  const std::string odd_group =
      R"({"state":"X\"\\","host":"","registrants":1,"household_members":1,"vulnerable":0,)"
      R"("with_flag":{},"ids_sha256":""})";
  EXPECT_EQ(*text, "[" + phl_group + "," + odd_group + "]");
  // The ids are in id_lists, once.
  auto listed = db->Prepare("SELECT count(*), min(ids) FROM id_lists");
  ASSERT_TRUE(listed.ok() && *listed->Step());
  EXPECT_EQ(listed->ColumnInt(0), 1);
  EXPECT_EQ(listed->ColumnBlob(1), CodeRegistrantIds(phl.packed_ids));
  auto back = RulesEngine::ExposureFromJson(*text, *db);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  ASSERT_EQ(back->size(), 2u);
  const GroupExposure& again = back->at({"PHL", "JPN"});
  EXPECT_EQ(again.counts, phl.counts);
  EXPECT_EQ(again.with_flag, phl.with_flag);
  EXPECT_EQ(again.registrant_ids(), phl.registrant_ids());
  EXPECT_EQ(again.packed_ids, phl.packed_ids);
  EXPECT_EQ(back->at({"X\"\\", ""}).counts, odd.counts);
  EXPECT_TRUE(back->at({"X\"\\", ""}).packed_ids.empty());
  EXPECT_EQ(*RulesEngine::ExposureToJson({}, *db), "[]");
  auto group = [](const std::string& ids) {
    const std::string head =
        R"([{"state":"PHL","host":"JPN","registrants":2,"household_members":5,"vulnerable":1,)"
        R"("with_flag":{"0":2,"3":1},)";
    return head + ids + "}]";
  };
  // A recorded id that is not one is refused, naming the field.
  auto bad = RulesEngine::ExposureFromJson(group(R"("ids":["0123456789ABCDEF0123456789abcdef"])"), *db);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().field(), "exposure.ids");
  // The forms written before still read, to the same ids: hex strings, then base64.
  auto old = RulesEngine::ExposureFromJson(
      group(R"("ids":["0123456789abcdef0123456789abcdef","fedcba9876543210fedcba9876543210"])"), *db);
  ASSERT_TRUE(old.ok()) << old.status().ToString();
  EXPECT_EQ(old->at({"PHL", "JPN"}).packed_ids, phl.packed_ids);
  auto b64 = RulesEngine::ExposureFromJson(
      group(R"("ids_b64":"ASNFZ4mrze8BI0VniavN7/7cuph2VDIQ/ty6mHZUMhA=")"), *db);
  ASSERT_TRUE(b64.ok()) << b64.status().ToString();
  EXPECT_EQ(b64->at({"PHL", "JPN"}).packed_ids, phl.packed_ids);
  // Base64 that is not whole ids is refused.
  auto torn = RulesEngine::ExposureFromJson(group(R"("ids_b64":"AQID")"), *db);
  ASSERT_FALSE(torn.ok());
  EXPECT_EQ(torn.status().field(), "exposure.ids_b64");
  // A digest that is not one, or names no stored list.
  auto malformed = RulesEngine::ExposureFromJson(group(R"("ids_sha256":"ABC")"), *db);
  ASSERT_FALSE(malformed.ok());
  EXPECT_EQ(malformed.status().field(), "exposure.ids_sha256");
  auto missing = RulesEngine::ExposureFromJson(group(R"("ids_sha256":")" + Sha256Hex("other") + R"(")"), *db);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kDataLoss);
}

}  // namespace
}  // namespace amparo::rules
