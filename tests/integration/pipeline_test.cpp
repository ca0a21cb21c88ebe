// End-to-end tests: the real binaries as processes, talking over their
// public interfaces only (CLI, HTTP API, spool directory, webhooks).
#include <gtest/gtest.h>

#include <fstream>
#include <set>

#include "tests/integration/harness.h"

namespace amparo::integration {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using namespace std::chrono_literals;

json::object Data(const Webhook& hook) { return json::parse(hook.body).as_object()["data"].as_object(); }

class PipelineTest : public ::testing::Test {
 protected:
  std::string Subscribe(Deployment& d, const std::string& token, const std::string& url) {
    auto r = d.Call("POST", "/api/v1/subscriptions", token, json::serialize(json::object{{"url", url}}));
    EXPECT_EQ(r.status, 201) << json::serialize(r.json);
    return std::string(r.json.as_object()["secret"].as_string());
  }
  // Registrar and operator tokens of the Philippines and Nepal, and each
  // state's webhook subscription (to /phl and /npl on `receiver`).
  struct Missions {
    std::string phl_reg, npl_reg, phl_op, npl_op, phl_secret, npl_secret;
  };
  Missions TwoMissions(Deployment& d, WebhookReceiver& receiver) {
    Missions m{d.Token("PHL", "registrar"), d.Token("NPL", "registrar"), d.Token("PHL", "operator"),
               d.Token("NPL", "operator"), "", ""};
    m.phl_secret = Subscribe(d, m.phl_op, receiver.url("/phl"));
    m.npl_secret = Subscribe(d, m.npl_op, receiver.url("/npl"));
    return m;
  }
  void Register(Deployment& d, const std::string& token, const std::string& body) {
    auto r = d.Call("POST", "/api/v1/registrants", token, body);
    ASSERT_EQ(r.status, 201) << json::serialize(r.json);
  }
};

TEST_F(PipelineTest, RealUsgsEarthquakeAlertsOnlyExposedStatesWithSignedWebhooks) {
  Deployment d;
  d.StartAll();
  WebhookReceiver receiver;
  auto [phl_reg, npl_reg, phl_op, npl_op, phl_secret, npl_secret] = TwoMissions(d, receiver);

  // us2000hf42: M5.2, depth 10 km, 157 km E of Pagan, Northern Mariana
  // Islands (18.1337 N, 147.2618 E): strong-shaking radius about 6.7 km.
  // Inside: about 2 km from the epicentre. Outside: Pagan, Nago, Tokyo.
  Register(d, phl_reg, RegistrantBody("PHL-1", "MNP", 18.1517, 147.2618, 1, {"older_person"}));
  Register(d, phl_reg, RegistrantBody("PHL-2", "MNP", 18.1337, 147.2808, 2));
  Register(d, phl_reg, RegistrantBody("PHL-3", "MNP", 18.1200, 147.2618, 4));
  Register(d, phl_reg, RegistrantBody("PHL-4", "MNP", 18.1200, 145.7600, 1));    // Pagan
  Register(d, phl_reg, RegistrantBody("PHL-5", "JPN", 35.6762, 139.6503, 3));    // Tokyo
  Register(d, npl_reg, RegistrantBody("NPL-1", "MNP", 18.1400, 147.2700, 3));
  Register(d, npl_reg, RegistrantBody("NPL-2", "MNP", 18.1300, 147.2500, 3));
  Register(d, npl_reg, RegistrantBody("NPL-3", "JPN", 26.5917, 127.9775, 2));    // Nago
  d.WaitRegistryHandedOver();

  fs::path feed = SharedFixtures() / "usgs/summary-exxamalte/usgs_all_earthquakes_past_day.json";
  RunTool({(BinDir() / "amparo").string(), "replay", "--config", d.config().string(), feed.string()});

  ASSERT_TRUE(receiver.WaitFor(2, 30s)) << "webhooks received: " << receiver.Received().size();
  std::this_thread::sleep_for(1500ms);  // nothing else may arrive
  auto hooks = receiver.Received();
  ASSERT_EQ(hooks.size(), 2u);
  std::map<std::string, Webhook> by_target;
  for (const auto& h : hooks) by_target[h.target] = h;
  ASSERT_EQ(by_target.size(), 2u);

  const Webhook& phl = by_target.at("/phl");
  EXPECT_TRUE(VerifySignature(phl, phl_secret));
  EXPECT_FALSE(VerifySignature(phl, npl_secret));
  EXPECT_EQ(json::parse(phl.body).as_object()["type"].as_string(), "alert.raised");
  json::object a = Data(phl);
  EXPECT_EQ(a["alert_id"].as_string(), "usgs:us2000hf42/PHL/MNP");
  EXPECT_EQ(a["state"].as_string(), "PHL");
  EXPECT_EQ(a["host_country"].as_string(), "MNP");
  EXPECT_EQ(a["exposure"].as_object()["registrants"].to_number<int>(), 3);
  EXPECT_EQ(a["exposure"].as_object()["household_members"].to_number<int>(), 7);
  EXPECT_EQ(a["exposure"].as_object()["vulnerable"].to_number<int>(), 1);
  EXPECT_EQ(a["exercise"].as_bool(), false);
  EXPECT_EQ(a["registrant_ids"].as_array().size(), 3u);

  const Webhook& npl = by_target.at("/npl");
  EXPECT_TRUE(VerifySignature(npl, npl_secret));
  json::object b = Data(npl);
  EXPECT_EQ(b["alert_id"].as_string(), "usgs:us2000hf42/NPL/MNP");
  EXPECT_EQ(b["exposure"].as_object()["registrants"].to_number<int>(), 2);
  EXPECT_EQ(b["exposure"].as_object()["household_members"].to_number<int>(), 6);
  EXPECT_EQ(b["exposure"].as_object()["vulnerable"].to_number<int>(), 0);
  EXPECT_NE(phl.headers.at("webhook-id"), npl.headers.at("webhook-id"));

  // The console's API shows each state its own alert only.
  ASSERT_TRUE(Eventually(
      [&] {
        auto r = d.Call("GET", "/api/v1/alerts", phl_op);
        return r.status == 200 && r.json.as_object()["items"].as_array().size() == 1;
      },
      10s));
  auto phl_alerts = d.Call("GET", "/api/v1/alerts", phl_op).json.as_object()["items"].as_array();
  EXPECT_EQ(phl_alerts[0].as_object()["alert_id"].as_string(), "usgs:us2000hf42/PHL/MNP");
  auto npl_alerts = d.Call("GET", "/api/v1/alerts", npl_op).json.as_object()["items"].as_array();
  ASSERT_EQ(npl_alerts.size(), 1u);
  EXPECT_EQ(npl_alerts[0].as_object()["state"].as_string(), "NPL");
  // Another state's alert does not exist for this token.
  EXPECT_EQ(d.Call("GET", "/api/v1/alerts/usgs%3Aus2000hf42%2FPHL%2FMNP", npl_op).status, 404);

  // The feed file was consumed.
  EXPECT_TRUE(Eventually([&] { return !fs::is_empty(d.spool() / "processed"); }, 5s));
}

TEST_F(PipelineTest, BadInputIsRejectedNamedAndDoesNotStopThePipeline) {
  Deployment d;
  d.StartAll();
  std::string token = d.Token("PHL", "registrar");

  // A malformed feed file goes to rejected/ with its reason.
  fs::create_directories(d.spool() / "tmp");
  std::ofstream(d.spool() / "tmp" / "broken.json") << "{\"type\": \"FeatureCollection\", \"features\": [";
  fs::rename(d.spool() / "tmp" / "broken.json", d.spool() / "broken.json");
  ASSERT_TRUE(Eventually([&] { return fs::exists(d.spool() / "rejected" / "broken.json.error"); }, 10s));
  std::ifstream error_file(d.spool() / "rejected" / "broken.json.error");
  std::string reason((std::istreambuf_iterator<char>(error_file)), {});
  EXPECT_FALSE(reason.empty());
  EXPECT_TRUE(d.daemon("ingest").Running());

  // A malformed HTTP body: 400 naming the field.
  auto r = d.Call("POST", "/api/v1/registrants", token, RegistrantBody("X-1", "JPN", 123.0, 10.0, 1));
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.json.as_object()["error"].as_object()["field"].as_string(), "lat");
  auto bad_json = d.Call("POST", "/api/v1/registrants", token, "{\"external_ref\": ");
  EXPECT_EQ(bad_json.status, 400);
  // ... and the next good request still works.
  EXPECT_EQ(d.Call("POST", "/api/v1/registrants", token, RegistrantBody("X-2", "JPN", 35.0, 139.0, 1)).status, 201);

  // A bad config key: the daemon refuses to start and names it.
  fs::path bad = d.dir() / "bad.toml";
  std::ofstream(bad) << "[rules]\nearthquake_min_mmi = \"strong\"\n";
  std::string cmd = "'" + (BinDir() / "amparo-rules").string() + "' --config '" + bad.string() + "' 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  char buf[512];
  while (size_t n = fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  int rc = pclose(p);
  EXPECT_EQ(WEXITSTATUS(rc), 2);
  EXPECT_NE(out.find("rules.earthquake_min_mmi"), std::string::npos) << out;
  EXPECT_NE(out.find("must be a number"), std::string::npos) << out;
}

// A synthetic one-feature USGS summary feed (M6.0, depth 10 km: strong
// shaking within about 20 km).
std::string SyntheticQuake(const std::string& id, double lat, double lon) {
  json::object props{{"mag", 6.0},
                     {"place", "synthetic test event " + id},
                     {"time", 1537000000000},
                     {"updated", 1537000000000},
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
  json::object feed{{"type", "FeatureCollection"},
                    {"metadata", {{"count", 1}}},
                    {"features", json::array{feature}}};
  return json::serialize(feed);
}

void DropIntoSpool(const Deployment& d, const std::string& name, const std::string& content) {
  fs::create_directories(d.spool() / "tmp");
  std::ofstream(d.spool() / "tmp" / name) << content;
  fs::rename(d.spool() / "tmp" / name, d.spool() / name);
}

TEST_F(PipelineTest, KillNineOfRulesThenNotifyWhileEventsFlowLosesNothingAndRepeatsNothing) {
  Deployment d;
  d.StartAll();
  WebhookReceiver receiver;
  auto [phl_reg, npl_reg, phl_op, npl_op, phl_secret, npl_secret] = TwoMissions(d, receiver);
  struct Cluster {
    std::string host;
    double lat, lon;
    std::vector<std::string> states;
  };
  const std::vector<Cluster> clusters = {{"JPN", 35.6762, 139.6503, {"PHL"}},
                                         {"SAU", 24.7136, 46.6753, {"PHL", "NPL"}},
                                         {"QAT", 25.2854, 51.5310, {"NPL"}}};
  int n = 0;
  for (const auto& c : clusters) {
    for (const auto& s : c.states) {
      Register(d, s == "PHL" ? phl_reg : npl_reg,
               RegistrantBody(s + "-" + std::to_string(++n), c.host, c.lat + 0.01, c.lon, 2));
    }
  }
  d.WaitRegistryHandedOver();

  std::set<std::string> expected;  // alert ids
  const int kEvents = 24;
  auto feed = [&](int from, int to) {
    for (int i = from; i < to; ++i) {
      const Cluster& c = clusters[i % clusters.size()];
      std::string id = "it" + std::to_string(1000 + i);
      for (const auto& s : c.states) expected.insert("usgs:" + id + "/" + s + "/" + c.host);
      DropIntoSpool(d, id + ".json", SyntheticQuake(id, c.lat, c.lon));
      std::this_thread::sleep_for(60ms);
    }
  };
  feed(0, 8);
  d.daemon("rules").Kill9();
  feed(8, 12);
  d.daemon("rules").Start();
  feed(12, 16);
  // Let notify finish and record what it has in flight, so that the kill
  // below tests durability of queued work: a kill between a 2xx and its
  // commit would legitimately repeat a delivery under the same webhook-id.
  // Notify reports each recorded delivery to the gateway's alert API.
  auto recorded_deliveries = [&] {
    size_t n = 0;
    for (const std::string& token : {phl_op, npl_op}) {
      auto r = d.Call("GET", "/api/v1/alerts?limit=1000", token);
      if (r.status != 200) return size_t{0};
      for (const auto& a : r.json.as_object()["items"].as_array()) {
        for (const auto& del : a.as_object().at("deliveries").as_array()) {
          n += del.as_object().at("status").as_string() == "delivered";
        }
      }
    }
    return n;
  };
  ASSERT_TRUE(Eventually([&] { return recorded_deliveries() == expected.size(); }, 60s))
      << recorded_deliveries() << " of " << expected.size();
  d.daemon("notify").Kill9();
  feed(16, 20);
  d.daemon("notify").Start();
  feed(20, kEvents);
  ASSERT_EQ(expected.size(), 32u);

  auto distinct_ids = [&] {
    std::set<std::string> ids;
    for (const auto& h : receiver.Received()) ids.insert(h.headers.at("webhook-id"));
    return ids.size();
  };
  ASSERT_TRUE(Eventually([&] { return distinct_ids() >= expected.size(); }, 60s))
      << "distinct webhooks: " << distinct_ids() << " of " << expected.size();
  std::this_thread::sleep_for(2s);  // late repeats would show up now

  std::map<std::string, std::string> body_by_id;  // webhook-id -> body
  std::map<std::string, std::string> id_by_alert;  // alert_id#revision -> webhook-id
  std::set<std::string> alerts;
  int repeats = 0;
  for (const auto& h : receiver.Received()) {
    EXPECT_TRUE(VerifySignature(h, h.target == "/phl" ? phl_secret : npl_secret));
    const std::string& id = h.headers.at("webhook-id");
    auto [it, fresh] = body_by_id.emplace(id, h.body);
    if (!fresh) {
      ++repeats;
      EXPECT_EQ(it->second, h.body) << "a repeat must be byte-identical under the same webhook-id";
      continue;
    }
    json::object a = Data(h);
    std::string alert_id(a["alert_id"].as_string());
    EXPECT_EQ(a["revision"].to_number<int>(), 1) << alert_id;
    auto [prev, first] = id_by_alert.emplace(alert_id + "#" + std::to_string(a["revision"].to_number<int>()), id);
    EXPECT_TRUE(first) << alert_id << " delivered under two webhook-ids";
    alerts.insert(alert_id);
  }
  EXPECT_EQ(alerts, expected);
  // Nothing was in flight when notify was killed, so nothing may repeat.
  EXPECT_EQ(repeats, 0);
  std::cout << "[ metrics  ] alerts=" << alerts.size() << " webhooks=" << receiver.Received().size()
            << " repeats=" << repeats << "\n";
}

TEST_F(PipelineTest, DemoDataRegistersItsWholePopulationThroughTheImportApi) {
  Deployment d;
  d.StartAll();
  // More registrants than the per-token rate limit's burst: one bulk import
  // per state, not one request per person.
  std::string out = RunTool({(BinDir() / "amparo").string(), "demo-data", "--config", d.config().string(),
                             "--registrants", "600", "--states", "PHL,NPL", "--seed", "7"});
  EXPECT_NE(out.find("registered 600 demo nationals (0 rejected)"), std::string::npos) << out;
  std::string token = d.Token("NPL", "registrar");
  auto list = d.Call("GET", "/api/v1/registrants?limit=1000", token);
  ASSERT_EQ(list.status, 200);
  EXPECT_EQ(list.json.as_object()["items"].as_array().size(), 300u);
}

}  // namespace
}  // namespace amparo::integration
