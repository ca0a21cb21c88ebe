// Tests of amparo-notify: the Standard Webhooks signature, routing and dedup,
// the retry policy, and the whole daemon over real links, with a fake channel
// and with the real webhook channel against an HTTP server on 127.0.0.1.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <boost/json.hpp>

#include <atomic>
#include <chrono>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/alert_json.h"
#include "common/crypto.h"
#include "common/json_text.h"
#include "common/link.h"
#include "common/testing.h"
#include "services/notify/notify_daemon.h"
#include "services/notify/notify_store.h"
#include "services/notify/retry_policy.h"
#include "services/notify/router.h"
#include "services/notify/webhook_channel.h"

namespace amparo::notify {
namespace {

using namespace std::chrono_literals;

constexpr char kRawKey[] = "amparo-test-signing-key-32-bytes";
const std::string kSecret = "whsec_" + Base64Encode(kRawKey);

v1::Subscription MakeSubscription(const std::string& id, const std::string& state,
                                  std::vector<std::string> hosts, const std::string& url) {
  v1::Subscription s;
  s.set_subscription_id(id);
  s.set_state(state);
  for (auto& h : hosts) s.add_host_countries(h);
  s.set_url(url);
  s.set_secret(kSecret);
  return s;
}

v1::ConsularAlert MakeAlert(const std::string& state, const std::string& host, uint32_t revision = 1,
                            const std::string& incident = "usgs:us7000abcd") {
  v1::ConsularAlert a;
  a.set_alert_id(incident + "/" + state + "/" + host);
  a.set_incident_id(incident);
  a.set_revision(revision);
  a.set_state(state);
  a.set_host_country(host);
  a.set_level(v1::ALERT_LEVEL_WARNING);
  a.mutable_exposure()->set_registrants(12);
  a.set_headline("M 6.1 - 10 km SW of Somewhere");
  a.set_event_status("Actual");
  a.set_raised_ms(1'700'000'000'000);
  a.add_registrant_ids("0123456789abcdef0123456789abcdef");
  return a;
}

// The webhook body is the alert's JSON text inside the envelope, byte for
// byte what a JSON DOM of the same three members prints (the signature is
// over these bytes): checked on an alert with every kind of member.
TEST(WebhookBodyTest, IsTheDomsTextByteForByte) {
  v1::ConsularAlert a = MakeAlert("MEX", "USA", 3);
  a.set_headline("S\u00e9isme \"M 6,1\" \\ \u5730\u9707\n\x01");
  a.set_reason("tab\there");
  (*a.mutable_exposure()->mutable_by_flag())["child"] = 2;
  (*a.mutable_exposure()->mutable_by_flag())["older_person"] = 1;
  auto* c = a.mutable_footprint()->add_circles();
  c->mutable_center()->set_lat(19.4326077);
  c->mutable_center()->set_lon(-99.133208);
  c->set_radius_km(14.5995);
  auto* poly = a.mutable_footprint()->add_polygons();
  for (double d : {0.1, 0.2, 1e-7}) {
    auto* v = poly->add_vertices();
    v->set_lat(d);
    v->set_lon(-d);
  }
  a.set_event_sent_ms(1'700'000'123'456);
  for (int i = 0; i < 50; ++i) a.add_registrant_ids(std::string(31, 'a') + std::to_string(i % 10));
  a.mutable_phase_confirmation()->set_phase(v1::CRISIS_PHASE_EVACUATION);
  a.mutable_phase_confirmation()->set_by("token-1");
  a.add_sources("usgs:us7000abcd");
  a.add_sources("gdacs:EQ1234");
  boost::json::object dom;
  dom["type"] = AlertEventType(a);
  dom["timestamp"] = FormatRfc3339(1'700'000'999'000);
  dom["data"] = boost::json::parse(AlertToJson(a));
  EXPECT_EQ(BuildWebhookBody(a, 1'700'000'999'000), JsonText(dom));
  EXPECT_EQ(BuildWebhookBody(MakeAlert("MEX", "USA"), 0),
            JsonText(boost::json::object{{"type", "alert.raised"},
                                         {"timestamp", FormatRfc3339(0)},
                                         {"data", boost::json::parse(AlertToJson(MakeAlert("MEX", "USA")))}}));
}

v1::Envelope Wrap(const v1::ConsularAlert& alert, const Clock& clock) {
  v1::Envelope env = MakeEnvelope("amparo-rules", clock);
  *env.mutable_consular_alert() = alert;
  return env;
}

v1::Envelope Wrap(const v1::Subscription& subscription, const Clock& clock) {
  v1::Envelope env = MakeEnvelope("amparo-gateway", clock);
  *env.mutable_subscription() = subscription;
  return env;
}

// Envelopes waiting in `db`'s outbox for the gateway, oldest first.
std::vector<v1::Envelope> GatewayOutbox(Db& db) { return *PendingOutbound(db, "gateway"); }

// An independent Standard Webhooks signature: OpenSSL directly, not the code under test.
std::string ReferenceSignature(const std::string& key, const std::string& id, const std::string& timestamp,
                               const std::string& body) {
  std::string content = id + "." + timestamp + "." + body;
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(content.data()), content.size(), mac, &mac_len);
  std::string b64(4 * ((mac_len + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(b64.data()), mac, static_cast<int>(mac_len));
  b64.resize(n);
  return "v1," + b64;
}

// ---------------------------------------------------------------------------
// Signature and classification

TEST(SignWebhookTest, ReproducesStandardWebhooksReferenceVector) {
  auto signature = SignWebhook("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek",
                               1614265330, R"({"test": 2432232314})");
  ASSERT_TRUE(signature.ok()) << signature.status().ToString();
  EXPECT_EQ(*signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
}

TEST(SignWebhookTest, MatchesIndependentHmacForOurSecrets) {
  auto signature = SignWebhook(kSecret, "msg_1", 1700000000, R"({"a":1})");
  ASSERT_TRUE(signature.ok());
  EXPECT_EQ(*signature, ReferenceSignature(kRawKey, "msg_1", "1700000000", R"({"a":1})"));
}

TEST(SignWebhookTest, RejectsSecretThatIsNotBase64) {
  auto signature = SignWebhook("whsec_not*base64!", "msg_1", 1, "{}");
  ASSERT_FALSE(signature.ok());
  EXPECT_EQ(signature.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(signature.status().field(), "secret");
}

TEST(ClassifyHttpStatusTest, FollowsTheRetryContract) {
  for (long code : {200L, 201L, 202L, 204L}) {
    EXPECT_EQ(ClassifyHttpStatus(code, "").outcome, SendOutcome::kDelivered) << code;
  }
  for (long code : {408L, 429L, 500L, 502L, 503L, 504L}) {
    EXPECT_EQ(ClassifyHttpStatus(code, "").outcome, SendOutcome::kRetryable) << code;
  }
  for (long code : {301L, 302L, 400L, 401L, 403L, 404L, 410L, 413L, 422L}) {
    EXPECT_EQ(ClassifyHttpStatus(code, "").outcome, SendOutcome::kPermanent) << code;
  }
  EXPECT_EQ(ClassifyHttpStatus(503, "busy").error, "HTTP 503: busy");
}

TEST(DeliveryIdTest, IsMsgPrefixAndFirst32HexOfSha256AndStable) {
  std::string id = DeliveryIdFor("usgs:x/MEX/USA", 3, "sub-1");
  EXPECT_EQ(id, "msg_" + Sha256Hex("usgs:x/MEX/USA#3#sub-1").substr(0, 32));
  EXPECT_EQ(id.size(), 36u);
  EXPECT_EQ(id, DeliveryIdFor("usgs:x/MEX/USA", 3, "sub-1"));
  EXPECT_NE(id, DeliveryIdFor("usgs:x/MEX/USA", 4, "sub-1"));
}

TEST(DeliveryIdTest, FirstNotificationKeepsTheOldIdAndRepeatsAppendTheirNumber) {
  EXPECT_EQ(DeliveryIdFor("usgs:x/MEX/USA", 3, "sub-1", 0), DeliveryIdFor("usgs:x/MEX/USA", 3, "sub-1"));
  EXPECT_EQ(DeliveryIdFor("usgs:x/MEX/USA", 3, "sub-1", 0),
            "msg_" + Sha256Hex("usgs:x/MEX/USA#3#sub-1").substr(0, 32));
  EXPECT_EQ(DeliveryIdFor("usgs:x/MEX/USA", 3, "sub-1", 1),
            "msg_" + Sha256Hex("usgs:x/MEX/USA#3#sub-1#1").substr(0, 32));
  EXPECT_EQ(DeliveryIdFor("usgs:x/MEX/USA", 3, "sub-1", 2),
            "msg_" + Sha256Hex("usgs:x/MEX/USA#3#sub-1#2").substr(0, 32));
}

// ---------------------------------------------------------------------------
// Retry policy

TEST(RetryPolicyTest, CeilingDoublesFromInitialAndIsCapped) {
  RetryOptions o{12, 1000, 300000};
  EXPECT_EQ(BackoffCeilingMs(1, o), 1000);
  EXPECT_EQ(BackoffCeilingMs(2, o), 2000);
  EXPECT_EQ(BackoffCeilingMs(3, o), 4000);
  EXPECT_EQ(BackoffCeilingMs(9, o), 256000);
  EXPECT_EQ(BackoffCeilingMs(10, o), 300000);
  EXPECT_EQ(BackoffCeilingMs(1000, o), 300000);  // no overflow
}

TEST(RetryPolicyTest, FullJitterStaysWithinZeroAndCeiling) {
  RetryOptions o{12, 1000, 300000};
  int64_t asked = -1;
  JitterSource max_jitter = [&](int64_t max) {
    asked = max;
    return max;
  };
  JitterSource no_jitter = [](int64_t) { return int64_t{0}; };
  JitterSource wild_jitter = [](int64_t max) { return max * 10; };

  RetryDecision d = DecideAfterAttempt(SendResult::Retryable("HTTP 503"), 2, 50'000, o, max_jitter);
  EXPECT_EQ(d.state, DeliveryState::kRetrying);
  EXPECT_EQ(d.attempts, 3);
  EXPECT_EQ(asked, 4000);
  EXPECT_EQ(d.next_attempt_ms, 54'000);
  EXPECT_EQ(d.last_error, "HTTP 503");
  EXPECT_EQ(DecideAfterAttempt(SendResult::Retryable("x"), 2, 50'000, o, no_jitter).next_attempt_ms, 50'000);
  EXPECT_EQ(DecideAfterAttempt(SendResult::Retryable("x"), 2, 50'000, o, wild_jitter).next_attempt_ms,
            54'000);

  // Many draws of the production source stay within [0, ceiling].
  JitterSource real = DefaultJitterSource();
  for (int i = 0; i < 1000; ++i) {
    int64_t next = DecideAfterAttempt(SendResult::Retryable("x"), 0, 0, o, real).next_attempt_ms;
    ASSERT_GE(next, 0);
    ASSERT_LE(next, 1000);
  }
}

TEST(RetryPolicyTest, DeliveredPermanentAndExhaustedAttempts) {
  RetryOptions o{3, 1000, 300000};
  JitterSource j = [](int64_t max) { return max; };
  RetryDecision ok = DecideAfterAttempt(SendResult::Delivered(), 1, 7, o, j);
  EXPECT_EQ(ok.state, DeliveryState::kDelivered);
  EXPECT_EQ(ok.attempts, 2);
  EXPECT_EQ(ok.last_error, "");
  RetryDecision bad = DecideAfterAttempt(SendResult::Permanent("HTTP 400"), 0, 7, o, j);
  EXPECT_EQ(bad.state, DeliveryState::kDead);
  EXPECT_EQ(bad.attempts, 1);
  EXPECT_EQ(bad.last_error, "HTTP 400");
  RetryDecision last = DecideAfterAttempt(SendResult::Retryable("HTTP 503"), 2, 7, o, j);
  EXPECT_EQ(last.state, DeliveryState::kDead);
  EXPECT_EQ(last.attempts, 3);
  EXPECT_EQ(last.last_error, "gave up after 3 attempts: HTTP 503");
}

// ---------------------------------------------------------------------------
// Routing and dedup (the link handler, on a database)

class RouterTest : public ::testing::Test {
 protected:
  RouterTest() {
    db_.emplace(std::move(*Db::Open(dir_ / "notify.db")));
    EXPECT_TRUE(MigrateNotifyDb(*db_).ok());
    EXPECT_TRUE(InitLinkTables(*db_).ok());
  }
  Status Route(const v1::Envelope& env) {
    auto tx = Transaction::Begin(*db_);
    EXPECT_TRUE(tx.ok());
    Status st = RouteEnvelope(env, *db_, clock_);
    if (st.ok()) {
      EXPECT_TRUE(tx->Commit().ok());
    }
    return st;
  }
  std::vector<Delivery> Deliveries() { return *NotifyStore(*db_).ListDeliveries(); }
  // One subscription of MEX and one alert for it: the delivery's id.
  std::string RouteOneDelivery() {
    EXPECT_TRUE(Route(Wrap(MakeSubscription("a", "MEX", {}, "http://127.0.0.1:1/a"), clock_)).ok());
    EXPECT_TRUE(Route(Wrap(MakeAlert("MEX", "USA"), clock_)).ok());
    auto deliveries = Deliveries();
    EXPECT_EQ(deliveries.size(), 1u);
    return deliveries.empty() ? std::string() : deliveries[0].delivery_id;
  }

  testing::TempDir dir_;
  std::optional<Db> db_;
  FakeClock clock_;
};

TEST_F(RouterTest, RoutesByStateAndHostFilter) {
  ASSERT_TRUE(Route(Wrap(MakeSubscription("a-any-host", "MEX", {}, "http://127.0.0.1:1/a"), clock_)).ok());
  ASSERT_TRUE(
      Route(Wrap(MakeSubscription("b-usa", "MEX", {"CAN", "USA"}, "http://127.0.0.1:1/b"), clock_)).ok());
  ASSERT_TRUE(Route(Wrap(MakeSubscription("c-gtm", "MEX", {"GTM"}, "http://127.0.0.1:1/c"), clock_)).ok());
  ASSERT_TRUE(Route(Wrap(MakeSubscription("d-other-state", "COL", {}, "http://127.0.0.1:1/d"), clock_)).ok());
  v1::Subscription gone = MakeSubscription("e-deleted", "MEX", {}, "http://127.0.0.1:1/e");
  ASSERT_TRUE(Route(Wrap(gone, clock_)).ok());
  gone.set_deleted(true);
  ASSERT_TRUE(Route(Wrap(gone, clock_)).ok());

  v1::ConsularAlert alert = MakeAlert("MEX", "USA");
  ASSERT_TRUE(Route(Wrap(alert, clock_)).ok());

  auto deliveries = Deliveries();
  ASSERT_EQ(deliveries.size(), 2u);
  EXPECT_EQ(deliveries[0].subscription_id, "a-any-host");
  EXPECT_EQ(deliveries[1].subscription_id, "b-usa");
  for (const Delivery& d : deliveries) {
    EXPECT_EQ(d.delivery_id, DeliveryIdFor(alert.alert_id(), 1, d.subscription_id));
    EXPECT_EQ(d.alert_id, "usgs:us7000abcd/MEX/USA");
    EXPECT_EQ(d.alert_revision, 1u);
    EXPECT_EQ(d.event_type, "alert.raised");
    EXPECT_EQ(d.state, DeliveryState::kPending);
    EXPECT_EQ(d.attempts, 0);
    EXPECT_EQ(d.next_attempt_ms, clock_.NowMs());
    boost::json::object body = boost::json::parse(d.body).as_object();
    EXPECT_EQ(body.at("type").as_string(), "alert.raised");
    EXPECT_EQ(body.at("timestamp").as_string(), FormatRfc3339(clock_.NowMs()));
    EXPECT_EQ(body.at("data").at("alert_id").as_string(), "usgs:us7000abcd/MEX/USA");
    EXPECT_EQ(body.at("data").at("exposure").at("registrants").as_int64(), 12);
  }
  // The alert is forwarded to the gateway once, unchanged.
  auto outbox = GatewayOutbox(*db_);
  ASSERT_EQ(outbox.size(), 1u);
  EXPECT_EQ(outbox[0].producer(), "amparo-notify");
  EXPECT_EQ(outbox[0].consular_alert().alert_id(), alert.alert_id());
  auto stored = NotifyStore(*db_).GetAlertVersion(alert.alert_id());
  ASSERT_TRUE(stored.ok() && stored->has_value());
  EXPECT_EQ((*stored)->revision, 1u);
  EXPECT_EQ((*stored)->notification, 0u);
}

TEST_F(RouterTest, TheAlertIsStoredOnceAndEveryReadRendersTheSameBody) {
  ASSERT_TRUE(Route(Wrap(MakeSubscription("a", "MEX", {}, "http://127.0.0.1:1/a"), clock_)).ok());
  const v1::ConsularAlert alert = MakeAlert("MEX", "USA");
  ASSERT_TRUE(Route(Wrap(alert, clock_)).ok());
  auto deliveries = Deliveries();
  ASSERT_EQ(deliveries.size(), 1u);
  const Delivery scheduled = deliveries[0];
  EXPECT_EQ(scheduled.body, BuildWebhookBody(alert, scheduled.created_ms));
  auto stored = [&](const std::string& sql) {
    auto q = db_->Prepare(sql);
    q->Bind(1, scheduled.delivery_id);
    EXPECT_TRUE(*q->Step());
    return q->ColumnBlob(0);
  };
  // In its own table, as the alert (protobuf), not as the JSON text.
  v1::ConsularAlert kept;
  ASSERT_TRUE(kept.ParseFromString(stored("SELECT alert FROM delivery_bodies WHERE delivery_id = ?")));
  EXPECT_EQ(kept.SerializeAsString(), alert.SerializeAsString());
  EXPECT_EQ(stored("SELECT body FROM delivery_bodies WHERE delivery_id = ?"), "");
  EXPECT_EQ(stored("SELECT body FROM deliveries WHERE delivery_id = ?"), "");
  NotifyStore store(*db_);
  ASSERT_TRUE(*store.UpdateOpenDelivery(scheduled.delivery_id, DeliveryState::kRetrying, 1, 99, "503", 5));
  auto after = store.GetDelivery(scheduled.delivery_id);
  ASSERT_TRUE(after.ok() && after->has_value());
  EXPECT_EQ((*after)->state, DeliveryState::kRetrying);
  EXPECT_EQ((*after)->body, scheduled.body);  // the same bytes for the next attempt
  auto due = store.DueDeliveries(100, 10);
  ASSERT_TRUE(due.ok());
  ASSERT_EQ(due->size(), 1u);
  EXPECT_EQ((*due)[0].delivery.body, scheduled.body);
  // Scheduling the same delivery again keeps the first alert.
  v1::ConsularAlert other = alert;
  other.set_reason("something else");
  Delivery again = scheduled;
  EXPECT_FALSE(*store.InsertDelivery(again, other.SerializeAsString()));
  EXPECT_EQ((*store.GetDelivery(scheduled.delivery_id))->body, scheduled.body);
}

TEST_F(RouterTest, AStoredAlertThatDoesNotParseIsDataLossNamingTheDelivery) {
  const std::string id = RouteOneDelivery();
  ASSERT_FALSE(id.empty());
  ASSERT_TRUE(db_->Exec("UPDATE delivery_bodies SET alert = x'ffffffff'").ok());
  NotifyStore store(*db_);
  auto read = store.GetDelivery(id);
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(read.status().message().find(id), std::string::npos) << read.status().message();
  EXPECT_EQ(store.DueDeliveries(clock_.NowMs(), 10).status().code(), StatusCode::kDataLoss);
  // A state read does not touch it.
  EXPECT_TRUE(store.GetDelivery(id, NotifyStore::Body::kSkip).ok());
}

TEST_F(RouterTest, ABodyStoredAsTextBeforeAlertsWereKeptIsSentAsStored) {
  const std::string id = RouteOneDelivery();
  ASSERT_FALSE(id.empty());
  ASSERT_TRUE(db_->Exec("UPDATE delivery_bodies SET body = '{\"as\":\"stored\"}', alert = NULL").ok());
  NotifyStore store(*db_);
  EXPECT_EQ((*store.GetDelivery(id))->body, R"({"as":"stored"})");
  auto due = store.DueDeliveries(clock_.NowMs(), 10);
  ASSERT_TRUE(due.ok());
  ASSERT_EQ(due->size(), 1u);
  EXPECT_EQ((*due)[0].delivery.body, R"({"as":"stored"})");
}

// A new notify database gets 8 KiB pages; one an older binary made keeps
// its 4 KiB (changing it would rewrite the whole file).
TEST(NotifyStoreMigrationTest, ANewDatabaseGets8KiBPagesAndAnOldOneKeepsItsOwn) {
  testing::TempDir dir;
  auto page_size = [](Db& db) {
    auto q = db.Prepare("PRAGMA page_size");
    EXPECT_TRUE(q.ok() && *q->Step());
    return q->ColumnInt(0);
  };
  auto fresh = Db::Open(dir / "new.db");
  ASSERT_TRUE(fresh.ok());
  ASSERT_TRUE(MigrateNotifyDb(*fresh).ok());
  EXPECT_EQ(page_size(*fresh), 8192);
  auto old = Db::Open(dir / "old.db");
  ASSERT_TRUE(old.ok());
  ASSERT_TRUE(old->Exec("CREATE TABLE before_us(x)").ok());
  ASSERT_TRUE(MigrateNotifyDb(*old).ok());
  EXPECT_EQ(page_size(*old), 4096);
}

// Killing a deleted subscription's open deliveries reads an index of the
// open deliveries only; a delivered webhook leaves no entry in it.
TEST(NotifyStoreMigrationTest, OnlyOpenDeliveriesAreIndexedBySubscription) {
  testing::TempDir dir;
  auto db = Db::Open(dir / "notify.db");
  ASSERT_TRUE(db.ok());
  ASSERT_TRUE(MigrateNotifyDb(*db).ok());
  auto plan = db->Prepare(
      "EXPLAIN QUERY PLAN UPDATE deliveries SET state = 'dead' WHERE subscription_id = 's1' AND state IN "
      "('pending', 'retrying')");
  ASSERT_TRUE(plan.ok());
  std::string steps;
  while (*plan->Step()) steps += plan->ColumnText(3) + ";";
  EXPECT_NE(steps.find("USING INDEX deliveries_open_by_subscription"), std::string::npos) << steps;
  auto old = db->Prepare("SELECT count(*) FROM sqlite_schema WHERE name = 'deliveries_by_subscription'");
  ASSERT_TRUE(old.ok() && *old->Step());
  EXPECT_EQ(old->ColumnInt(0), 0);
  ASSERT_TRUE(
      db->Exec(
            "INSERT INTO deliveries VALUES ('d1', 'a', 1, 's1', 'alert.raised', '', 'pending', 0, 0, '', 0, "
            "0), ('d2', 'a', 1, 's1', 'alert.raised', '', 'delivered', 1, 0, '', 0, 0)")
          .ok());
  auto entries = db->Prepare(
      "SELECT count(*) FROM deliveries INDEXED BY deliveries_open_by_subscription "
      "WHERE subscription_id = 's1' AND state IN ('pending', 'retrying')");
  ASSERT_TRUE(entries.ok() && *entries->Step());
  EXPECT_EQ(entries->ColumnInt(0), 1);
}

TEST(NotifyStoreMigrationTest, AlertsKeepTheirVersionAndLoseTheWholeAlertCopy) {
  testing::TempDir dir;
  auto db = Db::Open(dir / "notify.db");
  ASSERT_TRUE(db.ok());
  // The alerts table as schema version 3 left it, with a stored alert.
  ASSERT_TRUE(
      db->Exec(
            "CREATE TABLE alerts(alert_id TEXT PRIMARY KEY, revision INTEGER NOT NULL, alert BLOB NOT "
            "NULL, updated_ms INTEGER NOT NULL, notification INTEGER NOT NULL DEFAULT 0);"
            "INSERT INTO alerts VALUES('x/MEX/USA', 4, x'0a0178', 7, 2);"
            "CREATE TABLE deliveries(delivery_id TEXT PRIMARY KEY, alert_id TEXT NOT NULL, alert_revision "
            "INTEGER NOT NULL, subscription_id TEXT NOT NULL, event_type TEXT NOT NULL, body TEXT NOT NULL, "
            "state TEXT NOT NULL, attempts INTEGER NOT NULL, next_attempt_ms INTEGER NOT NULL, last_error "
            "TEXT "
            "NOT NULL, created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL);"
            "CREATE INDEX deliveries_by_subscription ON deliveries(subscription_id, state);"
            "CREATE TABLE delivery_bodies(delivery_id TEXT PRIMARY KEY, body TEXT NOT NULL);"
            "PRAGMA user_version=3")
          .ok());
  ASSERT_TRUE(MigrateNotifyDb(*db).ok());
  auto columns = db->Prepare("SELECT group_concat(name, ',') FROM pragma_table_info('alerts')");
  ASSERT_TRUE(columns.ok() && *columns->Step());
  EXPECT_EQ(columns->ColumnText(0), "alert_id,revision,updated_ms,notification");
  NotifyStore store(*db);
  auto version = store.GetAlertVersion("x/MEX/USA");
  ASSERT_TRUE(version.ok() && version->has_value());
  EXPECT_EQ((*version)->revision, 4u);
  EXPECT_EQ((*version)->notification, 2u);
  // Freshness still compares against the migrated row.
  v1::ConsularAlert same;
  same.set_alert_id("x/MEX/USA");
  same.set_revision(4);
  same.set_notification(2);
  EXPECT_EQ(*store.StoreAlert(same, 9), AlertFreshness::kSameRevision);
  same.set_revision(3);
  EXPECT_EQ(*store.StoreAlert(same, 9), AlertFreshness::kStale);
  same.set_revision(5);
  same.set_notification(0);
  EXPECT_EQ(*store.StoreAlert(same, 9), AlertFreshness::kNew);
  EXPECT_EQ((*store.GetAlertVersion("x/MEX/USA"))->revision, 5u);
}

TEST_F(RouterTest, ADeliveryFromBeforeBodiesHadTheirTableKeepsItsBody) {
  ASSERT_TRUE(Route(Wrap(MakeSubscription("a", "MEX", {}, "http://127.0.0.1:1/a"), clock_)).ok());
  ASSERT_TRUE(db_->Exec("INSERT INTO deliveries(delivery_id, alert_id, alert_revision, subscription_id, "
                        "event_type, body, state, attempts, next_attempt_ms, last_error, created_ms, updated_ms) "
                        "VALUES('msg_old', 'x/MEX/USA', 1, 'a', 'alert.raised', '{\"old\":true}', 'pending', "
                        "0, 0, '', 1, 1)")
                  .ok());
  NotifyStore store(*db_);
  auto old = store.GetDelivery("msg_old");
  ASSERT_TRUE(old.ok() && old->has_value());
  EXPECT_EQ((*old)->body, R"({"old":true})");
  auto due = store.DueDeliveries(10, 10);
  ASSERT_TRUE(due.ok());
  ASSERT_EQ(due->size(), 1u);
  EXPECT_EQ((*due)[0].delivery.body, R"({"old":true})");
}

TEST_F(RouterTest, DueDeliveriesLeaveOutThoseInFlightAndStateReadsSkipTheBody) {
  ASSERT_TRUE(Route(Wrap(MakeSubscription("a", "MEX", {}, "http://127.0.0.1:1/a"), clock_)).ok());
  for (const char* host : {"USA", "CAN", "GTM"})
    ASSERT_TRUE(Route(Wrap(MakeAlert("MEX", host), clock_)).ok());
  NotifyStore store(*db_);
  auto all = store.DueDeliveries(clock_.NowMs(), 10);
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 3u);
  const std::string busy = (*all)[1].delivery.delivery_id;
  auto rest = store.DueDeliveries(clock_.NowMs(), 10, {busy});
  ASSERT_TRUE(rest.ok());
  ASSERT_EQ(rest->size(), 2u);
  for (const DueDelivery& d : *rest) {
    EXPECT_NE(d.delivery.delivery_id, busy);
    EXPECT_EQ(d.url, "http://127.0.0.1:1/a");
    // Each with its own body, as stored.
    auto stored = store.GetDelivery(d.delivery.delivery_id);
    ASSERT_TRUE(stored.ok() && stored->has_value());
    EXPECT_FALSE(d.delivery.body.empty());
    EXPECT_EQ(d.delivery.body, (*stored)->body);
  }
  // The limit counts the rows in flight: room for one more than those.
  auto limited = store.DueDeliveries(clock_.NowMs(), 2, {(*all)[0].delivery.delivery_id});
  ASSERT_TRUE(limited.ok());
  ASSERT_EQ(limited->size(), 1u);
  EXPECT_EQ((*limited)[0].delivery.delivery_id, (*all)[1].delivery.delivery_id);
  // A state read leaves the body out and gives the rest.
  auto light = store.GetDelivery(busy, NotifyStore::Body::kSkip);
  ASSERT_TRUE(light.ok() && light->has_value());
  EXPECT_EQ((*light)->body, "");
  EXPECT_EQ((*light)->delivery_id, busy);
  EXPECT_EQ((*light)->subscription_id, "a");
  EXPECT_EQ((*light)->state, DeliveryState::kPending);
  EXPECT_EQ((*light)->alert_revision, 1u);
}

TEST_F(RouterTest, AlertOfAnotherStateOrHostReachesNoOne) {
  ASSERT_TRUE(Route(Wrap(MakeSubscription("col", "COL", {}, "http://127.0.0.1:1/a"), clock_)).ok());
  ASSERT_TRUE(Route(Wrap(MakeSubscription("mex-gtm", "MEX", {"GTM"}, "http://127.0.0.1:1/b"), clock_)).ok());
  ASSERT_TRUE(Route(Wrap(MakeAlert("MEX", "USA"), clock_)).ok());
  EXPECT_TRUE(Deliveries().empty());
  EXPECT_EQ(GatewayOutbox(*db_).size(), 1u);  // the gateway still shows it to operators
}

TEST_F(RouterTest, ReReceivedAlertMakesNoSecondDeliveryAndNewRevisionDoes) {
  ASSERT_TRUE(Route(Wrap(MakeSubscription("s1", "MEX", {}, "http://127.0.0.1:1/a"), clock_)).ok());
  ASSERT_TRUE(Route(Wrap(MakeAlert("MEX", "USA", 1), clock_)).ok());
  clock_.Advance(1000);
  ASSERT_TRUE(Route(Wrap(MakeAlert("MEX", "USA", 1), clock_)).ok());  // a new envelope, same revision
  ASSERT_EQ(Deliveries().size(), 1u);
  EXPECT_EQ(GatewayOutbox(*db_).size(), 1u);

  v1::ConsularAlert second = MakeAlert("MEX", "USA", 2);
  ASSERT_TRUE(Route(Wrap(second, clock_)).ok());
  auto deliveries = Deliveries();
  ASSERT_EQ(deliveries.size(), 2u);
  EXPECT_EQ(deliveries[1].alert_revision, 2u);
  EXPECT_EQ(deliveries[1].event_type, "alert.updated");
  EXPECT_NE(deliveries[0].delivery_id, deliveries[1].delivery_id);
  EXPECT_EQ(GatewayOutbox(*db_).size(), 2u);

  // A stale revision arriving late changes nothing.
  ASSERT_TRUE(Route(Wrap(MakeAlert("MEX", "USA", 1), clock_)).ok());
  EXPECT_EQ(Deliveries().size(), 2u);
  EXPECT_EQ(GatewayOutbox(*db_).size(), 2u);
  EXPECT_EQ((*NotifyStore(*db_).GetAlertVersion(second.alert_id()))->revision, 2u);
}

TEST_F(RouterTest, CancelledAlertIsAnAlertCancelledEvent) {
  ASSERT_TRUE(Route(Wrap(MakeSubscription("s1", "MEX", {}, "http://127.0.0.1:1/a"), clock_)).ok());
  v1::ConsularAlert alert = MakeAlert("MEX", "USA", 3);
  alert.set_cancelled(true);
  ASSERT_TRUE(Route(Wrap(alert, clock_)).ok());
  ASSERT_EQ(Deliveries().size(), 1u);
  EXPECT_EQ(Deliveries()[0].event_type, "alert.cancelled");
  EXPECT_EQ(boost::json::parse(Deliveries()[0].body).at("type").as_string(), "alert.cancelled");
}

TEST_F(RouterTest, SilencedAlertIsForwardedAndStoredButNotDelivered) {
  ASSERT_TRUE(Route(Wrap(MakeSubscription("s1", "MEX", {}, "http://127.0.0.1:1/a"), clock_)).ok());
  v1::ConsularAlert alert = MakeAlert("MEX", "USA", 1);
  alert.set_silenced(true);
  alert.set_silence_id("0123456789abcdef0123456789abcdef");
  ASSERT_TRUE(Route(Wrap(alert, clock_)).ok());
  EXPECT_TRUE(Deliveries().empty());
  auto outbox = GatewayOutbox(*db_);
  ASSERT_EQ(outbox.size(), 1u);  // operators still see it
  EXPECT_TRUE(outbox[0].consular_alert().silenced());
  EXPECT_EQ(outbox[0].consular_alert().silence_id(), "0123456789abcdef0123456789abcdef");
  EXPECT_EQ((*NotifyStore(*db_).GetAlertVersion(alert.alert_id()))->revision, 1u);

  // Once the silence is over, rules' next notification is delivered.
  v1::ConsularAlert repeat = MakeAlert("MEX", "USA", 1);
  repeat.set_notification(1);
  ASSERT_TRUE(Route(Wrap(repeat, clock_)).ok());
  ASSERT_EQ(Deliveries().size(), 1u);
  EXPECT_EQ(Deliveries()[0].delivery_id, DeliveryIdFor(alert.alert_id(), 1, "s1", 1));
  EXPECT_EQ(GatewayOutbox(*db_).size(), 2u);
}

TEST_F(RouterTest, RepeatIsANewDeliveryWithItsOwnWebhookId) {
  ASSERT_TRUE(Route(Wrap(MakeSubscription("s1", "MEX", {}, "http://127.0.0.1:1/a"), clock_)).ok());
  ASSERT_TRUE(Route(Wrap(MakeAlert("MEX", "USA", 2), clock_)).ok());
  clock_.Advance(3'600'000);
  v1::ConsularAlert repeat = MakeAlert("MEX", "USA", 2);
  repeat.set_notification(1);
  ASSERT_TRUE(Route(Wrap(repeat, clock_)).ok());
  ASSERT_TRUE(Route(Wrap(repeat, clock_)).ok());  // the same repeat re-received: deduplicated
  auto deliveries = Deliveries();
  ASSERT_EQ(deliveries.size(), 2u);
  std::set<std::string> ids;
  for (const Delivery& d : deliveries) {
    EXPECT_EQ(d.alert_revision, 2u);
    ids.insert(d.delivery_id);
  }
  EXPECT_EQ(ids, (std::set<std::string>{DeliveryIdFor(repeat.alert_id(), 2, "s1"),
                                        DeliveryIdFor(repeat.alert_id(), 2, "s1", 1)}));
  const Delivery& second = deliveries[0].delivery_id == DeliveryIdFor(repeat.alert_id(), 2, "s1", 1)
                               ? deliveries[0]
                               : deliveries[1];
  EXPECT_EQ(boost::json::parse(second.body).at("data").at("notification").as_int64(), 1);
  // The gateway learns the repeat once; an older notification arriving late is stale.
  EXPECT_EQ(GatewayOutbox(*db_).size(), 2u);
  ASSERT_TRUE(Route(Wrap(MakeAlert("MEX", "USA", 2), clock_)).ok());
  EXPECT_EQ(Deliveries().size(), 2u);
  EXPECT_EQ(GatewayOutbox(*db_).size(), 2u);
  EXPECT_EQ((*NotifyStore(*db_).GetAlertVersion(repeat.alert_id()))->notification, 1u);
}

TEST_F(RouterTest, DeletingSubscriptionKillsItsOpenDeliveriesAndReportsThem) {
  v1::Subscription sub = MakeSubscription("s1", "MEX", {}, "http://127.0.0.1:1/a");
  ASSERT_TRUE(Route(Wrap(sub, clock_)).ok());
  ASSERT_TRUE(Route(Wrap(MakeSubscription("s2", "MEX", {}, "http://127.0.0.1:1/b"), clock_)).ok());
  ASSERT_TRUE(Route(Wrap(MakeAlert("MEX", "USA"), clock_)).ok());
  v1::Subscription deletion;
  deletion.set_subscription_id("s1");
  deletion.set_deleted(true);
  clock_.Advance(5000);
  ASSERT_TRUE(Route(Wrap(deletion, clock_)).ok());

  auto deliveries = Deliveries();
  ASSERT_EQ(deliveries.size(), 2u);
  EXPECT_EQ(deliveries[0].state, DeliveryState::kDead);
  EXPECT_EQ(deliveries[0].last_error, "subscription deleted");
  EXPECT_EQ(deliveries[0].updated_ms, clock_.NowMs());
  EXPECT_EQ(deliveries[1].state, DeliveryState::kPending);
  auto outbox = GatewayOutbox(*db_);
  ASSERT_EQ(outbox.size(), 2u);  // the alert, then the dead delivery
  const v1::DeliveryStatus& status = outbox[1].delivery_status();
  EXPECT_EQ(status.delivery_id(), deliveries[0].delivery_id);
  EXPECT_EQ(status.subscription_id(), "s1");
  EXPECT_EQ(status.state(), v1::DeliveryStatus::STATE_DEAD);
  EXPECT_EQ(status.last_error(), "subscription deleted");
  // And nothing more is routed to it.
  ASSERT_TRUE(Route(Wrap(MakeAlert("MEX", "GTM"), clock_)).ok());
  EXPECT_EQ(Deliveries().size(), 3u);
  EXPECT_EQ(Deliveries()[0].subscription_id, "s2");
}

TEST_F(RouterTest, RejectsInvalidInputNamingTheField) {
  v1::Subscription bad = MakeSubscription("s1", "MEX", {}, "http://127.0.0.1:1/a");
  bad.set_secret("whsec_***");
  Status st = Route(Wrap(bad, clock_));
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(st.field(), "secret");
  bad = MakeSubscription("s1", "MEX", {}, "ftp://example.org/");
  st = Route(Wrap(bad, clock_));
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(st.field(), "url");
  v1::ConsularAlert no_state = MakeAlert("MEX", "USA");
  no_state.clear_state();
  st = Route(Wrap(no_state, clock_));
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(st.field(), "state");
  v1::Envelope ack = MakeEnvelope("amparo-gateway", clock_);
  ack.mutable_alert_ack()->set_alert_id("x");
  st = Route(ack);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(st.field(), "payload");
}

// ---------------------------------------------------------------------------
// The daemon over real links

// A channel whose outcomes the test scripts. While `hold` is set, sends stay
// in flight. State is shared so the test can inspect it after handing the
// channel to the daemon.
struct FakeChannelState {
  std::vector<OutboundMessage> sent;
  std::deque<SendResult> script;  // outcomes in order; empty = delivered
  bool hold = false;
  int capacity = 1000;
};

class FakeChannel final : public Channel {
 public:
  explicit FakeChannel(std::shared_ptr<FakeChannelState> state) : state_(std::move(state)) {}
  Status Send(const OutboundMessage& message, Done done) override {
    if (InFlight() >= state_->capacity) return {StatusCode::kResourceExhausted, "full"};
    state_->sent.push_back(message);
    pending_.push_back({message.delivery_id, std::move(done)});
    return Status::Ok();
  }
  void Poll() override {
    if (state_->hold) return;
    auto finished = std::move(pending_);
    pending_.clear();
    for (auto& [id, done] : finished) {
      SendResult result = SendResult::Delivered();
      if (!state_->script.empty()) {
        result = state_->script.front();
        state_->script.pop_front();
      }
      done(id, result);
    }
  }
  int InFlight() const override { return static_cast<int>(pending_.size()); }

 private:
  std::shared_ptr<FakeChannelState> state_;
  std::vector<std::pair<std::string, Done>> pending_;
};

class NotifyDaemonTest : public ::testing::Test {
 protected:
  NotifyDaemonTest() {
    feeder_db_.emplace(std::move(*Db::Open(dir_ / "rules.db")));
    EXPECT_TRUE(InitLinkTables(*feeder_db_).ok());
    gateway_db_.emplace(std::move(*Db::Open(dir_ / "gateway.db")));
  }

  void Configure(const std::string& notify_section) {
    auto config = Config::Parse("[notify]\n" + notify_section, dir_.path());
    ASSERT_TRUE(config.ok()) << config.status().ToString();
    config_ = *config;
    std::filesystem::create_directories(config_.run_dir);  // the ipc endpoints live here
    feeder_ = std::make_unique<LinkSender>(ctx_, *feeder_db_, "notify", config_.notify.inbox, config_.link,
                                           SystemClock::Instance());
    ASSERT_TRUE(feeder_->Start().ok());
    gateway_ = std::make_unique<LinkReceiver>(ctx_, *gateway_db_, config_.gateway.inbox, config_.link,
                                              SystemClock::Instance());
    Status bound = gateway_->Bind();
    ASSERT_TRUE(bound.ok()) << bound.ToString();
  }

  // Starts the daemon with a fake channel (`fake` non-null) or the real
  // webhook channel.
  void StartDaemon(std::shared_ptr<FakeChannelState> fake) {
    NotifyDeps deps;
    if (fake) deps.channel = std::make_unique<FakeChannel>(fake);
    deps.jitter = [](int64_t max) { return max; };  // deterministic: the ceiling
    auto daemon = NotifyDaemon::Create(config_, ctx_, clock_, std::move(deps));
    ASSERT_TRUE(daemon.ok()) << daemon.status().ToString();
    daemon_ = std::move(daemon).value();
  }

  void Feed(const v1::Envelope& env) { ASSERT_TRUE(EnqueueOutbound(*feeder_db_, "notify", env).ok()); }

  template <typename Pred>
  bool RunUntil(Pred done, std::chrono::milliseconds limit = 5s) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
      EXPECT_TRUE(feeder_->Pump().ok());
      daemon_->RunOnce(5ms);
      EXPECT_TRUE(gateway_->Pump().ok());
      if (done()) return true;
    }
    return false;
  }

  std::vector<Delivery> Deliveries() { return *NotifyStore(daemon_->db()).ListDeliveries(); }
  std::optional<Delivery> DeliveryOf(const std::string& subscription_id) {
    for (auto& d : Deliveries()) {
      if (d.subscription_id == subscription_id) return d;
    }
    return std::nullopt;
  }
  // What reached the gateway's inbox so far, in order.
  std::vector<v1::Envelope> DrainGateway() {
    auto n = gateway_->ProcessPending(
        [&](const v1::Envelope& env, Db&) {
          at_gateway_.push_back(env);
          return Status::Ok();
        },
        1000);
    EXPECT_TRUE(n.ok());
    return at_gateway_;
  }
  // Every delivery state the gateway got, single or in a batch, in order.
  std::vector<v1::DeliveryStatus> GatewayStatuses() {
    std::vector<v1::DeliveryStatus> out;
    for (const auto& env : DrainGateway()) {
      if (env.has_delivery_status()) out.push_back(env.delivery_status());
      for (const auto& s : env.delivery_statuses().statuses()) out.push_back(s);
    }
    return out;
  }

  testing::TempDir dir_;
  FakeClock clock_;
  LinkContext ctx_;
  Config config_;
  std::optional<Db> feeder_db_, gateway_db_;
  std::unique_ptr<LinkSender> feeder_;
  std::unique_ptr<LinkReceiver> gateway_;
  std::unique_ptr<NotifyDaemon> daemon_;
  std::vector<v1::Envelope> at_gateway_;
};

TEST_F(NotifyDaemonTest, DeliversAndReportsAlertAndStatusToGateway) {
  Configure("");
  auto fake = std::make_shared<FakeChannelState>();
  StartDaemon(fake);
  Feed(Wrap(MakeSubscription("s1", "MEX", {}, "http://127.0.0.1:1/hook"), clock_));
  Feed(Wrap(MakeAlert("MEX", "USA"), clock_));
  ASSERT_TRUE(RunUntil([&] { return GatewayStatuses().size() == 1; }));

  ASSERT_EQ(fake->sent.size(), 1u);
  auto delivery = DeliveryOf("s1");
  ASSERT_TRUE(delivery);
  EXPECT_EQ(delivery->state, DeliveryState::kDelivered);
  EXPECT_EQ(delivery->attempts, 1);
  EXPECT_EQ(fake->sent[0].delivery_id, delivery->delivery_id);
  EXPECT_EQ(fake->sent[0].url, "http://127.0.0.1:1/hook");
  EXPECT_EQ(fake->sent[0].secret, kSecret);
  EXPECT_EQ(fake->sent[0].body, delivery->body);

  auto at_gateway = DrainGateway();
  ASSERT_EQ(at_gateway.size(), 2u);
  EXPECT_EQ(at_gateway[0].consular_alert().alert_id(), "usgs:us7000abcd/MEX/USA");
  const v1::DeliveryStatus& status = at_gateway[1].delivery_status();
  EXPECT_EQ(at_gateway[1].producer(), "amparo-notify");
  EXPECT_EQ(status.delivery_id(), delivery->delivery_id);
  EXPECT_EQ(status.alert_id(), "usgs:us7000abcd/MEX/USA");
  EXPECT_EQ(status.alert_revision(), 1u);
  EXPECT_EQ(status.subscription_id(), "s1");
  EXPECT_EQ(status.state(), v1::DeliveryStatus::STATE_DELIVERED);
  EXPECT_EQ(status.attempts(), 1u);
  EXPECT_EQ(status.last_error(), "");
  EXPECT_EQ(daemon_->stats().delivered, 1u);
}

TEST_F(NotifyDaemonTest, RetriesWithBackoffAndSameBytesThenDeadLettersAfterMaxAttempts) {
  Configure("max_attempts = 3\nbackoff_initial_ms = 1000\nbackoff_max_ms = 1500\n");
  auto fake = std::make_shared<FakeChannelState>();
  fake->script = {SendResult::Retryable("HTTP 503"), SendResult::Retryable("HTTP 502"),
                  SendResult::Retryable("curl: Timeout was reached")};
  StartDaemon(fake);
  Feed(Wrap(MakeSubscription("s1", "MEX", {}, "http://127.0.0.1:1/hook"), clock_));
  Feed(Wrap(MakeAlert("MEX", "USA"), clock_));
  const int64_t start = clock_.NowMs();
  ASSERT_TRUE(RunUntil([&] { return DeliveryOf("s1") && DeliveryOf("s1")->attempts == 1; }));
  auto d = *DeliveryOf("s1");
  EXPECT_EQ(d.state, DeliveryState::kRetrying);
  EXPECT_EQ(d.next_attempt_ms, start + 1000);  // jitter = ceiling = initial
  EXPECT_EQ(d.last_error, "HTTP 503");

  // Not due yet: nothing is sent however long the loop runs.
  RunUntil([] { return false; }, 150ms);
  EXPECT_EQ(fake->sent.size(), 1u);

  clock_.Advance(1000);
  ASSERT_TRUE(RunUntil([&] { return DeliveryOf("s1")->attempts == 2; }));
  d = *DeliveryOf("s1");
  EXPECT_EQ(d.next_attempt_ms, clock_.NowMs() + 1500);  // 2000 capped by backoff_max_ms
  clock_.Advance(1500);
  ASSERT_TRUE(RunUntil([&] { return DeliveryOf("s1")->state == DeliveryState::kDead; }));
  d = *DeliveryOf("s1");
  EXPECT_EQ(d.attempts, 3);
  EXPECT_EQ(d.last_error, "gave up after 3 attempts: curl: Timeout was reached");

  ASSERT_EQ(fake->sent.size(), 3u);
  for (const auto& message : fake->sent) {
    EXPECT_EQ(message.delivery_id, d.delivery_id);
    EXPECT_EQ(message.body, d.body);
  }
  ASSERT_TRUE(RunUntil([&] { return GatewayStatuses().size() == 1; }));
  auto statuses = GatewayStatuses();
  EXPECT_EQ(statuses[0].state(), v1::DeliveryStatus::STATE_DEAD);
  EXPECT_EQ(statuses[0].attempts(), 3u);
  EXPECT_EQ(statuses[0].last_error(), "gave up after 3 attempts: curl: Timeout was reached");
  EXPECT_EQ(daemon_->stats().retries, 2u);
  EXPECT_EQ(daemon_->stats().dead, 1u);
}

TEST_F(NotifyDaemonTest, NeverHasMoreThanMaxInFlightSends) {
  Configure("max_in_flight = 2\n");
  auto fake = std::make_shared<FakeChannelState>();
  fake->hold = true;
  StartDaemon(fake);
  for (const char* id : {"s1", "s2", "s3"}) {
    Feed(Wrap(MakeSubscription(id, "MEX", {}, "http://127.0.0.1:1/hook"), clock_));
  }
  Feed(Wrap(MakeAlert("MEX", "USA"), clock_));
  ASSERT_TRUE(RunUntil([&] { return Deliveries().size() == 3 && fake->sent.size() == 2; }));
  RunUntil([] { return false; }, 150ms);
  EXPECT_EQ(fake->sent.size(), 2u);  // the third waits for a free slot
  EXPECT_EQ(daemon_->in_flight(), 2);
  fake->hold = false;
  ASSERT_TRUE(RunUntil([&] { return daemon_->stats().delivered == 3; }));
  ASSERT_EQ(fake->sent.size(), 3u);  // each sent exactly once
  EXPECT_NE(fake->sent[0].delivery_id, fake->sent[2].delivery_id);
  EXPECT_NE(fake->sent[1].delivery_id, fake->sent[2].delivery_id);
}

// The stages are called directly here, never RunOnce(): no timer of the
// poll loop runs, so whatever is sent was sent by the stage itself.
TEST_F(NotifyDaemonTest, RoutedAlertIsSentAtOnceWithoutWaitingForTheDispatchTimer) {
  Configure("");
  auto fake = std::make_shared<FakeChannelState>();
  fake->hold = true;
  StartDaemon(fake);
  Feed(Wrap(MakeSubscription("s1", "MEX", {}, "http://127.0.0.1:1/hook"), clock_));
  Feed(Wrap(MakeAlert("MEX", "USA"), clock_));
  int routed = 0;
  for (int i = 0; i < 5000 && routed < 2; ++i) {
    ASSERT_TRUE(feeder_->Pump().ok());
    auto n = daemon_->ProcessInbox();
    ASSERT_TRUE(n.ok());
    routed += *n;
    if (routed < 2) std::this_thread::sleep_for(1ms);  // the link is asynchronous
  }
  ASSERT_EQ(routed, 2);
  ASSERT_EQ(fake->sent.size(), 1u);  // handed to the channel by ProcessInbox itself
  EXPECT_EQ(fake->sent[0].url, "http://127.0.0.1:1/hook");
  EXPECT_EQ(daemon_->in_flight(), 1);
}

TEST_F(NotifyDaemonTest, AFinishedAttemptIsRecordedAndItsSlotRefilledInTheSamePoll) {
  Configure("max_in_flight = 1\noutcome_commit_interval_ms = 0\n");
  auto fake = std::make_shared<FakeChannelState>();
  fake->hold = true;
  StartDaemon(fake);
  for (const char* id : {"s1", "s2"})
    Feed(Wrap(MakeSubscription(id, "MEX", {}, "http://127.0.0.1:1/hook"), clock_));
  Feed(Wrap(MakeAlert("MEX", "USA"), clock_));
  int routed = 0;
  for (int i = 0; i < 5000 && routed < 3; ++i) {
    ASSERT_TRUE(feeder_->Pump().ok());
    auto n = daemon_->ProcessInbox();
    ASSERT_TRUE(n.ok());
    routed += *n;
    if (routed < 3) std::this_thread::sleep_for(1ms);
  }
  ASSERT_EQ(routed, 3);
  ASSERT_EQ(fake->sent.size(), 1u);  // one slot
  fake->hold = false;
  // One poll: the first attempt finishes, is recorded, and the second
  // delivery takes the freed slot (the fake finishes it in the same poll
  // that starts it, so both are recorded).
  daemon_->PollChannel();
  ASSERT_EQ(fake->sent.size(), 2u);
  EXPECT_NE(fake->sent[0].delivery_id, fake->sent[1].delivery_id);
  EXPECT_EQ(daemon_->stats().delivered, 2u);
  for (const Delivery& d : Deliveries()) {
    EXPECT_EQ(d.state, DeliveryState::kDelivered);
    EXPECT_EQ(d.attempts, 1);
  }
}

// Outcomes that finish within notify.outcome_commit_interval_ms of the last
// record wait for the next one: their deliveries stay in flight meanwhile
// (not sent again), their slots are refilled at once.
TEST_F(NotifyDaemonTest, OutcomesWithinTheIntervalAreRecordedTogetherAfterIt) {
  Configure("max_in_flight = 1\noutcome_commit_interval_ms = 1000\n");
  auto fake = std::make_shared<FakeChannelState>();
  fake->hold = true;
  StartDaemon(fake);
  for (const char* id : {"s1", "s2", "s3"})
    Feed(Wrap(MakeSubscription(id, "MEX", {}, "http://127.0.0.1:1/hook"), clock_));
  Feed(Wrap(MakeAlert("MEX", "USA"), clock_));
  ASSERT_TRUE(RunUntil([&] { return fake->sent.size() == 1 && Deliveries().size() == 3; }));
  fake->hold = false;
  // The first outcome is recorded at once (no record yet); the two
  // deliveries that take the freed slot one after the other finish within
  // the interval and wait.
  const auto first_poll = std::chrono::steady_clock::now();
  daemon_->PollChannel();
  daemon_->PollChannel();
  ASSERT_EQ(fake->sent.size(), 3u);
  std::set<std::string> sent_ids;
  for (const auto& m : fake->sent) sent_ids.insert(m.delivery_id);
  EXPECT_EQ(sent_ids.size(), 3u);  // none sent twice
  auto delivered = [&] {
    int n = 0;
    for (const Delivery& d : Deliveries()) n += d.state == DeliveryState::kDelivered;
    return n;
  };
  if (std::chrono::steady_clock::now() < first_poll + 900ms) {
    EXPECT_EQ(delivered(), 1);
    EXPECT_EQ(daemon_->stats().delivered, 1u);
    EXPECT_EQ(daemon_->in_flight(), 2);  // finished, not recorded yet
  }
  // The channel timer records them once the interval is over, in one commit.
  ASSERT_TRUE(RunUntil([&] { return delivered() == 3; }));
  EXPECT_GE(std::chrono::steady_clock::now() - first_poll, 1000ms);
  EXPECT_EQ(daemon_->stats().delivered, 3u);
  EXPECT_EQ(daemon_->in_flight(), 0);
  EXPECT_EQ(fake->sent.size(), 3u);
}

TEST_F(NotifyDaemonTest, OutcomesRecordedTogetherReachTheGatewayAsOneMessage) {
  Configure("max_in_flight = 3\n");
  auto fake = std::make_shared<FakeChannelState>();
  fake->hold = true;
  fake->script = {SendResult::Delivered(), SendResult::Permanent("HTTP 410"), SendResult::Delivered()};
  StartDaemon(fake);
  Feed(Wrap(MakeSubscription("s1", "MEX", {}, "http://127.0.0.1:1/hook"), clock_));
  for (const char* host : {"USA", "CAN", "GTM"}) Feed(Wrap(MakeAlert("MEX", host), clock_));
  ASSERT_TRUE(RunUntil([&] { return fake->sent.size() == 3; }));
  fake->hold = false;
  daemon_->PollChannel();  // all three finish, recorded in one commit
  ASSERT_TRUE(RunUntil([&] { return GatewayStatuses().size() == 3; }));
  std::vector<v1::Envelope> carrying;
  for (const v1::Envelope& env : DrainGateway()) {
    if (env.has_delivery_status() || env.has_delivery_statuses()) carrying.push_back(env);
  }
  ASSERT_EQ(carrying.size(), 1u);
  ASSERT_TRUE(carrying[0].has_delivery_statuses());
  const auto& statuses = carrying[0].delivery_statuses().statuses();
  ASSERT_EQ(statuses.size(), 3);
  std::map<std::string, v1::DeliveryStatus::State> states;
  for (const auto& st : statuses) states[st.delivery_id()] = st.state();
  for (const OutboundMessage& m : fake->sent) ASSERT_EQ(states.count(m.delivery_id), 1u) << m.delivery_id;
  EXPECT_EQ(states[fake->sent[0].delivery_id], v1::DeliveryStatus::STATE_DELIVERED);
  EXPECT_EQ(states[fake->sent[1].delivery_id], v1::DeliveryStatus::STATE_DEAD);
  EXPECT_EQ(states[fake->sent[2].delivery_id], v1::DeliveryStatus::STATE_DELIVERED);
}

TEST_F(NotifyDaemonTest, RestartResumesPendingDeliveriesWithTheSameId) {
  Configure("");
  auto first = std::make_shared<FakeChannelState>();
  first->hold = true;  // the process "dies" with the request in flight
  StartDaemon(first);
  Feed(Wrap(MakeSubscription("s1", "MEX", {}, "http://127.0.0.1:1/hook"), clock_));
  Feed(Wrap(MakeAlert("MEX", "USA"), clock_));
  ASSERT_TRUE(RunUntil([&] { return first->sent.size() == 1; }));
  daemon_.reset();

  auto second = std::make_shared<FakeChannelState>();
  StartDaemon(second);
  ASSERT_TRUE(RunUntil([&] { return daemon_->stats().delivered == 1; }));
  ASSERT_EQ(second->sent.size(), 1u);
  EXPECT_EQ(second->sent[0].delivery_id, first->sent[0].delivery_id);
  EXPECT_EQ(second->sent[0].body, first->sent[0].body);
  EXPECT_EQ(DeliveryOf("s1")->state, DeliveryState::kDelivered);
  EXPECT_EQ(DeliveryOf("s1")->attempts, 1);
  EXPECT_EQ(Deliveries().size(), 1u);
}

TEST_F(NotifyDaemonTest, ResultOfAttemptToDeletedSubscriptionIsIgnored) {
  Configure("");
  auto fake = std::make_shared<FakeChannelState>();
  fake->hold = true;
  StartDaemon(fake);
  Feed(Wrap(MakeSubscription("s1", "MEX", {}, "http://127.0.0.1:1/hook"), clock_));
  Feed(Wrap(MakeAlert("MEX", "USA"), clock_));
  ASSERT_TRUE(RunUntil([&] { return fake->sent.size() == 1; }));
  v1::Subscription deletion;
  deletion.set_subscription_id("s1");
  deletion.set_deleted(true);
  Feed(Wrap(deletion, clock_));
  ASSERT_TRUE(RunUntil([&] { return DeliveryOf("s1")->state == DeliveryState::kDead; }));
  fake->hold = false;
  ASSERT_TRUE(RunUntil([&] { return daemon_->in_flight() == 0; }));
  auto d = *DeliveryOf("s1");
  EXPECT_EQ(d.state, DeliveryState::kDead);
  EXPECT_EQ(d.last_error, "subscription deleted");
  EXPECT_EQ(d.attempts, 0);
  ASSERT_TRUE(RunUntil([&] { return GatewayStatuses().size() == 1; }));
  EXPECT_EQ(GatewayStatuses()[0].state(), v1::DeliveryStatus::STATE_DEAD);
}

// ---------------------------------------------------------------------------
// The real webhook channel against an HTTP server on 127.0.0.1, port 0

struct HttpRequest {
  std::string method;
  std::string path;
  std::map<std::string, std::string> headers;  // names lowercased
  std::string body;
};

// A minimal HTTP/1.1 server: one thread per connection. The responder
// returns a status code, or 0 to hang until the client gives up (or the
// server stops). Connections:
//   kClose      one request each, answered with `Connection: close`;
//   kKeepAlive  as many requests as the client sends (persistent, HTTP/1.1's default);
//   kDropIdle   answered as persistent, then closed without a word, as a
//               server whose idle timeout is shorter than the client's.
class TestHttpServer {
 public:
  using Responder = std::function<int(const HttpRequest&)>;
  enum class Connections { kClose, kKeepAlive, kDropIdle };

  explicit TestHttpServer(Responder responder, Connections mode = Connections::kClose)
      : responder_(std::move(responder)), mode_(mode) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    EXPECT_EQ(::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    EXPECT_EQ(::listen(listen_fd_, 64), 0);
    socklen_t len = sizeof(addr);
    getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    acceptor_ = std::thread([this] { AcceptLoop(); });
  }
  ~TestHttpServer() {
    stop_ = true;
    acceptor_.join();
    for (auto& t : connections_) t.join();
    ::close(listen_fd_);
  }
  std::string Url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }
  std::vector<HttpRequest> Requests() {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }
  size_t ConnectionCount() {
    std::lock_guard<std::mutex> lock(mu_);
    return accepted_;
  }
  size_t RequestCount(const std::string& path) {
    std::lock_guard<std::mutex> lock(mu_);
    size_t n = 0;
    for (const auto& r : requests_) n += r.path == path;
    return n;
  }

 private:
  void AcceptLoop() {
    while (!stop_) {
      pollfd p{listen_fd_, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      int fd = ::accept(listen_fd_, nullptr, nullptr);
      if (fd < 0) continue;
      {
        std::lock_guard<std::mutex> lock(mu_);
        ++accepted_;
      }
      connections_.emplace_back([this, fd] { Serve(fd); });
    }
  }

  // Reads with a 20 ms poll so a stop is noticed; false on EOF/error/stop.
  bool ReadSome(int fd, std::string* into) {
    while (!stop_) {
      pollfd p{fd, POLLIN, 0};
      int r = ::poll(&p, 1, 20);
      if (r == 0) continue;
      if (r < 0) return false;
      char buf[4096];
      ssize_t n = ::read(fd, buf, sizeof(buf));
      if (n <= 0) return false;
      into->append(buf, static_cast<size_t>(n));
      return true;
    }
    return false;
  }

  void Serve(int fd) {
    std::string data;
    while (ServeOne(fd, &data) && mode_ == Connections::kKeepAlive) {
    }
    ::close(fd);
  }

  // Reads one request from `fd` (after what `data` holds) and answers it;
  // leaves in `data` what followed it. False when the connection is done.
  bool ServeOne(int fd, std::string* buffered) {
    std::string& data = *buffered;
    size_t header_end;
    while ((header_end = data.find("\r\n\r\n")) == std::string::npos) {
      if (!ReadSome(fd, &data)) return false;
    }
    HttpRequest request;
    std::string head = data.substr(0, header_end);
    size_t line_end = head.find("\r\n");
    std::string request_line = head.substr(0, line_end);
    request.method = request_line.substr(0, request_line.find(' '));
    size_t path_start = request_line.find(' ') + 1;
    request.path = request_line.substr(path_start, request_line.find(' ', path_start) - path_start);
    size_t pos = line_end + 2;
    while (line_end != std::string::npos && pos < head.size()) {
      size_t next = head.find("\r\n", pos);
      std::string line = head.substr(pos, next == std::string::npos ? std::string::npos : next - pos);
      size_t colon = line.find(':');
      if (colon != std::string::npos) {
        std::string name = line.substr(0, colon);
        for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        size_t value_start = line.find_first_not_of(' ', colon + 1);
        request.headers[name] = value_start == std::string::npos ? "" : line.substr(value_start);
      }
      if (next == std::string::npos) break;
      pos = next + 2;
    }
    size_t length =
        request.headers.count("content-length") ? std::stoul(request.headers["content-length"]) : 0;
    std::string body = data.substr(header_end + 4);
    while (body.size() < length && ReadSome(fd, &body)) {
    }
    request.body = body.substr(0, length);
    data = body.size() > length ? body.substr(length) : std::string();
    {
      std::lock_guard<std::mutex> lock(mu_);
      requests_.push_back(request);
    }
    int status = responder_(request);
    if (status == 0) {
      std::string ignored;
      while (ReadSome(fd, &ignored)) {
      }
      return false;
    }
    std::string response = "HTTP/1.1 " + std::to_string(status) + " Test\r\nContent-Type: text/plain\r\n";
    if (status >= 300 && status < 400) response += "Location: " + Url("/ok") + "\r\n";
    std::string text = status >= 400 ? "nope" : "";
    response += "Content-Length: " + std::to_string(text.size()) + "\r\n";
    if (mode_ == Connections::kClose) response += "Connection: close\r\n";
    response += "\r\n" + text;
    size_t written = 0;
    while (written < response.size()) {
      ssize_t n = ::write(fd, response.data() + written, response.size() - written);
      if (n <= 0) break;
      written += static_cast<size_t>(n);
    }
    return written == response.size();
  }

  Responder responder_;
  Connections mode_;
  size_t accepted_ = 0;  // guarded by mu_
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread acceptor_;
  std::vector<std::thread> connections_;  // only the acceptor thread touches it until join
  std::mutex mu_;
  std::vector<HttpRequest> requests_;
};

class WebhookDaemonTest : public NotifyDaemonTest {};

TEST_F(WebhookDaemonTest, DeliversSignedWebhookWithStandardHeaders) {
  TestHttpServer server([](const HttpRequest&) { return 204; });
  Configure("");
  StartDaemon(nullptr);
  Feed(Wrap(MakeSubscription("s1", "MEX", {"USA"}, server.Url("/hook")), clock_));
  Feed(Wrap(MakeAlert("MEX", "USA"), clock_));
  ASSERT_TRUE(RunUntil([&] { return daemon_->stats().delivered == 1; }));

  auto delivery = *DeliveryOf("s1");
  EXPECT_EQ(delivery.state, DeliveryState::kDelivered);
  EXPECT_EQ(delivery.attempts, 1);
  auto requests = server.Requests();
  ASSERT_EQ(requests.size(), 1u);
  HttpRequest& r = requests[0];
  EXPECT_EQ(r.method, "POST");
  EXPECT_EQ(r.path, "/hook");
  EXPECT_EQ(r.headers["content-type"], "application/json");
  EXPECT_EQ(r.headers["user-agent"], std::string("amparo-notify/") + AMPARO_VERSION);
  EXPECT_EQ(r.headers["webhook-id"], delivery.delivery_id);
  EXPECT_EQ(r.headers["webhook-timestamp"], std::to_string(clock_.NowMs() / 1000));
  EXPECT_EQ(r.headers.count("expect"), 0u);
  EXPECT_EQ(r.body, delivery.body);
  EXPECT_EQ(r.headers["webhook-signature"],
            ReferenceSignature(kRawKey, r.headers["webhook-id"], r.headers["webhook-timestamp"], r.body));
  boost::json::value body = boost::json::parse(r.body);
  EXPECT_EQ(body.at("type").as_string(), "alert.raised");
  EXPECT_EQ(body.at("data").at("state").as_string(), "MEX");
  EXPECT_EQ(body.at("data").at("host_country").as_string(), "USA");
}

TEST_F(WebhookDaemonTest, Retries503ThenDeliversWithTheSameWebhookId) {
  std::atomic<int> calls{0};
  TestHttpServer server([&](const HttpRequest&) { return calls++ == 0 ? 503 : 200; });
  Configure("backoff_initial_ms = 1000\n");
  StartDaemon(nullptr);
  Feed(Wrap(MakeSubscription("s1", "MEX", {}, server.Url("/hook")), clock_));
  Feed(Wrap(MakeAlert("MEX", "USA"), clock_));
  ASSERT_TRUE(RunUntil([&] { return DeliveryOf("s1") && DeliveryOf("s1")->attempts == 1; }));
  EXPECT_EQ(DeliveryOf("s1")->state, DeliveryState::kRetrying);
  EXPECT_EQ(DeliveryOf("s1")->last_error, "HTTP 503: nope");
  clock_.Advance(1000);
  ASSERT_TRUE(RunUntil([&] { return DeliveryOf("s1")->state == DeliveryState::kDelivered; }));

  auto delivery = *DeliveryOf("s1");
  EXPECT_EQ(delivery.attempts, 2);
  EXPECT_EQ(delivery.last_error, "");
  auto requests = server.Requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[0].headers["webhook-id"], delivery.delivery_id);
  EXPECT_EQ(requests[1].headers["webhook-id"], delivery.delivery_id);
  EXPECT_EQ(requests[0].body, requests[1].body);
  // Signed again at the time of the retry.
  EXPECT_EQ(std::stoll(requests[1].headers["webhook-timestamp"]) -
                std::stoll(requests[0].headers["webhook-timestamp"]),
            1);
  for (auto& r : requests) {
    EXPECT_EQ(r.headers["webhook-signature"],
              ReferenceSignature(kRawKey, r.headers["webhook-id"], r.headers["webhook-timestamp"], r.body));
  }
  ASSERT_TRUE(RunUntil([&] { return GatewayStatuses().size() == 1; }));
  EXPECT_EQ(GatewayStatuses()[0].state(), v1::DeliveryStatus::STATE_DELIVERED);
  EXPECT_EQ(GatewayStatuses()[0].attempts(), 2u);
}

TEST_F(WebhookDaemonTest, BadRequestIsDeadAfterOneAttempt) {
  TestHttpServer server([](const HttpRequest&) { return 400; });
  Configure("");
  StartDaemon(nullptr);
  Feed(Wrap(MakeSubscription("s1", "MEX", {}, server.Url("/hook")), clock_));
  Feed(Wrap(MakeAlert("MEX", "USA"), clock_));
  ASSERT_TRUE(RunUntil([&] { return DeliveryOf("s1") && DeliveryOf("s1")->state == DeliveryState::kDead; }));
  auto delivery = *DeliveryOf("s1");
  EXPECT_EQ(delivery.attempts, 1);
  EXPECT_EQ(delivery.last_error, "HTTP 400: nope");
  clock_.Advance(3'600'000);
  RunUntil([] { return false; }, 150ms);
  EXPECT_EQ(server.Requests().size(), 1u);
  ASSERT_TRUE(RunUntil([&] { return GatewayStatuses().size() == 1; }));
  EXPECT_EQ(GatewayStatuses()[0].state(), v1::DeliveryStatus::STATE_DEAD);
  EXPECT_EQ(GatewayStatuses()[0].last_error(), "HTTP 400: nope");
}

TEST_F(WebhookDaemonTest, RedirectIsNotFollowedAndIsPermanent) {
  TestHttpServer server([](const HttpRequest& r) { return r.path == "/ok" ? 200 : 302; });
  Configure("");
  StartDaemon(nullptr);
  Feed(Wrap(MakeSubscription("s1", "MEX", {}, server.Url("/moved")), clock_));
  Feed(Wrap(MakeAlert("MEX", "USA"), clock_));
  ASSERT_TRUE(RunUntil([&] { return DeliveryOf("s1") && DeliveryOf("s1")->state == DeliveryState::kDead; }));
  EXPECT_EQ(DeliveryOf("s1")->last_error, "HTTP 302");
  EXPECT_EQ(server.RequestCount("/ok"), 0u);
}

TEST_F(WebhookDaemonTest, ServerErrorsUntilMaxAttemptsThenDead) {
  TestHttpServer server([](const HttpRequest&) { return 500; });
  Configure("max_attempts = 3\nbackoff_initial_ms = 100\nbackoff_max_ms = 100\n");
  StartDaemon(nullptr);
  Feed(Wrap(MakeSubscription("s1", "MEX", {}, server.Url("/hook")), clock_));
  Feed(Wrap(MakeAlert("MEX", "USA"), clock_));
  ASSERT_TRUE(RunUntil([&] {
    clock_.Advance(100);  // every retry is due at once
    return DeliveryOf("s1") && DeliveryOf("s1")->state == DeliveryState::kDead;
  }));
  auto delivery = *DeliveryOf("s1");
  EXPECT_EQ(delivery.attempts, 3);
  EXPECT_EQ(delivery.last_error, "gave up after 3 attempts: HTTP 500: nope");
  EXPECT_EQ(server.Requests().size(), 3u);
}

TEST_F(WebhookDaemonTest, ConnectionRefusedIsRetryable) {
  int probe = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(probe, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  socklen_t len = sizeof(addr);
  getsockname(probe, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(probe);  // nothing listens on this port now
  Configure("");
  StartDaemon(nullptr);
  Feed(Wrap(
      MakeSubscription("s1", "MEX", {}, "http://127.0.0.1:" + std::to_string(ntohs(addr.sin_port)) + "/"),
      clock_));
  Feed(Wrap(MakeAlert("MEX", "USA"), clock_));
  ASSERT_TRUE(RunUntil([&] { return DeliveryOf("s1") && DeliveryOf("s1")->attempts == 1; }));
  EXPECT_EQ(DeliveryOf("s1")->state, DeliveryState::kRetrying);
  EXPECT_EQ(DeliveryOf("s1")->last_error.rfind("curl: ", 0), 0u) << DeliveryOf("s1")->last_error;
}

class KeepAliveTest : public WebhookDaemonTest {
 protected:
  static constexpr size_t kAlerts = 5;
  // Five alerts for one subscription to `server`, each sent after the one
  // before was delivered. False when one was not delivered in time.
  bool DeliverOneAfterAnother(TestHttpServer& server) {
    Configure("");
    StartDaemon(nullptr);
    Feed(Wrap(MakeSubscription("s1", "MEX", {}, server.Url("/hook")), clock_));
    size_t delivered = 0;
    for (const char* host : {"USA", "CAN", "GTM", "BLZ", "ESP"}) {
      Feed(Wrap(MakeAlert("MEX", host), clock_));
      ++delivered;
      if (!RunUntil([&] { return daemon_->stats().delivered == delivered; })) return false;
    }
    return server.RequestCount("/hook") == kAlerts;
  }
};

TEST_F(KeepAliveTest, WebhooksOneAfterAnotherToOneEndpointShareAConnection) {
  TestHttpServer server([](const HttpRequest&) { return 204; }, TestHttpServer::Connections::kKeepAlive);
  ASSERT_TRUE(DeliverOneAfterAnother(server));
  EXPECT_EQ(server.ConnectionCount(), 1u);  // kept alive, not a connect per webhook
}

TEST_F(KeepAliveTest, AnEndpointThatDropsIdleConnectionsStillGetsEachWebhookAtTheFirstAttempt) {
  TestHttpServer server([](const HttpRequest&) { return 204; }, TestHttpServer::Connections::kDropIdle);
  ASSERT_TRUE(DeliverOneAfterAnother(server));
  EXPECT_EQ(server.ConnectionCount(), kAlerts);
  EXPECT_EQ(daemon_->stats().retries, 0u);
  auto deliveries = Deliveries();
  ASSERT_EQ(deliveries.size(), kAlerts);
  for (const Delivery& d : deliveries) EXPECT_EQ(d.attempts, 1) << d.delivery_id;
}

TEST_F(WebhookDaemonTest, HangingEndpointDoesNotBlockAnotherOne) {
  TestHttpServer server([](const HttpRequest& r) { return r.path == "/hang" ? 0 : 200; });
  Configure("http_timeout_ms = 1500\nmax_in_flight = 4\n");
  StartDaemon(nullptr);
  Feed(Wrap(MakeSubscription("slow", "AAA", {}, server.Url("/hang")), clock_));
  Feed(Wrap(MakeSubscription("good", "BBB", {}, server.Url("/ok")), clock_));
  Feed(Wrap(MakeAlert("AAA", "USA"), clock_));
  // The hanging request is in flight first...
  ASSERT_TRUE(RunUntil([&] { return server.RequestCount("/hang") == 1; }));
  EXPECT_EQ(daemon_->in_flight(), 1);
  // ...and a later delivery to another endpoint goes through meanwhile.
  auto started = std::chrono::steady_clock::now();
  Feed(Wrap(MakeAlert("BBB", "USA"), clock_));
  ASSERT_TRUE(
      RunUntil([&] { return DeliveryOf("good") && DeliveryOf("good")->state == DeliveryState::kDelivered; }));
  auto elapsed = std::chrono::steady_clock::now() - started;
  EXPECT_LT(elapsed, 1000ms);
  EXPECT_EQ(DeliveryOf("slow")->state, DeliveryState::kPending);
  EXPECT_EQ(daemon_->in_flight(), 1);
  // The hanging one times out on its own and is retried later.
  ASSERT_TRUE(RunUntil([&] { return DeliveryOf("slow")->attempts == 1; }));
  EXPECT_EQ(DeliveryOf("slow")->state, DeliveryState::kRetrying);
  EXPECT_EQ(DeliveryOf("slow")->last_error, "curl: Timeout was reached");
}

}  // namespace
}  // namespace amparo::notify
