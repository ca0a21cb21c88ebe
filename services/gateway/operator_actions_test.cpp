// Operators' silences and decisions (operator_actions.h) through the API
// (GatewayApi::Handle, no socket): validation, what reaches amparo-rules,
// the audit trail, and how the gateway stores repeats and silenced alerts.
#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "amparo/v1/envelope.pb.h"
#include "common/alert_json.h"
#include "common/link.h"
#include "common/testing.h"
#include "services/gateway/api_test_support.h"
#include "services/gateway/gateway_api.h"
#include "services/gateway/operator_actions.h"

namespace amparo::gateway {
namespace {

namespace json = boost::json;

constexpr char kAlertId[] = "usgs:us7000abcd/PHL/JPN";
constexpr char kAlertTarget[] = "/api/v1/alerts/usgs%3Aus7000abcd%2FPHL%2FJPN";

struct AuditRow {
  std::string actor, state, action, subject, purpose, detail;
};

class OperatorActionsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    db_.emplace(std::move(*Db::Open(dir_ / "gateway.db")));
    ASSERT_TRUE(MigrateGatewayDb(*db_).ok());
    api_ = std::make_unique<GatewayApi>(*db_, clock_, metrics_, keys_, nullptr);
    op_ = *CreateToken(*db_, "PHL", Role::kOperator, clock_);
    admin_ = *CreateToken(*db_, "PHL", Role::kAdmin, clock_);
    registrar_ = *CreateToken(*db_, "PHL", Role::kRegistrar, clock_);
    jpn_op_ = *CreateToken(*db_, "JPN", Role::kOperator, clock_);
    op_id_ = Authenticate(*db_, op_)->id;
  }

  HttpResponse Call(const std::string& method, const std::string& target, const std::string& token,
                    const std::string& body = "", const std::string& purpose = "") {
    return api_->Handle(MakeApiRequest(method, target, token, body, purpose));
  }

  static json::object Body(const HttpResponse& r) { return json::parse(r.body).as_object(); }
  static std::string Field(const HttpResponse& r) {
    return std::string(json::parse(r.body).at("error").at("field").as_string());
  }

  std::vector<v1::Envelope> ToRules() { return *PendingOutbound(*db_, "rules"); }

  std::vector<AuditRow> Audit() {
    std::vector<AuditRow> rows;
    auto q =
        db_->Prepare("SELECT actor, state, action, subject, purpose, detail FROM audit_log ORDER BY seq");
    EXPECT_TRUE(q.ok());
    while (*q->Step()) {
      rows.push_back({q->ColumnText(0), q->ColumnText(1), q->ColumnText(2), q->ColumnText(3),
                      q->ColumnText(4), q->ColumnText(5)});
    }
    return rows;
  }

  v1::ConsularAlert Alert(uint32_t revision, uint32_t notification) {
    v1::ConsularAlert a;
    a.set_alert_id(kAlertId);
    a.set_incident_id("usgs:us7000abcd");
    a.set_revision(revision);
    a.set_state("PHL");
    a.set_host_country("JPN");
    a.set_level(v1::ALERT_LEVEL_WARNING);
    a.set_notification(notification);
    a.set_proposed_phase(v1::CRISIS_PHASE_RELOCATION);
    a.set_phase(v1::CRISIS_PHASE_RESTRICTION);
    a.set_lifecycle(v1::ALERT_LIFECYCLE_ESCALATED);
    return a;
  }

  testing::TempDir dir_;
  std::optional<Db> db_;
  FakeClock clock_;  // 2023-11-14T22:13:20Z
  GatewayMetrics metrics_;
  RegistryKeys keys_ = RegistryKeys::FromBytes(std::string(32, 'o'));
  std::unique_ptr<GatewayApi> api_;
  std::string op_, admin_, registrar_, jpn_op_, op_id_;
};

TEST_F(OperatorActionsTest, CreatesASilenceSendsItToRulesAndAuditsWhoWhatWhenWhy) {
  HttpResponse r = Call("POST", "/api/v1/silences", op_,
                        R"({"incident_id":"usgs:us7000abcd","host_country":"JPN","hazard":"earthquake",)"
                        R"("ends":"2023-11-16T00:00:00Z","reason":"embassy already on site"})");
  ASSERT_EQ(r.status, 201) << r.body;
  json::object s = Body(r);
  const std::string id(s.at("silence_id").as_string());
  EXPECT_EQ(id.size(), 32u);
  EXPECT_EQ(s.at("state").as_string(), "PHL");
  EXPECT_EQ(s.at("starts_at").as_string(), "2023-11-14T22:13:20.000Z");  // default: now
  EXPECT_EQ(s.at("ends_at").as_string(), "2023-11-16T00:00:00.000Z");
  EXPECT_EQ(s.at("status").as_string(), "active");
  EXPECT_EQ(s.at("created_by").as_string(), op_id_);
  EXPECT_EQ(s.at("expired").as_bool(), false);

  auto sent = ToRules();
  ASSERT_EQ(sent.size(), 1u);
  ASSERT_TRUE(sent[0].has_silence());
  const v1::Silence& m = sent[0].silence();
  EXPECT_EQ(sent[0].producer(), "amparo-gateway");
  EXPECT_EQ(m.silence_id(), id);
  EXPECT_EQ(m.state(), "PHL");
  EXPECT_EQ(m.incident_id(), "usgs:us7000abcd");
  EXPECT_EQ(m.host_country(), "JPN");
  EXPECT_EQ(m.hazard(), v1::HAZARD_KIND_EARTHQUAKE);
  EXPECT_EQ(m.starts_ms(), 1'700'000'000'000);
  EXPECT_EQ(m.ends_ms(), 1'700'092'800'000);
  EXPECT_EQ(m.created_by(), op_id_);
  EXPECT_EQ(m.reason(), "embassy already on site");
  EXPECT_FALSE(m.expired());

  auto audit = Audit();
  ASSERT_EQ(audit.size(), 1u);
  EXPECT_EQ(audit[0].actor, op_id_);
  EXPECT_EQ(audit[0].state, "PHL");
  EXPECT_EQ(audit[0].action, "silence.create");
  EXPECT_EQ(audit[0].subject, id);
  EXPECT_EQ(audit[0].purpose, "crisis-response");
  EXPECT_NE(audit[0].detail.find(R"("reason":"embassy already on site")"), std::string::npos)
      << audit[0].detail;
}

TEST_F(OperatorActionsTest, SilenceValidationNamesTheField) {
  struct Case {
    std::string body, field;
  };
  const std::string long_reason(501, 'x');
  const std::vector<Case> cases = {
      {R"({"reason":"r"})", "ends"},
      {R"({"ends":"tomorrow","reason":"r"})", "ends"},
      {R"({"ends":"2023-11-14T22:00:00Z","reason":"r"})", "ends"},  // past
      {R"({"ends":"2023-12-15T00:00:00Z","reason":"r"})", "ends"},  // > 30 days ahead
      {R"({"starts":"2023-11-16T00:00:00Z","ends":"2023-11-15T00:00:00Z","reason":"r"})", "ends"},
      {R"({"starts":"soon","ends":"2023-11-15T00:00:00Z","reason":"r"})", "starts"},
      {R"({"ends":"2023-11-15T00:00:00Z"})", "reason"},
      {R"({"ends":"2023-11-15T00:00:00Z","reason":"  "})", "reason"},
      {R"({"ends":"2023-11-15T00:00:00Z","reason":")" + long_reason + R"("})", "reason"},
      {R"({"ends":"2023-11-15T00:00:00Z","reason":"r","host_country":"Japan"})", "host_country"},
      {R"({"ends":"2023-11-15T00:00:00Z","reason":"r","hazard":"meteor"})", "hazard"},
      {R"({"ends":"2023-11-15T00:00:00Z","reason":"r","incident_id":""})", "incident_id"},
      {R"({"ends":"2023-11-15T00:00:00Z","reason":"r","matchers":[]})", "matchers"},
  };
  for (const auto& c : cases) {
    HttpResponse r = Call("POST", "/api/v1/silences", op_, c.body);
    EXPECT_EQ(r.status, 400) << c.body;
    EXPECT_EQ(Field(r), c.field) << c.body << " -> " << r.body;
  }
  EXPECT_TRUE(ToRules().empty());
  EXPECT_TRUE(Audit().empty());
  // 500 characters are fine even when they take 1,000 bytes.
  std::string accents;
  for (int i = 0; i < 500; ++i) accents += "\xC3\xA9";
  EXPECT_EQ(Call("POST", "/api/v1/silences", op_,
                 R"({"ends":"2023-12-14T22:13:20Z","reason":")" + accents + R"("})")
                .status,
            201);
}

TEST_F(OperatorActionsTest, RegistrarMayNotSilenceOrDecide) {
  ASSERT_TRUE(*UpsertAlert(*db_, Alert(1, 0), clock_));
  EXPECT_EQ(
      Call("POST", "/api/v1/silences", registrar_, R"({"ends":"2023-11-15T00:00:00Z","reason":"r"})").status,
      403);
  EXPECT_EQ(Call("GET", "/api/v1/silences", registrar_).status, 403);
  EXPECT_EQ(
      Call("POST", std::string(kAlertTarget) + "/decisions", registrar_, R"({"action":"close","reason":"r"})")
          .status,
      403);
  EXPECT_TRUE(ToRules().empty());
}

TEST_F(OperatorActionsTest, ListsNewestFirstAndLiftsEarlyOnce) {
  HttpResponse first =
      Call("POST", "/api/v1/silences", op_, R"({"ends":"2023-11-15T00:00:00Z","reason":"one"})");
  clock_.Advance(1000);
  HttpResponse second =
      Call("POST", "/api/v1/silences", admin_,
           R"({"starts":"2023-11-15T00:00:00Z","ends":"2023-11-16T00:00:00Z","reason":"two"})");
  ASSERT_EQ(first.status, 201);
  ASSERT_EQ(second.status, 201);
  const std::string first_id(Body(first).at("silence_id").as_string());
  EXPECT_EQ(Body(second).at("status").as_string(), "pending");

  HttpResponse lifted = Call("DELETE", "/api/v1/silences/" + first_id + "?reason=quake%20over", op_);
  ASSERT_EQ(lifted.status, 200) << lifted.body;
  EXPECT_EQ(Body(lifted).at("status").as_string(), "expired");
  EXPECT_EQ(Body(lifted).at("expired").as_bool(), true);
  EXPECT_EQ(Body(lifted).at("lifted_by").as_string(), op_id_);
  HttpResponse again = Call("DELETE", "/api/v1/silences/" + first_id, op_);
  EXPECT_EQ(again.status, 409);

  auto sent = ToRules();
  ASSERT_EQ(sent.size(), 3u);
  EXPECT_EQ(sent[2].silence().silence_id(), first_id);
  EXPECT_TRUE(sent[2].silence().expired());
  EXPECT_EQ(sent[2].silence().reason(), "one");

  // Another state neither sees nor lifts it.
  EXPECT_EQ(Call("GET", "/api/v1/silences/" + first_id, jpn_op_).status, 404);
  EXPECT_EQ(
      Call("DELETE", "/api/v1/silences/" + std::string(Body(second).at("silence_id").as_string()), jpn_op_)
          .status,
      404);
  EXPECT_EQ(Body(Call("GET", "/api/v1/silences", jpn_op_)).at("items").as_array().size(), 0u);

  HttpResponse list = Call("GET", "/api/v1/silences", op_);
  ASSERT_EQ(list.status, 200);
  const json::object page = Body(list);
  const json::array& items = page.at("items").as_array();
  ASSERT_EQ(items.size(), 2u);
  EXPECT_EQ(items[0].at("reason").as_string(), "two");
  EXPECT_EQ(items[1].at("reason").as_string(), "one");
  EXPECT_EQ(items[1].at("status").as_string(), "expired");
  EXPECT_EQ(Call("GET", "/api/v1/silences/" + first_id, op_).status, 200);

  std::vector<std::string> actions;
  for (const auto& row : Audit()) actions.push_back(row.action + " " + row.actor);
  const std::vector<std::string> expected = {
      "silence.create " + op_id_, "silence.create " + Authenticate(*db_, admin_)->id,
      "silence.lift " + op_id_,   "silence.list " + Authenticate(*db_, jpn_op_)->id,
      "silence.list " + op_id_,   "silence.read " + op_id_};
  EXPECT_EQ(actions, expected);
  EXPECT_NE(Audit()[2].detail.find(R"("reason":"quake over")"), std::string::npos) << Audit()[2].detail;
}

TEST_F(OperatorActionsTest, DecisionGoesToRulesAndIsListed) {
  ASSERT_TRUE(*UpsertAlert(*db_, Alert(1, 0), clock_));
  HttpResponse r = Call("POST", std::string(kAlertTarget) + "/decisions", op_,
                        R"({"action":"confirm_phase","phase":3,"reason":"ambassador confirms relocation"})",
                        "evacuation-planning");
  ASSERT_EQ(r.status, 202) << r.body;
  const std::string decision_id(Body(r).at("decision_id").as_string());
  EXPECT_EQ(decision_id.size(), 32u);
  EXPECT_EQ(Body(r).at("phase").as_int64(), 3);

  auto sent = ToRules();
  ASSERT_EQ(sent.size(), 1u);
  ASSERT_TRUE(sent[0].has_operator_decision());
  const v1::OperatorDecision& d = sent[0].operator_decision();
  EXPECT_EQ(d.decision_id(), decision_id);
  EXPECT_EQ(d.alert_id(), kAlertId);
  EXPECT_EQ(d.state(), "PHL");
  EXPECT_EQ(d.action(), v1::OperatorDecision::ACTION_CONFIRM_PHASE);
  EXPECT_EQ(d.phase(), v1::CRISIS_PHASE_RELOCATION);
  EXPECT_EQ(d.by(), op_id_);
  EXPECT_EQ(d.at_ms(), 1'700'000'000'000);
  EXPECT_EQ(d.reason(), "ambassador confirms relocation");

  clock_.Advance(5000);
  ASSERT_EQ(
      Call("POST", std::string(kAlertTarget) + "/decisions", op_, R"({"action":"close","reason":"over"})")
          .status,
      202);
  EXPECT_EQ(ToRules().back().operator_decision().action(), v1::OperatorDecision::ACTION_CLOSE);
  HttpResponse list = Call("GET", std::string(kAlertTarget) + "/decisions", op_);
  ASSERT_EQ(list.status, 200);
  const json::object page = Body(list);
  const json::array& items = page.at("items").as_array();
  ASSERT_EQ(items.size(), 2u);
  EXPECT_EQ(items[0].at("action").as_string(), "close");
  EXPECT_TRUE(items[0].at("phase").is_null());
  EXPECT_EQ(items[1].at("decision_id").as_string(), decision_id);

  auto audit = Audit();
  ASSERT_EQ(audit.size(), 3u);
  EXPECT_EQ(audit[0].action, "alert.decision");
  EXPECT_EQ(audit[0].subject, kAlertId);
  EXPECT_EQ(audit[0].purpose, "evacuation-planning");
  EXPECT_NE(audit[0].detail.find("ambassador confirms relocation"), std::string::npos);
  EXPECT_EQ(audit[2].action, "alert.decision.list");
}

TEST_F(OperatorActionsTest, DecisionValidationAndUnknownAlerts) {
  ASSERT_TRUE(*UpsertAlert(*db_, Alert(1, 0), clock_));
  const std::string target = std::string(kAlertTarget) + "/decisions";
  struct Case {
    std::string body, field;
  };
  const std::vector<Case> cases = {
      {R"({"reason":"r"})", "action"},
      {R"({"action":"escalate","reason":"r"})", "action"},
      {R"({"action":"confirm_phase","reason":"r"})", "phase"},
      {R"({"action":"confirm_phase","phase":5,"reason":"r"})", "phase"},
      {R"({"action":"confirm_phase","phase":0,"reason":"r"})", "phase"},
      {R"({"action":"confirm_phase","phase":"3","reason":"r"})", "phase"},
      {R"({"action":"close","phase":2,"reason":"r"})", "phase"},
      {R"({"action":"close"})", "reason"},
      {R"({"action":"close","reason":""})", "reason"},
      {R"({"action":"close","reason":"r","by":"someone"})", "by"},
  };
  for (const auto& c : cases) {
    HttpResponse r = Call("POST", target, op_, c.body);
    EXPECT_EQ(r.status, 400) << c.body;
    EXPECT_EQ(Field(r), c.field) << c.body << " -> " << r.body;
  }
  // Another state's alert reads exactly like a missing one.
  HttpResponse other = Call("POST", target, jpn_op_, R"({"action":"close","reason":"r"})");
  HttpResponse missing = Call("POST", "/api/v1/alerts/usgs%3Anone%2FJPN%2FPHL/decisions", jpn_op_,
                              R"({"action":"close","reason":"r"})");
  EXPECT_EQ(other.status, 404);
  EXPECT_EQ(other.body, missing.body);
  EXPECT_EQ(Call("GET", target, jpn_op_).status, 404);
  EXPECT_TRUE(ToRules().empty());
  EXPECT_TRUE(Audit().empty());
}

TEST_F(OperatorActionsTest, RepeatsUpdateTheAlertRowAndSilencedAlertsShowTheReason) {
  HttpResponse created = Call("POST", "/api/v1/silences", op_,
                              R"({"ends":"2023-11-15T00:00:00Z","reason":"team already deployed"})");
  ASSERT_EQ(created.status, 201);
  const std::string silence_id(Body(created).at("silence_id").as_string());

  ASSERT_TRUE(*UpsertAlert(*db_, Alert(2, 0), clock_));
  v1::ConsularAlert repeat = Alert(2, 1);
  repeat.set_silenced(true);
  repeat.set_silence_id(silence_id);
  clock_.Advance(60'000);
  EXPECT_TRUE(*UpsertAlert(*db_, repeat, clock_));        // repeat: stored on the same row
  EXPECT_FALSE(*UpsertAlert(*db_, Alert(2, 0), clock_));  // the first notification again: ignored
  EXPECT_FALSE(*UpsertAlert(*db_, Alert(1, 5), clock_));  // an older revision: ignored

  HttpResponse list = Call("GET", "/api/v1/alerts", op_);
  ASSERT_EQ(list.status, 200);
  const json::object page = Body(list);
  const json::array& items = page.at("items").as_array();
  ASSERT_EQ(items.size(), 1u);
  const json::object& a = items[0].as_object();
  EXPECT_EQ(a.at("revision").as_int64(), 2);
  EXPECT_EQ(a.at("notification").as_int64(), 1);
  EXPECT_EQ(a.at("silenced").as_bool(), true);
  EXPECT_EQ(a.at("phase").as_int64(), 2);
  EXPECT_EQ(a.at("proposed_phase").as_int64(), 3);
  EXPECT_EQ(a.at("lifecycle").as_string(), "escalated");
  EXPECT_EQ(a.at("silence").at("silence_id").as_string(), silence_id);
  EXPECT_EQ(a.at("silence").at("reason").as_string(), "team already deployed");

  // A later revision that is not silenced drops the silence from the view.
  ASSERT_TRUE(*UpsertAlert(*db_, Alert(3, 0), clock_));
  HttpResponse one = Call("GET", kAlertTarget, op_);
  EXPECT_EQ(Body(one).at("notification").as_int64(), 0);
  EXPECT_FALSE(Body(one).contains("silence"));
  auto count = db_->Prepare("SELECT count(*) FROM alerts");
  ASSERT_TRUE(*count->Step());
  EXPECT_EQ(count->ColumnInt(0), 1);
}

TEST_F(OperatorActionsTest, AnotherStatesSilenceIdIsNeverShownWithAnAlert) {
  HttpResponse jpn_silence =
      Call("POST", "/api/v1/silences", jpn_op_, R"({"ends":"2023-11-15T00:00:00Z","reason":"JPN internal"})");
  ASSERT_EQ(jpn_silence.status, 201);
  v1::ConsularAlert a = Alert(1, 0);
  a.set_silenced(true);
  a.set_silence_id(std::string(Body(jpn_silence).at("silence_id").as_string()));
  ASSERT_TRUE(*UpsertAlert(*db_, a, clock_));
  HttpResponse r = Call("GET", kAlertTarget, op_);
  ASSERT_EQ(r.status, 200);
  EXPECT_FALSE(Body(r).contains("silence"));
  EXPECT_EQ(r.body.find("JPN internal"), std::string::npos);
}

}  // namespace
}  // namespace amparo::gateway
