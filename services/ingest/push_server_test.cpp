#include "services/ingest/push_server.h"

#include <gtest/gtest.h>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>

#include <fstream>
#include <optional>

#include "common/link.h"
#include "common/testing.h"
#include "services/ingest/ingest_daemon.h"
#include "services/ingest/spool.h"
#include "services/ingest/test_fixtures.h"

namespace amparo::ingest {
namespace {

namespace fs = std::filesystem;
namespace http = boost::beast::http;
using testing_support::ReadFixture;
using namespace std::chrono_literals;

struct Reply {
  int status = 0;
  boost::json::value body;
};

// A real HTTP/1.1 client over TCP to 127.0.0.1 (Beast, synchronous).
Reply Post(uint16_t port, const std::string& target, const std::string& body, const std::string& token = "",
           http::verb method = http::verb::post) {
  boost::asio::io_context io;
  boost::beast::tcp_stream stream(io);
  stream.connect(boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), port));
  http::request<http::string_body> request(method, target, 11);
  request.set(http::field::host, "127.0.0.1");
  request.set(http::field::content_type, "application/xml");
  if (!token.empty()) request.set(http::field::authorization, "Bearer " + token);
  request.body() = body;
  request.prepare_payload();
  boost::beast::error_code ec;
  http::write(stream, request, ec);
  // A server that refuses a body early may close before reading it all.
  boost::beast::flat_buffer buffer;
  http::response<http::string_body> response;
  http::read(stream, buffer, response, ec);
  EXPECT_FALSE(ec) << ec.message();
  Reply reply;
  reply.status = response.result_int();
  boost::system::error_code json_ec;
  reply.body = boost::json::parse(response.body(), json_ec);
  EXPECT_FALSE(json_ec) << response.body();
  return reply;
}

int FilesIn(const fs::path& dir) {
  int n = 0;
  for (const auto& entry : fs::directory_iterator(dir)) n += entry.is_regular_file() ? 1 : 0;
  return n;
}

class PushServerTest : public ::testing::Test {
 protected:
  PushServerTest() {
    fs::create_directories(spool_ / "tmp");
    options_.spool_dir = spool_;
    options_.port_file = dir_ / "push.port";
    options_.token = "s3cret";
    options_.max_body_bytes = 64 * 1024;
  }

  void StartServer() {
    auto server = PushServer::Start(options_, clock_);
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    server_ = std::move(server).value();
  }

  testing::TempDir dir_;
  fs::path spool_ = dir_ / "spool";
  PushServerOptions options_;
  FakeClock clock_{1'800'000'000'000};
  std::unique_ptr<PushServer> server_;
};

TEST_F(PushServerTest, AcceptedCapLandsInTheSpoolAndIsIngested) {
  StartServer();
  std::ifstream port_file(options_.port_file);
  int written_port = 0;
  port_file >> written_port;
  EXPECT_EQ(written_port, server_->port());
  ASSERT_NE(server_->port(), 0);

  const std::string cap = ReadFixture("cap/oasis-spec-examples/v1dot2_appendix_adot1.xml");
  Reply reply = Post(server_->port(), "/push", cap, "s3cret");
  ASSERT_EQ(reply.status, 202) << boost::json::serialize(reply.body);
  const std::string name(reply.body.at("spool_name").as_string());
  EXPECT_EQ(reply.body.at("format"), "cap");
  EXPECT_EQ(name.rfind("push-1800000000000-", 0), 0u) << name;
  ASSERT_TRUE(fs::exists(spool_ / name));
  EXPECT_EQ(FilesIn(spool_ / "tmp"), 0);
  std::ifstream in(spool_ / name, std::ios::binary);
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(in), {}), cap);
  EXPECT_EQ(server_->stats().accepted, 1u);

  // The spool takes it like any dropped file.
  auto db = Db::Open(dir_ / "ingest.db");
  ASSERT_TRUE(db.ok());
  ASSERT_TRUE(PrepareIngestDb(*db).ok());
  SpoolOptions spool_options;
  spool_options.spool_dir = spool_;
  SpoolProcessor spool(*db, spool_options, clock_);
  ASSERT_TRUE(spool.CreateDirectories().ok());
  auto outcomes = spool.ScanOnce();
  ASSERT_TRUE(outcomes.ok());
  ASSERT_EQ(outcomes->size(), 1u);
  EXPECT_TRUE((*outcomes)[0].accepted);
  EXPECT_EQ((*outcomes)[0].events_sent, 1);
  EXPECT_EQ((*outcomes)[0].format, "cap");
}

TEST_F(PushServerTest, MissingOrWrongTokenIs401AndNothingIsWritten) {
  StartServer();
  const std::string cap = ReadFixture("cap/oasis-spec-examples/v1dot2_appendix_adot1.xml");
  Reply none = Post(server_->port(), "/push", cap);
  EXPECT_EQ(none.status, 401);
  EXPECT_EQ(none.body.at("error").at("code"), "unauthenticated");
  Reply wrong = Post(server_->port(), "/push", cap, "s3cres");
  EXPECT_EQ(wrong.status, 401);
  EXPECT_EQ(FilesIn(spool_), 0);
  EXPECT_EQ(server_->stats().unauthorized, 2u);
}

TEST_F(PushServerTest, BodyAboveTheLimitIs413) {
  options_.max_body_bytes = 2048;
  StartServer();
  Reply reply = Post(server_->port(), "/push", std::string(4096, '<'), "s3cret");
  EXPECT_EQ(reply.status, 413);
  EXPECT_EQ(reply.body.at("error").at("code"), "payload_too_large");
  EXPECT_EQ(reply.body.at("error").at("field"), "ingest.push_max_body_bytes");
  EXPECT_EQ(FilesIn(spool_), 0);
  EXPECT_EQ(server_->stats().too_large, 1u);
}

TEST_F(PushServerTest, BadBodiesAre400WithTheReason) {
  StartServer();
  Reply empty = Post(server_->port(), "/push", "", "s3cret");
  EXPECT_EQ(empty.status, 400);
  EXPECT_EQ(empty.body.at("error").at("message"), "empty body: send one CAP message");

  Reply broken =
      Post(server_->port(), "/push", "<alert xmlns=\"urn:oasis:names:tc:emergency:cap:1.2\">", "s3cret");
  EXPECT_EQ(broken.status, 400);
  EXPECT_NE(std::string(broken.body.at("error").at("message").as_string()).find("not well-formed XML"),
            std::string::npos)
      << boost::json::serialize(broken.body);

  Reply usgs = Post(server_->port(), "/push",
                    R"({"type":"FeatureCollection","features":[{"type":"Feature","id":"us1","geometry":)"
                    R"({"type":"Point","coordinates":[139.7,35.7,30]},"properties":{"mag":6.1,"time":1,)"
                    R"("updated":2,"status":"reviewed","type":"earthquake","title":"M 6.1"}}]})",
                    "s3cret");
  EXPECT_EQ(usgs.status, 400);
  EXPECT_EQ(usgs.body.at("error").at("message"), "not a CAP message (detected usgs-geojson)");

  Reply hostile = Post(server_->port(), "/push", ReadFixture("cap/google-cap-library/xee.cap"), "s3cret");
  EXPECT_EQ(hostile.status, 400);
  EXPECT_EQ(FilesIn(spool_), 0);
  EXPECT_EQ(server_->stats().rejected, 4u);
}

TEST_F(PushServerTest, OtherPathsAndMethodsAreRefused) {
  StartServer();
  EXPECT_EQ(Post(server_->port(), "/other", "<x/>", "s3cret").status, 404);
  EXPECT_EQ(Post(server_->port(), "/push", "", "s3cret", http::verb::get).status, 405);
}

TEST_F(PushServerTest, BadListenAddressNamesTheKey) {
  options_.listen = "nowhere:80";
  auto server = PushServer::Start(options_, clock_);
  ASSERT_FALSE(server.ok());
  EXPECT_EQ(server.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(server.status().field(), "ingest.push_listen");
}

TEST(PushDaemonTest, DaemonWithPushListenIngestsAPushedAlert) {
  testing::TempDir dir;
  const std::string rules_inbox = "ipc://" + (dir / "rules.ipc").string();
  const std::string text = "data_dir = \"" + (dir / "data").string() + "\"\nrun_dir = \"" +
                           (dir / "run").string() +
                           "\"\n[ingest]\nscan_interval_ms = 20\npush_listen = \"127.0.0.1:0\"\n"
                           "push_port_file = \"push.port\"\n[rules]\ninbox = \"" +
                           rules_inbox + "\"\n";
  auto config = Config::Parse(text, dir.path());
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->ingest.push_port_file, dir / "push.port");
  LinkContext ctx;
  SystemClock clock;
  auto daemon = IngestDaemon::Create(*config, ctx, clock);
  ASSERT_TRUE(daemon.ok()) << daemon.status().ToString();
  ASSERT_NE((*daemon)->push_port(), 0);
  Reply reply =
      Post((*daemon)->push_port(), "/push", ReadFixture("cap/oasis-spec-examples/v1dot2_appendix_adot2.xml"));
  ASSERT_EQ(reply.status, 202);
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while ((*daemon)->counters().spool.events_sent == 0 && std::chrono::steady_clock::now() < deadline) {
    (*daemon)->RunOnce(10ms);
  }
  EXPECT_EQ((*daemon)->counters().spool.events_sent, 1u);
  EXPECT_EQ((*daemon)->counters().push.accepted, 1u);
  auto pending = PendingOutbound((*daemon)->db(), "rules");
  ASSERT_TRUE(pending.ok());
  ASSERT_EQ(pending->size(), 1u);
  EXPECT_EQ((*pending)[0].crisis_event().source(), "cap");
  EXPECT_FALSE((*pending)[0].crisis_event().incident_id().empty());
}

TEST(PushConfigTest, PushKeysAreValidated) {
  EXPECT_EQ(Config::Parse("[ingest]\npush_listen = \"8080\"\n", "/tmp").status().field(),
            "ingest.push_listen");
  EXPECT_EQ(Config::Parse("[ingest]\npush_max_body_bytes = 10\n", "/tmp").status().field(),
            "ingest.push_max_body_bytes");
  auto defaults = Config::Parse("", "/tmp");
  ASSERT_TRUE(defaults.ok());
  EXPECT_EQ(defaults->ingest.push_listen, "");
  EXPECT_EQ(defaults->ingest.push_max_body_bytes, 1 << 20);
}

}  // namespace
}  // namespace amparo::ingest
