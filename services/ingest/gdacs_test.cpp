#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "services/ingest/feed_detect.h"
#include "services/ingest/gdacs_api.h"
#include "services/ingest/gdacs_rss.h"
#include "services/ingest/test_fixtures.h"

namespace amparo::ingest {
namespace {

using testing_support::ReadFixture;

Result<ParsedFeed> ParseFixture(const std::string& file) { return ParseFeedBytes(ReadFixture(file), FeedContext{}); }

TEST(GdacsRssTest, TropicalCycloneItem) {
  auto feed = ParseFixture("gdacs/rss-exxamalte/gdacs-rss.xml");
  ASSERT_TRUE(feed.ok()) << feed.status().ToString();
  EXPECT_EQ(feed->format, "gdacs-rss");
  EXPECT_EQ(feed->feature_count, 16);
  ASSERT_EQ(feed->events.size(), 16u);
  const v1::CrisisEvent& tc = feed->events[0];
  EXPECT_EQ(tc.event_id(), "gdacs:TC1000643");
  EXPECT_EQ(tc.source(), "gdacs");
  ASSERT_EQ(tc.id_aliases_size(), 1);
  EXPECT_EQ(tc.id_aliases(0), "TC1000643-1");
  EXPECT_EQ(tc.hazard(), v1::HAZARD_KIND_TROPICAL_CYCLONE);
  EXPECT_EQ(tc.metrics().gdacs_alert(), "green");
  EXPECT_EQ(tc.severity(), v1::SEVERITY_MINOR);
  EXPECT_DOUBLE_EQ(tc.metrics().max_wind_kmh(), 92.592);
  EXPECT_DOUBLE_EQ(tc.origin().lat(), -19.4);
  EXPECT_DOUBLE_EQ(tc.origin().lon(), 59.8);
  EXPECT_EQ(tc.revision(), 1577620800000);  // pubDate Sun, 29 Dec 2019 12:00:00 GMT
  EXPECT_EQ(tc.place(), "Mauritius");
  ASSERT_EQ(tc.areas_size(), 1);
  EXPECT_EQ(tc.areas(0).footprint_model(), "gdacs-bbox");
  ASSERT_EQ(tc.areas(0).polygons(0).vertices_size(), 5);
  EXPECT_DOUBLE_EQ(tc.areas(0).polygons(0).vertices(0).lat(), -46.7828750315965);
  EXPECT_DOUBLE_EQ(tc.areas(0).polygons(0).vertices(0).lon(), 55.0780533046962);
  EXPECT_EQ(tc.areas(0).geocodes(0).value(), "MUS");
  const v1::CrisisEvent& eq = feed->events[1];
  EXPECT_EQ(eq.event_id(), "gdacs:EQ1199929");
  EXPECT_DOUBLE_EQ(eq.metrics().magnitude(), 5.5);
  EXPECT_DOUBLE_EQ(eq.metrics().depth_km(), 10);
}

TEST(GdacsRssTest, SeverityFillsWindNowAndAtMostAndAreas) {
  auto feed = ParseFixture("gdacs/rss-exxamalte/gdacs-rss.xml");
  ASSERT_TRUE(feed.ok()) << feed.status().ToString();
  // CALVINIA-19: "Tropical Storm (maximum wind speed of 93 km/h)", value 92.592.
  const v1::CrisisEvent& calvinia = feed->events.at(0);
  EXPECT_DOUBLE_EQ(calvinia.metrics().current_wind_kmh(), 93);
  EXPECT_DOUBLE_EQ(calvinia.metrics().max_wind_kmh(), 92.592);
  // SARAI-19 peaked at 130 km/h and blows 111 km/h at this advisory.
  const v1::CrisisEvent& sarai = feed->events.at(2);
  EXPECT_EQ(sarai.event_id(), "gdacs:TC1000642");
  EXPECT_DOUBLE_EQ(sarai.metrics().current_wind_kmh(), 111);
  EXPECT_DOUBLE_EQ(sarai.metrics().max_wind_kmh(), 129.6288);
  // PHANFONE-19 has decayed to a tropical depression.
  const v1::CrisisEvent& phanfone = feed->events.at(4);
  EXPECT_DOUBLE_EQ(phanfone.metrics().current_wind_kmh(), 46);
  EXPECT_DOUBLE_EQ(phanfone.metrics().max_wind_kmh(), 175.9248);
  // Droughts: "Minor impact for agricultural drought in 349846 km2".
  const v1::CrisisEvent& drought = feed->events.at(5);
  EXPECT_EQ(drought.event_id(), "gdacs:DR1013682");
  EXPECT_DOUBLE_EQ(drought.metrics().affected_area_km2(), 349846);
  EXPECT_FALSE(drought.metrics().has_current_wind_kmh());
  // Earthquakes carry none of these.
  EXPECT_FALSE(feed->events.at(1).metrics().has_current_wind_kmh());
  EXPECT_FALSE(feed->events.at(1).metrics().has_affected_area_km2());
}

TEST(GdacsRssTest, DoubleEncodedBomDateModifiedAndAntimeridian) {
  auto feed = ParseFixture("gdacs/rss-ocha-hdx/xml-rss.xml");
  ASSERT_TRUE(feed.ok()) << feed.status().ToString();
  ASSERT_EQ(feed->events.size(), 2u);
  EXPECT_EQ(feed->warnings.at(0).code, "double-encoded-bom");
  EXPECT_EQ(feed->warnings.at(1).code, "bbox-crosses-antimeridian");
  const v1::CrisisEvent& e = feed->events[0];
  EXPECT_EQ(e.event_id(), "gdacs:EQ1457082");
  EXPECT_EQ(e.revision(), 1733861383000);  // gdacs:datemodified Tue, 10 Dec 2024 20:09:43 GMT
  EXPECT_DOUBLE_EQ(e.metrics().magnitude(), 5.8);
  EXPECT_DOUBLE_EQ(e.metrics().depth_km(), 28.6);
  EXPECT_EQ(e.areas_size(), 0);  // its bbox (-181.2 .. -173.2) was dropped
  EXPECT_DOUBLE_EQ(e.origin().lon(), -177.2133);
}

TEST(GdacsRssTest, ItemsWithoutIdsOrAPointAreRejected) {
  auto crafted = ParseFixture("gdacs/rss-exxamalte/gdacs-2.xml");
  ASSERT_TRUE(crafted.ok());
  ASSERT_EQ(crafted->rejections.size(), 1u);
  EXPECT_EQ(crafted->rejections[0].field, "item[0].gdacs:eventtype");
  // The same crafted item with its ids: still refused, a bbox alone cannot place anyone.
  std::string doc = ReadFixture("gdacs/rss-exxamalte/gdacs-2.xml");
  const std::string anchor = "<gdacs:year>2019</gdacs:year>";
  doc.replace(doc.find(anchor), anchor.size(),
              anchor + "<gdacs:eventtype>TC</gdacs:eventtype><gdacs:eventid>1000643</gdacs:eventid>");
  auto with_ids = ParseFeedBytes(doc, FeedContext{});
  ASSERT_TRUE(with_ids.ok());
  ASSERT_EQ(with_ids->rejections.size(), 1u);
  EXPECT_EQ(with_ids->rejections[0].field, "item[0].georss:point");
  EXPECT_EQ(with_ids->rejections[0].reason,
            "no georss:point, geo:Point or georss:polygon (a bounding box alone cannot place the event)");
}

TEST(GdacsApiTest, EpisodesAreRevisionsOfOneEvent) {
  auto first = ParseFixture("gdacs/api-monty/1102983-1-geteventdata-source.json");
  auto second = ParseFixture("gdacs/api-monty/1102983-2-geteventdata-source.json");
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_EQ(first->format, "gdacs-api-event");
  const v1::CrisisEvent& a = first->events.at(0);
  const v1::CrisisEvent& b = second->events.at(0);
  EXPECT_EQ(a.event_id(), "gdacs:FL1102983");
  EXPECT_EQ(b.event_id(), a.event_id());
  EXPECT_EQ(a.id_aliases(0), "FL1102983-1");
  EXPECT_EQ(b.id_aliases(0), "FL1102983-2");
  EXPECT_LT(a.revision(), b.revision());
  EXPECT_EQ(a.revision(), 1731064245000);  // 2024-11-08T11:10:45 (UTC)
  EXPECT_EQ(a.metrics().gdacs_alert(), "red");
  EXPECT_EQ(b.metrics().gdacs_alert(), "orange");
  EXPECT_EQ(a.hazard(), v1::HAZARD_KIND_FLOOD);
  EXPECT_DOUBLE_EQ(a.origin().lat(), 38.60133168687446);
  EXPECT_EQ(a.place(), "Spain");
}

TEST(GdacsApiTest, GeometryPolygonsBecomeAreas) {
  auto tc = ParseFixture("gdacs/api-monty/tc-1001253-ep1-geometry.json");
  ASSERT_TRUE(tc.ok()) << tc.status().ToString();
  EXPECT_EQ(tc->format, "gdacs-api-geometry");
  EXPECT_EQ(tc->feature_count, 23);
  EXPECT_TRUE(tc->rejections.empty());
  ASSERT_EQ(tc->events.size(), 1u);
  const v1::CrisisEvent& e = tc->events[0];
  EXPECT_EQ(e.event_id(), "gdacs:TC1001253");
  EXPECT_EQ(e.areas_size(), 19);  // 23 features: the centroid, 19 polygons, 3 track lines
  EXPECT_DOUBLE_EQ(e.origin().lat(), -26.9);
  EXPECT_EQ(e.areas(0).description(), "28/01 06:00 Poly_Green");
  EXPECT_GE(e.areas(0).polygons(0).vertices_size(), 4);

  auto wf = ParseFixture("gdacs/api-monty/wf-1028649-ep1-geometry.json");
  ASSERT_TRUE(wf.ok()) << wf.status().ToString();
  ASSERT_EQ(wf->events.at(0).areas_size(), 1);
  EXPECT_EQ(wf->events.at(0).hazard(), v1::HAZARD_KIND_WILDFIRE);
  EXPECT_GE(wf->events.at(0).areas(0).polygons_size(), 1);
  EXPECT_DOUBLE_EQ(wf->events.at(0).metrics().burned_area_ha(), 6638);  // "... forestfire in 6638 ha"
}

TEST(GdacsApiTest, InteriorRingsBecomeHoles) {
  // The burnt area of WF1028649 is a MultiPolygon whose second polygon has
  // 11 unburnt islands (interior rings of 12, 4, 4, 4, 16, 5, 6, 5, 4, 5, 5
  // positions).
  auto wf = ParseFixture("gdacs/api-monty/wf-1028649-ep1-geometry.json");
  ASSERT_TRUE(wf.ok()) << wf.status().ToString();
  const v1::Area& area = wf->events.at(0).areas(0);
  ASSERT_GE(area.polygons_size(), 2);
  EXPECT_EQ(area.polygons(0).holes_size(), 0);
  const v1::Polygon& burnt = area.polygons(1);
  EXPECT_EQ(burnt.vertices_size(), 184);
  ASSERT_EQ(burnt.holes_size(), 11);
  EXPECT_EQ(burnt.holes(0).vertices_size(), 12);
  EXPECT_EQ(burnt.holes(4).vertices_size(), 16);
  EXPECT_EQ(burnt.holes(10).vertices_size(), 5);

  // A hole with fewer than 4 positions rejects its feature, naming it.
  auto feed = ParseFeedBytes(
      R"({"type":"FeatureCollection","features":[{"type":"Feature",)"
      R"("properties":{"eventtype":"FL","eventid":7,"datemodified":"2024-01-01T00:00:00"},)"
      R"("geometry":{"type":"Polygon","coordinates":[[[0,0],[4,0],[4,4],[0,4],[0,0]],[[1,1],[2,1],[1,1]]]}}]})",
      FeedContext{});
  ASSERT_TRUE(feed.ok()) << feed.status().ToString();
  ASSERT_EQ(feed->rejections.size(), 1u);
  EXPECT_EQ(feed->rejections[0].field, "features[0].geometry");
}

TEST(GdacsApiTest, SeverityDataFillsAreasAndWind) {
  auto dr = ParseFixture("gdacs/api-monty/dr-1016449-event.json");
  ASSERT_TRUE(dr.ok()) << dr.status().ToString();
  EXPECT_DOUBLE_EQ(dr->events.at(0).metrics().affected_area_km2(), 320952);
  auto tc = ParseFixture("gdacs/api-monty/tc-1001253-event.json");
  ASSERT_TRUE(tc.ok()) << tc.status().ToString();
  EXPECT_DOUBLE_EQ(tc->events.at(0).metrics().max_wind_kmh(), 101.8512);
  auto fl = ParseFixture("gdacs/api-monty/1102983-1-geteventdata-source.json");
  ASSERT_TRUE(fl.ok()) << fl.status().ToString();
  EXPECT_FALSE(fl->events.at(0).metrics().has_affected_area_km2());  // "Magnitude 0", no unit
}

TEST(GdacsApiTest, MissingEventIdNamesTheField) {
  auto feed = ParseFeedBytes(
      R"({"type":"Feature","geometry":{"type":"Point","coordinates":[1,2]},)"
      R"("properties":{"eventtype":"EQ","eventid":"","datemodified":"2024-01-01T00:00:00"}})",
      FeedContext{});
  ASSERT_FALSE(feed.ok());
  EXPECT_EQ(feed.status().field(), "properties.eventid");
  EXPECT_EQ(feed.status().message(), "must be an integer or non-empty string");
}

// Regression (fuzz_gdacs_api): a document that is not a GDACS API shape,
// handed to the parser directly, is an INVALID_ARGUMENT, never an exception.
TEST(GdacsApiTest, NonGdacsShapesAreRefusedNotThrown) {
  for (const char* text : {R"({"type":"Featuru","properties":{"eventtype":"FL","eventid":1}})",
                           R"({"type":"FeatureCollection"})", R"([1,2])", R"("x")"}) {
    auto parsed = ParseGdacsApi(boost::json::parse(text), FeedContext{});
    ASSERT_FALSE(parsed.ok()) << text;
    EXPECT_EQ(parsed.status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(parsed.status().field(), "type");
  }
}

}  // namespace
}  // namespace amparo::ingest
