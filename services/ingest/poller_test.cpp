#include "services/ingest/poller.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <deque>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include "common/testing.h"

namespace amparo::ingest {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

const fs::path kSummary =
    fs::path(AMPARO_FIXTURES_DIR) / "usgs/summary-exxamalte/usgs_all_earthquakes_past_day.json";

std::string ReadText(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// A one-request-per-connection HTTP/1.1 server on 127.0.0.1, port 0, that
// answers from a script and records the request heads it received.
class ScriptedHttpServer {
 public:
  struct Response {
    int status = 200;
    std::string headers;  // extra header lines, each ending "\r\n"
    std::string body;
  };

  ScriptedHttpServer() {
    listener_ = ::socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    ::setsockopt(listener_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    EXPECT_EQ(::bind(listener_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    EXPECT_EQ(::listen(listener_, 16), 0);
    socklen_t len = sizeof addr;
    ::getsockname(listener_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { Serve(); });
  }
  ~ScriptedHttpServer() {
    stop_ = true;
    thread_.join();
    ::close(listener_);
  }

  // Queues the response to the next request. When the script is empty the
  // server answers 503.
  void Then(Response response) {
    std::lock_guard<std::mutex> lock(mu_);
    script_.push_back(std::move(response));
  }
  std::vector<std::string> requests() {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }
  std::string url(const std::string& path = "/feed.geojson") const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }

 private:
  void Serve() {
    while (!stop_) {
      pollfd pfd{listener_, POLLIN, 0};
      if (::poll(&pfd, 1, 50) <= 0) continue;
      int conn = ::accept(listener_, nullptr, nullptr);
      if (conn < 0) continue;
      std::string head;
      char buf[4096];
      while (head.find("\r\n\r\n") == std::string::npos) {
        ssize_t n = ::recv(conn, buf, sizeof buf, 0);
        if (n <= 0) break;
        head.append(buf, static_cast<size_t>(n));
      }
      Response response{503, "", "no scripted response"};
      {
        std::lock_guard<std::mutex> lock(mu_);
        requests_.push_back(head);
        if (!script_.empty()) {
          response = std::move(script_.front());
          script_.pop_front();
        }
      }
      std::string out = "HTTP/1.1 " + std::to_string(response.status) + " Scripted\r\n" + response.headers +
                        "Content-Length: " + std::to_string(response.body.size()) +
                        "\r\nConnection: close\r\n\r\n" + response.body;
      size_t sent = 0;
      while (sent < out.size()) {
        ssize_t n = ::send(conn, out.data() + sent, out.size() - sent, MSG_NOSIGNAL);
        if (n <= 0) break;
        sent += static_cast<size_t>(n);
      }
      ::close(conn);
    }
  }

  int listener_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::deque<Response> script_;
  std::vector<std::string> requests_;
  std::thread thread_;
};

class PollerTest : public ::testing::Test {
 protected:
  PollerTest() { fs::create_directories(spool_ / "tmp"); }

  PollSource Source(const std::string& url, int interval_s = 60) {
    PollSource source;
    source.name = "usgs-day";
    source.url = url;
    source.interval_s = interval_s;
    source.timeout_ms = 3000;
    return source;
  }
  // Regular files directly in the spool (what the scan would pick up).
  std::vector<fs::path> SpoolFiles() {
    std::vector<fs::path> files;
    for (const auto& entry : fs::directory_iterator(spool_)) {
      if (entry.is_regular_file()) files.push_back(entry.path());
    }
    return files;
  }

  testing::TempDir dir_;
  fs::path spool_ = dir_ / "spool";
  FakeClock clock_{1'700'000'000'123};
  ScriptedHttpServer server_;
};

TEST_F(PollerTest, FetchWritesTheBodyIntoTheSpoolAndRevalidatesWithTheEtag) {
  const std::string body = ReadText(kSummary);
  server_.Then({200, "ETag: \"abc123\"\r\nLast-Modified: Sun, 16 Sep 2018 04:11:07 GMT\r\n", body});
  server_.Then({304, "ETag: \"abc123\"\r\n", ""});
  FeedPoller poller(Source(server_.url()), spool_, 64 << 20, clock_);

  auto first = poller.PollOnce();
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_EQ(*first, PollResult::kFetched);
  auto files = SpoolFiles();
  ASSERT_EQ(files.size(), 1u);
  EXPECT_EQ(files[0].filename(), "usgs-day-1700000000123.json");
  EXPECT_EQ(ReadText(files[0]), body);
  EXPECT_TRUE(fs::is_empty(spool_ / "tmp"));

  clock_.Advance(60'000);
  auto second = poller.PollOnce();
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_EQ(*second, PollResult::kNotModified);
  EXPECT_EQ(SpoolFiles().size(), 1u);

  auto requests = server_.requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[0].rfind("GET /feed.geojson HTTP/1.1\r\n", 0), 0u);
  EXPECT_EQ(requests[0].find("If-None-Match"), std::string::npos);
  EXPECT_NE(requests[1].find("If-None-Match: \"abc123\"\r\n"), std::string::npos);
  EXPECT_NE(requests[1].find("If-Modified-Since: Sun, 16 Sep 2018 04:11:07 GMT\r\n"), std::string::npos);
  PollerStats stats = poller.stats();
  EXPECT_EQ(stats.fetched, 1u);
  EXPECT_EQ(stats.not_modified, 1u);
  EXPECT_EQ(stats.failures, 0u);
}

TEST_F(PollerTest, ServerErrorBacksOffExponentiallyCappedAtTenIntervalsAndWritesNothing) {
  for (int i = 0; i < 5; ++i) server_.Then({500, "", "oops"});
  server_.Then({200, "", R"({"type":"FeatureCollection","features":[]})"});
  FeedPoller poller(Source(server_.url(), 30), spool_, 64 << 20, clock_);
  EXPECT_EQ(poller.NextDelay(), 30s);

  const std::chrono::milliseconds expected[] = {60s, 120s, 240s, 300s, 300s};
  for (auto delay : expected) {
    auto result = poller.PollOnce();
    ASSERT_FALSE(result.ok());
    EXPECT_EQ(result.status().code(), StatusCode::kUnavailable);
    EXPECT_EQ(result.status().message(), "GET " + server_.url() + ": HTTP 500");
    EXPECT_EQ(poller.NextDelay(), delay);
  }
  EXPECT_TRUE(SpoolFiles().empty());
  EXPECT_EQ(poller.stats().failures, 5u);
  EXPECT_EQ(poller.stats().last_error, "UNAVAILABLE: GET " + server_.url() + ": HTTP 500");

  // One success resets the backoff.
  ASSERT_TRUE(poller.PollOnce().ok());
  EXPECT_EQ(poller.NextDelay(), 30s);
  EXPECT_EQ(poller.stats().consecutive_failures, 0);
  EXPECT_EQ(SpoolFiles().size(), 1u);
}

TEST_F(PollerTest, BodyAboveTheLimitIsRefusedAndNotWritten) {
  server_.Then({200, "", std::string(5000, 'x')});
  FeedPoller poller(Source(server_.url()), spool_, 1000, clock_);
  auto result = poller.PollOnce();
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(result.status().field(), "ingest.max_file_bytes");
  EXPECT_TRUE(SpoolFiles().empty());
  EXPECT_TRUE(fs::is_empty(spool_ / "tmp"));
}

TEST_F(PollerTest, ConnectionRefusedIsUnavailable) {
  // Bind and close a socket to get a port nobody listens on.
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  FeedPoller poller(Source("http://127.0.0.1:" + std::to_string(ntohs(addr.sin_port)) + "/x"), spool_, 1000,
                    clock_);
  auto result = poller.PollOnce();
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(result.status().message().find("Failed to connect"), std::string::npos)
      << result.status().message();
}

TEST_F(PollerTest, ThreadFetchesAtOnceAndStopsPromptly) {
  server_.Then({200, "", R"({"type":"FeatureCollection","features":[]})"});
  FeedPoller poller(Source(server_.url(), 3600), spool_, 1 << 20, clock_);
  poller.Start();
  for (int i = 0; i < 300 && poller.stats().fetched == 0; ++i) std::this_thread::sleep_for(10ms);
  EXPECT_EQ(poller.stats().fetched, 1u);
  auto before = std::chrono::steady_clock::now();
  poller.Stop();  // the thread is waiting out a one-hour interval
  EXPECT_LT(std::chrono::steady_clock::now() - before, 2s);
  EXPECT_EQ(SpoolFiles().size(), 1u);
  EXPECT_EQ(server_.requests().size(), 1u);
}

}  // namespace
}  // namespace amparo::ingest
