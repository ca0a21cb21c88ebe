#include "services/ingest/acled_parser.h"

#include <gtest/gtest.h>

#include <sstream>

#include "services/ingest/feed_detect.h"

namespace amparo::ingest {
namespace {

// ACLED's terms of use forbid redistributing its rows, so every row below is
// SYNTHETIC: invented values written to the published column list (ACLED
// codebook). No row here describes a real event.
const std::string kHeader =
    "event_id_cnty,event_date,year,time_precision,disorder_type,event_type,sub_event_type,actor1,"
    "assoc_actor_1,inter1,actor2,assoc_actor_2,inter2,interaction,civilian_targeting,iso,region,country,"
    "admin1,admin2,admin3,location,latitude,longitude,geo_precision,source,source_scale,notes,fatalities,"
    "tags,timestamp";

struct Row {
  std::string id = "XYZ1001";
  std::string date = "2024-03-05";
  std::string event_type = "Battles";
  std::string sub_type = "Armed clash";
  std::string iso = "729";  // Sudan
  std::string country = "Sudan";
  std::string admin1 = "Khartoum";
  std::string location = "Synthetic Town";
  std::string lat = "15.5007";
  std::string lon = "32.5599";
  std::string notes = "Synthetic test row.";
  std::string fatalities = "3";
  std::string geo_precision = "1";
  std::string timestamp = "1709856000";
};

std::string Csv(const Row& r) {
  return r.id + "," + r.date + ",2024,1,Political violence," + r.event_type + "," + r.sub_type +
         ",Synthetic Actor A,,1,Synthetic Actor B,,2,12,," + r.iso + ",Northern Africa," + r.country + "," +
         r.admin1 + ",,," + r.location + "," + r.lat + "," + r.lon + "," + r.geo_precision + ",Synthetic Source,National," + r.notes +
         "," + r.fatalities + ",," + r.timestamp;
}

std::string File(const std::vector<Row>& rows, const std::string& header = kHeader) {
  std::string out = header + "\n";
  for (const Row& r : rows) out += Csv(r) + "\n";
  return out;
}

TEST(AcledParserTest, OneRowMapsEveryKeyField) {
  auto parsed = ParseAcledCsv(File({Row{}}), {.status = v1::EVENT_STATUS_ACTUAL, .received_ms = 77});
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(parsed->summary.kind, AcledFileKind::kEvents);
  EXPECT_EQ(parsed->summary.rows, 1);
  ASSERT_EQ(parsed->events.size(), 1u);
  EXPECT_TRUE(parsed->rejections.empty());
  const v1::CrisisEvent& e = parsed->events[0];
  EXPECT_EQ(e.event_id(), "acled:XYZ1001");
  EXPECT_EQ(e.source(), "acled");
  EXPECT_EQ(e.source_id(), "XYZ1001");
  EXPECT_EQ(e.revision(), 1709856000000);
  EXPECT_EQ(e.sent_ms(), 1709856000000);
  EXPECT_EQ(e.onset_ms(), 1709596800000);  // 2024-03-05T00:00:00Z
  EXPECT_EQ(e.received_ms(), 77);
  EXPECT_EQ(e.status(), v1::EVENT_STATUS_ACTUAL);
  EXPECT_EQ(e.msg_type(), v1::MESSAGE_TYPE_ALERT);
  EXPECT_EQ(e.hazard(), v1::HAZARD_KIND_CONFLICT);
  EXPECT_EQ(e.source_hazard_code(), "Battles");
  ASSERT_TRUE(e.metrics().has_fatalities());
  EXPECT_EQ(e.metrics().fatalities(), 3);
  EXPECT_EQ(e.metrics().geo_precision(), 1);
  ASSERT_TRUE(e.has_origin());
  EXPECT_DOUBLE_EQ(e.origin().lat(), 15.5007);
  EXPECT_DOUBLE_EQ(e.origin().lon(), 32.5599);
  EXPECT_EQ(e.place(), "Synthetic Town, Khartoum, Sudan");
  ASSERT_EQ(e.areas_size(), 1);
  EXPECT_EQ(e.areas(0).description(), "Synthetic Town, Khartoum, Sudan");
  ASSERT_EQ(e.areas(0).geocodes_size(), 1);
  EXPECT_EQ(e.areas(0).geocodes(0).name(), "ISO3");
  EXPECT_EQ(e.areas(0).geocodes(0).value(), "SDN");
  ASSERT_EQ(e.texts_size(), 1);
  EXPECT_EQ(e.texts(0).language(), "en");
  EXPECT_EQ(e.texts(0).headline(), "Armed clash in Synthetic Town, Khartoum, Sudan");
  EXPECT_EQ(e.texts(0).description(), "Synthetic test row.");
}

TEST(AcledParserTest, EventTypesMapToHazards) {
  const std::vector<std::pair<std::string, v1::HazardKind>> cases = {
      {"Battles", v1::HAZARD_KIND_CONFLICT},
      {"Explosions/Remote violence", v1::HAZARD_KIND_CONFLICT},
      {"Violence against civilians", v1::HAZARD_KIND_CONFLICT},
      {"Riots", v1::HAZARD_KIND_CIVIL_UNREST},
      {"Protests", v1::HAZARD_KIND_CIVIL_UNREST},
      {"Strategic developments", v1::HAZARD_KIND_OTHER},
  };
  std::vector<Row> rows;
  for (size_t i = 0; i < cases.size(); ++i) {
    Row r;
    r.id = "XYZ" + std::to_string(2000 + i);
    r.event_type = cases[i].first;
    rows.push_back(r);
  }
  auto parsed = ParseAcledCsv(File(rows));
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  ASSERT_EQ(parsed->events.size(), cases.size());
  for (size_t i = 0; i < cases.size(); ++i) {
    EXPECT_EQ(parsed->events[i].hazard(), cases[i].second) << cases[i].first;
    EXPECT_EQ(parsed->events[i].source_hazard_code(), cases[i].first);
  }
}

TEST(AcledParserTest, BomQuotedCommasNewlinesCrlfAndReorderedColumnsAreRead) {
  const std::string text =
      "\xEF\xBB\xBF"
      "timestamp,Latitude , longitude,event_id_cnty,iso,event_type,event_date,notes,location,country\r\n"
      "1709856000,-1.25,36.8,ABC77,404,Protests,5 March 2024,\"Line one, with comma\r\nline \"\"two\"\"\","
      "\"Synthetic, Place\",Kenya\r\n";
  auto parsed = ParseAcledCsv(text);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  ASSERT_EQ(parsed->events.size(), 1u) << (parsed->rejections.empty() ? "" : parsed->rejections[0].ToString());
  const v1::CrisisEvent& e = parsed->events[0];
  EXPECT_EQ(e.event_id(), "acled:ABC77");
  EXPECT_EQ(e.hazard(), v1::HAZARD_KIND_CIVIL_UNREST);
  EXPECT_EQ(e.texts(0).description(), "Line one, with comma\r\nline \"two\"");
  EXPECT_EQ(e.place(), "Synthetic, Place, Kenya");
  EXPECT_EQ(e.areas(0).geocodes(0).value(), "KEN");
  EXPECT_EQ(e.onset_ms(), 1709596800000);
  EXPECT_FALSE(e.metrics().has_fatalities());  // no fatalities column
  EXPECT_FALSE(e.metrics().has_geo_precision());  // nor geo_precision
  EXPECT_EQ(e.texts(0).headline(), "Protests in Synthetic, Place, Kenya");
}

TEST(AcledParserTest, BadRowsAreRejectedWithLineColumnAndReasonAndTheRestGoesOn) {
  Row good;
  Row bad_lat;
  bad_lat.id = "XYZ2";
  bad_lat.lat = "123.5";
  Row bad_ts;
  bad_ts.id = "XYZ3";
  bad_ts.timestamp = "yesterday";
  Row bad_date;
  bad_date.id = "XYZ4";
  bad_date.date = "2024-02-30";
  Row bad_fatalities;
  bad_fatalities.id = "XYZ5";
  bad_fatalities.fatalities = "-1";
  Row bad_iso;
  bad_iso.id = "XYZ6";
  bad_iso.iso = "SDN";
  Row last;
  last.id = "XYZ7";
  std::string text = File({good, bad_lat, bad_ts, bad_date, bad_fatalities, bad_iso});
  text += "XYZ8,2024-03-05,only,three\n";  // too few fields
  text += Csv(last) + "\n";
  auto parsed = ParseAcledCsv(text);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(parsed->summary.rows, 8);
  ASSERT_EQ(parsed->events.size(), 2u);
  EXPECT_EQ(parsed->events[0].source_id(), "XYZ1001");
  EXPECT_EQ(parsed->events[1].source_id(), "XYZ7");
  ASSERT_EQ(parsed->rejections.size(), 6u);
  EXPECT_EQ(parsed->rejections[0].ToString(),
            "line 3: latitude: latitude 123.5 out of range -90..90 (event_id_cnty XYZ2)");
  EXPECT_EQ(parsed->rejections[1].ToString(),
            "line 4: timestamp: must be unix seconds (a non-negative integer), got \"yesterday\" "
            "(event_id_cnty XYZ3)");
  EXPECT_EQ(parsed->rejections[2].column, "event_date");
  EXPECT_EQ(parsed->rejections[2].line, 5);
  EXPECT_EQ(parsed->rejections[3].column, "fatalities");
  EXPECT_EQ(parsed->rejections[3].reason, "must be a non-negative integer, got \"-1\"");
  EXPECT_EQ(parsed->rejections[4].column, "iso");
  EXPECT_EQ(parsed->rejections[5].ToString(), "line 8: has 4 fields, the header has 31 (event_id_cnty XYZ8)");
}

TEST(AcledParserTest, UnterminatedQuoteRejectsOnlyTheLastRow) {
  std::string text = File({Row{}}) + "XYZ9,2024-03-05,\"never closed\n,more\n";
  auto parsed = ParseAcledCsv(text);
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(parsed->events.size(), 1u);
  ASSERT_EQ(parsed->rejections.size(), 1u);
  EXPECT_EQ(parsed->rejections[0].line, 3);
  EXPECT_EQ(parsed->rejections[0].reason, "unterminated quoted field (opened on line 3)");
}

TEST(AcledParserTest, OverlongFieldRejectsItsRowOnly) {
  Row big;
  big.id = "XYZ10";
  big.notes = std::string(200, 'n');
  Row after;
  after.id = "XYZ11";
  auto parsed = ParseAcledCsv(File({big, after}), {.max_field_bytes = 100});
  ASSERT_TRUE(parsed.ok());
  ASSERT_EQ(parsed->events.size(), 1u);
  EXPECT_EQ(parsed->events[0].source_id(), "XYZ11");
  ASSERT_EQ(parsed->rejections.size(), 1u);
  EXPECT_EQ(parsed->rejections[0].reason, "field 28 is longer than 100 bytes");
}

TEST(AcledParserTest, UnknownIsoCodeIsAcceptedWithoutGeocodeAndWarned) {
  Row r;
  r.iso = "0";
  auto parsed = ParseAcledCsv(File({r}));
  ASSERT_TRUE(parsed.ok());
  ASSERT_EQ(parsed->events.size(), 1u);
  EXPECT_EQ(parsed->events[0].areas(0).geocodes_size(), 0);
  ASSERT_EQ(parsed->summary.warnings.size(), 1u);
  EXPECT_EQ(parsed->summary.warnings[0],
            "line 2: iso: 0 is not an ISO 3166-1 numeric code; no ISO3 geocode (event_id_cnty XYZ1001)");
}

TEST(AcledParserTest, GeoPrecisionIsKeptOnlyWhenOneToThree) {
  Row region;
  region.geo_precision = "3";
  Row bad = region;
  bad.id = "XYZ1002";
  bad.geo_precision = "7";
  Row empty = region;
  empty.id = "XYZ1003";
  empty.geo_precision = "";
  auto parsed = ParseAcledCsv(File({region, bad, empty}));
  ASSERT_TRUE(parsed.ok());
  ASSERT_EQ(parsed->events.size(), 3u);
  EXPECT_EQ(parsed->events[0].metrics().geo_precision(), 3);
  EXPECT_FALSE(parsed->events[1].metrics().has_geo_precision());
  EXPECT_FALSE(parsed->events[2].metrics().has_geo_precision());
}

TEST(AcledParserTest, SameIdWithNewerTimestampIsANewerRevision) {
  Row first;
  Row second = first;
  second.timestamp = "1709942400";
  second.fatalities = "5";
  auto parsed = ParseAcledCsv(File({first, second}));
  ASSERT_TRUE(parsed.ok());
  ASSERT_EQ(parsed->events.size(), 2u);
  EXPECT_EQ(parsed->events[0].event_id(), parsed->events[1].event_id());
  EXPECT_LT(parsed->events[0].revision(), parsed->events[1].revision());
  EXPECT_EQ(parsed->events[1].revision(), 1709942400000);
  EXPECT_EQ(parsed->events[1].metrics().fatalities(), 5);
}

TEST(AcledParserTest, DeletionFileYieldsCancels) {
  auto parsed = ParseAcledCsv("event_id_cnty,timestamp\nXYZ1001,1710000000\n,1710000001\n");
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(parsed->summary.kind, AcledFileKind::kDeletions);
  ASSERT_EQ(parsed->events.size(), 1u);
  const v1::CrisisEvent& e = parsed->events[0];
  EXPECT_EQ(e.event_id(), "acled:XYZ1001");
  EXPECT_EQ(e.msg_type(), v1::MESSAGE_TYPE_CANCEL);
  EXPECT_EQ(e.revision(), 1710000000000);
  ASSERT_EQ(e.references_size(), 1);
  EXPECT_EQ(e.references(0).source_id(), "XYZ1001");
  ASSERT_EQ(parsed->rejections.size(), 1u);
  EXPECT_EQ(parsed->rejections[0].ToString(), "line 3: event_id_cnty: must not be empty");
}

TEST(AcledParserTest, FileLevelErrorsNameTheColumn) {
  auto empty = ParseAcledCsv("\xEF\xBB\xBF\n\n");
  EXPECT_EQ(empty.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(empty.status().message(), "empty file: no header row");

  auto missing = ParseAcledCsv("event_id_cnty,event_date,event_type,latitude,longitude,timestamp\n");
  EXPECT_EQ(missing.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(missing.status().field(), "iso");
  EXPECT_EQ(missing.status().message(), "required column is missing from the header (events file)");

  auto duplicate = ParseAcledCsv("event_id_cnty,timestamp,Timestamp\n");
  EXPECT_EQ(duplicate.status().field(), "timestamp");
  EXPECT_EQ(duplicate.status().message(), "duplicate column");
}

TEST(AcledParserTest, StreamHandsRowsOverInOrder) {
  Row a, b;
  b.id = "XYZ2";
  b.lon = "999";
  std::istringstream in(File({a, b}));
  std::vector<std::string> order;
  auto summary = ParseAcledCsvStream(
      in, {}, [&](v1::CrisisEvent e) { order.push_back("event " + e.source_id()); },
      [&](RowRejection r) { order.push_back("rejection " + r.event_id_cnty); });
  ASSERT_TRUE(summary.ok());
  EXPECT_EQ(order, (std::vector<std::string>{"event XYZ1001", "rejection XYZ2"}));
  EXPECT_EQ(summary->events, 1);
  EXPECT_EQ(summary->rejections, 1);
}

TEST(AcledParserTest, IsoNumericTable) {
  EXPECT_EQ(Iso3FromNumeric(4), "AFG");
  EXPECT_EQ(Iso3FromNumeric(729), "SDN");
  EXPECT_EQ(Iso3FromNumeric(804), "UKR");
  EXPECT_EQ(Iso3FromNumeric(894), "ZMB");
  EXPECT_EQ(Iso3FromNumeric(0), std::nullopt);
  EXPECT_EQ(Iso3FromNumeric(999), std::nullopt);
}

}  // namespace
}  // namespace amparo::ingest

namespace amparo::ingest {
namespace {

TEST(AcledFeedDispatchTest, FeedDetectRoutesAcledCsvWithContext) {
  // Synthetic rows again (see the top of this file).
  const std::string text = "\xEF\xBB\xBF" + File({Row{}}) + "BAD1,2024-03-05,x\n";
  FeedContext context;
  context.exercise = true;
  context.received_ms = 9;
  auto parsed = ParseFeedBytes(text, context);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(parsed->format, "acled-csv");
  EXPECT_EQ(parsed->feature_count, 2);
  ASSERT_EQ(parsed->events.size(), 1u);
  EXPECT_EQ(parsed->events[0].status(), v1::EVENT_STATUS_EXERCISE);
  EXPECT_EQ(parsed->events[0].received_ms(), 9);
  ASSERT_EQ(parsed->rejections.size(), 1u);
  EXPECT_EQ(parsed->rejections[0].ToString(), "line 3: has 3 fields, the header has 31 (id BAD1)");
  EXPECT_EQ(FeedRejection(parsed), std::nullopt);

  auto deletions = ParseFeedBytes("event_id_cnty,timestamp\nXYZ1,1710000000\n", FeedContext{});
  ASSERT_TRUE(deletions.ok());
  ASSERT_EQ(deletions->events.size(), 1u);
  EXPECT_EQ(deletions->events[0].msg_type(), v1::MESSAGE_TYPE_CANCEL);
}

}  // namespace
}  // namespace amparo::ingest
