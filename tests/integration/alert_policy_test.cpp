// Issue 5's alert policy across the real daemons (gateway, ingest, rules,
// notify as processes): a proposed phase 4 confirmed through the gateway API,
// an operator's silence and its lifting, the policy file reloaded on SIGHUP
// (and a broken one refused), and `amparo replay --deterministic` of the
// decision log each scenario leaves behind.
#include <signal.h>

#include <gtest/gtest.h>

#include <fstream>
#include <regex>
#include <sstream>

#include "common/clock.h"
#include "common/crypto.h"
#include "common/db.h"
#include "tests/integration/harness.h"

namespace amparo::integration {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using namespace std::chrono_literals;

// USGS us6000pi9w, M7.1 Southern Tibetan Plateau, 7 Jan 2025: PAGER red,
// epicentre 28.639 N 87.3608 E, strong shaking (MMI>=6) within about 85 km.
constexpr char kTibetIncident[] = "usgs:us6000pi9w";
constexpr char kTibetPhlAlert[] = "usgs:us6000pi9w/PHL/CHN";
constexpr char kTibetPhlAlertPath[] = "usgs%3Aus6000pi9w%2FPHL%2FCHN";

json::object Body(const Webhook& hook) { return json::parse(hook.body).as_object(); }
json::object Data(const Webhook& hook) { return Body(hook)["data"].as_object(); }

std::vector<Webhook> To(WebhookReceiver& receiver, const std::string& target) {
  std::vector<Webhook> out;
  for (const auto& h : receiver.Received()) {
    if (h.target == target) out.push_back(h);
  }
  return out;
}

// True when one line of `log` contains every one of `parts`.
bool LogHasLine(const std::string& log, const std::vector<std::string>& parts) {
  std::istringstream in(log);
  for (std::string line; std::getline(in, line);) {
    bool all = true;
    for (const auto& p : parts) all = all && line.find(p) != std::string::npos;
    if (all) return true;
  }
  return false;
}

// The id of the gateway token whose plaintext is `token` (what decisions and
// phase confirmations name as "by").
std::string TokenId(const Deployment& d, const std::string& token) {
  auto db = Db::Open(d.dir() / "data" / "gateway.db");
  EXPECT_TRUE(db.ok()) << db.status().ToString();
  if (!db.ok()) return "";
  auto q = db->Prepare("SELECT id FROM tokens WHERE token_sha256 = ?");
  EXPECT_TRUE(q.ok());
  if (!q.ok()) return "";
  q->Bind(1, Sha256Hex(token));
  auto row = q->Step();
  EXPECT_TRUE(row.ok() && *row) << "token not found";
  return row.ok() && *row ? q->ColumnText(0) : "";
}

// Rows in amparo-rules' decisions table (one per notification it made).
int64_t RecordedDecisions(const Deployment& d) {
  auto db = Db::Open(d.dir() / "data" / "rules.db");
  EXPECT_TRUE(db.ok()) << db.status().ToString();
  if (!db.ok()) return -1;
  auto q = db->Prepare("SELECT count(*) FROM decisions");
  EXPECT_TRUE(q.ok()) << q.status().ToString();
  if (!q.ok()) return -1;
  auto row = q->Step();
  return row.ok() && *row ? q->ColumnInt(0) : -1;
}

// Stops the deployment and runs `amparo replay --deterministic` on its rules
// database: the replay must make exactly `expected_notifications`
// notifications, identical to the recorded ones.
void ExpectDeterministicReplay(Deployment& d, int expected_notifications) {
  ASSERT_EQ(d.StopAll(), 0) << "a daemon was not running or did not stop cleanly";
  EXPECT_EQ(RecordedDecisions(d), expected_notifications);
  std::string out =
      RunTool({(BinDir() / "amparo").string(), "replay", "--deterministic", "--config", d.config().string()});
  std::smatch m;
  ASSERT_TRUE(
      std::regex_search(out, m, std::regex(R"((\d+) notifications recorded, (\d+) made by the replay)")))
      << out;
  EXPECT_EQ(std::stoi(m[1].str()), expected_notifications) << out;
  EXPECT_EQ(std::stoi(m[2].str()), expected_notifications) << out;
  EXPECT_NE(out.find("\nidentical\n"), std::string::npos) << out;
  EXPECT_EQ(out.find("DIFFERENT"), std::string::npos) << out;
}

class AlertPolicyIntegrationTest : public ::testing::Test {
 protected:
  // PHL and NPL tokens and webhook subscriptions (/phl and /npl on `receiver_`).
  void SetUpMissions(Deployment& d) {
    phl_reg_ = d.Token("PHL", "registrar");
    npl_reg_ = d.Token("NPL", "registrar");
    phl_op_ = d.Token("PHL", "operator");
    npl_op_ = d.Token("NPL", "operator");
    for (const auto& [token, path] : {std::pair{phl_op_, "/phl"}, std::pair{npl_op_, "/npl"}}) {
      auto r = d.Call("POST", "/api/v1/subscriptions", token,
                      json::serialize(json::object{{"url", receiver_.url(path)}}));
      ASSERT_EQ(r.status, 201) << json::serialize(r.json);
    }
  }
  void Register(Deployment& d, const std::string& token, const std::string& body) {
    auto r = d.Call("POST", "/api/v1/registrants", token, body);
    ASSERT_EQ(r.status, 201) << json::serialize(r.json);
  }
  // Three PHL nationals within 7 km of the Tibet epicentre (6 people, one
  // older person), one PHL national in Beijing and one NPL national in
  // Kathmandu (about 225 km away): only PHL/CHN is exposed.
  void RegisterAroundTibet(Deployment& d) {
    Register(d, phl_reg_, RegistrantBody("PHL-T1", "CHN", 28.7000, 87.3608, 2, {"older_person"}));
    Register(d, phl_reg_, RegistrantBody("PHL-T2", "CHN", 28.6000, 87.4000, 1));
    Register(d, phl_reg_, RegistrantBody("PHL-T3", "CHN", 28.6390, 87.3000, 3));
    Register(d, phl_reg_, RegistrantBody("PHL-T4", "CHN", 39.9042, 116.4074, 1));  // Beijing
    Register(d, npl_reg_, RegistrantBody("NPL-T1", "NPL", 27.7172, 85.3240, 4));   // Kathmandu
    d.WaitRegistryHandedOver();
  }
  void ReplayTibet(Deployment& d) {
    fs::path detail = SharedFixtures() / "usgs" / "detail-monty" / "us6000pi9w.geojson";
    ASSERT_TRUE(fs::exists(detail)) << detail;
    RunTool({(BinDir() / "amparo").string(), "replay", "--config", d.config().string(), detail.string()});
  }
  void ExpectTibetExposure(json::object& a) {
    EXPECT_EQ(a["alert_id"].as_string(), kTibetPhlAlert);
    EXPECT_EQ(a["incident_id"].as_string(), kTibetIncident);
    EXPECT_EQ(a["state"].as_string(), "PHL");
    EXPECT_EQ(a["host_country"].as_string(), "CHN");
    EXPECT_EQ(a["hazard"].as_string(), "earthquake");
    EXPECT_EQ(a["exercise"].as_bool(), false);
    EXPECT_EQ(a["exposure"].as_object()["registrants"].to_number<int>(), 3);
    EXPECT_EQ(a["exposure"].as_object()["household_members"].to_number<int>(), 6);
    EXPECT_EQ(a["exposure"].as_object()["vulnerable"].to_number<int>(), 1);
    EXPECT_EQ(a["registrant_ids"].as_array().size(), 3u);
    EXPECT_EQ(a["sources"].as_array(), json::array{"usgs"});
  }

  WebhookReceiver receiver_;
  std::string phl_reg_, npl_reg_, phl_op_, npl_op_;
};

TEST_F(AlertPolicyIntegrationTest, ProposedPhaseFourWaitsForTheOperatorOfTheSameStateThenIsInForce) {
  Deployment d;
  const fs::path policy = d.dir() / "policy.toml";
  std::ofstream(policy) << R"([default]
repeat_interval = "6h"
[[default.rule]]
name = "red-evacuate"
source_level = "red"
level = "critical"
phase = 4
[[default.rule]]
name = "exposed"
level = "info"
)";
  d.SetConfig("rules", "policy_file", "\"" + policy.string() + "\"");
  d.StartAll();
  SetUpMissions(d);
  RegisterAroundTibet(d);
  ReplayTibet(d);

  ASSERT_TRUE(receiver_.WaitFor(1, 30s)) << "no webhook arrived";
  std::this_thread::sleep_for(1500ms);  // a second (wrong) one would arrive by now
  ASSERT_EQ(receiver_.Received().size(), 1u);
  ASSERT_EQ(To(receiver_, "/phl").size(), 1u) << "NPL has nobody exposed";
  const Webhook first = To(receiver_, "/phl")[0];
  EXPECT_EQ(Body(first)["type"].as_string(), "alert.raised");
  json::object a = Data(first);
  ExpectTibetExposure(a);
  EXPECT_EQ(a["revision"].to_number<int>(), 1);
  EXPECT_EQ(a["level"].as_string(), "critical");
  EXPECT_EQ(a["proposed_phase"].to_number<int>(), 4);
  EXPECT_EQ(a["phase"].to_number<int>(), 2) << "phase 4 must wait for an operator";
  EXPECT_EQ(a["lifecycle"].as_string(), "new");
  EXPECT_EQ(a["policy_rule"].as_string(), "default:red-evacuate");
  EXPECT_EQ(a["notification"].to_number<int>(), 0);
  EXPECT_TRUE(a["phase_confirmation"].is_null());
  EXPECT_EQ(a["decision_id"].as_string().size(), 32u);

  // The gateway has the alert (notify reported it) before operators decide.
  ASSERT_TRUE(Eventually(
      [&] {
        return d.Call("GET", std::string("/api/v1/alerts/") + kTibetPhlAlertPath, phl_op_).status == 200;
      },
      10s));
  const std::string decisions = std::string("/api/v1/alerts/") + kTibetPhlAlertPath + "/decisions";
  const std::string confirm =
      R"({"action": "confirm_phase", "phase": 4, "reason": "airport closed, roads cut"})";

  // Another state's operator: the alert does not exist for them, and rules
  // never hears of it.
  auto foreign = d.Call("POST", decisions, npl_op_, confirm);
  EXPECT_EQ(foreign.status, 404) << json::serialize(foreign.json);
  std::this_thread::sleep_for(2500ms);  // > rules' 1 s timer and notify's scan
  EXPECT_EQ(receiver_.Received().size(), 1u) << "another state's decision produced a webhook";

  // PHL's operator confirms phase 4: a new revision with phase 4 in force.
  auto posted = d.Call("POST", decisions, phl_op_, confirm);
  ASSERT_EQ(posted.status, 202) << json::serialize(posted.json);
  const std::string phl_op_id = TokenId(d, phl_op_);
  ASSERT_EQ(phl_op_id.size(), 32u);
  EXPECT_EQ(posted.json.as_object()["by"].as_string(), phl_op_id);
  EXPECT_EQ(posted.json.as_object()["action"].as_string(), "confirm_phase");

  ASSERT_TRUE(receiver_.WaitFor(2, 20s)) << "no webhook after the confirmation";
  std::this_thread::sleep_for(1500ms);
  ASSERT_EQ(receiver_.Received().size(), 2u);
  auto phl = To(receiver_, "/phl");
  ASSERT_EQ(phl.size(), 2u);
  EXPECT_NE(phl[1].headers.at("webhook-id"), phl[0].headers.at("webhook-id"));
  EXPECT_EQ(Body(phl[1])["type"].as_string(), "alert.updated");
  json::object b = Data(phl[1]);
  ExpectTibetExposure(b);
  EXPECT_EQ(b["revision"].to_number<int>(), 2);
  EXPECT_EQ(b["level"].as_string(), "critical");
  EXPECT_EQ(b["phase"].to_number<int>(), 4);
  EXPECT_EQ(b["proposed_phase"].to_number<int>(), 4);
  EXPECT_EQ(b["lifecycle"].as_string(), "escalated");
  EXPECT_EQ(b["policy_rule"].as_string(), "operator:CONFIRM_PHASE");
  EXPECT_EQ(b["notification"].to_number<int>(), 0);
  EXPECT_NE(b["decision_id"].as_string(), a["decision_id"].as_string());
  ASSERT_TRUE(b["phase_confirmation"].is_object()) << phl[1].body;
  json::object& c = b["phase_confirmation"].as_object();
  EXPECT_EQ(c["phase"].to_number<int>(), 4);
  EXPECT_EQ(c["by"].as_string(), phl_op_id);
  EXPECT_EQ(c["reason"].as_string(), "airport closed, roads cut");
  EXPECT_TRUE(c["at"].is_string());

  // The decision is listed for PHL, not for NPL.
  auto listed = d.Call("GET", decisions, phl_op_);
  ASSERT_EQ(listed.status, 200);
  ASSERT_EQ(listed.json.as_object()["items"].as_array().size(), 1u);
  EXPECT_EQ(d.Call("GET", decisions, npl_op_).status, 404);

  ExpectDeterministicReplay(d, 2);
}

TEST_F(AlertPolicyIntegrationTest, SilencedAlertIsShownToOperatorsButPushedOnlyOnceTheSilenceIsLifted) {
  Deployment d;  // the built-in policy: PAGER red over a few nationals is critical, phase 2
  d.StartAll();
  SetUpMissions(d);
  RegisterAroundTibet(d);

  const std::string ends = FormatRfc3339(SystemClock::Instance().NowMs() + 3'600'000);
  auto created = d.Call("POST", "/api/v1/silences", phl_op_,
                        json::serialize(json::object{{"incident_id", kTibetIncident},
                                                     {"ends", ends},
                                                     {"reason", "embassy already calling every national"}}));
  ASSERT_EQ(created.status, 201) << json::serialize(created.json);
  const std::string silence_id(created.json.as_object()["silence_id"].as_string());
  EXPECT_EQ(created.json.as_object()["status"].as_string(), "active");
  d.WaitRegistryHandedOver();  // rules has the silence before the event
  ReplayTibet(d);

  // The alert reaches the gateway, marked silenced ...
  auto phl_alert = [&] {
    auto r = d.Call("GET", "/api/v1/alerts", phl_op_);
    if (r.status != 200 || r.json.as_object()["items"].as_array().size() != 1) return json::object();
    return r.json.as_object()["items"].as_array()[0].as_object();
  };
  ASSERT_TRUE(Eventually([&] { return !phl_alert().empty(); }, 30s)) << "the alert never reached the gateway";
  json::object shown = phl_alert();
  ExpectTibetExposure(shown);
  EXPECT_EQ(shown["level"].as_string(), "critical");
  EXPECT_EQ(shown["policy_rule"].as_string(), "default:red-source");
  EXPECT_EQ(shown["revision"].to_number<int>(), 1);
  EXPECT_EQ(shown["notification"].to_number<int>(), 0);
  EXPECT_EQ(shown["silenced"].as_bool(), true);
  EXPECT_EQ(shown["silence_id"].as_string(), silence_id);
  ASSERT_TRUE(shown["silence"].is_object()) << json::serialize(shown);
  EXPECT_EQ(shown["silence"].as_object()["reason"].as_string(), "embassy already calling every national");
  EXPECT_EQ(shown["deliveries"].as_array().size(), 0u);
  // ... and no embassy is told.
  std::this_thread::sleep_for(3s);
  EXPECT_EQ(receiver_.Received().size(), 0u) << "a silenced alert was pushed";

  // Lifting the silence: rules' timer notifies the open alert again.
  auto lifted = d.Call("DELETE", "/api/v1/silences/" + silence_id + "?reason=handled", phl_op_);
  ASSERT_EQ(lifted.status, 200) << json::serialize(lifted.json);
  EXPECT_EQ(lifted.json.as_object()["status"].as_string(), "expired");
  ASSERT_TRUE(receiver_.WaitFor(1, 20s)) << "no webhook after the silence was lifted";
  std::this_thread::sleep_for(1500ms);
  ASSERT_EQ(receiver_.Received().size(), 1u);
  auto phl = To(receiver_, "/phl");
  ASSERT_EQ(phl.size(), 1u);
  EXPECT_EQ(Body(phl[0])["type"].as_string(), "alert.raised");
  json::object a = Data(phl[0]);
  ExpectTibetExposure(a);
  EXPECT_EQ(a["revision"].to_number<int>(), 1);
  EXPECT_EQ(a["notification"].to_number<int>(), 1);
  EXPECT_EQ(a["silenced"].as_bool(), false);
  EXPECT_EQ(a["silence_id"].as_string(), "");
  EXPECT_EQ(a["level"].as_string(), "critical");
  EXPECT_EQ(a["phase"].to_number<int>(), 2);
  EXPECT_EQ(a["proposed_phase"].to_number<int>(), 2);
  ASSERT_TRUE(Eventually(
      [&] {
        json::object shown = phl_alert();
        return shown.contains("notification") && shown["notification"].to_number<int>() == 1;
      },
      10s));
  EXPECT_EQ(phl_alert()["silenced"].as_bool(), false);

  ExpectDeterministicReplay(d, 2);  // the silenced notification and its repeat
}

// A one-feature USGS summary feed: M6.0 at depth 10 km (strong shaking
// within about 25 km), no PAGER level; `day` sets its time.
std::string SyntheticQuake(const std::string& id, double lat, double lon, int day) {
  const int64_t ms = 1537000000000 + int64_t{day} * 86'400'000;
  json::object props{{"mag", 6.0},
                     {"place", "synthetic policy test event " + id},
                     {"time", ms},
                     {"updated", ms},
                     {"status", "reviewed"},
                     {"type", "earthquake"},
                     {"title", "M 6.0 - synthetic " + id},
                     {"url", "https://example.invalid/" + id},
                     {"ids", "," + id + ","},
                     {"alert", nullptr},
                     {"tsunami", 0},
                     {"mmi", nullptr}};
  json::object feature{{"type", "Feature"},
                       {"id", id},
                       {"properties", props},
                       {"geometry", {{"type", "Point"}, {"coordinates", json::array{lon, lat, 10.0}}}}};
  return json::serialize(json::object{
      {"type", "FeatureCollection"}, {"metadata", {{"count", 1}}}, {"features", json::array{feature}}});
}

TEST_F(AlertPolicyIntegrationTest, SighupReloadsAValidPolicyAndKeepsTheLastGoodOneWhenTheFileIsBroken) {
  Deployment d;
  const fs::path policy = d.dir() / "policy.toml";
  const std::string info_policy = R"([default]
[[default.rule]]
name = "exposed"
level = "info"
)";
  const std::string critical_policy = R"([default]
[[default.rule]]
name = "any-earthquake"
hazards = ["earthquake"]
level = "critical"
[[default.rule]]
name = "exposed"
level = "info"
)";
  const std::string broken_policy = R"([default]
[[default.rule]]
name = "any-earthquake"
hazards = ["earthquake"]
level = "severe"
[[default.rule]]
name = "exposed"
level = "info"
)";
  std::ofstream(policy) << info_policy;
  d.SetConfig("rules", "policy_file", "\"" + policy.string() + "\"");
  d.StartAll();
  SetUpMissions(d);
  // Osaka: two PHL nationals within 2 km of the synthetic epicentres.
  Register(d, phl_reg_, RegistrantBody("PHL-O1", "JPN", 34.6937, 135.5023, 1));
  Register(d, phl_reg_, RegistrantBody("PHL-O2", "JPN", 34.7037, 135.5023, 3));
  d.WaitRegistryHandedOver();
  ASSERT_TRUE(Eventually(
      [&] {
        return LogHasLine(d.Log("rules"), {"policy loaded", Sha256Hex(info_policy)});
      },
      5s))
      << d.Log("rules");

  auto quake = [&](const std::string& id, int day) {
    fs::path file = d.dir() / (id + ".json");
    std::ofstream(file) << SyntheticQuake(id, 34.6937, 135.5023, day);
    RunTool({(BinDir() / "amparo").string(), "replay", "--config", d.config().string(), file.string()});
  };
  auto expect_alert = [&](size_t n, const std::string& id, const std::string& level,
                          const std::string& rule) {
    ASSERT_TRUE(receiver_.WaitFor(n, 30s)) << "webhook " << n << " (" << id << ") did not arrive";
    std::this_thread::sleep_for(1s);
    auto hooks = To(receiver_, "/phl");
    ASSERT_EQ(receiver_.Received().size(), n);
    ASSERT_EQ(hooks.size(), n);
    json::object a = Data(hooks[n - 1]);
    EXPECT_EQ(a["alert_id"].as_string(), "usgs:" + id + "/PHL/JPN");
    EXPECT_EQ(a["exposure"].as_object()["registrants"].to_number<int>(), 2);
    EXPECT_EQ(a["level"].as_string(), level) << id;
    EXPECT_EQ(a["policy_rule"].as_string(), rule) << id;
  };

  quake("itpolicy1", 0);
  expect_alert(1, "itpolicy1", "info", "default:exposed");

  // A valid new policy: the same kind of event is now critical.
  std::ofstream(policy, std::ios::trunc) << critical_policy;
  ASSERT_EQ(kill(d.daemon("rules").pid(), SIGHUP), 0);
  ASSERT_TRUE(Eventually(
      [&] {
        return LogHasLine(d.Log("rules"), {"policy reloaded", Sha256Hex(critical_policy)});
      },
      5s))
      << d.Log("rules");
  quake("itpolicy2", 1);
  expect_alert(2, "itpolicy2", "critical", "default:any-earthquake");

  // A broken file: refused with its reason, the last good policy stays.
  std::ofstream(policy, std::ios::trunc) << broken_policy;
  ASSERT_EQ(kill(d.daemon("rules").pid(), SIGHUP), 0);
  ASSERT_TRUE(Eventually(
      [&] {
        return LogHasLine(d.Log("rules"), {"policy reload failed", "must be info, warning or critical",
                                           Sha256Hex(critical_policy)});
      },
      5s))
      << d.Log("rules");
  EXPECT_TRUE(d.daemon("rules").Running());
  quake("itpolicy3", 2);
  expect_alert(3, "itpolicy3", "critical", "default:any-earthquake");
  EXPECT_TRUE(d.daemon("rules").Running());

  // The replay uses the policy each decision was recorded with.
  ExpectDeterministicReplay(d, 3);
}

}  // namespace
}  // namespace amparo::integration
