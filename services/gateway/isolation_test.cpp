// Tenant isolation (DESIGN.md guarantee 4) for EVERY route of the API: the
// table below must name each authenticated route of GatewayRoutes(), or the
// coverage test fails. Each route is called with no token, with a token of
// another state for each role, and with the owning state's token for each
// role; the test asserts the exact status and that nothing of the owning
// state's data shows (404 bodies identical to a missing id; lists and
// exports without it). The live feed's isolation runs over a real
// WebSocket in gateway_http_test.cpp (AlertsFromNotifyAreServedAndPushedToTheirStateOnly).
#include <gtest/gtest.h>

#include <boost/json.hpp>

#include <set>

#include "amparo/v1/envelope.pb.h"
#include "common/crypto.h"
#include "common/testing.h"
#include "services/gateway/api_test_support.h"
#include "services/gateway/gateway_api.h"

namespace amparo::gateway {
namespace {

struct Endpoint {
  std::string method;
  std::string path;  // the route template, as in GatewayRoutes()
  // The concrete target; "{id}" is replaced by the id of the owner's object.
  std::string target;
  std::string body;
  int success;  // status for an allowed role of the owning state
  bool item;    // addresses one object: another state gets 404
};

const std::vector<Endpoint>& Endpoints() {
  static const std::vector<Endpoint> kEndpoints = {
      {"POST", "/api/v1/registrants", "/api/v1/registrants",
       R"({"external_ref":"NEW-1","host_country":"JPN","lat":1,"lon":2})", 201, false},
      {"GET", "/api/v1/registrants", "/api/v1/registrants", "", 200, false},
      {"GET", "/api/v1/registrants/{id}", "/api/v1/registrants/{registrant}", "", 200, true},
      {"PATCH", "/api/v1/registrants/{id}", "/api/v1/registrants/{registrant}", R"({"household_size":2})",
       200, true},
      {"DELETE", "/api/v1/registrants/{id}", "/api/v1/registrants/{registrant}", "", 204, true},
      {"GET", "/api/v1/registrants:export", "/api/v1/registrants:export?format=ndjson", "", 200, false},
      {"POST", "/api/v1/registrants:import", "/api/v1/registrants:import?format=ndjson",
       R"({"external_ref":"IMP-1","host_country":"JPN","lat":1,"lon":2})", 200, false},
      {"POST", "/api/v1/subscriptions", "/api/v1/subscriptions", R"({"url":"https://embassy.example/hook"})",
       201, false},
      {"GET", "/api/v1/subscriptions", "/api/v1/subscriptions", "", 200, false},
      {"GET", "/api/v1/subscriptions/{id}", "/api/v1/subscriptions/{subscription}", "", 200, true},
      {"DELETE", "/api/v1/subscriptions/{id}", "/api/v1/subscriptions/{subscription}", "", 204, true},
      {"GET", "/api/v1/alerts", "/api/v1/alerts", "", 200, false},
      {"GET", "/api/v1/alerts/{alert_id}", "/api/v1/alerts/{alert}", "", 200, true},
      {"GET", "/api/v1/incidents", "/api/v1/incidents", "", 200, false},
      {"GET", "/api/v1/live", "/api/v1/live", "", 426, false},
      {"POST", "/api/v1/events", "/api/v1/events",
       R"({"hazard":"flood","severity":"severe","headline":"New flood",)"
       R"("area":{"circles":[{"lat":14.6,"lon":121,"radius_km":10}]}})",
       202, false},
      {"GET", "/api/v1/events", "/api/v1/events", "", 200, false},
      {"GET", "/api/v1/events/{id}", "/api/v1/events/{event}", "", 200, true},
      {"PATCH", "/api/v1/events/{id}", "/api/v1/events/{event}", R"({"severity":"minor"})", 202, true},
      {"DELETE", "/api/v1/events/{id}", "/api/v1/events/{event}", "", 202, true},
      {"POST", "/api/v1/silences", "/api/v1/silences",
       R"({"ends":"2023-11-20T00:00:00Z","host_country":"JPN","reason":"drill week"})", 201, false},
      {"GET", "/api/v1/silences", "/api/v1/silences", "", 200, false},
      {"GET", "/api/v1/silences/{id}", "/api/v1/silences/{silence}", "", 200, true},
      {"DELETE", "/api/v1/silences/{id}", "/api/v1/silences/{silence}?reason=done", "", 200, true},
      {"POST", "/api/v1/alerts/{alert_id}/decisions", "/api/v1/alerts/{alert}/decisions",
       R"({"action":"confirm_phase","phase":3,"reason":"confirmed by the ambassador"})", 202, true},
      {"GET", "/api/v1/alerts/{alert_id}/decisions", "/api/v1/alerts/{alert}/decisions", "", 200, true},
  };
  return kEndpoints;
}

TEST(IsolationTableTest, CoversEveryAuthenticatedRoute) {
  std::set<std::string> routes, table;
  for (const auto& r : GatewayRoutes()) {
    if (r.authenticated) routes.insert(std::string(r.method) + " " + std::string(r.path));
  }
  for (const auto& e : Endpoints()) table.insert(e.method + " " + e.path);
  EXPECT_EQ(table, routes) << "a route without a tenant-isolation row (or a stale row)";
}

class IsolationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    db_.emplace(std::move(*Db::Open(dir_ / "gateway.db")));
    ASSERT_TRUE(MigrateGatewayDb(*db_).ok());
    api_ = std::make_unique<GatewayApi>(*db_, clock_, metrics_, keys_, nullptr, UnlimitedRateApiOptions());
    for (Role role : {Role::kRegistrar, Role::kOperator, Role::kAdmin}) {
      phl_[role] = *CreateToken(*db_, "PHL", role, clock_);
      jpn_[role] = *CreateToken(*db_, "JPN", role, clock_);
    }
  }

  // Fresh objects of PHL (the owner) for one call: a registrant with
  // personal data, a subscription and an alert.
  std::map<std::string, std::string> SeedOwner() {
    static int n = 0;
    ++n;
    std::map<std::string, std::string> ids;
    HttpResponse r = Call("POST", "/api/v1/registrants", phl_[Role::kRegistrar],
                          R"({"external_ref":"PHL-SECRET-)" + std::to_string(n) +
                              R"(","host_country":"JPN","lat":35,"lon":139,"full_name":"Secret Person",)"
                              R"("contact":{"email":"secret@example.ph"}})");
    EXPECT_EQ(r.status, 201) << r.body;
    ids["{registrant}"] = r.body.substr(r.body.find("\"id\":\"") + 6, 32);
    r = Call("POST", "/api/v1/subscriptions", phl_[Role::kOperator],
             R"({"url":"https://phl-secret.example/hook"})");
    EXPECT_EQ(r.status, 201);
    ids["{subscription}"] = r.body.substr(r.body.find("\"id\":\"") + 6, 32);
    v1::ConsularAlert alert;
    alert.set_incident_id("usgs:secret" + std::to_string(n));
    alert.set_alert_id("usgs:secret" + std::to_string(n) + "/PHL/JPN");
    alert.set_revision(1);
    alert.set_state("PHL");
    alert.set_host_country("JPN");
    EXPECT_TRUE(*UpsertAlert(*db_, alert, clock_));
    ids["{alert}"] = "usgs%3Asecret" + std::to_string(n) + "%2FPHL%2FJPN";
    r = Call("POST", "/api/v1/silences", phl_[Role::kOperator],
             R"({"ends":"2023-11-15T00:00:00Z","incident_id":"usgs:secret)" + std::to_string(n) +
                 R"(","reason":"PHL-SECRET silence"})");
    EXPECT_EQ(r.status, 201) << r.body;
    ids["{silence}"] = r.body.substr(r.body.find("\"silence_id\":\"") + 14, 32);
    r = Call("POST", "/api/v1/alerts/" + ids["{alert}"] + "/decisions", phl_[Role::kOperator],
             R"({"action":"reject_phase","reason":"PHL-SECRET decision"})");
    EXPECT_EQ(r.status, 202) << r.body;
    r = Call("POST", "/api/v1/events", phl_[Role::kOperator],
             R"({"hazard":"conflict","severity":"extreme","headline":"PHL-SECRET event",)"
             R"("area":{"circles":[{"lat":35,"lon":139,"radius_km":50}]}})");
    EXPECT_EQ(r.status, 202) << r.body;
    ids["{event}"] = r.body.substr(r.body.find("\"event_id\":\"") + 12, 41);  // "operator:" + 32 hex
    return ids;
  }

  HttpResponse Call(const std::string& method, const std::string& target, const std::string& token,
                    const std::string& body = "") {
    return api_->Handle(MakeApiRequest(method, target, token, body));
  }

  static std::string Fill(std::string target, const std::map<std::string, std::string>& ids) {
    for (const auto& [placeholder, id] : ids) {
      if (auto at = target.find(placeholder); at != std::string::npos)
        target.replace(at, placeholder.size(), id);
    }
    return target;
  }

  testing::TempDir dir_;
  std::optional<Db> db_;
  FakeClock clock_;
  GatewayMetrics metrics_;
  RegistryKeys keys_ = RegistryKeys::FromBytes(std::string(32, 'i'));
  std::unique_ptr<GatewayApi> api_;
  std::map<Role, std::string> phl_, jpn_;
};

bool Allowed(const Endpoint& e, Role role) {
  for (const auto& r : GatewayRoutes()) {
    if (r.method == e.method && r.path == e.path) {
      return std::find(r.roles.begin(), r.roles.end(), role) != r.roles.end();
    }
  }
  return false;
}

TEST_F(IsolationTest, NoTokenIsUnauthenticatedEverywhere) {
  auto ids = SeedOwner();
  for (const auto& e : Endpoints()) {
    HttpResponse r = Call(e.method, Fill(e.target, ids), "", e.body);
    EXPECT_EQ(r.status, 401) << e.method << " " << e.path;
    EXPECT_EQ(r.body.find("PHL"), std::string::npos) << e.method << " " << e.path;
  }
}

TEST_F(IsolationTest, AnotherStateNeverReadsChangesOrLearnsOfTheOwnersData) {
  for (const auto& e : Endpoints()) {
    for (Role role : {Role::kRegistrar, Role::kOperator, Role::kAdmin}) {
      auto ids = SeedOwner();
      const std::string where = e.method + " " + e.path + " as JPN " + std::string(RoleName(role));
      std::string body = e.body;
      for (const char* ref : {"NEW-1", "IMP-1"}) {
        if (auto at = body.find(ref); at != std::string::npos)
          body.replace(at, 5, std::string(ref, 4) + NewId());
      }
      HttpResponse r = Call(e.method, Fill(e.target, ids), jpn_[role], body);
      if (!Allowed(e, role)) {
        EXPECT_EQ(r.status, 403) << where;
      } else if (e.item) {
        // Exactly what a never-existing id gives.
        std::map<std::string, std::string> missing = {
            {"{registrant}", NewId()},
            {"{subscription}", NewId()},
            {"{alert}", "usgs%3Anone%2FJPN%2FPHL"},
            {"{silence}", NewId()},
            {"{event}", "operator:" + NewId()}};
        HttpResponse absent = Call(e.method, Fill(e.target, missing), jpn_[role], body);
        EXPECT_EQ(r.status, 404) << where;
        EXPECT_EQ(r.body, absent.body) << where;
      } else {
        EXPECT_EQ(r.status, e.success) << where << ": " << r.body;
      }
      for (const char* secret : {"PHL-SECRET", "Secret Person", "secret@example.ph", "phl-secret.example",
                                 "usgs:secret", "\"PHL\""}) {
        EXPECT_EQ(r.body.find(secret), std::string::npos) << where << " shows " << secret;
      }
      for (const auto& [unused, id] : ids) {
        EXPECT_EQ(r.body.find(id), std::string::npos) << where << " shows an id";
      }
      // And the owner's objects are untouched.
      EXPECT_EQ(Call("GET", Fill("/api/v1/registrants/{registrant}", ids), phl_[Role::kAdmin]).status, 200)
          << where;
      EXPECT_EQ(Call("GET", Fill("/api/v1/subscriptions/{subscription}", ids), phl_[Role::kAdmin]).status,
                200)
          << where;
      HttpResponse event = Call("GET", Fill("/api/v1/events/{event}", ids), phl_[Role::kAdmin]);
      EXPECT_NE(event.body.find(R"("revision":1,)"), std::string::npos) << where << ": " << event.body;
      HttpResponse silence = Call("GET", Fill("/api/v1/silences/{silence}", ids), phl_[Role::kAdmin]);
      EXPECT_NE(silence.body.find(R"("status":"active")"), std::string::npos)
          << where << ": " << silence.body;
      HttpResponse decisions = Call("GET", Fill("/api/v1/alerts/{alert}/decisions", ids), phl_[Role::kAdmin]);
      EXPECT_EQ(decisions.status, 200) << where;
      EXPECT_EQ(boost::json::parse(decisions.body).at("items").as_array().size(), 1u) << where;
    }
  }
  // The owner's registrants never had a field changed by another state.
  HttpResponse list = Call("GET", "/api/v1/registrants?limit=1000", phl_[Role::kAdmin]);
  EXPECT_EQ(list.body.find("\"household_size\":2"), std::string::npos);
}

TEST_F(IsolationTest, TheOwningStateGetsExactlyWhatItsRoleAllows) {
  for (const auto& e : Endpoints()) {
    for (Role role : {Role::kRegistrar, Role::kOperator, Role::kAdmin}) {
      auto ids = SeedOwner();
      const std::string where = e.method + " " + e.path + " as PHL " + std::string(RoleName(role));
      std::string body = e.body;
      for (const char* ref : {"NEW-1", "IMP-1"}) {
        if (auto at = body.find(ref); at != std::string::npos)
          body.replace(at, 5, std::string(ref, 4) + NewId());
      }
      HttpResponse r = Call(e.method, Fill(e.target, ids), phl_[role], body);
      EXPECT_EQ(r.status, Allowed(e, role) ? e.success : 403) << where << ": " << r.body;
      // Contact data only for registrar and admin (data minimisation).
      if (role == Role::kOperator) {
        EXPECT_EQ(r.body.find("secret@example.ph"), std::string::npos) << where;
        EXPECT_EQ(r.body.find("Secret Person"), std::string::npos) << where;
      } else if (e.method == "GET" && e.path == "/api/v1/registrants/{id}") {
        EXPECT_NE(r.body.find("secret@example.ph"), std::string::npos) << where;
      }
    }
  }
}

}  // namespace
}  // namespace amparo::gateway
