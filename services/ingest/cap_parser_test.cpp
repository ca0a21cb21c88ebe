#include "services/ingest/cap_parser.h"

#include <gtest/gtest.h>

#include "services/ingest/feed_detect.h"
#include "services/ingest/test_fixtures.h"

namespace amparo::ingest {
namespace {

using testing_support::Info;
using testing_support::MinimalCap;
using testing_support::ReadFixture;

FeedContext Context(ValidationMode mode = ValidationMode::kStrict) {
  FeedContext context;
  context.validation = mode;
  context.received_ms = 42;
  return context;
}

Result<ParsedFeed> ParseFixture(const std::string& file, ValidationMode mode = ValidationMode::kStrict) {
  return ParseFeedBytes(ReadFixture(file), Context(mode));
}

bool HasWarning(const ParsedFeed& feed, const std::string& code) {
  for (const auto& w : feed.warnings)
    if (w.code == code) return true;
  return false;
}

TEST(CapParserTest, OasisThunderstormPolygonAndCodes) {
  auto feed = ParseFixture("cap/oasis-spec-examples/v1dot2_appendix_adot2.xml");
  ASSERT_TRUE(feed.ok()) << feed.status().ToString();
  EXPECT_EQ(feed->format, "cap");
  ASSERT_EQ(feed->events.size(), 1u);
  const v1::CrisisEvent& e = feed->events[0];
  EXPECT_EQ(e.event_id(), "cap:KSTO@NWS.NOAA.GOV:KSTO1055887203");
  EXPECT_EQ(e.source(), "cap");
  EXPECT_EQ(e.source_id(), "KSTO@NWS.NOAA.GOV:KSTO1055887203");
  EXPECT_EQ(e.status(), v1::EVENT_STATUS_ACTUAL);
  EXPECT_EQ(e.msg_type(), v1::MESSAGE_TYPE_ALERT);
  EXPECT_EQ(e.scope(), "Public");
  EXPECT_EQ(e.hazard(), v1::HAZARD_KIND_SEVERE_WEATHER);  // "Severe Thunderstorm Warning", category Met
  EXPECT_EQ(e.severity(), v1::SEVERITY_SEVERE);
  EXPECT_EQ(e.urgency(), v1::URGENCY_IMMEDIATE);
  EXPECT_EQ(e.certainty(), v1::CERTAINTY_OBSERVED);
  EXPECT_EQ(e.sent_ms(), 1055887020000);   // 2003-06-17T14:57:00-07:00
  EXPECT_EQ(e.revision(), e.sent_ms());
  EXPECT_EQ(e.expires_ms(), 1055890800000);  // 2003-06-17T16:00:00-07:00
  EXPECT_EQ(e.received_ms(), 42);
  ASSERT_EQ(e.areas_size(), 1);
  ASSERT_EQ(e.areas(0).polygons_size(), 1);
  const v1::Polygon& polygon = e.areas(0).polygons(0);
  EXPECT_EQ(polygon.vertices_size(), 5);
  EXPECT_DOUBLE_EQ(polygon.vertices(0).lat(), 38.47);
  EXPECT_DOUBLE_EQ(polygon.vertices(0).lon(), -120.14);
  EXPECT_EQ(e.areas(0).footprint_model(), "source");
  ASSERT_EQ(e.areas(0).geocodes_size(), 3);
  EXPECT_EQ(e.areas(0).geocodes(0).name(), "SAME");
  EXPECT_EQ(e.areas(0).geocodes(0).value(), "006109");
}

TEST(CapParserTest, UpdateTakesTheEventIdOfTheReferencedMessage) {
  auto feed = ParseFixture("cap/oasis-spec-examples/v1dot2_appendix_adot3.xml");
  ASSERT_TRUE(feed.ok()) << feed.status().ToString();
  const v1::CrisisEvent& e = feed->events.at(0);
  EXPECT_EQ(e.msg_type(), v1::MESSAGE_TYPE_UPDATE);
  EXPECT_EQ(e.source_id(), "trinet@caltech.edu:TRI13970876.2");
  EXPECT_EQ(e.event_id(), "cap:trinet@caltech.edu:TRI13970876.1");
  ASSERT_EQ(e.references_size(), 1);
  EXPECT_EQ(e.references(0).source(), "cap");
  EXPECT_EQ(e.references(0).source_id(), "trinet@caltech.edu:TRI13970876.1");
  ASSERT_EQ(e.id_aliases_size(), 1);
  EXPECT_EQ(e.hazard(), v1::HAZARD_KIND_EARTHQUAKE);
  ASSERT_EQ(e.areas(0).circles_size(), 1);
  EXPECT_DOUBLE_EQ(e.areas(0).circles(0).center().lat(), 32.9525);
  EXPECT_DOUBLE_EQ(e.areas(0).circles(0).center().lon(), -115.5527);
  EXPECT_DOUBLE_EQ(e.areas(0).circles(0).radius_km(), 0);
}

TEST(CapParserTest, EveryInfoBlockIsOneLanguage) {
  auto feed = ParseFixture("cap/oasis-spec-examples/v1dot2_appendix_adot4.xml");
  ASSERT_TRUE(feed.ok()) << feed.status().ToString();
  const v1::CrisisEvent& e = feed->events.at(0);
  ASSERT_EQ(e.texts_size(), 2);
  EXPECT_EQ(e.texts(0).language(), "en-US");
  EXPECT_EQ(e.texts(1).language(), "es-US");
  EXPECT_FALSE(e.texts(1).headline().empty());
  EXPECT_NE(e.texts(0).headline(), e.texts(1).headline());
  EXPECT_EQ(e.areas_size(), 1) << "the same area in both languages is kept once";

  auto macau = ParseFixture("cap/kde-kweathercore/mo-cap_monsoon.xml");
  ASSERT_TRUE(macau.ok()) << macau.status().ToString();
  EXPECT_EQ(macau->events.at(0).texts_size(), 3);
}

TEST(CapParserTest, Cap10And11AreRead) {
  auto cap10 = ParseFixture("cap/oasis-spec-examples/v1dot0_appendix_adot3.xml");
  ASSERT_TRUE(cap10.ok()) << cap10.status().ToString();
  EXPECT_EQ(cap10->events.at(0).msg_type(), v1::MESSAGE_TYPE_ALERT);  // 1.0 A.3 is the first report
  EXPECT_EQ(cap10->events.at(0).event_id(), "cap:trinet@caltech.edu:TRI13970876.1");
  auto cap11 = ParseFixture("cap/oasis-spec-examples/v1dot1_appendix_adot2.xml");
  ASSERT_TRUE(cap11.ok()) << cap11.status().ToString();
  EXPECT_EQ(cap11->events.at(0).areas(0).polygons(0).vertices_size(), 5);
}

TEST(CapParserTest, ExerciseAndTestAreCarried) {
  for (auto [status, expected] : {std::pair{"Exercise", v1::EVENT_STATUS_EXERCISE},
                                  {"Test", v1::EVENT_STATUS_TEST},
                                  {"Draft", v1::EVENT_STATUS_DRAFT},
                                  {"Actual", v1::EVENT_STATUS_ACTUAL}}) {
    auto feed = ParseFeedBytes(MinimalCap(status, "Alert", "", Info("")), Context());
    ASSERT_TRUE(feed.ok()) << status << ": " << feed.status().ToString();
    EXPECT_EQ(feed->events.at(0).status(), expected) << status;
  }
  FeedContext exercise = Context();
  exercise.exercise = true;
  auto actual = ParseFeedBytes(MinimalCap("Actual", "Alert", "", Info("")), exercise);
  ASSERT_TRUE(actual.ok());
  EXPECT_EQ(actual->events.at(0).status(), v1::EVENT_STATUS_EXERCISE);
  auto test = ParseFeedBytes(MinimalCap("Test", "Alert", "", Info("")), exercise);
  ASSERT_TRUE(test.ok());
  EXPECT_EQ(test->events.at(0).status(), v1::EVENT_STATUS_TEST);
}

TEST(CapParserTest, CancelReferencesTheEarliestMessage) {
  const std::string refs =
      "<references>ops@example.org,TEST-2,2024-05-01T09:30:00+02:00 "
      "ops@example.org,TEST-1,2024-05-01T09:00:00+02:00</references>";
  auto feed = ParseFeedBytes(MinimalCap("Actual", "Cancel", refs, Info(""), "TEST-3"), Context());
  ASSERT_TRUE(feed.ok()) << feed.status().ToString();
  const v1::CrisisEvent& e = feed->events.at(0);
  EXPECT_EQ(e.msg_type(), v1::MESSAGE_TYPE_CANCEL);
  EXPECT_EQ(e.event_id(), "cap:ops@example.org:TEST-1");
  EXPECT_EQ(e.references_size(), 2);
  EXPECT_EQ(e.id_aliases_size(), 2);
}

TEST(CapParserTest, MalformedReferencesAreRejected) {
  auto feed = ParseFeedBytes(
      MinimalCap("Actual", "Update", "<references>ops@example.org,TEST-1</references>", Info("")), Context());
  ASSERT_FALSE(feed.ok());
  EXPECT_EQ(feed.status().field(), "alert.references");
  EXPECT_EQ(feed.status().message(), "\"ops@example.org,TEST-1\" is not sender,identifier,sent");
}

TEST(CapParserTest, AckCarriesNoEvent) {
  auto feed = ParseFeedBytes(MinimalCap("Actual", "Ack", "", ""), Context());
  ASSERT_FALSE(feed.ok());
  EXPECT_EQ(feed.status().field(), "alert.msgType");
}

TEST(CapParserTest, UnclosedPolygonStrictRejectsLenientCloses) {
  const std::string doc =
      MinimalCap("Actual", "Alert", "", Info("<polygon>10,10 10,11 11,11 11,10</polygon>"));
  auto strict = ParseFeedBytes(doc, Context());
  ASSERT_FALSE(strict.ok());
  EXPECT_EQ(strict.status().field(), "alert.info[0].area[0].polygon[0]");
  EXPECT_EQ(strict.status().message(), "not closed: the first and last lat,lon pairs differ");
  auto lenient = ParseFeedBytes(doc, Context(ValidationMode::kLenient));
  ASSERT_TRUE(lenient.ok()) << lenient.status().ToString();
  EXPECT_TRUE(HasWarning(*lenient, "polygon-not-closed"));
  EXPECT_EQ(lenient->events.at(0).areas(0).polygons(0).vertices_size(), 5);
}

TEST(CapParserTest, OutOfRangeCoordinatesAndBadCircles) {
  auto lat = ParseFeedBytes(MinimalCap("Actual", "Alert", "", Info("<polygon>95,10 10,11 11,11 95,10</polygon>")),
                            Context());
  ASSERT_FALSE(lat.ok());
  EXPECT_EQ(lat.status().message(), "latitude 95 out of range -90..90");
  auto circle = ParseFeedBytes(MinimalCap("Actual", "Alert", "", Info("<circle>10,10 -5</circle>")), Context());
  ASSERT_FALSE(circle.ok());
  EXPECT_EQ(circle.status().field(), "alert.info[0].area[0].circle[0]");
  EXPECT_EQ(circle.status().message(), "radius \"-5\" must be a number >= 0 (km)");
}

TEST(CapParserTest, PolygonAfterGeocodeStrictRejectsLenientWarns) {
  const std::string file = "cap/kde-kweathercore/rs-2.49.0.0.688.0.20250817210003.457535.xml";
  auto strict = ParseFixture(file);
  ASSERT_FALSE(strict.ok());
  EXPECT_EQ(strict.status().field(), "alert");
  EXPECT_NE(strict.status().message().find("CAP 1.2 schema: line"), std::string::npos);
  auto lenient = ParseFixture(file, ValidationMode::kLenient);
  ASSERT_TRUE(lenient.ok()) << lenient.status().ToString();
  EXPECT_TRUE(HasWarning(*lenient, "polygon-after-geocode"));
  EXPECT_GE(lenient->events.at(0).areas(0).polygons_size(), 1);
  EXPECT_EQ(lenient->events.at(0).texts_size(), 3);
}

TEST(CapParserTest, ValueValueNameOrderIsToleratedInLenient) {
  auto lenient = ParseFixture("cap/kde-kweathercore/thunderstorm.xml", ValidationMode::kLenient);
  ASSERT_TRUE(lenient.ok()) << lenient.status().ToString();
  EXPECT_TRUE(HasWarning(*lenient, "value-valuename-order"));
  const v1::Area& area = lenient->events.at(0).areas(0);
  ASSERT_EQ(area.geocodes_size(), 3);
  EXPECT_EQ(area.geocodes(1).name(), "SAME");
  EXPECT_EQ(area.geocodes(1).value(), "006009");
  EXPECT_FALSE(ParseFixture("cap/kde-kweathercore/thunderstorm.xml").ok());
}

TEST(CapParserTest, EmptyReferences) {
  auto strict = ParseFixture("cap/google-cap-library/canada_errors.cap");
  ASSERT_FALSE(strict.ok());
  EXPECT_EQ(strict.status().field(), "alert.references");
  auto lenient = ParseFixture("cap/google-cap-library/canada_errors.cap", ValidationMode::kLenient);
  ASSERT_TRUE(lenient.ok()) << lenient.status().ToString();
  EXPECT_TRUE(HasWarning(*lenient, "empty-references"));
}

TEST(CapParserTest, SchemaErrorsOutsideTheKnownDeviationsRejectInBothModes) {
  for (auto mode : {ValidationMode::kStrict, ValidationMode::kLenient}) {
    auto missing_scope = ParseFixture("cap/google-cap-library/invalid.cap", mode);
    ASSERT_FALSE(missing_scope.ok());
    EXPECT_EQ(missing_scope.status().message().rfind("CAP 1.2 schema: line 9: Element 'info'", 0), 0u)
        << missing_scope.status().message();
    auto empty_urgency = ParseFixture("cap/google-cap-library/noaa_errors.cap", mode);
    ASSERT_FALSE(empty_urgency.ok());
    EXPECT_NE(empty_urgency.status().message().find("Element 'urgency'"), std::string::npos);
  }
}

TEST(CapParserTest, AtomFeedWithABadEntry) {
  auto good = ParseFixture("cap/google-cap-library/amber.atom");
  ASSERT_TRUE(good.ok()) << good.status().ToString();
  EXPECT_EQ(good->format, "cap-atom");
  EXPECT_EQ(good->events.at(0).hazard(), v1::HAZARD_KIND_OTHER);
  EXPECT_EQ(good->events.at(0).areas(0).geocodes(0).value(), "006037");
  auto bad = ParseFixture("cap/google-cap-library/weather_invalid.atom");
  ASSERT_TRUE(bad.ok()) << bad.status().ToString();
  EXPECT_EQ(bad->feature_count, 1);
  EXPECT_TRUE(bad->events.empty());
  ASSERT_EQ(bad->rejections.size(), 1u);
  EXPECT_EQ(bad->rejections[0].field, "entry[0].alert.identifier");
  EXPECT_EQ(FeedRejection(bad).value().rfind("no usable entry: entry[0].alert.identifier", 0), 0u);
}

TEST(CapParserTest, RssIndexWithoutEmbeddedAlertsIsRejected) {
  auto index = ParseFixture("cap/google-cap-library/ny_index.rss");
  ASSERT_TRUE(index.ok());
  EXPECT_EQ(index->rejections.size(), 2u);
  EXPECT_NE(index->rejections[0].reason.find("no embedded CAP <alert>"), std::string::npos);
  auto invalid = ParseFixture("cap/google-cap-library/invalid.rss");
  ASSERT_FALSE(invalid.ok());
  EXPECT_EQ(invalid.status().field(), "rss.channel");
  EXPECT_EQ(invalid.status().message(), "missing <title> (required by RSS 2.0)");
}

TEST(CapParserTest, GdacsCapUsesAlertLevelNotCapSeverity) {
  std::string doc = ReadFixture("gdacs/cap-kontur/alert01_valid.xml");
  auto green = ParseFeedBytes(doc, Context());
  ASSERT_TRUE(green.ok()) << green.status().ToString();
  const v1::CrisisEvent& e = green->events.at(0);
  EXPECT_EQ(e.source(), "gdacs");
  EXPECT_EQ(e.event_id(), "gdacs:EQ1279931");
  EXPECT_EQ(e.source_id(), "EQ1279931");
  ASSERT_EQ(e.id_aliases_size(), 2);
  EXPECT_EQ(e.id_aliases(0), "EQ1279931-1389192");
  EXPECT_EQ(e.id_aliases(1), "GDACS_EQ_1279931_1389192");
  EXPECT_EQ(e.hazard(), v1::HAZARD_KIND_EARTHQUAKE);
  EXPECT_EQ(e.metrics().gdacs_alert(), "green");
  EXPECT_DOUBLE_EQ(e.metrics().magnitude(), 4.6);
  EXPECT_DOUBLE_EQ(e.metrics().depth_km(), 19.09);
  EXPECT_EQ(e.revision(), 1627986204000);  // datemodified Tue, 03 Aug 2021 10:23:24 GMT
  EXPECT_EQ(e.place(), "Japan");

  // Same message, alert level Red: CAP <severity> still says Minor.
  const std::string green_level = "<valueName>alertlevel</valueName>\n\t\t\t<value>Green</value>";
  ASSERT_NE(doc.find(green_level), std::string::npos);
  doc.replace(doc.find(green_level), green_level.size(), "<valueName>alertlevel</valueName><value>Red</value>");
  auto red = ParseFeedBytes(doc, Context());
  ASSERT_TRUE(red.ok()) << red.status().ToString();
  EXPECT_EQ(red->events.at(0).metrics().gdacs_alert(), "red");
  EXPECT_EQ(red->events.at(0).severity(), v1::SEVERITY_SEVERE);
}

TEST(CapParserTest, GdacsCapRssFeed) {
  auto strict = ParseFixture("gdacs/cap-kontur/gdacs.xml");
  ASSERT_TRUE(strict.ok()) << strict.status().ToString();
  EXPECT_EQ(strict->format, "cap-rss");
  EXPECT_EQ(strict->feature_count, 64);
  EXPECT_EQ(strict->events.size(), 59u);  // 5 buffers cross the antimeridian (lon 180.27 ...)
  const v1::CrisisEvent& first = strict->events[0];
  EXPECT_EQ(first.event_id(), "gdacs:EQ1279052");
  EXPECT_DOUBLE_EQ(first.origin().lat(), 55.171);  // the item's geo:Point
  EXPECT_DOUBLE_EQ(first.origin().lon(), -157.1018);
  auto lenient = ParseFixture("gdacs/cap-kontur/gdacs.xml", ValidationMode::kLenient);
  ASSERT_TRUE(lenient.ok());
  EXPECT_EQ(lenient->events.size(), 64u);
  EXPECT_TRUE(HasWarning(*lenient, "coordinate-out-of-range"));
  int floods = 0;
  for (const auto& e : lenient->events) floods += e.hazard() == v1::HAZARD_KIND_FLOOD;
  EXPECT_EQ(floods, 2);
}

}  // namespace
}  // namespace amparo::ingest
