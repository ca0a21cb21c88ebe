// How the gateway stores an alert: the ConsularAlert's protobuf bytes in
// alerts.alert (json = ''), its JSON rendered on read so that every API
// answer is what it was when the JSON text was stored; rows written before
// (JSON text, alert NULL) are served from their text; a blob that does not
// read back is kDataLoss naming the alert, and stays invisible to other
// states.
#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <string>

#include "amparo/v1/envelope.pb.h"
#include "common/alert_json.h"
#include "common/testing.h"
#include "services/gateway/api_test_support.h"
#include "services/gateway/gateway_api.h"
#include "services/gateway/gateway_store.h"

namespace amparo::gateway {
namespace {

constexpr char kAlertId[] = "usgs:us6000pi9w/PHL/JPN";
constexpr char kAlertPath[] = "/api/v1/alerts/usgs%3Aus6000pi9w%2FPHL%2FJPN";

// An alert as rules writes it: 1,000 packed registrant ids, a footprint,
// text that JSON must escape.
v1::ConsularAlert RichAlert(uint32_t revision = 2, uint32_t notification = 0) {
  v1::ConsularAlert a;
  a.set_alert_id(kAlertId);
  a.set_incident_id("usgs:us6000pi9w");
  a.set_revision(revision);
  a.set_notification(notification);
  a.set_state("PHL");
  a.set_host_country("JPN");
  a.set_level(v1::ALERT_LEVEL_CRITICAL);
  a.set_hazard(v1::HAZARD_KIND_EARTHQUAKE);
  a.set_headline("M 6.6 - 27km ESE of Tomakomai \"Hokkaid\u014d\"\t\\");
  a.set_reason("12 registrants within 85.5 km; 3 vulnerable");
  a.mutable_exposure()->set_registrants(1000);
  a.mutable_exposure()->set_household_members(2400);
  a.mutable_exposure()->set_vulnerable(3);
  auto* circle = a.mutable_footprint()->add_circles();
  circle->mutable_center()->set_lat(42.6861);
  circle->mutable_center()->set_lon(141.9299);
  circle->set_radius_km(85.5);
  a.set_raised_ms(1'700'000'000'000);
  a.set_event_sent_ms(1'699'999'990'123);
  a.set_event_status("Actual");
  std::string packed;
  for (int i = 0; i < 1000; ++i) {
    for (int b = 0; b < 16; ++b) packed.push_back(static_cast<char>((i * 31 + b * 7) & 0xff));
  }
  a.set_registrant_ids_packed(packed);
  a.set_phase(v1::CRISIS_PHASE_RESTRICTION);
  a.set_policy_rule("default/earthquake-critical");
  a.add_sources("usgs");
  return a;
}

// A delivery of kAlertId as notify reports it.
v1::DeliveryStatus DeliveryOfAlert(const std::string& id, v1::DeliveryStatus::State state, uint32_t attempts,
                                   int64_t updated_ms) {
  v1::DeliveryStatus d;
  d.set_delivery_id(id);
  d.set_alert_id(kAlertId);
  d.set_state(state);
  d.set_attempts(attempts);
  d.set_updated_ms(updated_ms);
  return d;
}

// The API form of an alert whose JSON is `alert_json`: that object with the
// deliveries appended (no silence).
std::string WithDeliveries(const std::string& alert_json, const std::string& deliveries) {
  return alert_json.substr(0, alert_json.size() - 1) + ",\"deliveries\":" + deliveries + "}";
}

class AlertStorageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    db_.emplace(std::move(*Db::Open(dir_ / "gateway.db")));
    ASSERT_TRUE(MigrateGatewayDb(*db_).ok());
    api_ = std::make_unique<GatewayApi>(*db_, clock_, metrics_, keys_, nullptr, UnlimitedRateApiOptions());
    phl_ = *CreateToken(*db_, "PHL", Role::kOperator, clock_);
    jpn_ = *CreateToken(*db_, "JPN", Role::kOperator, clock_);
  }

  HttpResponse Get(const std::string& target, const std::string& token) {
    return api_->Handle(MakeApiRequest("GET", target, token));
  }

  // The stored row's json column, whether `alert` is NULL, and its bytes.
  struct Row {
    std::string json;
    bool alert_is_null = true;
    std::string alert;
  };
  Row ReadRow(const std::string& alert_id) {
    auto q = db_->Prepare("SELECT json, alert IS NULL, alert FROM alerts WHERE alert_id = ?");
    EXPECT_TRUE(q.ok());
    q->Bind(1, alert_id);
    Row row;
    auto found = q->Step();
    EXPECT_TRUE(found.ok() && *found) << alert_id;
    if (!found.ok() || !*found) return row;
    row.json = q->ColumnText(0);
    row.alert_is_null = q->ColumnInt(1) != 0;
    row.alert = q->ColumnBlob(2);
    return row;
  }

  void Sql(const std::string& sql) { ASSERT_TRUE(db_->Exec(sql).ok()) << sql; }

  testing::TempDir dir_;
  std::optional<Db> db_;
  FakeClock clock_;
  GatewayMetrics metrics_;
  RegistryKeys keys_ = RegistryKeys::FromBytes(std::string(32, 's'));
  std::unique_ptr<GatewayApi> api_;
  std::string phl_, jpn_;
};

TEST_F(AlertStorageTest, UpsertStoresTheMessageBytesAndNoJsonText) {
  const v1::ConsularAlert alert = RichAlert();
  ASSERT_TRUE(*UpsertAlert(*db_, alert, clock_));

  Row row = ReadRow(kAlertId);
  EXPECT_EQ(row.json, "");
  ASSERT_FALSE(row.alert_is_null);
  v1::ConsularAlert parsed;
  ASSERT_TRUE(parsed.ParseFromString(row.alert));
  EXPECT_EQ(parsed.SerializeAsString(), alert.SerializeAsString());
  EXPECT_EQ(parsed.registrant_ids_packed().size(), 16'000u);
  // Ids packed: well under half the JSON text this row used to hold.
  EXPECT_LT(row.alert.size(), AlertToJson(alert).size() / 2);

  // A repeat of the revision replaces the bytes.
  ASSERT_TRUE(*UpsertAlert(*db_, RichAlert(2, 1), clock_));
  row = ReadRow(kAlertId);
  EXPECT_EQ(row.json, "");
  ASSERT_TRUE(parsed.ParseFromString(row.alert));
  EXPECT_EQ(parsed.notification(), 1u);
}

TEST_F(AlertStorageTest, EveryReaderGivesExactlyAlertToJsonOfTheStoredMessage) {
  const v1::ConsularAlert alert = RichAlert();
  ASSERT_TRUE(*UpsertAlert(*db_, alert, clock_));
  ASSERT_TRUE(UpsertDelivery(
                  *db_, DeliveryOfAlert("msg_1", v1::DeliveryStatus::STATE_DELIVERED, 1, 1'700'000'001'000))
                  .ok());
  const std::string json = AlertToJson(alert);

  auto stored = GetAlert(*db_, "PHL", kAlertId);
  ASSERT_TRUE(stored.ok()) << stored.status().ToString();
  EXPECT_EQ(stored->json, json);
  EXPECT_EQ(stored->revision, 2);
  EXPECT_EQ(stored->incident_id, "usgs:us6000pi9w");
  auto listed = ListAlerts(*db_, "PHL", 10);
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].json, json);
  auto incidents = ListIncidents(*db_, "PHL", 10);
  ASSERT_TRUE(incidents.ok());
  ASSERT_EQ(incidents->size(), 1u);
  ASSERT_EQ((*incidents)[0].alerts.size(), 1u);
  EXPECT_EQ((*incidents)[0].alerts[0].json, json);

  const std::string api_form =
      WithDeliveries(json, R"([{"delivery_id":"msg_1","status":"delivered","attempts":1}])");
  HttpResponse r = Get(kAlertPath, phl_);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, api_form);
  r = Get("/api/v1/alerts", phl_);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "{\"items\":[" + api_form + "]}");
  // The live frame of the row is the same API form.
  EXPECT_EQ(LiveAlertFrame(*stored), "{\"type\":\"alert\",\"alert\":" + api_form + "}");
}

TEST_F(AlertStorageTest, ARowStoredAsJsonTextBeforeTheMigrationIsServedUnchanged) {
  // As a gateway before the `alert` column wrote it: the JSON text (here
  // with ids as hex strings, as messages from before the packed field had
  // them), `alert` NULL.
  const std::string legacy_json =
      R"({"alert_id":"usgs:us6000pi9w/PHL/JPN","incident_id":"usgs:us6000pi9w","revision":1,)"
      R"("state":"PHL","host_country":"JPN","level":"warning","headline":"legacy \"row\"",)"
      R"("registrant_ids":["0123456789abcdef0123456789abcdef"]})";
  Sql("INSERT INTO alerts(alert_id, state, incident_id, revision, json, updated_ms) VALUES("
      "'usgs:us6000pi9w/PHL/JPN', 'PHL', 'usgs:us6000pi9w', 1, '" +
      legacy_json + "', 1700000000000)");
  ASSERT_TRUE(ReadRow(kAlertId).alert_is_null);

  auto stored = GetAlert(*db_, "PHL", kAlertId);
  ASSERT_TRUE(stored.ok()) << stored.status().ToString();
  EXPECT_EQ(stored->json, legacy_json);
  EXPECT_EQ(stored->revision, 1);
  EXPECT_EQ(stored->updated_ms, 1'700'000'000'000);
  EXPECT_EQ((*ListAlerts(*db_, "PHL", 10))[0].json, legacy_json);
  EXPECT_EQ((*ListIncidents(*db_, "PHL", 10))[0].alerts[0].json, legacy_json);
  HttpResponse r = Get(kAlertPath, phl_);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, WithDeliveries(legacy_json, "[]"));
  r = Get("/api/v1/alerts", phl_);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "{\"items\":[" + WithDeliveries(legacy_json, "[]") + "]}");

  // The next revision replaces the text with the message's bytes.
  ASSERT_TRUE(*UpsertAlert(*db_, RichAlert(2), clock_));
  Row row = ReadRow(kAlertId);
  EXPECT_EQ(row.json, "");
  EXPECT_FALSE(row.alert_is_null);
  EXPECT_EQ(GetAlert(*db_, "PHL", kAlertId)->json, AlertToJson(RichAlert(2)));
}

TEST_F(AlertStorageTest, ACorruptBlobIsDataLossNamingTheAlertAndOtherStatesStillSeeNothing) {
  ASSERT_TRUE(*UpsertAlert(*db_, RichAlert(), clock_));
  v1::ConsularAlert jpn_alert = RichAlert(1);
  jpn_alert.set_alert_id("usgs:us6000pi9w/JPN/PHL");
  jpn_alert.set_state("JPN");
  jpn_alert.set_host_country("PHL");
  ASSERT_TRUE(*UpsertAlert(*db_, jpn_alert, clock_));
  // 0xff... is no valid protobuf field key.
  Sql("UPDATE alerts SET alert = x'ffffffffffffffffffff' WHERE alert_id = 'usgs:us6000pi9w/PHL/JPN'");

  auto got = GetAlert(*db_, "PHL", kAlertId);
  ASSERT_EQ(got.status().code(), StatusCode::kDataLoss);
  EXPECT_EQ(got.status().message(), "stored alert usgs:us6000pi9w/PHL/JPN does not parse");
  auto listed = ListAlerts(*db_, "PHL", 10);
  ASSERT_EQ(listed.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(listed.status().message().find(kAlertId), std::string::npos);
  EXPECT_EQ(ListIncidents(*db_, "PHL", 10).status().code(), StatusCode::kDataLoss);

  // Another state: as if the row did not exist; its own alert reads.
  EXPECT_EQ(GetAlert(*db_, "JPN", kAlertId).status().code(), StatusCode::kNotFound);
  auto jpn_list = ListAlerts(*db_, "JPN", 10);
  ASSERT_TRUE(jpn_list.ok()) << jpn_list.status().ToString();
  ASSERT_EQ(jpn_list->size(), 1u);
  EXPECT_EQ((*jpn_list)[0].json, AlertToJson(jpn_alert));

  // Over the API: the owner gets a 500 (the log names the alert), never a
  // made-up alert; another state's token gets the 404 of a missing alert.
  ::testing::internal::CaptureStderr();
  HttpResponse r = Get(kAlertPath, phl_);
  const std::string logged = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(r.status, 500);
  EXPECT_NE(r.body.find("\"code\":\"internal\""), std::string::npos) << r.body;
  EXPECT_NE(logged.find("stored alert usgs:us6000pi9w/PHL/JPN does not parse"), std::string::npos) << logged;
  EXPECT_EQ(Get("/api/v1/alerts", phl_).status, 500);
  r = Get(kAlertPath, jpn_);
  EXPECT_EQ(r.status, 404);
  EXPECT_NE(r.body.find("\"code\":\"not_found\""), std::string::npos) << r.body;
  r = Get("/api/v1/alerts", jpn_);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "{\"items\":[" + WithDeliveries(AlertToJson(jpn_alert), "[]") + "]}");
}

TEST_F(AlertStorageTest, ABlobHoldingAnotherAlertIsDataLossToo) {
  ASSERT_TRUE(*UpsertAlert(*db_, RichAlert(), clock_));
  v1::ConsularAlert other = RichAlert();
  other.set_alert_id("usgs:us6000pi9w/PHL/KOR");
  auto q = db_->Prepare("UPDATE alerts SET alert = ? WHERE alert_id = ?");
  ASSERT_TRUE(q.ok());
  q->BindBlob(1, other.SerializeAsString()).Bind(2, kAlertId);
  ASSERT_TRUE(q->Run().ok());

  auto got = GetAlert(*db_, "PHL", kAlertId);
  ASSERT_EQ(got.status().code(), StatusCode::kDataLoss);
  EXPECT_EQ(got.status().message(),
            "stored alert usgs:us6000pi9w/PHL/JPN holds alert 'usgs:us6000pi9w/PHL/KOR'");
}

TEST_F(AlertStorageTest, StoredAlertOfMessageRendersTheMessageWithTheRowsDeliveries) {
  const v1::ConsularAlert alert = RichAlert(2, 1);
  ASSERT_TRUE(*UpsertAlert(*db_, alert, clock_));
  ASSERT_TRUE(
      UpsertDelivery(*db_, DeliveryOfAlert("msg_9", v1::DeliveryStatus::STATE_RETRYING, 3, 1'700'000'002'000))
          .ok());

  auto of_message = StoredAlertOfMessage(*db_, alert);
  ASSERT_TRUE(of_message.ok()) << of_message.status().ToString();
  auto read_back = GetAlert(*db_, "PHL", kAlertId);
  ASSERT_TRUE(read_back.ok());
  EXPECT_EQ(of_message->json, AlertToJson(alert));
  EXPECT_EQ(of_message->updated_ms, read_back->updated_ms);
  EXPECT_EQ(of_message->incident_id, "usgs:us6000pi9w");
  ASSERT_EQ(of_message->deliveries.size(), 1u);
  EXPECT_EQ(of_message->deliveries[0].status, "retrying");
  EXPECT_EQ(LiveAlertFrame(*of_message), LiveAlertFrame(*read_back));

  // Not the stored (revision, notification), or not stored at all.
  EXPECT_EQ(StoredAlertOfMessage(*db_, RichAlert(2, 0)).status().code(), StatusCode::kFailedPrecondition);
  v1::ConsularAlert unknown = alert;
  unknown.set_alert_id("usgs:us6000pi9w/PHL/KOR");
  EXPECT_EQ(StoredAlertOfMessage(*db_, unknown).status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace amparo::gateway
