// The gateway as a client sees it: a real GatewayDaemon (HTTP server on
// 127.0.0.1 port 0, link loop on a background thread), real HTTP and
// WebSocket clients, and a LinkSender standing in for amparo-notify.
#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast.hpp>
#include <boost/json.hpp>

#include <chrono>
#include <fstream>
#include <optional>
#include <thread>

#include "amparo/v1/envelope.pb.h"
#include "common/alert_json.h"
#include "common/crypto.h"
#include "common/link.h"
#include "common/testing.h"
#include "services/gateway/gateway_daemon.h"
#include "services/gateway/gateway_store.h"

namespace amparo::gateway {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace json = boost::json;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

struct Reply {
  int status = 0;
  std::string content_type;
  std::string body;
  json::value Json() const { return json::parse(body); }
  std::string ErrorCode() const { return std::string(Json().at("error").at("code").as_string()); }
  std::string ErrorField() const { return std::string(Json().at("error").at("field").as_string()); }
};

// One request on a fresh connection.
Reply Request(uint16_t port, http::verb method, const std::string& target, const std::string& token = {},
              const std::string& body = {}, const std::string& content_type = "application/json") {
  asio::io_context ioc;
  tcp::socket socket(ioc);
  socket.connect({asio::ip::make_address("127.0.0.1"), port});
  http::request<http::string_body> req{method, target, 11};
  req.set(http::field::host, "127.0.0.1");
  if (!token.empty()) req.set(http::field::authorization, "Bearer " + token);
  if (!body.empty()) {
    req.set(http::field::content_type, content_type);
    req.body() = body;
  }
  req.prepare_payload();
  http::write(socket, req);
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(16 << 20);
  http::read(socket, buffer, parser);
  Reply reply;
  reply.status = parser.get().result_int();
  reply.content_type = std::string(parser.get()[http::field::content_type]);
  reply.body = parser.get().body();
  return reply;
}

// A live-feed client with reads bounded in time.
class LiveClient {
 public:
  LiveClient(uint16_t port, const std::string& token) {
    beast::get_lowest_layer(ws_).connect({asio::ip::make_address("127.0.0.1"), port});
    ws_.handshake("127.0.0.1", "/api/v1/live");
    ws_.text(true);
    ws_.write(asio::buffer(json::serialize(json::object{{"token", token}})));
  }
  // The next text frame, or nullopt when none arrives within `timeout` (or
  // the server closed). After a nullopt the client is done.
  std::optional<json::value> Next(std::chrono::milliseconds timeout = 5s) {
    beast::flat_buffer buffer;
    bool done = false;
    beast::error_code error;
    ws_.async_read(buffer, [&](beast::error_code ec, size_t) {
      error = ec;
      done = true;
    });
    ioc_.restart();
    ioc_.run_for(timeout);
    if (!done) {
      beast::get_lowest_layer(ws_).cancel();
      ioc_.restart();
      ioc_.run();
      return std::nullopt;
    }
    if (error) return std::nullopt;
    return json::parse(beast::buffers_to_string(buffer.data()));
  }

 private:
  asio::io_context ioc_;
  websocket::stream<tcp::socket> ws_{ioc_};
};

v1::ConsularAlert Alert(const std::string& state, const std::string& host, bool exercise = false) {
  v1::ConsularAlert a;
  a.set_incident_id("usgs:us2000hf24");
  a.set_alert_id("usgs:us2000hf24/" + state + "/" + host);
  a.set_revision(1);
  a.set_state(state);
  a.set_host_country(host);
  a.set_level(v1::ALERT_LEVEL_CRITICAL);
  a.mutable_exposure()->set_registrants(12);
  a.mutable_exposure()->set_household_members(31);
  a.mutable_exposure()->set_vulnerable(3);
  a.set_reason("12 registrants within 85 km of the epicentre");
  a.set_hazard(v1::HAZARD_KIND_EARTHQUAKE);
  a.set_headline("M 6.6 - 27km ESE of Tomakomai, Japan");
  auto* circle = a.mutable_footprint()->add_circles();
  circle->mutable_center()->set_lat(42.6861);
  circle->mutable_center()->set_lon(141.9294);
  circle->set_radius_km(85.5);
  a.set_raised_ms(1'536'004'000'000);
  a.set_event_sent_ms(1'536'003'900'000);
  a.add_registrant_ids("0123456789abcdef0123456789abcdef");
  a.set_exercise(exercise);
  a.set_event_status(exercise ? "Exercise" : "Actual");
  return a;
}

std::string Encode(std::string_view id) {
  std::string out;
  for (char c : id) {
    if (c == '/') {
      out += "%2F";
    } else if (c == ':') {
      out += "%3A";
    } else {
      out += c;
    }
  }
  return out;
}

constexpr char kRegistrantBody[] =
    R"({"external_ref":"PH-0001","host_country":"JPN","lat":35.6895,"lon":139.6917,"household_size":3,)"
    R"("languages":["fil","en"],"vulnerabilities":["child","older_person"]})";

class GatewayHttpTest : public ::testing::Test {
 protected:
  // The FakeClock does not move: keep the per-token bucket out of the way
  // except where a test is about it.
  virtual std::string RateLimitConfig() const {
    return "rate_limit_per_s = 100000\nrate_limit_burst = 100000\n";
  }
  void SetUp() override {
    auto config = Config::Parse(R"(
      [gateway]
      listen = "127.0.0.1:0"
      port_file = "gateway.port"
      max_body_bytes = 4096
      request_timeout_ms = 1000
    )" + RateLimitConfig(),
                                dir_.path());
    ASSERT_TRUE(config.ok()) << config.status().ToString();
    config_ = *config;
    auto daemon = GatewayDaemon::Create(config_, ctx_, clock_);
    ASSERT_TRUE(daemon.ok()) << daemon.status().ToString();
    daemon_ = std::move(daemon).value();
    port_ = daemon_->http_port();
    link_thread_ = std::thread([this] { daemon_->Run(stop_); });

    db_.emplace(std::move(*Db::Open(config_.DbPath("gateway"))));
    phl_registrar_ = *CreateToken(*db_, "PHL", Role::kRegistrar, clock_);
    phl_operator_ = *CreateToken(*db_, "PHL", Role::kOperator, clock_);
    jpn_registrar_ = *CreateToken(*db_, "JPN", Role::kRegistrar, clock_);
    jpn_operator_ = *CreateToken(*db_, "JPN", Role::kOperator, clock_);
  }

  void TearDown() override {
    stop_ = true;
    if (link_thread_.joinable()) link_thread_.join();
    daemon_.reset();
  }

  std::vector<v1::Envelope> Outbox(const std::string& peer) { return *PendingOutbound(*db_, peer); }

  std::string CreateRegistrant(const std::string& token, const std::string& ref) {
    std::string body = kRegistrantBody;
    body.replace(body.find("PH-0001"), 7, ref);
    Reply r = Request(port_, http::verb::post, "/api/v1/registrants", token, body);
    EXPECT_EQ(r.status, 201) << r.body;
    return std::string(r.Json().at("id").as_string());
  }

  // Sends envelopes to the gateway's inbox as amparo-notify would, and
  // waits until the gateway has stored them.
  void SendFromNotify(const std::vector<v1::Envelope>& envelopes) {
    if (!notify_db_) {
      notify_db_.emplace(std::move(*Db::Open(dir_ / "notify.db")));
      ASSERT_TRUE(InitLinkTables(*notify_db_).ok());
      notify_sender_ = std::make_unique<LinkSender>(
          notify_ctx_, *notify_db_, "gateway", config_.gateway.inbox, config_.link, SystemClock::Instance());
      ASSERT_TRUE(notify_sender_->Start().ok());
    }
    for (const auto& env : envelopes) ASSERT_TRUE(EnqueueOutbound(*notify_db_, "gateway", env).ok());
    for (int i = 0; i < 500 && *notify_sender_->Depth() > 0; ++i) {
      ASSERT_TRUE(notify_sender_->Pump().ok());
      std::this_thread::sleep_for(10ms);
    }
    ASSERT_EQ(*notify_sender_->Depth(), 0);
  }

  v1::Envelope AlertEnvelope(const v1::ConsularAlert& alert) {
    v1::Envelope env = MakeEnvelope("amparo-notify", SystemClock::Instance());
    *env.mutable_consular_alert() = alert;
    return env;
  }

  // Polls GET `target` until it answers `status` (the link loop runs on
  // its own thread), at most ~5 s.
  Reply AwaitStatus(const std::string& target, const std::string& token, int status) {
    Reply r;
    for (int i = 0; i < 250; ++i) {
      r = Request(port_, http::verb::get, target, token);
      if (r.status == status) break;
      std::this_thread::sleep_for(20ms);
    }
    return r;
  }

  testing::TempDir dir_;
  Config config_;
  FakeClock clock_{1'700'000'000'000};
  LinkContext ctx_;
  std::unique_ptr<GatewayDaemon> daemon_;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread link_thread_;
  std::optional<Db> db_;
  std::string phl_registrar_, phl_operator_, jpn_registrar_, jpn_operator_;
  LinkContext notify_ctx_;
  std::optional<Db> notify_db_;
  std::unique_ptr<LinkSender> notify_sender_;
};

TEST_F(GatewayHttpTest, HealthzNeedsNoTokenAndPortFileHoldsThePort) {
  Reply r = Request(port_, http::verb::get, "/healthz");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.content_type, "application/json");
  EXPECT_EQ(r.body, R"({"status":"ok"})");
  std::ifstream in(dir_ / "gateway.port");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(text, std::to_string(port_) + "\n");
}

TEST_F(GatewayHttpTest, ConsoleIsOneSelfContainedHtmlPage) {
  Reply r = Request(port_, http::verb::get, "/");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.content_type, "text/html; charset=utf-8");
  EXPECT_EQ(r.body.rfind("<!doctype html>", 0), 0u);
  EXPECT_NE(r.body.find("/api/v1/live"), std::string::npos);
  EXPECT_NE(r.body.find("EXERCISE"), std::string::npos);
  EXPECT_NE(r.body.find("sessionStorage"), std::string::npos);
  EXPECT_EQ(r.body.find("<script src"), std::string::npos);  // no external resources
  EXPECT_EQ(r.body.find("<link"), std::string::npos);
}

TEST_F(GatewayHttpTest, CreateReadListDeleteRegistrantWithExactJson) {
  Reply created = Request(port_, http::verb::post, "/api/v1/registrants", phl_registrar_, kRegistrantBody);
  ASSERT_EQ(created.status, 201) << created.body;
  std::string id(created.Json().at("id").as_string());
  ASSERT_EQ(id.size(), 32u);
  const std::string head = R"({"id":")" + id +
                           R"(","state":"PHL","external_ref":"PH-0001","host_country":"JPN","lat":35.6895,)"
                           R"("lon":139.6917,"admin1":"","household_size":3,"household":{"members":[]},)"
                           R"("languages":["fil","en"],)";
  const std::string tail =
      R"("vulnerabilities":["child","older_person"],"consent":null,)"
      R"("created_at":"2023-11-14T22:13:20.000Z","updated_at":"2023-11-14T22:13:20.000Z",)"
      R"("retention_until":"2025-11-13"})";
  const std::string expected = head + R"("contact":{},"emergency_contact":{},)" + tail;
  EXPECT_EQ(created.body, expected);

  Reply got = Request(port_, http::verb::get, "/api/v1/registrants/" + id, phl_registrar_);
  EXPECT_EQ(got.status, 200);
  EXPECT_EQ(got.body, expected);
  // Operators read the registry too, without contact data (minimisation).
  EXPECT_EQ(Request(port_, http::verb::get, "/api/v1/registrants/" + id, phl_operator_).body, head + tail);

  Reply list = Request(port_, http::verb::get, "/api/v1/registrants?host_country=JPN", phl_registrar_);
  EXPECT_EQ(list.status, 200);
  EXPECT_EQ(list.body, R"({"items":[)" + expected + R"(],"next_cursor":null})");
  EXPECT_EQ(Request(port_, http::verb::get, "/api/v1/registrants?host_country=KOR", phl_registrar_).body,
            R"({"items":[],"next_cursor":null})");

  Reply deleted = Request(port_, http::verb::delete_, "/api/v1/registrants/" + id, phl_registrar_);
  EXPECT_EQ(deleted.status, 204);
  EXPECT_EQ(deleted.body, "");
  EXPECT_EQ(Request(port_, http::verb::get, "/api/v1/registrants/" + id, phl_registrar_).status, 404);
  EXPECT_EQ(Request(port_, http::verb::delete_, "/api/v1/registrants/" + id, phl_registrar_).status, 404);

  // Both changes reached the outbox for rules, numbered in order.
  auto sent = Outbox("rules");
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_EQ(sent[0].registry_change().sequence(), 1u);
  EXPECT_EQ(sent[0].registry_change().kind(), v1::RegistryChange::KIND_UPSERT);
  EXPECT_EQ(sent[0].registry_change().location().registrant_id(), id);
  EXPECT_EQ(sent[0].registry_change().location().household_size(), 3u);
  EXPECT_EQ(sent[0].registry_change().location().vulnerability_flags(),
            uint32_t{v1::VULNERABILITY_FLAG_CHILD | v1::VULNERABILITY_FLAG_OLDER_PERSON});
  EXPECT_EQ(sent[1].registry_change().sequence(), 2u);
  EXPECT_EQ(sent[1].registry_change().kind(), v1::RegistryChange::KIND_DELETE);
  EXPECT_EQ(sent[1].registry_change().location().registrant_id(), id);
}

TEST_F(GatewayHttpTest, ListPagesWithAKeysetCursor) {
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) ids.push_back(CreateRegistrant(phl_registrar_, "ref-" + std::to_string(i)));
  std::sort(ids.begin(), ids.end());
  Reply first = Request(port_, http::verb::get, "/api/v1/registrants?limit=2", phl_registrar_);
  ASSERT_EQ(first.status, 200);
  json::value page = first.Json();
  ASSERT_EQ(page.at("items").as_array().size(), 2u);
  EXPECT_EQ(page.at("items").at(0).at("id").as_string(), ids[0]);
  EXPECT_EQ(page.at("items").at(1).at("id").as_string(), ids[1]);
  std::string cursor(page.at("next_cursor").as_string());
  Reply second =
      Request(port_, http::verb::get, "/api/v1/registrants?limit=2&cursor=" + cursor, phl_registrar_);
  json::value rest = second.Json();
  ASSERT_EQ(rest.at("items").as_array().size(), 1u);
  EXPECT_EQ(rest.at("items").at(0).at("id").as_string(), ids[2]);
  EXPECT_TRUE(rest.at("next_cursor").is_null());

  Reply bad = Request(port_, http::verb::get, "/api/v1/registrants?limit=1001", phl_registrar_);
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(bad.ErrorField(), "limit");
}

TEST_F(GatewayHttpTest, ValidationErrorsNameTheField) {
  struct Case {
    std::string body;
    std::string field;
  };
  const std::vector<Case> cases = {
      {R"({"external_ref":"a","host_country":"JPN","lat":91,"lon":0})", "lat"},
      {R"({"external_ref":"a","host_country":"JPN","lat":0,"lon":-180.5})", "lon"},
      {R"({"external_ref":"a","lat":0,"lon":0})", "host_country"},
      {R"({"external_ref":"a","host_country":"jpn","lat":0,"lon":0})", "host_country"},
      {R"({"host_country":"JPN","lat":0,"lon":0})", "external_ref"},
      {R"({"external_ref":"a","host_country":"JPN","lat":"0","lon":0})", "lat"},
      {R"({"external_ref":"a","host_country":"JPN","lat":0,"lon":0,"household_size":0})", "household_size"},
      {R"({"external_ref":"a","host_country":"JPN","lat":0,"lon":0,"household_size":2.5})", "household_size"},
      {R"({"external_ref":"a","host_country":"JPN","lat":0,"lon":0,"languages":["not a tag"]})", "languages"},
      {R"({"external_ref":"a","host_country":"JPN","lat":0,"lon":0,"vulnerabilities":["refugee"]})",
       "vulnerabilities"},
      {R"({"external_ref":"a","host_country":"JPN","lat":0,"lon":0,"immigration_status":"irregular"})",
       "immigration_status"},
      {std::string(R"({"external_ref":")") + std::string(129, 'x') +
           R"(","host_country":"JPN","lat":0,"lon":0})",
       "external_ref"},
  };
  for (const auto& c : cases) {
    Reply r = Request(port_, http::verb::post, "/api/v1/registrants", phl_registrar_, c.body);
    EXPECT_EQ(r.status, 400) << c.body;
    EXPECT_EQ(r.ErrorCode(), "invalid_argument") << c.body;
    EXPECT_EQ(r.ErrorField(), c.field) << c.body;
  }
  Reply malformed = Request(port_, http::verb::post, "/api/v1/registrants", phl_registrar_, R"({"lat": 1,)");
  EXPECT_EQ(malformed.status, 400);
  EXPECT_EQ(malformed.ErrorCode(), "invalid_argument");
  EXPECT_EQ(malformed.ErrorField(), "");
  EXPECT_EQ(std::string(malformed.Json().at("error").at("message").as_string()).rfind("malformed JSON: ", 0),
            0u);

  Reply wrong_type =
      Request(port_, http::verb::post, "/api/v1/registrants", phl_registrar_, kRegistrantBody, "text/plain");
  EXPECT_EQ(wrong_type.status, 415);
  EXPECT_EQ(wrong_type.ErrorCode(), "unsupported_media_type");

  // Nothing half-written: no registrant, no registry change.
  EXPECT_TRUE(Outbox("rules").empty());
  EXPECT_EQ(*CountRegistrants(*db_), 0);
}

TEST_F(GatewayHttpTest, DuplicateExternalRefIsAConflict) {
  CreateRegistrant(phl_registrar_, "PH-0001");
  Reply again = Request(port_, http::verb::post, "/api/v1/registrants", phl_registrar_, kRegistrantBody);
  EXPECT_EQ(again.status, 409);
  EXPECT_EQ(again.ErrorCode(), "already_exists");
  EXPECT_EQ(again.ErrorField(), "external_ref");
}

TEST_F(GatewayHttpTest, MissingOrBadTokenIsUnauthenticated) {
  Reply none = Request(port_, http::verb::get, "/api/v1/registrants");
  EXPECT_EQ(none.status, 401);
  EXPECT_EQ(none.ErrorCode(), "unauthenticated");
  EXPECT_EQ(Request(port_, http::verb::get, "/api/v1/registrants", "amp_not-a-real-token-at-all").status,
            401);
  EXPECT_EQ(Request(port_, http::verb::get, "/api/v1/alerts").status, 401);
  EXPECT_EQ(
      Request(port_, http::verb::post, "/api/v1/subscriptions", "", R"({"url":"https://x.example"})").status,
      401);
  // Even unknown API routes do not answer without a token.
  EXPECT_EQ(Request(port_, http::verb::get, "/api/v1/nothing-here").status, 401);
  EXPECT_EQ(Request(port_, http::verb::get, "/api/v1/nothing-here", phl_operator_).status, 404);
}

TEST_F(GatewayHttpTest, RolesLimitWhatATokenMayDo) {
  Reply r = Request(port_, http::verb::post, "/api/v1/registrants", phl_operator_, kRegistrantBody);
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(r.ErrorCode(), "permission_denied");
  std::string id = CreateRegistrant(phl_registrar_, "PH-0001");
  EXPECT_EQ(Request(port_, http::verb::delete_, "/api/v1/registrants/" + id, phl_operator_).status, 403);
  EXPECT_EQ(Request(port_, http::verb::post, "/api/v1/subscriptions", phl_registrar_,
                    R"({"url":"https://embassy.example/hook"})")
                .status,
            403);
  EXPECT_EQ(Request(port_, http::verb::get, "/api/v1/alerts", phl_registrar_).status, 403);
  EXPECT_EQ(Request(port_, http::verb::put, "/api/v1/registrants/" + id, phl_registrar_, "{}").status, 405);
  EXPECT_EQ(Request(port_, http::verb::patch, "/api/v1/registrants/" + id, phl_operator_, "{}").status, 403);
  EXPECT_EQ(Request(port_, http::verb::get, "/api/v1/registrants:export?format=csv", phl_operator_).status,
            403);
}

TEST_F(GatewayHttpTest, AStateNeverSeesAnotherStatesRegistrants) {
  std::string phl_id = CreateRegistrant(phl_registrar_, "PH-0001");
  std::string jpn_id = CreateRegistrant(jpn_registrar_, "JP-0001");

  Reply get = Request(port_, http::verb::get, "/api/v1/registrants/" + phl_id, jpn_registrar_);
  Reply absent = Request(port_, http::verb::get, "/api/v1/registrants/" + NewId(), jpn_registrar_);
  EXPECT_EQ(get.status, 404);
  EXPECT_EQ(get.body, absent.body);  // indistinguishable from a missing id
  EXPECT_EQ(Request(port_, http::verb::delete_, "/api/v1/registrants/" + phl_id, jpn_registrar_).status, 404);
  EXPECT_EQ(Request(port_, http::verb::get, "/api/v1/registrants/" + phl_id, phl_registrar_).status, 200);

  json::value jpn_list = Request(port_, http::verb::get, "/api/v1/registrants", jpn_registrar_).Json();
  ASSERT_EQ(jpn_list.at("items").as_array().size(), 1u);
  EXPECT_EQ(jpn_list.at("items").at(0).at("id").as_string(), jpn_id);
  json::value filtered =
      Request(port_, http::verb::get, "/api/v1/registrants?host_country=JPN", jpn_registrar_).Json();
  ASSERT_EQ(filtered.at("items").as_array().size(), 1u);  // JPN's own national in JPN... not PHL's
  EXPECT_EQ(filtered.at("items").at(0).at("id").as_string(), jpn_id);
  EXPECT_EQ(Outbox("rules").size(), 2u);  // the refused delete sent nothing
}

TEST_F(GatewayHttpTest, SubscriptionsShowTheSecretOnceAndStayWithTheirState) {
  Reply created =
      Request(port_, http::verb::post, "/api/v1/subscriptions", phl_operator_,
              R"({"url":"https://embassy.example/hook","host_countries":["JPN"],"description":"Tokyo"})");
  ASSERT_EQ(created.status, 201) << created.body;
  json::value sub = created.Json();
  std::string id(sub.at("id").as_string());
  std::string secret(sub.at("secret").as_string());
  EXPECT_EQ(secret.rfind("whsec_", 0), 0u);
  EXPECT_EQ(Base64Decode(secret.substr(6))->size(), 24u);
  EXPECT_EQ(sub.at("state").as_string(), "PHL");

  json::value list = Request(port_, http::verb::get, "/api/v1/subscriptions", phl_operator_).Json();
  ASSERT_EQ(list.at("items").as_array().size(), 1u);
  EXPECT_EQ(list.at("items").at(0).at("id").as_string(), id);
  EXPECT_FALSE(list.at("items").at(0).as_object().contains("secret"));

  // Another state cannot see, read or delete it.
  EXPECT_EQ(Request(port_, http::verb::get, "/api/v1/subscriptions", jpn_operator_).body, R"({"items":[]})");
  EXPECT_EQ(Request(port_, http::verb::get, "/api/v1/subscriptions/" + id, jpn_operator_).status, 404);
  EXPECT_EQ(Request(port_, http::verb::delete_, "/api/v1/subscriptions/" + id, jpn_operator_).status, 404);

  Reply bad_url =
      Request(port_, http::verb::post, "/api/v1/subscriptions", phl_operator_, R"({"url":"ftp://x"})");
  EXPECT_EQ(bad_url.status, 400);
  EXPECT_EQ(bad_url.ErrorField(), "url");

  EXPECT_EQ(Request(port_, http::verb::delete_, "/api/v1/subscriptions/" + id, phl_operator_).status, 204);
  EXPECT_EQ(Request(port_, http::verb::get, "/api/v1/subscriptions", phl_operator_).body, R"({"items":[]})");

  auto sent = Outbox("notify");
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_EQ(sent[0].subscription().subscription_id(), id);
  EXPECT_EQ(sent[0].subscription().state(), "PHL");
  EXPECT_EQ(sent[0].subscription().url(), "https://embassy.example/hook");
  EXPECT_EQ(sent[0].subscription().secret(), secret);
  ASSERT_EQ(sent[0].subscription().host_countries_size(), 1);
  EXPECT_EQ(sent[0].subscription().host_countries(0), "JPN");
  EXPECT_FALSE(sent[0].subscription().deleted());
  EXPECT_EQ(sent[1].subscription().subscription_id(), id);
  EXPECT_TRUE(sent[1].subscription().deleted());
}

TEST_F(GatewayHttpTest, AlertsFromNotifyAreServedAndPushedToTheirStateOnly) {
  LiveClient phl(port_, phl_operator_);
  LiveClient jpn(port_, jpn_operator_);
  auto ready = phl.Next();
  ASSERT_TRUE(ready);
  EXPECT_EQ(json::serialize(*ready), R"({"type":"ready","state":"PHL"})");
  ASSERT_TRUE(jpn.Next());

  const v1::ConsularAlert phl_alert = Alert("PHL", "JPN", /*exercise=*/true);
  v1::Envelope delivery = MakeEnvelope("amparo-notify", SystemClock::Instance());
  delivery.mutable_delivery_status()->set_delivery_id("d1");
  delivery.mutable_delivery_status()->set_alert_id(phl_alert.alert_id());
  delivery.mutable_delivery_status()->set_state(v1::DeliveryStatus::STATE_DELIVERED);
  delivery.mutable_delivery_status()->set_attempts(1);
  delivery.mutable_delivery_status()->set_updated_ms(1'536'004'001'000);
  SendFromNotify({AlertEnvelope(phl_alert), delivery});

  auto pushed = phl.Next();
  ASSERT_TRUE(pushed);
  EXPECT_EQ(pushed->at("type").as_string(), "alert");
  json::object pushed_alert = pushed->at("alert").as_object();
  EXPECT_EQ(pushed_alert.at("alert_id").as_string(), phl_alert.alert_id());
  EXPECT_EQ(pushed_alert.at("exercise").as_bool(), true);

  // The API shows exactly AlertToJson() plus the deliveries.
  const std::string target = "/api/v1/alerts/" + Encode(phl_alert.alert_id());
  Reply one = AwaitStatus(target, phl_operator_, 200);
  ASSERT_EQ(one.status, 200) << one.body;
  json::object got = one.Json().as_object();
  for (int i = 0; i < 250 && got.at("deliveries").as_array().empty(); ++i) {
    std::this_thread::sleep_for(20ms);
    got = Request(port_, http::verb::get, target, phl_operator_).Json().as_object();
  }
  EXPECT_EQ(json::serialize(got.at("deliveries")),
            R"([{"delivery_id":"d1","status":"delivered","attempts":1}])");
  got.erase("deliveries");
  EXPECT_EQ(json::value(got), json::parse(AlertToJson(phl_alert)));

  // Another state: 404 as if absent, nothing in its lists, nothing pushed.
  EXPECT_EQ(Request(port_, http::verb::get, target, jpn_operator_).status, 404);
  EXPECT_EQ(Request(port_, http::verb::get, "/api/v1/alerts", jpn_operator_).body, R"({"items":[]})");
  EXPECT_EQ(Request(port_, http::verb::get, "/api/v1/incidents", jpn_operator_).body, R"({"items":[]})");

  // JPN's own alert comes after PHL's on the link: if the PHL alert had
  // been pushed to the JPN client, it would arrive first.
  SendFromNotify({AlertEnvelope(Alert("JPN", "PHL"))});
  auto jpn_pushed = jpn.Next();
  ASSERT_TRUE(jpn_pushed);
  EXPECT_EQ(jpn_pushed->at("alert").at("alert_id").as_string(), "usgs:us2000hf24/JPN/PHL");
  EXPECT_FALSE(phl.Next(300ms));  // and PHL does not get JPN's

  json::value phl_list = Request(port_, http::verb::get, "/api/v1/alerts?limit=10", phl_operator_).Json();
  ASSERT_EQ(phl_list.at("items").as_array().size(), 1u);
  EXPECT_EQ(phl_list.at("items").at(0).at("alert_id").as_string(), phl_alert.alert_id());
  json::value incidents = Request(port_, http::verb::get, "/api/v1/incidents", phl_operator_).Json();
  ASSERT_EQ(incidents.at("items").as_array().size(), 1u);
  EXPECT_EQ(incidents.at("items").at(0).at("incident_id").as_string(), "usgs:us2000hf24");
  EXPECT_EQ(incidents.at("items").at(0).at("hazard").as_string(), "earthquake");
  EXPECT_EQ(incidents.at("items").at(0).at("headline").as_string(), "M 6.6 - 27km ESE of Tomakomai, Japan");
  EXPECT_EQ(incidents.at("items").at(0).at("alerts").as_array().size(), 1u);

  Reply metrics = Request(port_, http::verb::get, "/metrics");
  EXPECT_NE(metrics.body.find("amparo_gateway_alerts_received_total 2\n"), std::string::npos) << metrics.body;
  EXPECT_NE(metrics.body.find("amparo_gateway_live_clients 2\n"), std::string::npos) << metrics.body;
}

TEST_F(GatewayHttpTest, LiveFeedRefusesTokensThatMayNotWatch) {
  LiveClient registrar(port_, phl_registrar_);
  auto refused = registrar.Next();
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->at("type").as_string(), "error");
  EXPECT_EQ(refused->at("error").at("code").as_string(), "permission_denied");
  EXPECT_FALSE(registrar.Next(2s));  // then closed

  LiveClient stranger(port_, "amp_unknown_token_value_xxxxxxxxxxxxxxxx");
  auto unknown = stranger.Next();
  ASSERT_TRUE(unknown);
  EXPECT_EQ(unknown->at("error").at("code").as_string(), "unauthenticated");
}

// HasLiveClients() without the daemon: the token is the state, "refused"
// is refused.
TEST(HttpServerLiveTest, HasLiveClientsCountsAStatesClientsFromBeforeTheirReady) {
  HttpServerOptions options;
  GatewayMetrics metrics;
  auto server = HttpServer::Start(
      options, [](const HttpRequest&) { return ErrorResponse(404, "not_found", "no"); },
      [](std::string_view first_message) -> Result<std::string> {
        std::string state(json::parse(first_message).at("token").as_string());
        if (state == "refused") return Status(StatusCode::kPermissionDenied, "refused");
        return state;
      },
      &metrics);
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  HttpServer& live = **server;
  EXPECT_FALSE(live.HasLiveClients("PHL"));

  LiveClient refused(live.port(), "refused");
  ASSERT_TRUE(refused.Next());  // the error
  EXPECT_FALSE(live.HasLiveClients("refused"));

  std::optional<LiveClient> first(std::in_place, live.port(), "PHL");
  ASSERT_TRUE(first->Next());  // "ready": counted before it was queued
  EXPECT_TRUE(live.HasLiveClients("PHL"));
  EXPECT_FALSE(live.HasLiveClients("JPN"));
  std::optional<LiveClient> second(std::in_place, live.port(), "PHL");
  ASSERT_TRUE(second->Next());

  first.reset();  // the server notices the closed socket on its own time
  auto gauge_is = [&](int n) {
    return metrics.Render(0).find("amparo_gateway_live_clients " + std::to_string(n) + "\n") !=
           std::string::npos;
  };
  for (int i = 0; i < 500 && !gauge_is(1); ++i) std::this_thread::sleep_for(10ms);
  ASSERT_TRUE(gauge_is(1));
  EXPECT_TRUE(live.HasLiveClients("PHL"));  // the second is still there
  second.reset();
  for (int i = 0; i < 500 && live.HasLiveClients("PHL"); ++i) std::this_thread::sleep_for(10ms);
  EXPECT_FALSE(live.HasLiveClients("PHL"));

  LiveClient again(live.port(), "PHL");
  ASSERT_TRUE(again.Next());
  EXPECT_TRUE(live.HasLiveClients("PHL"));
  live.Stop();
  EXPECT_FALSE(live.HasLiveClients("PHL"));
}

TEST_F(GatewayHttpTest, BodyOverTheLimitIs413AndTheServerCarriesOn) {
  std::string big = R"({"external_ref":")" + std::string(5000, 'x') + R"("})";
  Reply r = Request(port_, http::verb::post, "/api/v1/registrants", phl_registrar_, big);
  EXPECT_EQ(r.status, 413);
  EXPECT_EQ(r.ErrorCode(), "payload_too_large");
  EXPECT_EQ(Request(port_, http::verb::get, "/healthz").status, 200);
}

TEST_F(GatewayHttpTest, IdleConnectionIsClosedAfterTheRequestTimeout) {
  asio::io_context ioc;
  tcp::socket socket(ioc);
  socket.connect({asio::ip::make_address("127.0.0.1"), port_});
  char byte;
  beast::error_code error;
  bool closed = false;
  socket.async_read_some(asio::buffer(&byte, 1), [&](beast::error_code ec, size_t) {
    error = ec;
    closed = true;
  });
  auto start = std::chrono::steady_clock::now();
  ioc.run_for(5s);
  ASSERT_TRUE(closed);  // request_timeout_ms is 1000
  EXPECT_EQ(error, asio::error::eof);
  EXPECT_GE(std::chrono::steady_clock::now() - start, 900ms);
}

TEST_F(GatewayHttpTest, MetricsCountRequestsByRouteAndStatus) {
  CreateRegistrant(phl_registrar_, "PH-0001");
  Request(port_, http::verb::get, "/api/v1/registrants/" + NewId(), phl_registrar_);
  Reply m = Request(port_, http::verb::get, "/metrics");
  EXPECT_EQ(m.status, 200);
  EXPECT_EQ(m.content_type, "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_NE(
      m.body.find("amparo_gateway_http_requests_total{route=\"/api/v1/registrants\",status=\"201\"} 1\n"),
      std::string::npos)
      << m.body;
  EXPECT_NE(m.body.find(
                "amparo_gateway_http_requests_total{route=\"/api/v1/registrants/{id}\",status=\"404\"} 1\n"),
            std::string::npos);
  EXPECT_NE(m.body.find("amparo_gateway_registrants 1\n"), std::string::npos);
}

TEST_F(GatewayHttpTest, PatchUpdatesPartiallyAndNotifiesRulesOnlyForMatchingFields) {
  std::string id = CreateRegistrant(phl_registrar_, "PH-0001");
  Reply contact = Request(port_, http::verb::patch, "/api/v1/registrants/" + id, phl_registrar_,
                          R"({"contact":{"email":"ana@example.ph"},"full_name":"Ana Reyes"})");
  ASSERT_EQ(contact.status, 200) << contact.body;
  EXPECT_EQ(contact.Json().at("contact").at("email").as_string(), "ana@example.ph");
  EXPECT_EQ(contact.Json().at("household_size").as_int64(), 3);
  EXPECT_EQ(Outbox("rules").size(), 1u);  // contact data never travels to rules
  Reply moved = Request(port_, http::verb::patch, "/api/v1/registrants/" + id, phl_registrar_,
                        R"({"lat":34.69,"lon":135.5})");
  ASSERT_EQ(moved.status, 200);
  auto sent = Outbox("rules");
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_DOUBLE_EQ(sent[1].registry_change().location().lat(), 34.69);
  EXPECT_EQ(sent[1].registry_change().kind(), v1::RegistryChange::KIND_UPSERT);
  Reply bad = Request(port_, http::verb::patch, "/api/v1/registrants/" + id, phl_registrar_,
                      R"({"legal_status":"irregular"})");
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(bad.ErrorField(), "legal_status");
  EXPECT_EQ(Request(port_, http::verb::patch, "/api/v1/registrants/" + NewId(), phl_registrar_, "{}").status,
            404);
}

TEST_F(GatewayHttpTest, ImportUploadIsStreamedAndExportRoundTrips) {
  // Larger than max_body_bytes (4096): only the upload bound applies.
  std::string csv = "external_ref,host_country,lat,lon,contact.phone,vulnerabilities\n";
  for (int i = 0; i < 200; ++i)
    csv += "B-" + std::to_string(i) + ",JPN,35.5,139.5,+63917000" + std::to_string(1000 + i) + ",child\n";
  csv += "B-bad,JPN,95,139.5,,\n";
  ASSERT_GT(csv.size(), 4096u);
  Reply imported = Request(port_, http::verb::post, "/api/v1/registrants:import?format=csv", phl_registrar_,
                           csv, "text/csv");
  ASSERT_EQ(imported.status, 200) << imported.body;
  EXPECT_EQ(
      imported.body,
      R"({"imported":200,"rejected":1,"errors":[{"row":201,"field":"lat","reason":"must be within -90..90"}]})");
  // No upload file is left behind.
  int spool_files = 0;
  for (auto& f : std::filesystem::directory_iterator(config_.data_dir / "gateway-spool"))
    spool_files += !f.is_directory();
  EXPECT_EQ(spool_files, 0);

  Reply exported =
      Request(port_, http::verb::get, "/api/v1/registrants:export?format=ndjson", phl_registrar_);
  ASSERT_EQ(exported.status, 200);
  EXPECT_EQ(exported.content_type, "application/x-ndjson");
  EXPECT_EQ(std::count(exported.body.begin(), exported.body.end(), '\n'), 200);
  EXPECT_NE(exported.body.find("+639170001199"), std::string::npos);
  // Another state's export is empty; an unauthenticated upload is refused
  // before its body is read.
  EXPECT_EQ(Request(port_, http::verb::get, "/api/v1/registrants:export?format=csv", jpn_registrar_)
                .body.find("B-"),
            std::string::npos);
  EXPECT_EQ(
      Request(port_, http::verb::post, "/api/v1/registrants:import?format=csv", "", csv, "text/csv").status,
      401);
  EXPECT_EQ(Request(port_, http::verb::post, "/api/v1/registrants:import?format=csv", phl_operator_, csv,
                    "text/csv")
                .status,
            403);
  EXPECT_EQ(*CountRegistrants(*db_), 200);
}

// A bulk import runs on the server's bulk worker: other requests are served
// while it runs instead of waiting for it.
TEST_F(GatewayHttpTest, OtherRequestsAreServedWhileABulkImportRuns) {
  std::string csv = "external_ref,host_country,lat,lon\n";
  for (int i = 0; i < 40000; ++i) csv += "L-" + std::to_string(i) + ",JPN,35.5,139.5\n";
  std::atomic<bool> import_done{false};
  std::chrono::steady_clock::time_point import_start, import_end;
  Reply imported;
  std::thread importer([&] {
    import_start = std::chrono::steady_clock::now();
    imported = Request(port_, http::verb::post, "/api/v1/registrants:import?format=csv", phl_registrar_, csv,
                       "text/csv");
    import_end = std::chrono::steady_clock::now();
    import_done = true;
  });
  int served_during_import = 0;
  std::chrono::milliseconds slowest{0};
  while (!import_done) {
    auto t0 = std::chrono::steady_clock::now();
    Reply health = Request(port_, http::verb::get, "/healthz");
    auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
    EXPECT_EQ(health.status, 200);
    if (!import_done) {
      ++served_during_import;
      slowest = std::max(slowest, took);
    }
    std::this_thread::sleep_for(20ms);
  }
  importer.join();
  ASSERT_EQ(imported.status, 200) << imported.body;
  EXPECT_EQ(imported.body, R"({"imported":40000,"rejected":0,"errors":[]})");
  const auto import_ms = std::chrono::duration_cast<std::chrono::milliseconds>(import_end - import_start);
  // Served all along (had the import blocked the server thread, the requests
  // sent meanwhile would each have waited for the rest of it).
  ASSERT_GT(import_ms.count(), 300) << "the import was too quick to show anything";
  EXPECT_GE(served_during_import, 5) << "import took " << import_ms.count() << " ms";
  EXPECT_LT(slowest.count() * 2, import_ms.count()) << "slowest /healthz " << slowest.count() << " ms";
}

TEST_F(GatewayHttpTest, PurposeHeaderIsCheckedAndAudited) {
  std::string id = CreateRegistrant(phl_registrar_, "PH-0001");
  asio::io_context ioc;
  auto get_with_purpose = [&](const std::string& purpose) {
    tcp::socket socket(ioc);
    socket.connect({asio::ip::make_address("127.0.0.1"), port_});
    http::request<http::string_body> req{http::verb::get, "/api/v1/registrants/" + id, 11};
    req.set(http::field::authorization, "Bearer " + phl_operator_);
    req.set("X-Amparo-Purpose", purpose);
    http::write(socket, req);
    beast::flat_buffer buffer;
    http::response<http::string_body> res;
    http::read(socket, buffer, res);
    return res.result_int();
  };
  EXPECT_EQ(get_with_purpose("crisis-response"), 200);
  EXPECT_EQ(get_with_purpose("immigration-enforcement"), 400);
  auto q = db_->Prepare("SELECT purpose FROM audit_log WHERE action = 'registrant.read'");
  ASSERT_TRUE(*q->Step());
  EXPECT_EQ(q->ColumnText(0), "crisis-response");
  EXPECT_FALSE(*q->Step());
}

class RateLimitedHttpTest : public GatewayHttpTest {
 protected:
  std::string RateLimitConfig() const override { return "rate_limit_per_s = 1\nrate_limit_burst = 3\n"; }
};

TEST_F(RateLimitedHttpTest, RateLimitAnswers429WithRetryAfter) {
  // Burst 3 and a clock that does not move: the 4th call is refused.
  for (int i = 0; i < 3; ++i)
    EXPECT_EQ(Request(port_, http::verb::get, "/api/v1/alerts", phl_operator_).status, 200);
  asio::io_context ioc;
  tcp::socket socket(ioc);
  socket.connect({asio::ip::make_address("127.0.0.1"), port_});
  http::request<http::string_body> req{http::verb::get, "/api/v1/alerts", 11};
  req.set(http::field::authorization, "Bearer " + phl_operator_);
  http::write(socket, req);
  beast::flat_buffer buffer;
  http::response<http::string_body> res;
  http::read(socket, buffer, res);
  EXPECT_EQ(res.result_int(), 429);
  EXPECT_EQ(res[http::field::retry_after], "1");
  // Per token: another token is not affected. (Refill over time is
  // RateLimiterTest's: the FakeClock is not moved under a running server.)
  EXPECT_EQ(Request(port_, http::verb::get, "/api/v1/alerts", jpn_operator_).status, 200);
}

}  // namespace
}  // namespace amparo::gateway
