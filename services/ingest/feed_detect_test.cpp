#include "services/ingest/feed_detect.h"

#include <gtest/gtest.h>

#include "services/ingest/test_fixtures.h"

namespace amparo::ingest {
namespace {

using testing_support::ReadFixture;

TEST(FeedDetectTest, DispatchesOnContentNotName) {
  struct Case {
    const char* file;
    const char* format;
  };
  for (const Case& c : {Case{"usgs/summary-exxamalte/usgs_all_earthquakes_past_day.json", "usgs-geojson"},
                        Case{"cap/google-cap-library/weather.cap", "cap"},
                        Case{"cap/google-cap-library/weather.atom", "cap-atom"},
                        Case{"gdacs/cap-kontur/gdacs.xml", "cap-rss"},
                        Case{"gdacs/rss-exxamalte/gdacs-rss-24h.xml", "gdacs-rss"},
                        Case{"gdacs/api-monty/dr-1016449-event.json", "gdacs-api-event"},
                        Case{"gdacs/api-monty/dr-1016449-ep1-geometry.json", "gdacs-api-geometry"}}) {
    auto feed = ParseFeedBytes(ReadFixture(c.file), FeedContext{});
    ASSERT_TRUE(feed.ok()) << c.file << ": " << feed.status().ToString();
    EXPECT_EQ(feed->format, c.format) << c.file;
  }
}

TEST(FeedDetectTest, UnknownInputNamesWhy) {
  auto empty = ParseFeedBytes(" \n", FeedContext{});
  ASSERT_FALSE(empty.ok());
  EXPECT_EQ(empty.status().field(), "format");
  EXPECT_EQ(empty.status().message(), "empty file");
  auto text = ParseFeedBytes("hello,world\n1,2\n", FeedContext{});
  ASSERT_FALSE(text.ok());
  EXPECT_EQ(text.status().message(),
            "unrecognised format: not XML, JSON or ACLED CSV (starts with \"hello,world\")");
  auto json = ParseFeedBytes("{\"type\": ", FeedContext{});
  ASSERT_FALSE(json.ok());
  EXPECT_EQ(json.status().message().rfind("JSON syntax error at", 0), 0u);
  auto xml = ParseFeedBytes("<html><body/></html>", FeedContext{});
  ASSERT_FALSE(xml.ok());
  EXPECT_EQ(xml.status().message(), "not a CAP alert, Atom feed or RSS feed (root element <html>)");
}

TEST(FeedDetectTest, FeedRejectionRule) {
  EXPECT_EQ(FeedRejection(Result<ParsedFeed>(InvalidArgument("bad", "alert.sent"))), "alert.sent: bad");
  ParsedFeed empty_feed;  // no entries at all: accepted, nothing to send
  EXPECT_FALSE(FeedRejection(empty_feed).has_value());
  ParsedFeed all_bad;
  all_bad.feature_count = 2;
  all_bad.rejections.push_back({0, "x", "item[0]", "why"});
  EXPECT_EQ(FeedRejection(all_bad), "no usable entry: item[0]: why (id x)");
  ParsedFeed some_good = all_bad;
  some_good.events.emplace_back();
  EXPECT_FALSE(FeedRejection(some_good).has_value());
}

TEST(FeedDetectTest, FileBound) {
  auto feed = ParseFeedFile(testing_support::Fixture("cap/google-cap-library/weather.cap"), 100, FeedContext{});
  ASSERT_FALSE(feed.ok());
  EXPECT_EQ(feed.status().code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(feed.status().field(), "ingest.max_file_bytes");
  auto missing = ParseFeedFile(testing_support::Fixture("nope.xml"), 100, FeedContext{});
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace amparo::ingest
