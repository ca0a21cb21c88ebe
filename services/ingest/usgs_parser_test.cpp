#include "services/ingest/usgs_parser.h"

#include <gtest/gtest.h>

#include <fstream>
#include <set>

#include "common/testing.h"
#include "services/ingest/feed_detect.h"

namespace amparo::ingest {
namespace {

const std::filesystem::path kFixtures = AMPARO_FIXTURES_DIR;
const std::filesystem::path kSummary =
    kFixtures / "usgs/summary-exxamalte/usgs_all_earthquakes_past_day.json";
const std::filesystem::path kDetail = kFixtures / "usgs/detail-monty/us6000pi9w.geojson";

const v1::CrisisEvent* FindEvent(const ParsedFeed& feed, const std::string& source_id) {
  for (const auto& e : feed.events) {
    if (e.source_id() == source_id) return &e;
  }
  return nullptr;
}

// A one-feature FeatureCollection whose feature is `feature` (JSON text).
std::string Collection(const std::string& feature) {
  return R"({"type":"FeatureCollection","features":[)" + feature + "]}";
}

// A valid summary feature with the given geometry and extra properties.
std::string Feature(const std::string& id, const std::string& coordinates,
                    const std::string& extra_props = "", int64_t updated = 1537026265040) {
  return R"({"type":"Feature","id":")" + id + R"(","geometry":{"type":"Point","coordinates":)" + coordinates +
         R"(},"properties":{"mag":4.5,"place":"somewhere","time":1536998729280,"updated":)" +
         std::to_string(updated) + R"(,"status":"reviewed","type":"earthquake","title":"M 4.5 - somewhere")" +
         extra_props + "}}";
}

TEST(UsgsParserTest, SummaryFixtureYieldsAll188EventsWithExactFields) {
  auto feed =
      ParseUsgsGeoJsonFile(kSummary, 64 << 20, {.status = v1::EVENT_STATUS_ACTUAL, .received_ms = 42});
  ASSERT_TRUE(feed.ok()) << feed.status().ToString();
  EXPECT_EQ(feed->kind, ParsedFeed::Kind::kSummary);
  EXPECT_EQ(feed->feature_count, 188);
  EXPECT_EQ(feed->events.size(), 188u);
  EXPECT_TRUE(feed->rejections.empty());
  std::set<std::string> ids;
  for (const auto& e : feed->events) ids.insert(e.event_id());
  EXPECT_EQ(ids.size(), 188u);

  const v1::CrisisEvent* e = FindEvent(*feed, "us2000hf24");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->event_id(), "usgs:us2000hf24");
  EXPECT_EQ(e->source(), "usgs");
  EXPECT_EQ(e->id_aliases_size(), 0);  // ids ",us2000hf24," names only itself
  EXPECT_EQ(e->revision(), 1537026265040);
  EXPECT_EQ(e->status(), v1::EVENT_STATUS_ACTUAL);
  EXPECT_EQ(e->msg_type(), v1::MESSAGE_TYPE_ALERT);
  EXPECT_EQ(e->hazard(), v1::HAZARD_KIND_EARTHQUAKE);
  EXPECT_EQ(e->source_hazard_code(), "earthquake");
  EXPECT_DOUBLE_EQ(e->metrics().magnitude(), 5.6);
  EXPECT_DOUBLE_EQ(e->metrics().depth_km(), 10.0);
  EXPECT_EQ(e->metrics().pager_alert(), "green");
  EXPECT_DOUBLE_EQ(e->metrics().mmi(), 3.38);
  ASSERT_TRUE(e->metrics().has_tsunami_flag());
  EXPECT_FALSE(e->metrics().tsunami_flag());
  ASSERT_TRUE(e->has_origin());
  EXPECT_DOUBLE_EQ(e->origin().lat(), 26.6579);
  EXPECT_DOUBLE_EQ(e->origin().lon(), 129.5633);
  EXPECT_EQ(e->place(), "158km E of Nago, Japan");
  ASSERT_EQ(e->texts_size(), 1);
  EXPECT_EQ(e->texts(0).language(), "en");
  EXPECT_EQ(e->texts(0).headline(), "M 5.6 - 158km E of Nago, Japan");
  EXPECT_EQ(e->onset_ms(), 1536998729280);
  EXPECT_EQ(e->sent_ms(), 1537026265040);
  EXPECT_EQ(e->received_ms(), 42);
  EXPECT_EQ(e->web_url(), "https://earthquake.usgs.gov/earthquakes/eventpage/us2000hf24");
  EXPECT_EQ(e->areas_size(), 0);  // rules derive the footprint

  // Most summary features have no PAGER alert and no ShakeMap: those metrics stay unset.
  int without_pager = 0, without_mmi = 0;
  for (const auto& ev : feed->events) {
    without_pager += !ev.metrics().has_pager_alert();
    without_mmi += !ev.metrics().has_mmi();
  }
  EXPECT_EQ(without_mmi, 183);
  EXPECT_GT(without_pager, 150);
}

TEST(UsgsParserTest, DetailFixtureIsOneEventWithRedPager) {
  auto feed = ParseUsgsGeoJsonFile(kDetail, 64 << 20);
  ASSERT_TRUE(feed.ok()) << feed.status().ToString();
  EXPECT_EQ(feed->kind, ParsedFeed::Kind::kDetail);
  EXPECT_EQ(feed->feature_count, 1);
  ASSERT_EQ(feed->events.size(), 1u);
  const v1::CrisisEvent& e = feed->events[0];
  EXPECT_EQ(e.event_id(), "usgs:us6000pi9w");
  EXPECT_EQ(e.revision(), 1736442321636);
  EXPECT_EQ(e.onset_ms(), 1736211916824);
  EXPECT_DOUBLE_EQ(e.metrics().magnitude(), 7.1);
  EXPECT_EQ(e.metrics().pager_alert(), "red");
  EXPECT_DOUBLE_EQ(e.metrics().mmi(), 9.212);
  EXPECT_DOUBLE_EQ(e.metrics().depth_km(), 10.0);
  EXPECT_DOUBLE_EQ(e.origin().lat(), 28.639);
  EXPECT_DOUBLE_EQ(e.origin().lon(), 87.3608);
  EXPECT_EQ(e.place(), "2025 Southern Tibetan Plateau Earthquake");
  EXPECT_EQ(e.texts(0).headline(), "M 7.1 - 2025 Southern Tibetan Plateau Earthquake");
  EXPECT_EQ(e.received_ms(), 0);  // not stamped unless asked
}

TEST(UsgsParserTest, TruncatedJsonIsRejectedWholeWithPosition) {
  auto feed = ParseUsgsGeoJson("{\"type\": \"FeatureCollection\",\n \"features\": [");
  ASSERT_FALSE(feed.ok());
  EXPECT_EQ(feed.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(feed.status().message(), "JSON syntax error at line 2, column 15 (byte 44): incomplete JSON");
}

TEST(UsgsParserTest, SyntaxErrorNamesLineAndColumn) {
  auto feed = ParseUsgsGeoJson("{\"type\": \"Feature\",\n  \"id\": 'x'}");
  ASSERT_FALSE(feed.ok());
  EXPECT_EQ(feed.status().message(), "JSON syntax error at line 2, column 9 (byte 28): syntax error");
}

TEST(UsgsParserTest, TrailingDataIsASyntaxError) {
  auto feed = ParseUsgsGeoJson(R"({"type":"FeatureCollection","features":[]} {})");
  ASSERT_FALSE(feed.ok());
  EXPECT_EQ(feed.status().message(),
            "JSON syntax error at line 1, column 44 (byte 43): unexpected data after the document");
}

TEST(UsgsParserTest, WrongTopLevelTypeIsRejectedWhole) {
  auto feed = ParseUsgsGeoJson(R"({"type":"Topology","objects":{}})");
  ASSERT_FALSE(feed.ok());
  EXPECT_EQ(feed.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(feed.status().field(), "type");
  EXPECT_EQ(feed.status().message(), "must be \"FeatureCollection\" or \"Feature\", got \"Topology\"");

  auto array = ParseUsgsGeoJson("[1, 2]");
  ASSERT_FALSE(array.ok());
  EXPECT_EQ(array.status().message(), "must be a GeoJSON FeatureCollection or Feature object, got an array");

  auto no_features = ParseUsgsGeoJson(R"({"type":"FeatureCollection","features":{}})");
  ASSERT_FALSE(no_features.ok());
  EXPECT_EQ(no_features.status().field(), "features");
  EXPECT_EQ(no_features.status().message(), "must be an array");
}

TEST(UsgsParserTest, BadFeatureIsRejectedWithFieldAndTheRestGoesOn) {
  std::string text = R"({"type":"FeatureCollection","features":[)" + Feature("ok0", "[10, 20, 5]") + "," +
                     Feature("ok1", "[11, 21]") + "," + Feature("ok2", "[12, 22, 1]") + "," +
                     Feature("badlat", "[129.5, 123.0, 10]") + "," + Feature("ok4", "[-180, -90, 0]") + "]}";
  auto feed = ParseUsgsGeoJson(text);
  ASSERT_TRUE(feed.ok()) << feed.status().ToString();
  EXPECT_EQ(feed->feature_count, 5);
  ASSERT_EQ(feed->events.size(), 4u);
  EXPECT_EQ(feed->events[3].source_id(), "ok4");
  EXPECT_FALSE(feed->events[1].metrics().has_depth_km());  // 2 coordinates: no depth
  ASSERT_EQ(feed->rejections.size(), 1u);
  const FeatureRejection& r = feed->rejections[0];
  EXPECT_EQ(r.index, 3);
  EXPECT_EQ(r.id, "badlat");
  EXPECT_EQ(r.field, "features[3].geometry.coordinates");
  EXPECT_EQ(r.reason, "latitude 123.0 out of range -90..90");
  EXPECT_EQ(r.ToString(),
            "features[3].geometry.coordinates: latitude 123.0 out of range -90..90 (id badlat)");
}

struct BadFeatureCase {
  std::string feature;
  std::string field;
  std::string reason;
};

class UsgsBadFeatureTest : public ::testing::TestWithParam<BadFeatureCase> {};

TEST_P(UsgsBadFeatureTest, RejectsWithSpecificFieldAndReason) {
  auto feed = ParseUsgsGeoJson(Collection(GetParam().feature));
  ASSERT_TRUE(feed.ok()) << feed.status().ToString();
  EXPECT_TRUE(feed->events.empty());
  ASSERT_EQ(feed->rejections.size(), 1u);
  EXPECT_EQ(feed->rejections[0].field, GetParam().field);
  EXPECT_EQ(feed->rejections[0].reason, GetParam().reason);
}

INSTANTIATE_TEST_SUITE_P(
    Cases, UsgsBadFeatureTest,
    ::testing::Values(
        BadFeatureCase{Feature("a", "[200.25, 10]"), "features[0].geometry.coordinates",
                       "longitude 200.25 out of range -180..180"},
        BadFeatureCase{Feature("a", "[10]"), "features[0].geometry.coordinates",
                       "must hold 2 or 3 numbers (lon, lat, depth km), got 1"},
        BadFeatureCase{Feature("a", "[10, 20, 1, 2]"), "features[0].geometry.coordinates",
                       "must hold 2 or 3 numbers (lon, lat, depth km), got 4"},
        BadFeatureCase{Feature("a", R"([10, "20"])"), "features[0].geometry.coordinates[1]",
                       "must be a finite number, got a string"},
        BadFeatureCase{Feature("a", "[10, 1e999]"), "features[0].geometry.coordinates[1]",
                       "must be a finite number, got inf"},
        BadFeatureCase{
            R"({"type":"Feature","id":"a","geometry":{"type":"Polygon","coordinates":[]},"properties":{}})",
            "features[0].geometry.type", "must be \"Point\", got \"Polygon\""},
        BadFeatureCase{R"({"type":"Feature","id":"a","geometry":null,"properties":{}})",
                       "features[0].geometry", "must be an object"},
        BadFeatureCase{
            R"({"type":"Feature","geometry":{"type":"Point","coordinates":[1,2]},"properties":{}})",
            "features[0].id", "must be a non-empty string"},
        BadFeatureCase{R"("just a string")", "features[0]", "must be an object, got a string"},
        BadFeatureCase{R"({"type":"Feature","id":"a","geometry":{"type":"Point","coordinates":[1,2]},
                          "properties":{"time":"2018-09-15","updated":1}})",
                       "features[0].properties.time", "must be an integer (unix ms), got a string"},
        BadFeatureCase{R"({"type":"Feature","id":"a","geometry":{"type":"Point","coordinates":[1,2]},
                          "properties":{"time":1}})",
                       "features[0].properties.updated", "must be an integer (unix ms), got nothing"},
        BadFeatureCase{R"({"type":"Feature","id":"a","geometry":{"type":"Point","coordinates":[1,2]},
                          "properties":{"time":1.5,"updated":2}})",
                       "features[0].properties.time", "must be an integer (unix ms), got a number"},
        BadFeatureCase{
            Feature("a", "[1, 2]").replace(Feature("a", "[1, 2]").find("\"mag\":4.5"), 9, "\"mag\":\"big\""),
            "features[0].properties.mag", "must be a finite number or null, got a string"},
        BadFeatureCase{Feature("a", "[1, 2]", R"(,"alert":"purple")"), "features[0].properties.alert",
                       "must be green, yellow, orange, red or null, got \"purple\""},
        BadFeatureCase{Feature("a", "[1, 2]", R"(,"tsunami":2)"), "features[0].properties.tsunami",
                       "must be 0, 1 or null"}));

TEST(UsgsParserTest, NullMagnitudeIsAcceptedWithoutMagnitude) {
  std::string feature = Feature("nomag", "[1, 2, 3]");
  feature.replace(feature.find("\"mag\":4.5"), 9, "\"mag\":null");
  auto feed = ParseUsgsGeoJson(Collection(feature));
  ASSERT_TRUE(feed.ok());
  ASSERT_EQ(feed->events.size(), 1u);
  EXPECT_FALSE(feed->events[0].metrics().has_magnitude());
  EXPECT_DOUBLE_EQ(feed->events[0].metrics().depth_km(), 3.0);
}

TEST(UsgsParserTest, DeletedStatusIsCancel) {
  std::string feature = Feature("gone", "[1, 2]");
  feature.replace(feature.find("\"reviewed\""), 10, "\"deleted\"");
  auto feed = ParseUsgsGeoJson(Collection(feature));
  ASSERT_TRUE(feed.ok());
  ASSERT_EQ(feed->events.size(), 1u);
  EXPECT_EQ(feed->events[0].msg_type(), v1::MESSAGE_TYPE_CANCEL);
}

TEST(UsgsParserTest, OtherEventTypesKeepTheirCodeAndAliasesComeFromIds) {
  std::string feature = Feature("us100", "[1, 2]", R"(,"ids":",ci37,us100,nc9,","tsunami":1)");
  feature.replace(feature.find("\"earthquake\""), 12, "\"quarry blast\"");
  auto feed = ParseUsgsGeoJson(Collection(feature), {.status = v1::EVENT_STATUS_EXERCISE});
  ASSERT_TRUE(feed.ok());
  ASSERT_EQ(feed->events.size(), 1u);
  const v1::CrisisEvent& e = feed->events[0];
  EXPECT_EQ(e.hazard(), v1::HAZARD_KIND_OTHER);
  EXPECT_EQ(e.source_hazard_code(), "quarry blast");
  EXPECT_EQ(std::vector<std::string>(e.id_aliases().begin(), e.id_aliases().end()),
            (std::vector<std::string>{"ci37", "nc9"}));
  EXPECT_TRUE(e.metrics().tsunami_flag());
  EXPECT_EQ(e.status(), v1::EVENT_STATUS_EXERCISE);
}

TEST(UsgsParserTest, BadSingleFeatureHasUnprefixedField) {
  auto feed = ParseUsgsGeoJson(Feature("d1", "[10, -91]"));
  ASSERT_TRUE(feed.ok());
  EXPECT_EQ(feed->kind, ParsedFeed::Kind::kDetail);
  ASSERT_EQ(feed->rejections.size(), 1u);
  EXPECT_EQ(feed->rejections[0].ToString(),
            "geometry.coordinates: latitude -91.0 out of range -90..90 (id d1)");
}

TEST(UsgsParserTest, FileAboveLimitIsRefusedUnread) {
  testing::TempDir dir;
  std::filesystem::path big = dir / "big.json";
  {
    std::ofstream out(big);
    out << std::string(2048, ' ');
  }
  // Unreadable content would fail parsing; the size check must come first.
  std::filesystem::permissions(big, std::filesystem::perms::none);
  auto feed = ParseUsgsGeoJsonFile(big, 1024);
  ASSERT_FALSE(feed.ok());
  EXPECT_EQ(feed.status().code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(feed.status().field(), "ingest.max_file_bytes");
  EXPECT_EQ(feed.status().message(), "file is 2048 bytes, above the limit of 1024 bytes");

  auto missing = ParseUsgsGeoJsonFile(dir / "nope.json", 1024);
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
}

// Feed detection parses JSON once and hands the tree to the USGS parser
// (ParseUsgsGeoJsonValue): for every USGS fixture and every kind of broken
// input the result must be exactly what the text parser gives.
TEST(UsgsParserTest, DetectionsSingleParseGivesExactlyTheTextParsersResult) {
  std::vector<std::string> inputs;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(kFixtures / "usgs")) {
    if (!entry.is_regular_file()) continue;
    std::ifstream in(entry.path(), std::ios::binary);
    inputs.emplace_back(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  ASSERT_GE(inputs.size(), 3u);
  std::string deep_33 = "{\"type\":\"FeatureCollection\",\"features\":[],\"x\":", deep_70 = deep_33;
  for (int i = 0; i < 32; ++i) deep_33 += "[";
  deep_33 += std::string(32, ']') + "}";
  for (int i = 0; i < 69; ++i) deep_70 += "[";
  deep_70 += std::string(69, ']') + "}";
  for (const std::string& extra :
       {Collection(Feature("ok", "[1,2,3]") + "," + Feature("bad", "[1,200]") + ",7," +
                   Feature("alias", "[5,6]", R"(,"ids":",alias,old1,old2,","status":"deleted")")),
        Feature("single", "[10,20]"), deep_33, deep_70, std::string("[1,2]"), std::string(R"({"type":"Topology"})"),
        std::string(R"({"type":"FeatureCollection","features":[]} x)"),
        std::string(R"({"type":"FeatureCollection","features":[})"), std::string("{\"type\":\"Feature\"")}) {
    inputs.push_back(extra);
  }
  for (bool exercise : {false, true}) {
    FeedContext context;
    context.exercise = exercise;
    context.received_ms = 1700000000123;
    UsgsParseOptions options;
    options.status = exercise ? v1::EVENT_STATUS_EXERCISE : v1::EVENT_STATUS_ACTUAL;
    options.received_ms = context.received_ms;
    for (const std::string& text : inputs) {
      SCOPED_TRACE(text.substr(0, 80));
      auto want = ParseUsgsGeoJson(text, options);
      auto got = ParseFeedBytes(text, context);
      ASSERT_EQ(got.ok(), want.ok());
      if (!want.ok()) {
        EXPECT_EQ(got.status().code(), want.status().code());
        EXPECT_EQ(got.status().field(), want.status().field());
        EXPECT_EQ(got.status().message(), want.status().message());
        continue;
      }
      EXPECT_EQ(got->format, "usgs-geojson");
      EXPECT_EQ(got->feature_count, want->feature_count);
      ASSERT_EQ(got->events.size(), want->events.size());
      for (size_t i = 0; i < want->events.size(); ++i) {
        EXPECT_EQ(got->events[i].SerializeAsString(), want->events[i].SerializeAsString()) << i;
      }
      ASSERT_EQ(got->rejections.size(), want->rejections.size());
      for (size_t i = 0; i < want->rejections.size(); ++i) {
        EXPECT_EQ(got->rejections[i].ToString(), want->rejections[i].ToString());
      }
    }
  }
  // The deep documents really are refused as too deep, not parsed.
  EXPECT_NE(ParseFeedBytes(deep_33, {}).status().message().find("too deep"), std::string::npos);
}

}  // namespace
}  // namespace amparo::ingest
