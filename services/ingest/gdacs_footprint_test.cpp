// A real GDACS cyclone item through the parser to its footprint.
#include <gtest/gtest.h>

#include "services/ingest/feed_detect.h"
#include "services/ingest/test_fixtures.h"
#include "services/rules/footprint.h"

namespace amparo::ingest {
namespace {

TEST(GdacsFootprintTest, CycloneRssItemGetsTheGaleRadiusNotTheMapBox) {
  auto feed = ParseFeedBytes(testing_support::ReadFixture("gdacs/rss-exxamalte/gdacs-rss.xml"), FeedContext{});
  ASSERT_TRUE(feed.ok()) << feed.status().ToString();
  const v1::CrisisEvent& calvinia = feed->events.at(0);  // TC1000643, 93 km/h at 19.4 S 59.8 E
  auto area = rules::EventFootprint(calvinia, rules::FootprintOptions{});
  ASSERT_TRUE(area.has_value());
  EXPECT_EQ(area->footprint_model(), "tc-r34-rankine-willoughby2006");
  ASSERT_EQ(area->circles_size(), 1);
  EXPECT_NEAR(area->circles(0).radius_km(), 94.035, 0.01);
  EXPECT_EQ(rules::DescribeFootprint(*area), "within 94 km (gale-force winds, modelled)");
  // PHANFONE-19 (TC1000641) has decayed to 46 km/h: its core only.
  auto phanfone = rules::EventFootprint(feed->events.at(4), rules::FootprintOptions{});
  EXPECT_EQ(phanfone->footprint_model(), "tc-rmax-willoughby2006");
  EXPECT_NEAR(phanfone->circles(0).radius_km(), 48.715, 0.01);
}

TEST(GdacsFootprintTest, ApiCycloneGeometryUsesTheWindBufferPolygons) {
  auto feed = ParseFeedBytes(testing_support::ReadFixture("gdacs/api-monty/tc-1001253-ep1-geometry.json"),
                             FeedContext{});
  ASSERT_TRUE(feed.ok()) << feed.status().ToString();
  auto area = rules::EventFootprint(feed->events.at(0), rules::FootprintOptions{});
  ASSERT_TRUE(area.has_value());
  EXPECT_EQ(area->footprint_model(), "source");
  EXPECT_EQ(area->polygons_size(), 19);
  // The same event without its geometry (event document): the model on 101.85 km/h at 26.9 S.
  auto event = ParseFeedBytes(testing_support::ReadFixture("gdacs/api-monty/tc-1001253-event.json"), FeedContext{});
  ASSERT_TRUE(event.ok()) << event.status().ToString();
  auto modelled = rules::EventFootprint(event->events.at(0), rules::FootprintOptions{});
  ASSERT_TRUE(modelled.has_value());
  EXPECT_EQ(modelled->footprint_model(), "tc-r34-rankine-willoughby2006");
  EXPECT_NEAR(modelled->circles(0).radius_km(), rules::GaleRadiusKm(101.8512, event->events.at(0).origin().lat()),
              1e-9);
}

}  // namespace
}  // namespace amparo::ingest
