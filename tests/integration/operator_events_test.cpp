// Operator-entered events end to end (issue 4): an operator draws a circle
// through the gateway's API; the event travels gateway -> ingest (the same
// dedupe and correlation as any source) -> rules -> notify, and only the
// operator's own state is alerted, even where another state's nationals
// are inside the circle.
#include <gtest/gtest.h>

#include <map>

#include "tests/integration/harness.h"

namespace amparo::integration {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;

json::object Data(const Webhook& hook) { return json::parse(hook.body).as_object()["data"].as_object(); }

TEST(OperatorEventsIntegrationTest, AnOperatorsCircleAlertsOnlyTheOperatorsOwnState) {
  Deployment d;
  d.StartAll();
  WebhookReceiver receiver;
  const std::string phl_reg = d.Token("PHL", "registrar"), npl_reg = d.Token("NPL", "registrar");
  const std::string phl_op = d.Token("PHL", "operator"), npl_op = d.Token("NPL", "operator");
  for (const auto& [token, path] : {std::pair{phl_op, "/phl"}, std::pair{npl_op, "/npl"}}) {
    auto r = d.Call("POST", "/api/v1/subscriptions", token,
                    json::serialize(json::object{{"url", receiver.url(path)}}));
    ASSERT_EQ(r.status, 201) << json::serialize(r.json);
  }
  // Both states have nationals in Osaka (34.6937 N, 135.5023 E); PHL also
  // one in Tokyo, far outside the circle.
  auto reg = [&](const std::string& token, const std::string& body) {
    auto r = d.Call("POST", "/api/v1/registrants", token, body);
    ASSERT_EQ(r.status, 201) << json::serialize(r.json);
  };
  reg(phl_reg, RegistrantBody("PHL-1", "JPN", 34.6937, 135.5023, 1, {"older_person"}));
  reg(phl_reg, RegistrantBody("PHL-2", "JPN", 34.7000, 135.4900, 2));
  reg(phl_reg, RegistrantBody("PHL-3", "JPN", 34.6500, 135.5200, 4));
  reg(phl_reg, RegistrantBody("PHL-4", "JPN", 35.6762, 139.6503, 3));  // Tokyo
  reg(npl_reg, RegistrantBody("NPL-1", "JPN", 34.6900, 135.5000, 3));
  reg(npl_reg, RegistrantBody("NPL-2", "JPN", 34.7100, 135.5100, 2));
  d.WaitRegistryHandedOver();

  // A registrar may not post events; an operator may.
  const std::string event = R"({"hazard": "flood", "severity": "severe", "urgency": "immediate",
      "headline": "Yodo river flooding in Osaka", "description": "Move to higher ground.",
      "area": {"description": "Osaka city", "circles": [{"lat": 34.6937, "lon": 135.5023, "radius_km": 15}]}})";
  EXPECT_EQ(d.Call("POST", "/api/v1/events", phl_reg, event).status, 403);
  auto posted = d.Call("POST", "/api/v1/events", phl_op, event);
  ASSERT_EQ(posted.status, 202) << json::serialize(posted.json);
  const std::string event_id(posted.json.as_object()["event_id"].as_string());
  EXPECT_EQ(posted.json.as_object()["revision"].to_number<int>(), 1);

  ASSERT_TRUE(receiver.WaitFor(1, 30s)) << "no webhook arrived";
  std::this_thread::sleep_for(2s);  // anything else (NPL's wrong alert) would arrive by now
  auto hooks = receiver.Received();
  std::map<std::string, int> per_target;
  const Webhook* phl = nullptr;
  for (const auto& h : hooks) {
    ++per_target[h.target];
    if (h.target == "/phl") phl = &h;
  }
  EXPECT_EQ(hooks.size(), 1u);
  EXPECT_EQ(per_target["/npl"], 0) << "NPL was alerted by PHL's operator event";
  ASSERT_EQ(per_target["/phl"], 1);
  EXPECT_EQ(json::parse(phl->body).as_object()["type"].as_string(), "alert.raised");
  json::object a = Data(*phl);
  EXPECT_EQ(a["alert_id"].as_string(), event_id + "/PHL/JPN");
  EXPECT_EQ(a["state"].as_string(), "PHL");
  EXPECT_EQ(a["host_country"].as_string(), "JPN");
  EXPECT_EQ(a["exposure"].as_object()["registrants"].to_number<int>(), 3);
  EXPECT_EQ(a["exposure"].as_object()["household_members"].to_number<int>(), 7);
  EXPECT_EQ(a["exposure"].as_object()["vulnerable"].to_number<int>(), 1);
  EXPECT_EQ(a["exercise"].as_bool(), false);

  // The event is PHL's: NPL's operator cannot see it, PHL's can.
  EXPECT_EQ(d.Call("GET", "/api/v1/events/" + event_id, npl_op).status, 404);
  auto got = d.Call("GET", "/api/v1/events/" + event_id, phl_op);
  ASSERT_EQ(got.status, 200);
  EXPECT_EQ(got.json.as_object()["headline"].as_string(), "Yodo river flooding in Osaka");
}

}  // namespace
}  // namespace amparo::integration
