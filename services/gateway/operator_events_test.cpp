// Operator-entered events through the API (GatewayApi::Handle, no socket):
// validation naming the bad field, roles, the CrisisEvent enqueued for
// amparo-ingest with each revision, cancel, tenant isolation and the audit
// trail.
#include <gtest/gtest.h>
#include <boost/json.hpp>

#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "amparo/v1/envelope.pb.h"
#include "common/crypto.h"
#include "common/link.h"
#include "common/testing.h"
#include "services/gateway/api_test_support.h"
#include "services/gateway/gateway_api.h"
#include "services/gateway/operator_events.h"

namespace amparo::gateway {
namespace {

namespace json = boost::json;

// A circle around Manila and a triangle near Quezon City.
constexpr const char* kManilaFlood = R"({
  "hazard": "flood", "severity": "severe", "urgency": "immediate", "certainty": "observed",
  "headline": "Flooding in Manila", "description": "Rivers over their banks.\nStay away from Marikina.",
  "language": "en-PH", "expires": "2023-11-16T00:00:00+08:00",
  "area": {"description": "Metro Manila",
           "circles": [{"lat": 14.5995, "lon": 120.9842, "radius_km": 25}],
           "polygons": [[[14.6, 121.0], [14.7, 121.1], [14.6, 121.2], [14.6, 121.0]]]}})";

class OperatorEventsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    db_.emplace(std::move(*Db::Open(dir_ / "gateway.db")));
    ASSERT_TRUE(MigrateGatewayDb(*db_).ok());
    api_ = std::make_unique<GatewayApi>(*db_, clock_, metrics_, keys_, nullptr, UnlimitedRateApiOptions());
    for (Role role : {Role::kRegistrar, Role::kOperator, Role::kAdmin}) {
      phl_[role] = *CreateToken(*db_, "PHL", role, clock_);
      npl_[role] = *CreateToken(*db_, "NPL", role, clock_);
    }
  }

  HttpResponse Call(const std::string& method, const std::string& target, const std::string& token,
                    const std::string& body = "", const std::string& purpose = "") {
    return api_->Handle(MakeApiRequest(method, target, token, body, purpose));
  }

  // Posts kManilaFlood as PHL's operator; returns the event_id.
  std::string PostManilaFlood() {
    HttpResponse r = Call("POST", "/api/v1/events", phl_[Role::kOperator], kManilaFlood);
    EXPECT_EQ(r.status, 202) << r.body;
    return std::string(json::parse(r.body).at("event_id").as_string());
  }

  std::vector<v1::CrisisEvent> Enqueued() {
    auto pending = PendingOutbound(*db_, "ingest");
    EXPECT_TRUE(pending.ok());
    std::vector<v1::CrisisEvent> out;
    for (const auto& env : *pending) {
      EXPECT_EQ(env.producer(), "amparo-gateway");
      EXPECT_TRUE(env.has_crisis_event());
      out.push_back(env.crisis_event());
    }
    return out;
  }

  // (actor, state, action, subject, purpose) of every audit entry about events.
  std::vector<std::vector<std::string>> EventAudit() {
    auto q = db_->Prepare(
        "SELECT actor, state, action, subject, purpose FROM audit_log WHERE action LIKE 'event.%' ORDER BY seq");
    EXPECT_TRUE(q.ok());
    std::vector<std::vector<std::string>> rows;
    while (*q->Step()) {
      rows.push_back({q->ColumnText(0), q->ColumnText(1), q->ColumnText(2), q->ColumnText(3), q->ColumnText(4)});
    }
    return rows;
  }

  std::string TokenId(const std::string& token) { return Authenticate(*db_, token)->id; }

  testing::TempDir dir_;
  std::optional<Db> db_;
  FakeClock clock_{1'700'000'000'000};  // 2023-11-14T22:13:20Z
  GatewayMetrics metrics_;
  RegistryKeys keys_ = RegistryKeys::FromBytes(std::string(32, 'e'));
  std::unique_ptr<GatewayApi> api_;
  std::map<Role, std::string> phl_, npl_;
};

TEST_F(OperatorEventsTest, PostEnqueuesARestrictedCrisisEventForIngestAndAnswers202) {
  HttpResponse r = Call("POST", "/api/v1/events", phl_[Role::kOperator], kManilaFlood);
  ASSERT_EQ(r.status, 202) << r.body;
  json::object body = json::parse(r.body).as_object();
  ASSERT_EQ(body.size(), 2u) << r.body;
  const std::string event_id(body.at("event_id").as_string());
  ASSERT_EQ(event_id.size(), std::string("operator:").size() + 32);
  EXPECT_EQ(event_id.substr(0, 9), "operator:");
  EXPECT_EQ(body.at("revision").as_int64(), 1);

  std::vector<v1::CrisisEvent> sent = Enqueued();
  ASSERT_EQ(sent.size(), 1u);
  const v1::CrisisEvent& e = sent[0];
  EXPECT_EQ(e.event_id(), event_id);
  EXPECT_EQ(e.source(), "operator");
  EXPECT_EQ(e.source_id(), event_id.substr(9));
  EXPECT_EQ(e.revision(), 1);
  EXPECT_EQ(e.msg_type(), v1::MESSAGE_TYPE_ALERT);
  EXPECT_EQ(e.status(), v1::EVENT_STATUS_ACTUAL);
  EXPECT_EQ(e.hazard(), v1::HAZARD_KIND_FLOOD);
  EXPECT_EQ(e.severity(), v1::SEVERITY_SEVERE);
  EXPECT_EQ(e.urgency(), v1::URGENCY_IMMEDIATE);
  EXPECT_EQ(e.certainty(), v1::CERTAINTY_OBSERVED);
  EXPECT_EQ(e.scope(), "Restricted");
  ASSERT_EQ(e.restricted_to_states_size(), 1);
  EXPECT_EQ(e.restricted_to_states(0), "PHL");
  EXPECT_EQ(e.sent_ms(), 1'700'000'000'000);
  EXPECT_EQ(e.expires_ms(), 1'700'064'000'000);  // 2023-11-16T00:00:00+08:00
  EXPECT_TRUE(e.references().empty());
  ASSERT_EQ(e.areas_size(), 1);
  const v1::Area& area = e.areas(0);
  EXPECT_EQ(area.footprint_model(), "source");
  EXPECT_EQ(area.description(), "Metro Manila");
  ASSERT_EQ(area.circles_size(), 1);
  EXPECT_DOUBLE_EQ(area.circles(0).center().lat(), 14.5995);
  EXPECT_DOUBLE_EQ(area.circles(0).center().lon(), 120.9842);
  EXPECT_DOUBLE_EQ(area.circles(0).radius_km(), 25);
  ASSERT_EQ(area.polygons_size(), 1);
  ASSERT_EQ(area.polygons(0).vertices_size(), 4);
  EXPECT_DOUBLE_EQ(area.polygons(0).vertices(1).lat(), 14.7);
  EXPECT_DOUBLE_EQ(area.polygons(0).vertices(1).lon(), 121.1);
  ASSERT_EQ(e.texts_size(), 1);
  EXPECT_EQ(e.texts(0).language(), "en-PH");
  EXPECT_EQ(e.texts(0).headline(), "Flooding in Manila");
  EXPECT_EQ(e.texts(0).description(), "Rivers over their banks.\nStay away from Marikina.");

  // The stored form, with the defaults the request left out.
  HttpResponse got = Call("GET", "/api/v1/events/" + event_id, phl_[Role::kOperator]);
  ASSERT_EQ(got.status, 200) << got.body;
  json::object stored = json::parse(got.body).as_object();
  EXPECT_EQ(stored.at("state").as_string(), "PHL");
  EXPECT_EQ(stored.at("status").as_string(), "actual");
  EXPECT_EQ(stored.at("msg_type").as_string(), "alert");
  EXPECT_EQ(stored.at("cancelled").as_bool(), false);
  EXPECT_EQ(stored.at("expires").as_string(), "2023-11-15T16:00:00.000Z");
  EXPECT_EQ(stored.at("area").at("circles").as_array().size(), 1u);
}

TEST_F(OperatorEventsTest, DefaultsAndExerciseStatus) {
  HttpResponse r = Call("POST", "/api/v1/events", phl_[Role::kAdmin],
                        R"({"hazard":"conflict","severity":"extreme","status":"exercise","headline":"Drill",
                            "area":{"circles":[{"lat":27.7,"lon":85.3,"radius_km":1000}]}})");
  ASSERT_EQ(r.status, 202) << r.body;
  std::vector<v1::CrisisEvent> sent = Enqueued();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].status(), v1::EVENT_STATUS_EXERCISE);
  EXPECT_EQ(sent[0].hazard(), v1::HAZARD_KIND_CONFLICT);
  EXPECT_EQ(sent[0].urgency(), v1::URGENCY_UNKNOWN);
  EXPECT_EQ(sent[0].certainty(), v1::CERTAINTY_UNKNOWN);
  EXPECT_EQ(sent[0].expires_ms(), 0);
  EXPECT_EQ(sent[0].texts(0).language(), "en");
  EXPECT_EQ(sent[0].areas(0).polygons_size(), 0);
}

TEST_F(OperatorEventsTest, BadInputIs400NamingTheField) {
  const std::string long_headline(201, 'h');
  const std::string long_description(4001, 'd');
  // Replaces (or, with an empty value, removes) one top-level field of kManilaFlood.
  auto with = [](const std::string& key, const std::string& value) {
    json::object o = json::parse(kManilaFlood).as_object();
    if (value.empty()) {
      o.erase(key);
    } else {
      o[key] = json::parse(value);
    }
    return json::serialize(o);
  };
  auto with_area = [&](const std::string& area) { return with("area", area); };
  const std::vector<std::pair<std::string, std::string>> cases = {
      {with("hazard", ""), "hazard"},
      {with("hazard", R"("meteor")"), "hazard"},
      {with("hazard", "3"), "hazard"},
      {with("severity", ""), "severity"},
      {with("severity", R"("catastrophic")"), "severity"},
      {with("urgency", R"("now")"), "urgency"},
      {with("certainty", R"("sure")"), "certainty"},
      {with("status", R"("test")"), "status"},
      {with("headline", ""), "headline"},
      {with("headline", R"("   ")"), "headline"},
      {with("headline", "\"" + long_headline + "\""), "headline"},
      {with("headline", R"("two\nlines")"), "headline"},
      {with("description", "\"" + long_description + "\""), "description"},
      {with("language", R"("e")"), "language"},
      {with("expires", R"("tomorrow")"), "expires"},
      {with("expires", R"("2023-11-14T00:00:00Z")"), "expires"},  // in the past
      {with("colour", R"("red")"), "colour"},
      {with("area", ""), "area"},
      {with_area(R"([])"), "area"},
      {with_area(R"({"description":"nothing drawn"})"), "area"},
      {with_area(R"({"circles":[],"polygons":[]})"), "area"},
      {with_area(R"({"circles":[{"lat":14,"lon":121,"radius_km":0}]})"), "area.circles[0].radius_km"},
      {with_area(R"({"circles":[{"lat":14,"lon":121,"radius_km":1000.5}]})"), "area.circles[0].radius_km"},
      {with_area(R"({"circles":[{"lat":14,"lon":121,"radius_km":5},{"lat":91,"lon":121,"radius_km":5}]})"),
       "area.circles[1].lat"},
      {with_area(R"({"circles":[{"lat":14,"lon":-181,"radius_km":5}]})"), "area.circles[0].lon"},
      {with_area(R"({"circles":[{"lat":14,"radius_km":5}]})"), "area.circles[0].lon"},
      {with_area(R"({"circles":[{"lat":"14","lon":121,"radius_km":5}]})"), "area.circles[0].lat"},
      {with_area(R"({"circles":[{"lat":14,"lon":121,"radius_km":5,"colour":"red"}]})"),
       "area.circles[0].colour"},
      {with_area(R"({"shape":"square"})"), "area.shape"},
      {with_area(R"({"polygons":[[[14,121],[15,121],[14,121]]]})"), "area.polygons[0]"},
      {with_area(R"({"polygons":[[[14,121],[15,121],[15,122],[14,122]]]})"), "area.polygons[0]"},
      {with_area(R"({"polygons":[[[14,121],[15,121],[16,121],[14,121]]]})"), "area.polygons[0]"},
      {with_area(R"({"polygons":[[[14,121],[15,200],[15,122],[14,121]]]})"), "area.polygons[0][1][1]"},
      {with_area(R"({"polygons":[[[14,121],[15],[15,122],[14,121]]]})"), "area.polygons[0][1]"},
      {with_area(R"({"polygons":[{"lat":14}]})"), "area.polygons[0]"},
  };
  for (const auto& [body, field] : cases) {
    HttpResponse r = Call("POST", "/api/v1/events", phl_[Role::kOperator], body);
    ASSERT_EQ(r.status, 400) << field << ": " << r.body;
    json::object error = json::parse(r.body).at("error").as_object();
    EXPECT_EQ(error.at("code").as_string(), "invalid_argument") << field;
    EXPECT_EQ(error.at("field").as_string(), field) << r.body;
  }
  EXPECT_EQ(Call("POST", "/api/v1/events", phl_[Role::kOperator], "not json").status, 400);
  EXPECT_TRUE(Enqueued().empty()) << "nothing is sent for a rejected event";
  EXPECT_TRUE(EventAudit().empty());
}

TEST_F(OperatorEventsTest, OnlyOperatorsAndAdminsMayUseEvents) {
  const std::string id = PostManilaFlood();
  for (const auto& [method, target, body] :
       std::vector<std::tuple<std::string, std::string, std::string>>{
           {"POST", "/api/v1/events", kManilaFlood},
           {"GET", "/api/v1/events", ""},
           {"GET", "/api/v1/events/" + id, ""},
           {"PATCH", "/api/v1/events/" + id, R"({"severity":"minor"})"},
           {"DELETE", "/api/v1/events/" + id, ""}}) {
    HttpResponse r = Call(method, target, phl_[Role::kRegistrar], body);
    EXPECT_EQ(r.status, 403) << method << " " << target;
    EXPECT_EQ(json::parse(r.body).at("error").at("code").as_string(), "permission_denied");
  }
  EXPECT_EQ(Enqueued().size(), 1u);
}

TEST_F(OperatorEventsTest, PatchSendsTheNextRevisionAsAnUpdate) {
  const std::string id = PostManilaFlood();
  clock_.Advance(60'000);
  HttpResponse r = Call("PATCH", "/api/v1/events/" + id, phl_[Role::kOperator],
                        R"({"severity":"extreme","headline":"Flooding in Manila worsens",
                            "area":{"circles":[{"lat":14.6,"lon":121.0,"radius_km":40}]}})");
  ASSERT_EQ(r.status, 202) << r.body;
  EXPECT_EQ(json::parse(r.body), json::parse(R"({"event_id":")" + id + R"(","revision":2})"));

  std::vector<v1::CrisisEvent> sent = Enqueued();
  ASSERT_EQ(sent.size(), 2u);
  const v1::CrisisEvent& update = sent[1];
  EXPECT_EQ(update.event_id(), id);
  EXPECT_EQ(update.revision(), 2);
  EXPECT_EQ(update.msg_type(), v1::MESSAGE_TYPE_UPDATE);
  EXPECT_EQ(update.severity(), v1::SEVERITY_EXTREME);
  EXPECT_EQ(update.hazard(), v1::HAZARD_KIND_FLOOD);  // kept from revision 1
  EXPECT_EQ(update.texts(0).headline(), "Flooding in Manila worsens");
  EXPECT_EQ(update.texts(0).description(), "Rivers over their banks.\nStay away from Marikina.");
  EXPECT_EQ(update.sent_ms(), 1'700'000'060'000);
  ASSERT_EQ(update.areas(0).circles_size(), 1);
  EXPECT_DOUBLE_EQ(update.areas(0).circles(0).radius_km(), 40);
  EXPECT_EQ(update.areas(0).polygons_size(), 0);  // the area is replaced whole
  ASSERT_EQ(update.references_size(), 1);
  EXPECT_EQ(update.references(0).source_id(), id.substr(9));
  EXPECT_EQ(update.restricted_to_states(0), "PHL");

  // null resets an optional field; the bare hex id addresses the event too.
  r = Call("PATCH", "/api/v1/events/" + id.substr(9), phl_[Role::kAdmin], R"({"description":null})");
  ASSERT_EQ(r.status, 202) << r.body;
  EXPECT_EQ(Enqueued().back().revision(), 3);
  EXPECT_EQ(Enqueued().back().texts(0).description(), "");

  // A bad patch changes nothing and sends nothing.
  r = Call("PATCH", "/api/v1/events/" + id, phl_[Role::kOperator], R"({"area":{"circles":[{"lat":1}]}})");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(json::parse(r.body).at("error").at("field").as_string(), "area.circles[0].lon");
  r = Call("PATCH", "/api/v1/events/" + id, phl_[Role::kOperator], R"({"headline":null})");
  EXPECT_EQ(json::parse(r.body).at("error").at("field").as_string(), "headline");
  r = Call("PATCH", "/api/v1/events/" + id, phl_[Role::kOperator], R"({"status":"exercise"})");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(json::parse(r.body).at("error").at("field").as_string(), "status");
  EXPECT_EQ(Enqueued().size(), 3u);
  HttpResponse got = Call("GET", "/api/v1/events/" + id, phl_[Role::kOperator]);
  EXPECT_EQ(json::parse(got.body).at("revision").as_int64(), 3);
  EXPECT_EQ(json::parse(got.body).at("msg_type").as_string(), "update");
}

TEST_F(OperatorEventsTest, DeleteSendsACancelAndEndsTheEvent) {
  const std::string id = PostManilaFlood();
  HttpResponse r = Call("DELETE", "/api/v1/events/" + id, phl_[Role::kOperator]);
  ASSERT_EQ(r.status, 202) << r.body;
  EXPECT_EQ(json::parse(r.body), json::parse(R"({"event_id":")" + id + R"(","revision":2})"));
  std::vector<v1::CrisisEvent> sent = Enqueued();
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_EQ(sent[1].msg_type(), v1::MESSAGE_TYPE_CANCEL);
  EXPECT_EQ(sent[1].revision(), 2);
  EXPECT_EQ(sent[1].event_id(), id);
  EXPECT_EQ(sent[1].restricted_to_states(0), "PHL");
  EXPECT_EQ(sent[1].areas(0).circles_size(), 1);

  HttpResponse got = Call("GET", "/api/v1/events/" + id, phl_[Role::kOperator]);
  EXPECT_EQ(json::parse(got.body).at("cancelled").as_bool(), true);
  EXPECT_EQ(json::parse(got.body).at("msg_type").as_string(), "cancel");
  r = Call("DELETE", "/api/v1/events/" + id, phl_[Role::kOperator]);
  EXPECT_EQ(r.status, 409);
  EXPECT_EQ(json::parse(r.body).at("error").at("code").as_string(), "failed_precondition");
  r = Call("PATCH", "/api/v1/events/" + id, phl_[Role::kOperator], R"({"severity":"minor"})");
  EXPECT_EQ(r.status, 409);
  EXPECT_EQ(Enqueued().size(), 2u);
}

TEST_F(OperatorEventsTest, AnotherStateGets404ExactlyAsForAMissingEvent) {
  const std::string id = PostManilaFlood();
  const std::string missing = "operator:" + NewId();
  for (Role role : {Role::kOperator, Role::kAdmin}) {
    for (const auto& [method, body] : std::vector<std::pair<std::string, std::string>>{
             {"GET", ""}, {"PATCH", R"({"severity":"minor"})"}, {"DELETE", ""}}) {
      HttpResponse theirs = Call(method, "/api/v1/events/" + id, npl_[role], body);
      HttpResponse none = Call(method, "/api/v1/events/" + missing, npl_[role], body);
      EXPECT_EQ(theirs.status, 404) << method;
      EXPECT_EQ(theirs.body, none.body) << method;
      EXPECT_EQ(theirs.body.find(id.substr(9)), std::string::npos);
    }
    HttpResponse list = Call("GET", "/api/v1/events", npl_[role]);
    EXPECT_EQ(list.status, 200);
    EXPECT_EQ(json::parse(list.body).at("items").as_array().size(), 0u) << list.body;
  }
  EXPECT_EQ(Call("GET", "/api/v1/events/not-an-id", phl_[Role::kOperator]).status, 404);
  // The owner's event is untouched and nothing more was sent.
  EXPECT_EQ(Enqueued().size(), 1u);
  HttpResponse got = Call("GET", "/api/v1/events/" + id, phl_[Role::kOperator]);
  EXPECT_EQ(json::parse(got.body).at("revision").as_int64(), 1);
  EXPECT_EQ(json::parse(got.body).at("severity").as_string(), "severe");
}

TEST_F(OperatorEventsTest, ListIsNewestFirstAndPaginated) {
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) {
    ids.push_back(PostManilaFlood());
    clock_.Advance(1000);
  }
  // Another state's event never shows in PHL's list.
  ASSERT_EQ(Call("POST", "/api/v1/events", npl_[Role::kOperator], kManilaFlood).status, 202);
  HttpResponse page1 = Call("GET", "/api/v1/events?limit=2", phl_[Role::kOperator]);
  ASSERT_EQ(page1.status, 200) << page1.body;
  json::object p1 = json::parse(page1.body).as_object();
  ASSERT_EQ(p1.at("items").as_array().size(), 2u);
  EXPECT_EQ(p1.at("items").as_array()[0].at("event_id").as_string(), ids[2]);
  EXPECT_EQ(p1.at("items").as_array()[1].at("event_id").as_string(), ids[1]);
  ASSERT_TRUE(p1.at("next_cursor").is_string());
  HttpResponse page2 = Call("GET", "/api/v1/events?limit=2&cursor=" + std::string(p1.at("next_cursor").as_string()),
                            phl_[Role::kOperator]);
  json::object p2 = json::parse(page2.body).as_object();
  ASSERT_EQ(p2.at("items").as_array().size(), 1u);
  EXPECT_EQ(p2.at("items").as_array()[0].at("event_id").as_string(), ids[0]);
  EXPECT_TRUE(p2.at("next_cursor").is_null());
  EXPECT_EQ(Call("GET", "/api/v1/events?cursor=abc", phl_[Role::kOperator]).status, 400);
  EXPECT_EQ(Call("GET", "/api/v1/events?limit=0", phl_[Role::kOperator]).status, 400);
  EXPECT_EQ(Call("GET", "/api/v1/events?state=NPL", phl_[Role::kOperator]).status, 400);
}

TEST_F(OperatorEventsTest, EveryReadAndWriteIsAudited) {
  const std::string op = TokenId(phl_[Role::kOperator]);
  const std::string admin = TokenId(phl_[Role::kAdmin]);
  const std::string id = PostManilaFlood();
  ASSERT_EQ(Call("GET", "/api/v1/events/" + id, phl_[Role::kAdmin], "", "evacuation-planning").status, 200);
  ASSERT_EQ(Call("GET", "/api/v1/events", phl_[Role::kOperator]).status, 200);
  ASSERT_EQ(Call("PATCH", "/api/v1/events/" + id, phl_[Role::kOperator], R"({"severity":"minor"})").status, 202);
  ASSERT_EQ(Call("DELETE", "/api/v1/events/" + id, phl_[Role::kOperator]).status, 202);
  // Misses and other states' attempts touch nothing and record nothing.
  ASSERT_EQ(Call("GET", "/api/v1/events/" + id, npl_[Role::kOperator]).status, 404);
  const std::vector<std::vector<std::string>> expected = {
      {op, "PHL", "event.create", id, "crisis-response"},
      {admin, "PHL", "event.read", id, "evacuation-planning"},
      {op, "PHL", "event.list", "*", "crisis-response"},
      {op, "PHL", "event.update", id, "crisis-response"},
      {op, "PHL", "event.cancel", id, "crisis-response"},
  };
  EXPECT_EQ(EventAudit(), expected);
}

}  // namespace
}  // namespace amparo::gateway
