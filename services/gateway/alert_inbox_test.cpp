// AlertInbox (gateway_daemon.h) driven directly: a LinkSender stands in for
// amparo-notify, messages are stored by the receiver first (LinkReceiver::
// Pump) or arrive over the socket, and AlertInbox::Process() is called by
// the test. A SQLite commit hook on the gateway's connection counts commits.
// Which states have live clients is the test's `watching_`; LiveAlertFrame is
// checked byte for byte against the DOM it replaced.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <boost/json.hpp>
#include <chrono>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "amparo/v1/envelope.pb.h"
#include "common/alert_json.h"
#include "common/json_text.h"
#include "common/link.h"
#include "common/testing.h"
#include "services/gateway/gateway_daemon.h"
#include "services/gateway/gateway_store.h"

namespace amparo::gateway {
namespace {

using namespace std::chrono_literals;
namespace json = boost::json;

constexpr char kIncident[] = "usgs:us7000abcd";

v1::ConsularAlert Alert(const std::string& state, const std::string& host, uint32_t revision) {
  v1::ConsularAlert a;
  a.set_alert_id(std::string(kIncident) + "/" + state + "/" + host);
  a.set_incident_id(kIncident);
  a.set_revision(revision);
  a.set_state(state);
  a.set_host_country(host);
  a.set_level(v1::ALERT_LEVEL_WARNING);
  a.mutable_exposure()->set_registrants(10 * revision);
  a.set_hazard(v1::HAZARD_KIND_EARTHQUAKE);
  a.set_headline("M 6.1 - near the coast");
  a.set_raised_ms(1'700'000'000'000);
  a.set_event_status("Actual");
  return a;
}

int CountCommit(void* commits) {
  ++*static_cast<int*>(commits);
  return 0;  // let it commit
}

struct Sent {
  std::string state;
  std::string alert_id;
  int revision = 0;
  size_t deliveries = 0;
  int commits_before = 0;  // commits on the gateway's connection when it was broadcast
  int revision_seen_by_other_connection = 0;
};

class AlertInboxTest : public ::testing::Test {
 protected:
  AlertInboxTest() {
    DbOptions fail_fast;
    fail_fast.busy_timeout_ms = 0;  // so a test can make the batch's BEGIN fail at once
    gateway_db_.emplace(std::move(*Db::Open(dir_ / "gateway.db", fail_fast)));
    EXPECT_TRUE(MigrateGatewayDb(*gateway_db_).ok());
    reader_db_.emplace(std::move(*Db::Open(dir_ / "gateway.db")));
    notify_db_.emplace(std::move(*Db::Open(dir_ / "notify.db")));
    EXPECT_TRUE(InitLinkTables(*notify_db_).ok());
    options_.resend_after_ms = 100;
    const std::string endpoint = "ipc://" + (dir_ / "gateway.ipc").string();
    receiver_ = std::make_unique<LinkReceiver>(ctx_, *gateway_db_, endpoint, options_, clock_);
    EXPECT_TRUE(receiver_->Bind().ok());
    sender_ = std::make_unique<LinkSender>(ctx_, *notify_db_, "gateway", endpoint, options_, clock_);
    EXPECT_TRUE(sender_->Start().ok());
    inbox_ = std::make_unique<AlertInbox>(
        *receiver_, clock_, metrics_,
        [this](const std::string& state, std::string frame) {
          sent_.push_back(Describe(state, frame));
          frames_.push_back(std::move(frame));
        },
        [this](const std::string& state) { return watching_(state); });
    sqlite3_commit_hook(gateway_db_->raw(), &CountCommit, &commits_);
  }
  ~AlertInboxTest() override { sqlite3_commit_hook(gateway_db_->raw(), nullptr, nullptr); }

  Sent Describe(const std::string& state, const std::string& frame) {
    json::value v = json::parse(frame);
    EXPECT_EQ(v.at("type").as_string(), "alert");
    const json::object& alert = v.at("alert").as_object();
    Sent s{state,
           std::string(alert.at("alert_id").as_string()),
           static_cast<int>(alert.at("revision").to_number<int64_t>()),
           alert.at("deliveries").as_array().size(),
           commits_,
           0};
    auto committed = GetAlert(*reader_db_, state, s.alert_id);
    if (committed.ok()) s.revision_seen_by_other_connection = committed->revision;
    return s;
  }

  void Send(const v1::Envelope& envelope) {
    ASSERT_TRUE(EnqueueOutbound(*notify_db_, "gateway", envelope).ok());
  }
  void SendAlert(const v1::ConsularAlert& alert) {
    v1::Envelope env = MakeEnvelope("amparo-notify", clock_);
    *env.mutable_consular_alert() = alert;
    Send(env);
  }
  void SendDelivery(const std::string& alert_id, const std::string& delivery_id) {
    v1::Envelope env = MakeEnvelope("amparo-notify", clock_);
    v1::DeliveryStatus* d = env.mutable_delivery_status();
    d->set_delivery_id(delivery_id);
    d->set_alert_id(alert_id);
    d->set_state(v1::DeliveryStatus::STATE_DELIVERED);
    d->set_attempts(1);
    d->set_updated_ms(1'700'000'001'000);
    Send(env);
  }

  // Stores everything sent in the gateway's inbox, unprocessed (as a
  // receiver that had no time to process would leave it).
  void StoreAllUnprocessed() {
    for (int i = 0; i < 500; ++i) {
      ASSERT_TRUE(sender_->Pump().ok());
      ASSERT_TRUE(receiver_->Pump().ok());
      if (*sender_->Depth() == 0) return;
      std::this_thread::sleep_for(5ms);
    }
    FAIL() << "the gateway's inbox did not receive everything";
  }

  std::vector<std::string> DeadLetters() {
    auto q = reader_db_->Prepare("SELECT error FROM link_inbox WHERE error IS NOT NULL ORDER BY seq");
    std::vector<std::string> errors;
    while (*q->Step()) errors.push_back(q->ColumnText(0));
    return errors;
  }

  testing::TempDir dir_;
  SystemClock clock_;
  LinkOptions options_;
  LinkContext ctx_;
  std::optional<Db> gateway_db_, reader_db_, notify_db_;
  std::unique_ptr<LinkReceiver> receiver_;
  std::unique_ptr<LinkSender> sender_;
  GatewayMetrics metrics_;
  std::unique_ptr<AlertInbox> inbox_;
  std::vector<Sent> sent_;
  std::vector<std::string> frames_;  // as broadcast, parallel to sent_
  int commits_ = 0;
  // Whether `state` has a live client right now; everyone by default.
  std::function<bool(const std::string& state)> watching_ = [](const std::string&) { return true; };
};

TEST_F(AlertInboxTest, ABatchCommitsOnceAndBroadcastsAfterTheCommitInOrderAsEachMessageLeftTheRow) {
  const std::string phl_jpn = Alert("PHL", "JPN", 1).alert_id();
  SendAlert(Alert("PHL", "JPN", 1));
  SendDelivery(phl_jpn, "msg_1");
  SendAlert(Alert("IND", "JPN", 1));
  SendAlert(Alert("PHL", "JPN", 1));  // a repeat: not stored, not broadcast
  SendAlert(Alert("PHL", "JPN", 2));
  StoreAllUnprocessed();
  ASSERT_EQ(*receiver_->Backlog(), 5);
  commits_ = 0;

  auto processed = inbox_->Process(/*batch_size=*/100, /*max_batches=*/8);
  ASSERT_TRUE(processed.ok()) << processed.status().ToString();
  EXPECT_EQ(*processed, 5);
  EXPECT_EQ(commits_, 1);  // five messages, one durable commit
  EXPECT_EQ(*receiver_->Backlog(), 0);

  ASSERT_EQ(sent_.size(), 3u);
  EXPECT_EQ(sent_[0].state, "PHL");
  EXPECT_EQ(sent_[0].alert_id, phl_jpn);
  EXPECT_EQ(sent_[0].revision, 1);
  EXPECT_EQ(sent_[0].deliveries, 0u);  // the delivery came after this message
  EXPECT_EQ(sent_[1].state, "IND");
  EXPECT_EQ(sent_[1].revision, 1);
  EXPECT_EQ(sent_[2].state, "PHL");
  EXPECT_EQ(sent_[2].alert_id, phl_jpn);
  EXPECT_EQ(sent_[2].revision, 2);
  EXPECT_EQ(sent_[2].deliveries, 1u);
  for (const Sent& s : sent_) {
    EXPECT_EQ(s.commits_before, 1) << s.alert_id;
    // Another connection already sees the batch's final row: committed.
    EXPECT_EQ(s.revision_seen_by_other_connection, s.state == "PHL" ? 2 : 1) << s.alert_id;
  }
  EXPECT_NE(metrics_.Render(0).find("amparo_gateway_alerts_received_total 3\n"), std::string::npos);
}

TEST_F(AlertInboxTest, AFailingMessageIsDeadLetteredAndTheRestOfItsBatchIsStoredAndBroadcast) {
  v1::ConsularAlert malformed = Alert("PHL", "JPN", 1);
  malformed.set_state("PH");  // UpsertAlert: kInvalidArgument
  SendAlert(Alert("PHL", "JPN", 1));
  SendAlert(malformed);
  SendDelivery("no-state", "msg_bad");  // UpsertDelivery: kInvalidArgument
  v1::Envelope not_for_us = MakeEnvelope("amparo-notify", clock_);
  not_for_us.mutable_crisis_event()->set_source_id("x");
  Send(not_for_us);
  SendAlert(Alert("PHL", "KOR", 1));
  StoreAllUnprocessed();
  commits_ = 0;

  auto processed = inbox_->Process(100, 8);
  ASSERT_TRUE(processed.ok()) << processed.status().ToString();
  EXPECT_EQ(*processed, 5);  // two stored, three dead-lettered
  EXPECT_EQ(commits_, 1);
  ASSERT_EQ(sent_.size(), 2u);
  EXPECT_EQ(sent_[0].alert_id, Alert("PHL", "JPN", 1).alert_id());
  EXPECT_EQ(sent_[1].alert_id, Alert("PHL", "KOR", 1).alert_id());
  EXPECT_EQ(ListAlerts(*reader_db_, "PHL", 100)->size(), 2u);
  const std::vector<std::string> dead = DeadLetters();
  ASSERT_EQ(dead.size(), 3u);
  EXPECT_EQ(dead[0].rfind("INVALID_ARGUMENT: ", 0), 0u) << dead[0];
  EXPECT_NE(dead[0].find("malformed state"), std::string::npos) << dead[0];
  EXPECT_NE(dead[1].find("malformed alert_id"), std::string::npos) << dead[1];
  EXPECT_NE(dead[2].find("does not handle payload"), std::string::npos) << dead[2];
  EXPECT_EQ(receiver_->stats().failed, 3u);
  EXPECT_EQ(receiver_->stats().processed, 2u);
}

TEST_F(AlertInboxTest, ABatchOfDeliveryStatesIsStoredWholeOrDeadLetteredWholeNamingTheBadOne) {
  watching_ = [](const std::string&) { return false; };
  const std::string phl_jpn = Alert("PHL", "JPN", 1).alert_id();
  const std::string phl_kor = Alert("PHL", "KOR", 1).alert_id();
  SendAlert(Alert("PHL", "JPN", 1));
  SendAlert(Alert("PHL", "KOR", 1));
  auto batch_of = [&](const std::vector<std::pair<std::string, std::string>>& alert_and_delivery) {
    v1::Envelope env = MakeEnvelope("amparo-notify", clock_);
    for (const auto& [alert_id, delivery_id] : alert_and_delivery) {
      v1::DeliveryStatus* d = env.mutable_delivery_statuses()->add_statuses();
      d->set_delivery_id(delivery_id);
      d->set_alert_id(alert_id);
      d->set_state(v1::DeliveryStatus::STATE_DELIVERED);
      d->set_attempts(1);
      d->set_updated_ms(1'700'000'001'000);
    }
    return env;
  };
  Send(batch_of({{phl_jpn, "msg_1"}, {phl_kor, "msg_2"}, {phl_jpn, "msg_3"}}));
  // The second state names no state: the whole message is a dead letter.
  Send(batch_of({{phl_kor, "msg_4"}, {"no-state", "msg_5"}}));
  StoreAllUnprocessed();

  auto processed = inbox_->Process(100, 8);
  ASSERT_TRUE(processed.ok()) << processed.status().ToString();
  EXPECT_EQ(*processed, 4);
  EXPECT_EQ(GetAlert(*reader_db_, "PHL", phl_jpn)->deliveries.size(), 2u);
  EXPECT_EQ(GetAlert(*reader_db_, "PHL", phl_kor)->deliveries.size(), 1u);  // not msg_4
  const std::vector<std::string> dead = DeadLetters();
  ASSERT_EQ(dead.size(), 1u);
  EXPECT_NE(dead[0].find("statuses[1].alert_id"), std::string::npos) << dead[0];
  EXPECT_NE(dead[0].find("malformed alert_id"), std::string::npos) << dead[0];
}

TEST_F(AlertInboxTest, AFailedBatchIsNeitherKeptNorAcknowledgedNorBroadcastAndIsRetriedWhole) {
  SendAlert(Alert("PHL", "JPN", 1));
  SendAlert(Alert("IND", "JPN", 1));
  // Another writer holds the lock: the batch's transaction cannot begin.
  std::optional<Db> other(std::move(*Db::Open(dir_ / "gateway.db")));
  ASSERT_TRUE(other->Begin().ok());
  Status failed;
  for (int i = 0; i < 500 && failed.ok(); ++i) {
    ASSERT_TRUE(sender_->Pump().ok());
    auto processed = inbox_->Process(100, 8);
    if (!processed.ok())
      failed = processed.status();
    else
      std::this_thread::sleep_for(5ms);
  }
  EXPECT_EQ(failed.code(), StatusCode::kUnavailable) << failed.ToString();
  EXPECT_TRUE(sent_.empty());
  EXPECT_EQ(*sender_->Depth(), 2);  // not acknowledged: the sender keeps them

  other->Rollback();
  int processed_total = 0;
  for (int i = 0; i < 500 && processed_total < 2; ++i) {
    ASSERT_TRUE(sender_->Pump().ok());  // resends after resend_after_ms
    auto processed = inbox_->Process(100, 8);
    ASSERT_TRUE(processed.ok()) << processed.status().ToString();
    processed_total += *processed;
    if (processed_total < 2) std::this_thread::sleep_for(5ms);
  }
  ASSERT_EQ(processed_total, 2);
  // Each once. (In either order: a message that was in the failed batch
  // comes back with its resend, possibly after one that was still in the
  // socket then; that is the link's contract, not the inbox's.)
  ASSERT_EQ(sent_.size(), 2u);
  std::set<std::string> states{sent_[0].state, sent_[1].state};
  EXPECT_EQ(states, (std::set<std::string>{"PHL", "IND"}));
  EXPECT_EQ(ListAlerts(*reader_db_, "PHL", 100)->size(), 1u);
  EXPECT_EQ(ListAlerts(*reader_db_, "IND", 100)->size(), 1u);
  for (int i = 0; i < 500 && *sender_->Depth() > 0; ++i) {
    ASSERT_TRUE(sender_->Pump().ok());
    std::this_thread::sleep_for(5ms);
  }
  EXPECT_EQ(*sender_->Depth(), 0);  // acknowledged after the commit
  EXPECT_EQ(receiver_->stats().processed, 2u);
}

TEST_F(AlertInboxTest, ProcessStopsAfterMaxBatchesAndLeavesTheRestForTheNextCall) {
  for (const char* host : {"JPN", "KOR", "CHN", "TWN", "VNM"}) SendAlert(Alert("PHL", host, 1));
  StoreAllUnprocessed();
  commits_ = 0;
  auto first = inbox_->Process(/*batch_size=*/2, /*max_batches=*/2);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(*first, 4);
  EXPECT_EQ(commits_, 2);  // one per batch
  EXPECT_EQ(sent_.size(), 4u);
  EXPECT_EQ(*receiver_->Backlog(), 1);
  auto rest = inbox_->Process(2, 2);
  ASSERT_TRUE(rest.ok());
  EXPECT_EQ(*rest, 1);
  ASSERT_EQ(sent_.size(), 5u);
  EXPECT_EQ(sent_[4].alert_id, Alert("PHL", "VNM", 1).alert_id());
  auto none = inbox_->Process(2, 2);
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(*none, 0);
}

TEST_F(AlertInboxTest, NoFrameIsBuiltWhileNobodyWatchesButEveryStoredAlertIsCounted) {
  watching_ = [](const std::string&) { return false; };
  const std::string phl_jpn = Alert("PHL", "JPN", 1).alert_id();
  SendAlert(Alert("PHL", "JPN", 1));
  SendDelivery(phl_jpn, "msg_1");
  SendAlert(Alert("IND", "JPN", 1));
  SendAlert(Alert("PHL", "JPN", 2));
  StoreAllUnprocessed();
  commits_ = 0;

  auto processed = inbox_->Process(100, 8);
  ASSERT_TRUE(processed.ok()) << processed.status().ToString();
  EXPECT_EQ(*processed, 4);
  EXPECT_EQ(commits_, 1);
  EXPECT_TRUE(sent_.empty());
  EXPECT_EQ(inbox_->frames_built(), 0u);
  EXPECT_NE(metrics_.Render(0).find("amparo_gateway_alerts_received_total 3\n"), std::string::npos);
  auto stored = GetAlert(*reader_db_, "PHL", phl_jpn);
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(stored->revision, 2);
  EXPECT_EQ(stored->deliveries.size(), 1u);
  EXPECT_EQ(ListAlerts(*reader_db_, "IND", 100)->size(), 1u);
}

TEST_F(AlertInboxTest, OnlyTheFramesOfStatesWithALiveClientAreBuilt) {
  watching_ = [](const std::string& state) { return state == "PHL"; };
  SendAlert(Alert("IND", "JPN", 1));
  SendAlert(Alert("PHL", "JPN", 1));
  SendAlert(Alert("IND", "KOR", 1));
  StoreAllUnprocessed();

  auto processed = inbox_->Process(100, 8);
  ASSERT_TRUE(processed.ok()) << processed.status().ToString();
  EXPECT_EQ(*processed, 3);
  ASSERT_EQ(sent_.size(), 1u);
  EXPECT_EQ(sent_[0].state, "PHL");
  EXPECT_EQ(sent_[0].alert_id, Alert("PHL", "JPN", 1).alert_id());
  EXPECT_EQ(inbox_->frames_built(), 1u);
  EXPECT_NE(metrics_.Render(0).find("amparo_gateway_alerts_received_total 3\n"), std::string::npos);
}

TEST_F(AlertInboxTest, AClientThatConnectsDuringTheBatchGetsTheBatchsAlertsAsCommitted) {
  // PHL watches throughout; IND's console connects while the batch is in
  // its transaction (it may have loaded its alert list before the commit):
  // it counts from the commit on, after every message was handled.
  watching_ = [this](const std::string& state) { return state == "PHL" || commits_ > 0; };
  const std::string ind_jpn = Alert("IND", "JPN", 1).alert_id();
  SendAlert(Alert("IND", "JPN", 1));
  SendAlert(Alert("PHL", "JPN", 1));
  SendAlert(Alert("IND", "JPN", 2));
  SendAlert(Alert("IND", "KOR", 1));
  SendDelivery(ind_jpn, "msg_1");
  StoreAllUnprocessed();
  commits_ = 0;

  auto processed = inbox_->Process(100, 8);
  ASSERT_TRUE(processed.ok()) << processed.status().ToString();
  EXPECT_EQ(*processed, 5);
  EXPECT_EQ(commits_, 1);
  // In message order; IND/JPN once, at its last message, as committed
  // (revision 2 with the delivery that came after it).
  ASSERT_EQ(sent_.size(), 3u);
  EXPECT_EQ(sent_[0].state, "PHL");
  EXPECT_EQ(sent_[0].revision, 1);
  EXPECT_EQ(sent_[1].state, "IND");
  EXPECT_EQ(sent_[1].alert_id, ind_jpn);
  EXPECT_EQ(sent_[1].revision, 2);
  EXPECT_EQ(sent_[1].deliveries, 1u);
  EXPECT_EQ(sent_[2].alert_id, Alert("IND", "KOR", 1).alert_id());
  for (const Sent& s : sent_) EXPECT_EQ(s.commits_before, 1) << s.alert_id;
  EXPECT_EQ(inbox_->frames_built(), 3u);
  EXPECT_NE(metrics_.Render(0).find("amparo_gateway_alerts_received_total 4\n"), std::string::npos);

  // The next batch: IND is watched from the start, each revision is framed
  // in the transaction again.
  SendAlert(Alert("IND", "JPN", 3));
  SendAlert(Alert("IND", "JPN", 4));
  StoreAllUnprocessed();
  processed = inbox_->Process(100, 8);
  ASSERT_TRUE(processed.ok());
  ASSERT_EQ(sent_.size(), 5u);
  EXPECT_EQ(sent_[3].revision, 3);
  EXPECT_EQ(sent_[4].revision, 4);
}

TEST_F(AlertInboxTest, AFrameBuiltForAClientThatLeftDuringTheBatchIsStillHandedOver) {
  // Watched while handled, gone at the commit: the frame was built and is
  // handed over (the server drops what nobody is registered for).
  watching_ = [this](const std::string&) { return commits_ == 0; };
  SendAlert(Alert("PHL", "JPN", 1));
  StoreAllUnprocessed();
  commits_ = 0;
  auto processed = inbox_->Process(100, 8);
  ASSERT_TRUE(processed.ok());
  ASSERT_EQ(sent_.size(), 1u);
  EXPECT_EQ(sent_[0].revision, 1);
  EXPECT_EQ(inbox_->frames_built(), 1u);
}

// The live frame as it was built before it was written as text: the stored
// JSON parsed, "deliveries" and "silence" set, printed again.
std::string DomLiveAlertFrame(const StoredAlert& a) {
  json::value v = json::parse(a.json);
  json::array deliveries;
  for (const auto& d : a.deliveries) {
    deliveries.push_back(
        json::object{{"delivery_id", d.delivery_id}, {"status", d.status}, {"attempts", d.attempts}});
  }
  v.as_object()["deliveries"] = std::move(deliveries);
  if (!a.silence_id.empty()) {
    v.as_object()["silence"] = json::object{
        {"silence_id", a.silence_id},
        {"reason", a.silence_reason},
        {"ends_at", FormatRfc3339(a.silence_ends_ms)},
        {"lifted_at", a.silence_lifted_ms ? json::value(FormatRfc3339(a.silence_lifted_ms)) : json::value()}};
  }
  return JsonText(json::object{{"type", "alert"}, {"alert", std::move(v)}});
}

v1::ConsularAlert RichAlert() {
  v1::ConsularAlert a = Alert("PHL", "JPN", 3);
  a.set_level(v1::ALERT_LEVEL_CRITICAL);
  a.set_headline("M 6.6 - 27km ESE of Tomakomai, Japan \"Hokkaid\u014d\"\t\\ \x01");
  a.set_reason("12 registrants within 85.5 km; 3 vulnerable");
  a.mutable_exposure()->set_household_members(31);
  a.mutable_exposure()->set_vulnerable(3);
  auto* circle = a.mutable_footprint()->add_circles();
  circle->mutable_center()->set_lat(42.6861);
  circle->mutable_center()->set_lon(-179.99999999999997);
  circle->set_radius_km(85.5);
  auto* polygon = a.mutable_footprint()->add_polygons();
  for (auto [lat, lon] : {std::pair{10.1, 120.0}, {10.25, 121.333333}, {11.0, 1e-7}, {10.1, 120.0}}) {
    auto* p = polygon->add_vertices();
    p->set_lat(lat);
    p->set_lon(lon);
  }
  a.set_event_sent_ms(1'699'999'990'123);
  std::string packed;
  for (int i = 0; i < 1000; ++i) {
    for (int b = 0; b < 16; ++b) packed.push_back(static_cast<char>((i * 31 + b * 7) & 0xff));
  }
  a.set_registrant_ids_packed(packed);
  a.set_phase(v1::CRISIS_PHASE_RESTRICTION);
  a.set_proposed_phase(v1::CRISIS_PHASE_RELOCATION);
  a.set_policy_rule("default/earthquake-critical");
  a.set_decision_id("dec_0001");
  a.set_notification(2);
  a.add_sources("usgs:us7000abcd");
  a.add_sources("gdacs:EQ:1404287");
  return a;
}

TEST(LiveAlertFrameTest, IsByteForByteTheFrameTheDomPrinted) {
  StoredAlert a;
  a.alert_id = "usgs:us7000abcd/PHL/JPN";
  a.state = "PHL";
  a.json = AlertToJson(RichAlert());
  ASSERT_GT(a.json.size(), 30'000u);
  // No deliveries, no silence.
  EXPECT_EQ(LiveAlertFrame(a), DomLiveAlertFrame(a));
  a.deliveries = {{"msg_1", "delivered", 1}, {"msg_\"2\"\n", "retrying", 12}};
  EXPECT_EQ(LiveAlertFrame(a), DomLiveAlertFrame(a));
  a.silence_id = "sil_1";
  a.silence_reason = "duplicate of the GDACS alert \u2013 \"see\" ops log";
  a.silence_ends_ms = 1'700'003'600'000;
  EXPECT_EQ(LiveAlertFrame(a), DomLiveAlertFrame(a));
  a.silence_lifted_ms = 1'700'001'000'500;
  EXPECT_EQ(LiveAlertFrame(a), DomLiveAlertFrame(a));
  a.deliveries.clear();
  EXPECT_EQ(LiveAlertFrame(a), DomLiveAlertFrame(a));
  // The API form is the frame's "alert".
  const std::string frame = LiveAlertFrame(a);
  EXPECT_EQ(frame, R"({"type":"alert","alert":)" + AlertApiJson(a) + "}");

  // A minimal alert (empty strings, zero times, no ids) too.
  a.json = AlertToJson(v1::ConsularAlert());
  EXPECT_EQ(LiveAlertFrame(a), DomLiveAlertFrame(a));
}

TEST_F(AlertInboxTest, TheFrameOfAStoredRowIsByteForByteTheFrameTheDomPrinted) {
  const v1::ConsularAlert rich = RichAlert();
  SendAlert(rich);
  SendDelivery(rich.alert_id(), "msg_1");
  StoreAllUnprocessed();
  ASSERT_TRUE(inbox_->Process(100, 8).ok());
  auto row = GetAlert(*reader_db_, "PHL", rich.alert_id());
  ASSERT_TRUE(row.ok()) << row.status().ToString();
  ASSERT_EQ(row->deliveries.size(), 1u);
  EXPECT_EQ(LiveAlertFrame(*row), DomLiveAlertFrame(*row));
}

// Records the columns of alerts.alert that statements prepared on a
// connection read (SQLite asks the authorizer once per column read, when
// the statement is prepared).
int RecordAlertBlobRead(void* reads, int action, const char* table, const char* column, const char*,
                        const char*) {
  if (action == SQLITE_READ && table != nullptr && column != nullptr && std::string(table) == "alerts" &&
      std::string(column) == "alert") {
    ++*static_cast<int*>(reads);
  }
  return SQLITE_OK;
}

// Alerts are stored as protobuf bytes (json = ''): the frame built in the
// transaction renders the message in hand (the row's blob is not read back)
// and is byte for byte the frame of the committed row; the frame built after
// the commit for a client that connected during the batch reads the row.
TEST_F(AlertInboxTest, FramesRenderTheMessageByteForByteAsTheStoredRowWithoutReadingItsBlob) {
  int blob_reads = 0;
  sqlite3_set_authorizer(gateway_db_->raw(), &RecordAlertBlobRead, &blob_reads);
  const v1::ConsularAlert rich = RichAlert();
  SendAlert(rich);
  SendDelivery(rich.alert_id(), "msg_1");
  StoreAllUnprocessed();
  ASSERT_TRUE(inbox_->Process(100, 8).ok());
  EXPECT_EQ(blob_reads, 0);
  ASSERT_EQ(frames_.size(), 1u);
  StoredAlert expected;
  expected.alert_id = rich.alert_id();
  expected.state = "PHL";
  expected.json = AlertToJson(rich);  // no delivery yet when the alert was handled
  EXPECT_EQ(frames_[0], DomLiveAlertFrame(expected));

  auto json_column = reader_db_->Prepare("SELECT json FROM alerts WHERE alert_id = ?");
  ASSERT_TRUE(json_column.ok());
  json_column->Bind(1, rich.alert_id());
  ASSERT_TRUE(*json_column->Step());
  EXPECT_EQ(json_column->ColumnText(0), "");

  // IND connects during the next batch: its frame is the committed row's.
  watching_ = [this](const std::string& state) { return state == "PHL" || commits_ > 0; };
  v1::ConsularAlert ind = RichAlert();
  ind.set_alert_id(std::string(kIncident) + "/IND/JPN");
  ind.set_state("IND");
  SendAlert(ind);
  SendDelivery(ind.alert_id(), "msg_2");
  StoreAllUnprocessed();
  commits_ = 0;
  ASSERT_TRUE(inbox_->Process(100, 8).ok());
  sqlite3_set_authorizer(gateway_db_->raw(), nullptr, nullptr);
  EXPECT_GT(blob_reads, 0);  // GetAlert after the commit
  ASSERT_EQ(frames_.size(), 2u);
  expected.alert_id = ind.alert_id();
  expected.state = "IND";
  expected.json = AlertToJson(ind);
  expected.deliveries = {{"msg_2", "delivered", 1}};
  EXPECT_EQ(frames_[1], DomLiveAlertFrame(expected));
}

}  // namespace
}  // namespace amparo::gateway
