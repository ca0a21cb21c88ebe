#include "services/ingest/reliefweb_parser.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "services/ingest/feed_detect.h"

namespace amparo::ingest {
namespace {

const std::filesystem::path kDir = std::filesystem::path(AMPARO_FIXTURES_DIR) / "reliefweb/ocha-hdx";

std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

TEST(ReliefWebParserTest, FullRecordBurkinaFasoFloodMapsEveryKeyField) {
  auto parsed = ParseReliefWebJson(ReadFile(kDir / "disasters-25466.json"), {.received_ms = 5});
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(parsed->record_count, 1);
  EXPECT_EQ(parsed->total_count, 1);
  ASSERT_EQ(parsed->events.size(), 1u);
  EXPECT_TRUE(parsed->rejections.empty());
  const v1::CrisisEvent& e = parsed->events[0];
  EXPECT_EQ(e.event_id(), "reliefweb:25466");
  EXPECT_EQ(e.source(), "reliefweb");
  EXPECT_EQ(e.source_id(), "25466");
  ASSERT_EQ(e.id_aliases_size(), 1);
  EXPECT_EQ(e.id_aliases(0), "glide:FL-2015-000106-BFA");
  EXPECT_EQ(e.revision(), 1449612176000);  // date.changed 2015-12-08T22:02:56+00:00
  EXPECT_EQ(e.sent_ms(), 1449612176000);
  EXPECT_EQ(e.onset_ms(), 1438905600000);  // date.event 2015-08-07
  EXPECT_EQ(e.received_ms(), 5);
  EXPECT_EQ(e.status(), v1::EVENT_STATUS_ACTUAL);
  EXPECT_EQ(e.msg_type(), v1::MESSAGE_TYPE_ALERT);
  EXPECT_EQ(e.urgency(), v1::URGENCY_PAST);  // status "past"
  EXPECT_EQ(e.hazard(), v1::HAZARD_KIND_FLOOD);
  EXPECT_EQ(e.source_hazard_code(), "FL");
  ASSERT_EQ(e.areas_size(), 1);
  EXPECT_EQ(e.areas(0).description(), "Burkina Faso");
  ASSERT_EQ(e.areas(0).geocodes_size(), 1);
  EXPECT_EQ(e.areas(0).geocodes(0).name(), "ISO3");
  EXPECT_EQ(e.areas(0).geocodes(0).value(), "BFA");
  EXPECT_FALSE(e.has_origin());  // country-level: no epicentre
  EXPECT_EQ(e.place(), "Burkina Faso");
  ASSERT_EQ(e.texts_size(), 1);
  EXPECT_EQ(e.texts(0).headline(), "Burkina Faso: Floods - Aug 2015");
  EXPECT_EQ(e.texts(0).description().rfind("On the first week of August 2015", 0), 0u);
  EXPECT_EQ(e.web_url(), "https://reliefweb.int/disaster/fl-2015-000106-bfa");
}

TEST(ReliefWebParserTest, FullRecordNorthMacedoniaFlashFlood) {
  auto parsed = ParseReliefWebJson(ReadFile(kDir / "disasters-25846.json"));
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  ASSERT_EQ(parsed->events.size(), 1u);
  const v1::CrisisEvent& e = parsed->events[0];
  EXPECT_EQ(e.event_id(), "reliefweb:25846");
  EXPECT_EQ(e.hazard(), v1::HAZARD_KIND_FLOOD);
  EXPECT_EQ(e.source_hazard_code(), "FF");
  EXPECT_EQ(e.revision(), 1527008485000);  // 2018-05-22T17:01:25+00:00
  EXPECT_EQ(e.onset_ms(), 1438560000000);
  EXPECT_EQ(e.areas(0).description(), "North Macedonia");
  EXPECT_EQ(e.areas(0).geocodes(0).value(), "MKD");
  EXPECT_EQ(e.id_aliases(0), "glide:FF-2015-000115-MKD");
}

TEST(ReliefWebParserTest, ThousandShortRecordsUseTheGlideNumber) {
  auto parsed = ParseReliefWebJson(ReadFile(kDir / "v1-disasters-appname-vocabulary-preset-external-limit-1000.json"));
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(parsed->record_count, 1000);
  EXPECT_EQ(parsed->total_count, 3677);
  EXPECT_EQ(parsed->events.size(), 999u);
  // The one global record (COVID-19, GLIDE "EP-2020-000012-001") names no country.
  ASSERT_EQ(parsed->rejections.size(), 1u);
  EXPECT_EQ(parsed->rejections[0].ToString(),
            "data[541].fields.country: no country: country, primary_country and a GLIDE country suffix are all "
            "missing (glide EP-2020-000012-001) (id 49848)");

  std::set<std::string> ids;
  std::map<v1::MessageType, int> by_type;
  std::map<v1::HazardKind, int> by_hazard;
  for (const auto& e : parsed->events) {
    ids.insert(e.event_id());
    ++by_type[e.msg_type()];
    ++by_hazard[e.hazard()];
    ASSERT_EQ(e.areas_size(), 1) << e.event_id();
    ASSERT_EQ(e.areas(0).geocodes(0).value().size(), 3u) << e.event_id();
  }
  EXPECT_EQ(ids.size(), 999u);
  EXPECT_EQ(by_type[v1::MESSAGE_TYPE_CANCEL], 104);  // status alert-archive
  EXPECT_EQ(by_type[v1::MESSAGE_TYPE_ALERT], 895);
  EXPECT_EQ(by_hazard[v1::HAZARD_KIND_FLOOD], 402 + 45 + 3);  // FL + FF + SS
  EXPECT_EQ(by_hazard[v1::HAZARD_KIND_EARTHQUAKE], 62);
  EXPECT_EQ(by_hazard[v1::HAZARD_KIND_TROPICAL_CYCLONE], 113);
  EXPECT_EQ(by_hazard[v1::HAZARD_KIND_CONFLICT], 5);  // CE

  const v1::CrisisEvent& chad = parsed->events[0];
  EXPECT_EQ(chad.event_id(), "reliefweb:52108");
  EXPECT_EQ(chad.hazard(), v1::HAZARD_KIND_FLOOD);
  EXPECT_EQ(chad.areas(0).geocodes(0).value(), "TCD");
  EXPECT_EQ(chad.areas(0).description(), "Chad");
  EXPECT_EQ(chad.urgency(), v1::URGENCY_IMMEDIATE);  // "ongoing"
  EXPECT_EQ(chad.revision(), 2);                    // no dates: status rank of "ongoing"
  EXPECT_EQ(chad.sent_ms(), 0);

  const v1::CrisisEvent& volcano = parsed->events[26];
  EXPECT_EQ(volcano.event_id(), "reliefweb:52017");
  EXPECT_EQ(volcano.msg_type(), v1::MESSAGE_TYPE_CANCEL);
  EXPECT_EQ(volcano.hazard(), v1::HAZARD_KIND_VOLCANO);
  EXPECT_EQ(volcano.areas(0).geocodes(0).value(), "COL");
}

TEST(ReliefWebParserTest, MultiCountryRecordPutsThePrimaryCountryFirst) {
  const std::string text = R"({"data":[{"id":"7","fields":{"id":7,"name":"Region: Cyclone X","status":"alert",
    "glide":"TC-2024-000001-MOZ",
    "primary_country":{"iso3":"moz","name":"Mozambique","shortname":"Mozambique"},
    "country":[{"iso3":"mwi","name":"Malawi"},{"iso3":"moz","name":"Mozambique","primary":true}],
    "type":[{"code":"FL","name":"Flood"},{"code":"TC","name":"Tropical Cyclone","primary":true}],
    "date":{"created":"2024-01-02T03:04:05.678Z"}}}]})";
  auto parsed = ParseReliefWebJson(text);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  ASSERT_EQ(parsed->events.size(), 1u);
  const v1::CrisisEvent& e = parsed->events[0];
  ASSERT_EQ(e.areas_size(), 2);
  EXPECT_EQ(e.areas(0).geocodes(0).value(), "MOZ");
  EXPECT_EQ(e.areas(1).geocodes(0).value(), "MWI");
  EXPECT_EQ(e.hazard(), v1::HAZARD_KIND_TROPICAL_CYCLONE);
  EXPECT_EQ(e.urgency(), v1::URGENCY_EXPECTED);
  EXPECT_EQ(e.revision(), 1704164645678);  // created, no changed
  EXPECT_EQ(e.onset_ms(), 1704164645678);
}

TEST(ReliefWebParserTest, BadRecordsAreRejectedByFieldAndTheRestKept) {
  const std::string text = R"({"data":[
    {"id":"1","fields":{"name":"A: Flood","status":"someday","glide":"FL-2024-000001-TCD"}},
    {"id":"2","fields":{"name":"","status":"past","glide":"FL-2024-000002-TCD"}},
    {"id":"3","fields":{"name":"C: Flood","status":"past","glide":"FL-2024-000003-TCD",
                        "date":{"created":"yesterday"}}},
    {"id":"4","fields":{"name":"D: Flood","status":"past","primary_country":{"iso3":"xx"}}},
    {"id":"5","fields":{"name":"E: Flood","status":"past","glide":"FL-2024-000005-TCD"}},
    7
  ]})";
  auto parsed = ParseReliefWebJson(text);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  ASSERT_EQ(parsed->events.size(), 1u);
  EXPECT_EQ(parsed->events[0].source_id(), "5");
  ASSERT_EQ(parsed->rejections.size(), 5u);
  EXPECT_EQ(parsed->rejections[0].ToString(),
            "data[0].fields.status: must be alert, ongoing, current, past, external or alert-archive, got "
            "\"someday\" (id 1)");
  EXPECT_EQ(parsed->rejections[1].field, "data[1].fields.name");
  EXPECT_EQ(parsed->rejections[2].field, "data[2].fields.date.created");
  EXPECT_EQ(parsed->rejections[3].field, "data[3].fields.primary_country.iso3");
  EXPECT_EQ(parsed->rejections[4].ToString(), "data[5]: must be an object");
}

TEST(ReliefWebParserTest, WholeDocumentErrors) {
  auto not_json = ParseReliefWebJson("{\"data\": [");
  EXPECT_EQ(not_json.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(not_json.status().message().rfind("JSON syntax error at line 1", 0), 0u) << not_json.status().message();
  auto no_data = ParseReliefWebJson(R"({"count": 0})");
  EXPECT_EQ(no_data.status().field(), "data");
  EXPECT_EQ(no_data.status().message(), "must be an array of disaster records");
  auto array = ParseReliefWebJson("[]");
  EXPECT_EQ(array.status().message(), "must be a ReliefWeb API response object");
}

TEST(ReliefWebParserTest, FeedDetectRoutesReliefWebJson) {
  FeedContext context;
  context.received_ms = 3;
  auto parsed = ParseFeedFile(kDir / "disasters-25466.json", 1 << 20, context);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(parsed->format, "reliefweb");
  EXPECT_EQ(parsed->feature_count, 1);
  ASSERT_EQ(parsed->events.size(), 1u);
  EXPECT_EQ(parsed->events[0].event_id(), "reliefweb:25466");
  EXPECT_EQ(parsed->events[0].status(), v1::EVENT_STATUS_ACTUAL);
  EXPECT_EQ(parsed->events[0].received_ms(), 3);

  auto list = ParseFeedFile(kDir / "v1-disasters-appname-vocabulary-preset-external-limit-1000.json", 1 << 20,
                            FeedContext{});
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(list->events.size(), 999u);
  ASSERT_EQ(list->rejections.size(), 1u);
  EXPECT_EQ(list->rejections[0].id, "49848");
  EXPECT_EQ(FeedRejection(list), std::nullopt);
}

}  // namespace
}  // namespace amparo::ingest
