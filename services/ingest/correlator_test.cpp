#include "services/ingest/correlator.h"

#include <gtest/gtest.h>

#include <algorithm>

#include <boost/json.hpp>

#include <chrono>
#include <cmath>
#include <fstream>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <tuple>

#include "amparo/v1/envelope.pb.h"
#include "common/geo.h"
#include "common/link.h"
#include "common/testing.h"
#include "services/ingest/spool.h"
#include "services/ingest/test_fixtures.h"

namespace amparo::ingest {
namespace {

namespace fs = std::filesystem;
using testing_support::ReadFixture;

const char kSummary[] = "usgs/summary-exxamalte/usgs_all_earthquakes_past_day.json";

std::string Replace(std::string text, const std::string& from, const std::string& to) {
  for (size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size())) {
    text.replace(at, from.size(), to);
  }
  return text;
}

// The real USGS feature us2000hf24 (M5.6, 158km E of Nago, 2018-09-15
// 08:05:29 UTC) alone in a FeatureCollection, as the summary feed has it.
std::string UsgsNagoQuake() {
  boost::json::object feed = boost::json::parse(ReadFixture(kSummary)).as_object();
  boost::json::array features;
  for (const boost::json::value& feature : feed.at("features").as_array()) {
    if (feature.at("id") == "us2000hf24") features.push_back(feature);
  }
  EXPECT_EQ(features.size(), 1u);
  feed["features"] = std::move(features);
  return boost::json::serialize(feed);
}

// GDACS's CAP for the same earthquake: the real GDACS CAP message
// alert01_valid.xml (2021) with the event's values of 2018 (a GDACS id, its
// episode, times, magnitude and the ~100 km polygon GDACS draws around the
// epicentre). GDACS publishes minutes after USGS (its source, "NEIC").
std::string GdacsNagoQuake(const std::string& episode, const std::string& modified) {
  std::string cap = ReadFixture("gdacs/cap-kontur/alert01_valid.xml");
  cap = Replace(cap, "1279931", "1141234");
  cap = Replace(cap, "1389192", episode);
  cap = Replace(cap, "2021-08-03T05:28:23-00:00", "2018-09-15T08:19:00-00:00");
  cap = Replace(cap, "Tue, 03 Aug 2021 07:28:23 GMT", "Sat, 15 Sep 2018 08:05:29 GMT");
  cap = Replace(cap, "Tue, 03 Aug 2021 10:23:24 GMT", modified);
  cap = Replace(cap, "4.6", "5.6");
  const size_t open = cap.find("<polygon>") + 9;
  const size_t close = cap.find("</polygon>");
  std::ostringstream ring;
  for (int i = 0; i <= 36; ++i) {
    const double a = (i % 36) * 10.0 * M_PI / 180.0;
    ring << (i ? " " : "") << 26.6579 + 0.9 * std::cos(a) << "," << 129.5633 + 1.0 * std::sin(a);
  }
  return cap.substr(0, open) + ring.str() + cap.substr(close);
}

// A one-feature USGS collection (synthetic, for id changes and deletions).
std::string UsgsEvent(const std::string& id, int64_t updated, const std::string& ids,
                      const std::string& status = "reviewed") {
  return R"({"type":"FeatureCollection","features":[{"type":"Feature","id":")" + id +
         R"(","geometry":{"type":"Point","coordinates":[139.7,35.7,30]},)" +
         R"("properties":{"mag":6.1,"time":1700000000000,"updated":)" + std::to_string(updated) +
         R"(,"status":")" + status + R"(","type":"earthquake","ids":")" + ids +
         R"(","title":"M 6.1 - near Tokyo"}}]})";
}

class CorrelationSpoolTest : public ::testing::Test {
 protected:
  CorrelationSpoolTest() {
    db_.emplace(std::move(*Db::Open(dir_ / "ingest.db")));
    EXPECT_TRUE(PrepareIngestDb(*db_).ok());
    options_.spool_dir = dir_ / "spool";
    options_.validation = ValidationMode::kLenient;
    spool_.emplace(*db_, options_, clock_);
    EXPECT_TRUE(spool_->CreateDirectories().ok());
  }

  FileOutcome Process(const std::string& name, const std::string& content) {
    const fs::path file = options_.spool_dir / name;
    std::ofstream(file, std::ios::binary) << content;
    clock_.Advance(1000);
    auto outcome = spool_->ProcessFile(file);
    EXPECT_TRUE(outcome.ok()) << outcome.status().ToString();
    return outcome.ok() ? *outcome : FileOutcome{};
  }

  std::vector<v1::CrisisEvent> SentEvents() {
    std::vector<v1::CrisisEvent> out;
    auto pending = PendingOutbound(*db_, "rules");
    EXPECT_TRUE(pending.ok()) << pending.status().ToString();
    if (!pending.ok()) return out;
    for (const v1::Envelope& envelope : *pending) out.push_back(envelope.crisis_event());
    return out;
  }

  std::vector<IncidentRevision> History(const std::string& incident_id,
                                        v1::EventStatus status = v1::EVENT_STATUS_ACTUAL) {
    auto history = Correlator(*db_).History(incident_id, status);
    EXPECT_TRUE(history.ok()) << history.status().ToString();
    return history.ok() ? *history : std::vector<IncidentRevision>{};
  }

  testing::TempDir dir_;
  FakeClock clock_{1'800'000'000'000};
  std::optional<Db> db_;
  SpoolOptions options_;
  std::optional<SpoolProcessor> spool_;
};

TEST_F(CorrelationSpoolTest, UsgsAndGdacsReportsOfTheNagoEarthquakeAreOneIncident) {
  FileOutcome usgs = Process("usgs-1.json", UsgsNagoQuake());
  ASSERT_TRUE(usgs.accepted) << (usgs.problems.empty() ? "" : usgs.problems.front());
  ASSERT_EQ(usgs.events_sent, 1);
  FileOutcome gdacs = Process("gdacs-1.xml", GdacsNagoQuake("1280321", "Sat, 15 Sep 2018 08:19:00 GMT"));
  ASSERT_TRUE(gdacs.accepted) << (gdacs.problems.empty() ? "" : gdacs.problems.front());
  ASSERT_EQ(gdacs.events_sent, 1);

  std::vector<v1::CrisisEvent> sent = SentEvents();
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_EQ(sent[0].event_id(), "usgs:us2000hf24");
  EXPECT_EQ(sent[0].incident_id(), "usgs:us2000hf24");
  EXPECT_EQ(sent[0].incident_aliases_size(), 0);
  EXPECT_EQ(sent[1].event_id(), "gdacs:EQ1141234");
  EXPECT_EQ(sent[1].incident_id(), "usgs:us2000hf24");
  ASSERT_EQ(sent[1].incident_aliases_size(), 1);
  EXPECT_EQ(sent[1].incident_aliases(0), "gdacs:EQ1141234");

  std::vector<IncidentRevision> history = History("usgs:us2000hf24");
  ASSERT_EQ(history.size(), 2u);
  EXPECT_EQ(history[0].rule, MatchRule::kNewIncident);
  EXPECT_EQ(history[1].rule, MatchRule::kProximity);
  EXPECT_EQ(history[1].seq, 2);

  // GDACS's next episode of its event joins by id, not by proximity.
  FileOutcome episode2 = Process("gdacs-2.xml", GdacsNagoQuake("1280400", "Sat, 15 Sep 2018 10:40:00 GMT"));
  ASSERT_EQ(episode2.events_sent, 1);
  sent = SentEvents();
  ASSERT_EQ(sent.size(), 3u);
  EXPECT_EQ(sent[2].incident_id(), "usgs:us2000hf24");
  EXPECT_EQ(sent[2].msg_type(), v1::MESSAGE_TYPE_UPDATE);
  history = History("usgs:us2000hf24");
  ASSERT_EQ(history.size(), 3u);
  EXPECT_EQ(history[2].rule, MatchRule::kExplicitId);
}

TEST_F(CorrelationSpoolTest, TheNagoSwarmFromOneSourceStaysSeparateIncidents) {
  // 188 USGS events of 2018-09-16, among them 11 quakes within 20 km and
  // minutes of each other E of Nago: one source's reports are distinct quakes.
  FileOutcome outcome = Process("usgs-day.json", ReadFixture(kSummary));
  ASSERT_TRUE(outcome.accepted);
  std::set<std::string> incidents;
  for (const v1::CrisisEvent& event : SentEvents()) {
    EXPECT_EQ(event.incident_id(), event.event_id());
    incidents.insert(event.incident_id());
  }
  EXPECT_EQ(static_cast<int>(incidents.size()), outcome.events_sent);
  EXPECT_EQ(outcome.events_sent, 188);
}

TEST_F(CorrelationSpoolTest, GdacsApiEpisodesOfOneFloodAreOneIncidentWithIncreasingRevisions) {
  ASSERT_EQ(Process("gdacs-ep1.json", ReadFixture("gdacs/api-monty/1102983-1-geteventdata-source.json"))
                .events_sent,
            1);
  ASSERT_EQ(Process("gdacs-ep2.json", ReadFixture("gdacs/api-monty/1102983-2-geteventdata-source.json"))
                .events_sent,
            1);
  std::vector<v1::CrisisEvent> sent = SentEvents();
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_EQ(sent[0].incident_id(), "gdacs:FL1102983");
  EXPECT_EQ(sent[1].incident_id(), "gdacs:FL1102983");
  EXPECT_EQ(sent[1].msg_type(), v1::MESSAGE_TYPE_UPDATE);
  std::vector<IncidentRevision> history = History("gdacs:FL1102983");
  ASSERT_EQ(history.size(), 2u);
  EXPECT_EQ(history[0].seq, 1);
  EXPECT_EQ(history[1].seq, 2);
  EXPECT_LT(history[0].event_revision, history[1].event_revision);
  EXPECT_EQ(history[1].rule, MatchRule::kExplicitId);
  // Replaying episode 1 changes nothing.
  EXPECT_EQ(Process("gdacs-ep1b.json", ReadFixture("gdacs/api-monty/1102983-1-geteventdata-source.json"))
                .events_unchanged,
            1);
  EXPECT_EQ(History("gdacs:FL1102983").size(), 2u);
}

TEST_F(CorrelationSpoolTest, AReliefWebRecordJoinsTheGdacsFloodByItsGlideNumber) {
  // GDACS FL1102983 (Spain, 2024) carries GLIDE FL-2024-000199-ESP.
  ASSERT_EQ(Process("gdacs-ep1.json", ReadFixture("gdacs/api-monty/1102983-1-geteventdata-source.json"))
                .events_sent,
            1);
  std::vector<v1::CrisisEvent> sent = SentEvents();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_NE(std::find(sent[0].id_aliases().begin(), sent[0].id_aliases().end(), "glide:FL-2024-000199-ESP"),
            sent[0].id_aliases().end());
  // A ReliefWeb disaster record for the same flood (the real record's shape,
  // fixtures/reliefweb/ocha-hdx, with this flood's GLIDE and country).
  const std::string relief = R"({"data":[{"id":"99999","fields":{"id":99999,
      "name":"Spain: Floods - Nov 2024","status":"ongoing","glide":"FL-2024-000199-ESP",
      "primary_country":{"iso3":"esp","name":"Spain","location":{"lat":40.0,"lon":-3.7}},
      "primary_type":{"id":4611,"name":"Flood","code":"FL"},
      "country":[{"iso3":"esp","name":"Spain","location":{"lat":40.0,"lon":-3.7},"primary":true}],
      "type":[{"id":4611,"name":"Flood","code":"FL","primary":true}],
      "url":"https://reliefweb.int/taxonomy/term/99999",
      "date":{"changed":"2024-11-02T10:00:00+00:00","created":"2024-10-30T00:00:00+00:00",
              "event":"2024-10-29T00:00:00+00:00"}}}]})";
  ASSERT_EQ(Process("reliefweb.json", relief).events_sent, 1);
  sent = SentEvents();
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_EQ(sent[1].source(), "reliefweb");
  EXPECT_EQ(sent[1].incident_id(), "gdacs:FL1102983");
  std::vector<IncidentRevision> history = History("gdacs:FL1102983");
  ASSERT_EQ(history.size(), 2u);
  EXPECT_EQ(history[1].rule, MatchRule::kExplicitId);
}

TEST_F(CorrelationSpoolTest, UsgsIdChangeStaysTheSameIncident) {
  Process("a.json", UsgsEvent("us7000abcd", 1700000100000, ",us7000abcd,"));
  // USGS re-publishes the quake under the contributing network's id.
  Process("b.json", UsgsEvent("at00s1abcd", 1700000200000, ",at00s1abcd,us7000abcd,"));
  std::vector<v1::CrisisEvent> sent = SentEvents();
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_EQ(sent[1].source_id(), "at00s1abcd");
  EXPECT_EQ(sent[1].incident_id(), "usgs:us7000abcd");
  EXPECT_EQ(History("usgs:us7000abcd").size(), 2u);
}

TEST_F(CorrelationSpoolTest, CancelIsNeverSwallowedAsADuplicate) {
  Process("a.json", UsgsEvent("us7000dupe", 1700000100000, ",us7000dupe,"));
  // The deletion carries the same `updated` as the alert it withdraws.
  FileOutcome cancel = Process("b.json", UsgsEvent("us7000dupe", 1700000100000, ",us7000dupe,", "deleted"));
  EXPECT_EQ(cancel.events_sent, 1);
  EXPECT_EQ(cancel.events_unchanged, 0);
  std::vector<v1::CrisisEvent> sent = SentEvents();
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_EQ(sent[1].msg_type(), v1::MESSAGE_TYPE_CANCEL);
  EXPECT_EQ(sent[1].revision(), 1700000100001);  // above the alert, so rules takes it as new
  EXPECT_EQ(sent[1].incident_id(), "usgs:us7000dupe");
  // The same Cancel again is a true duplicate.
  FileOutcome again = Process("c.json", UsgsEvent("us7000dupe", 1700000100000, ",us7000dupe,", "deleted"));
  EXPECT_EQ(again.events_sent, 0);
  EXPECT_EQ(again.events_unchanged, 1);
  std::vector<IncidentRevision> history = History("usgs:us7000dupe");
  ASSERT_EQ(history.size(), 2u);
  EXPECT_EQ(history[1].msg_type, v1::MESSAGE_TYPE_CANCEL);
}

// The rule table, on synthetic events straight through the Correlator.
class CorrelatorRulesTest : public ::testing::Test {
 protected:
  CorrelatorRulesTest() {
    db_.emplace(std::move(*Db::Open(dir_ / "ingest.db")));
    EXPECT_TRUE(PrepareIngestDb(*db_).ok());
  }

  static v1::CrisisEvent Quake(const std::string& source, const std::string& id, int64_t onset_ms, double lat,
                               double lon, double magnitude) {
    v1::CrisisEvent event;
    event.set_source(source);
    event.set_source_id(id);
    event.set_event_id(source + ":" + id);
    event.set_status(v1::EVENT_STATUS_ACTUAL);
    event.set_msg_type(v1::MESSAGE_TYPE_ALERT);
    event.set_hazard(v1::HAZARD_KIND_EARTHQUAKE);
    event.set_onset_ms(onset_ms);
    event.mutable_origin()->set_lat(lat);
    event.mutable_origin()->set_lon(lon);
    event.mutable_metrics()->set_magnitude(magnitude);
    event.set_revision(onset_ms);
    return event;
  }

  static v1::CrisisEvent Flood(const std::string& source, const std::string& id, int64_t onset_ms,
                               double min_lat, double min_lon, double max_lat, double max_lon) {
    v1::CrisisEvent event;
    event.set_source(source);
    event.set_source_id(id);
    event.set_event_id(source + ":" + id);
    event.set_status(v1::EVENT_STATUS_ACTUAL);
    event.set_msg_type(v1::MESSAGE_TYPE_ALERT);
    event.set_hazard(v1::HAZARD_KIND_FLOOD);
    event.set_onset_ms(onset_ms);
    event.set_revision(onset_ms);
    v1::Polygon* polygon = event.add_areas()->add_polygons();
    for (auto [lat, lon] : {std::pair{min_lat, min_lon},
                            {min_lat, max_lon},
                            {max_lat, max_lon},
                            {max_lat, min_lon},
                            {min_lat, min_lon}}) {
      v1::LatLon* v = polygon->add_vertices();
      v->set_lat(lat);
      v->set_lon(lon);
    }
    return event;
  }

  IncidentMatch Correlate(v1::CrisisEvent event) {
    auto match = Correlator(*db_).Correlate(&event, 1);
    EXPECT_TRUE(match.ok()) << match.status().ToString();
    return match.ok() ? *match : IncidentMatch{};
  }

  testing::TempDir dir_;
  std::optional<Db> db_;
  static constexpr int64_t kT = 1'536'998'729'280;
  static constexpr int64_t kMinute = 60'000;
};

TEST_F(CorrelatorRulesTest, EarthquakeWindowDistanceAndMagnitudeBounds) {
  ASSERT_EQ(Correlate(Quake("usgs", "a", kT, 26.66, 129.56, 5.6)).rule, MatchRule::kNewIncident);
  // 9 minutes, ~55 km, dM 0.6: the same quake.
  IncidentMatch near = Correlate(Quake("gdacs", "EQ1", kT + 9 * kMinute, 26.66, 130.11, 5.0));
  EXPECT_EQ(near.rule, MatchRule::kProximity);
  EXPECT_EQ(near.incident_id, "usgs:a");
  // 11 minutes later: another quake.
  EXPECT_EQ(Correlate(Quake("emsc", "late", kT + 11 * kMinute, 26.66, 129.56, 5.6)).incident_id, "emsc:late");
  // ~110 km away (1 degree of latitude): another quake.
  EXPECT_EQ(Correlate(Quake("geofon", "far", kT, 27.66, 129.56, 5.6)).incident_id, "geofon:far");
  // dM 1.2: another quake.
  EXPECT_EQ(Correlate(Quake("jma", "big", kT, 26.66, 129.56, 6.8)).incident_id, "jma:big");
}

TEST_F(CorrelatorRulesTest, ProximityFindsQuakesAcrossCellEdgesTheAntimeridianAndNearPoles) {
  // The rule reads only the 1-degree cells within reach of the epicentre:
  // neighbours just across a cell edge, the antimeridian or near a pole
  // must still be found, and quakes just out of reach must not.
  struct Case {
    double lat0, lon0, lat1, lon1;
    bool same;
  };
  const Case cases[] = {
      {26.999, 129.999, 27.001, 130.001, true},     // four cells meet
      {10.0, 179.9, 10.0, -179.9, true},            // across the antimeridian (~22 km)
      {-10.0, -179.95, -10.5, 179.95, true},        // and the other way
      {0.0, 0.0, 0.85, 0.2, true},                  // ~97 km, a cell north and east
      {0.0, 0.0, 0.91, 0.0, false},                 // ~101 km: out of reach
      {89.55, 10.0, 89.6, -170.0, true},            // over the pole (~95 km)
      {-85.0, 0.0, -85.2, 9.0, true},               // a degree of longitude is ~9.7 km there
      {60.0, 179.5, 60.0, -179.0, true},            // 1.5 degrees of longitude at 60N: ~83 km
  };
  int n = 0;
  for (const Case& c : cases) {
    const std::string a = "a" + std::to_string(n), b = "b" + std::to_string(n);
    // Onsets hours apart between cases: only the intended pair can match.
    const int64_t t = kT + n++ * 3 * 3'600'000;
    ASSERT_EQ(Correlate(Quake("usgs", a, t, c.lat0, c.lon0, 5.6)).rule, MatchRule::kNewIncident);
    const double km = geo::DistanceKm({c.lat0, c.lon0}, {c.lat1, c.lon1});
    ASSERT_EQ(c.same, km <= 100.0) << "case " << n << ": " << km << " km";
    IncidentMatch m = Correlate(Quake("gdacs", b, t + kMinute, c.lat1, c.lon1, 5.6));
    EXPECT_EQ(m.incident_id, c.same ? "usgs:" + a : "gdacs:" + b) << "case " << n << ": " << km << " km";
  }
}

TEST(CorrelatorCellMigrationTest, IncidentsFromBeforeTheCellsAreStillFoundByProximity) {
  testing::TempDir dir;
  auto db = Db::Open(dir / "ingest.db");
  ASSERT_TRUE(db.ok());
  // A database as the version before the cells left it, with one incident
  // at 179.9E (its cell wraps) and one in the south-west quadrant.
  std::vector<std::string> before(IngestMigrations().begin(), IngestMigrations().end() - 1);
  ASSERT_TRUE(db->Migrate(before).ok());
  ASSERT_TRUE(
      db->Exec("INSERT INTO ingest_incidents(incident_id, status, hazard, onset_ms, lat, lon, magnitude, "
               "revision, cancelled, updated_ms) VALUES "
               "('usgs:old1', 1, 1, 1000, 10.0, 179.9, 5.6, 1, 0, 1), "
               "('usgs:old2', 1, 1, 1000, -33.5, -71.6, 5.6, 1, 0, 1)")
          .ok());
  ASSERT_TRUE(PrepareIngestDb(*db).ok());
  for (auto [id, lat, lon, want] :
       {std::tuple{"a", 10.0, -179.9, "usgs:old1"}, {"b", -33.4, -71.5, "usgs:old2"}}) {
    v1::CrisisEvent event;
    event.set_source("gdacs");
    event.set_source_id(id);
    event.set_event_id(std::string("gdacs:") + id);
    event.set_status(v1::EVENT_STATUS_ACTUAL);
    event.set_msg_type(v1::MESSAGE_TYPE_ALERT);
    event.set_hazard(v1::HAZARD_KIND_EARTHQUAKE);
    event.set_onset_ms(1000 + 60'000);
    event.mutable_origin()->set_lat(lat);
    event.mutable_origin()->set_lon(lon);
    event.mutable_metrics()->set_magnitude(5.5);
    auto match = Correlator(*db).Correlate(&event, 2);
    ASSERT_TRUE(match.ok()) << match.status().ToString();
    EXPECT_EQ(match->incident_id, want);
    EXPECT_EQ(match->rule, MatchRule::kProximity);
  }
}

TEST_F(CorrelatorRulesTest, ABurstWithOneOnsetMatchesWhatTheWholeWindowScanWouldFind) {
  // 400 quakes of one source at one onset, scattered over 6 x 6 degrees,
  // then one report of another source next to each of 40 of them: each
  // joins the nearest-in-time (all equal: the first by incident id) quake
  // within 100 km that has no report of that source yet, exactly as a scan
  // of every incident of the window finds.
  std::mt19937_64 rng(5);
  std::uniform_real_distribution<double> lat(-3, 3), lon(177, 183);
  std::vector<std::pair<std::string, geo::LatLon>> quakes;
  for (int i = 0; i < 400; ++i) {
    char id[16];
    std::snprintf(id, sizeof id, "q%03d", i);
    geo::LatLon p{lat(rng), std::remainder(lon(rng), 360.0)};
    ASSERT_EQ(Correlate(Quake("usgs", id, kT, p.lat, p.lon, 5.6)).rule, MatchRule::kNewIncident);
    quakes.emplace_back(std::string("usgs:") + id, p);
  }
  std::set<std::string> joined;  // incidents that have an emsc member already: never again
  for (int i = 0; i < 40; ++i) {
    const geo::LatLon near{quakes[i * 10].second.lat + 0.3,
                           std::remainder(quakes[i * 10].second.lon + 0.3, 360.0)};
    std::string want;
    for (const auto& [id, p] : quakes) {  // ids ascend: the first within reach wins
      if (joined.count(id) == 0 && geo::DistanceKm(p, near) <= 100.0) {
        want = id;
        break;
      }
    }
    ASSERT_FALSE(want.empty());
    EXPECT_EQ(Correlate(Quake("emsc", "r" + std::to_string(i), kT, near.lat, near.lon, 5.6)).incident_id,
              want);
    joined.insert(want);
  }
}

TEST_F(CorrelatorRulesTest, SameSourceIsNeverMergedByProximity) {
  Correlate(Quake("usgs", "a", kT, 26.66, 129.56, 5.6));
  EXPECT_EQ(Correlate(Quake("usgs", "b", kT + kMinute, 26.67, 129.57, 5.5)).incident_id, "usgs:b");
}

TEST_F(CorrelatorRulesTest, CancelIsMatchedOnlyByIdsNeverByProximity) {
  Correlate(Quake("usgs", "a", kT, 26.66, 129.56, 5.6));
  v1::CrisisEvent cancel = Quake("gdacs", "EQ1", kT, 26.66, 129.56, 5.6);
  cancel.set_msg_type(v1::MESSAGE_TYPE_CANCEL);
  EXPECT_EQ(Correlate(cancel).rule, MatchRule::kNewIncident);
  v1::CrisisEvent own_cancel = Quake("usgs", "a", kT, 26.66, 129.56, 5.6);
  own_cancel.set_msg_type(v1::MESSAGE_TYPE_CANCEL);
  IncidentMatch match = Correlate(own_cancel);
  EXPECT_EQ(match.rule, MatchRule::kExplicitId);
  EXPECT_EQ(match.incident_revision, 2);
  // The incident is cancelled: a new nearby report opens a new incident.
  EXPECT_EQ(Correlate(Quake("emsc", "x", kT, 26.66, 129.56, 5.6)).incident_id, "emsc:x");
}

TEST_F(CorrelatorRulesTest, OperatorEventsAndPublicReportsNeverJoinByProximity) {
  Correlate(Flood("gdacs", "FL1", kT, 38.0, -4.0, 40.0, -2.0));
  // One state's operator draws the same flood: its own incident, not GDACS's.
  v1::CrisisEvent mine = Flood("operator", "0123", kT + kMinute, 38.5, -3.5, 39.5, -2.5);
  mine.add_restricted_to_states("PHL");
  IncidentMatch own = Correlate(mine);
  EXPECT_EQ(own.rule, MatchRule::kNewIncident);
  EXPECT_EQ(own.incident_id, "operator:0123");
  // A public report next to the operator's area joins GDACS, never the
  // operator's incident, although the operator's is nearer in time.
  v1::CrisisEvent later_public = Flood("cap", "aemet-1", kT + 2 * kMinute, 38.6, -3.4, 39.4, -2.6);
  EXPECT_EQ(Correlate(later_public).incident_id, "gdacs:FL1");
  // With only the operator's incident around, a public report starts its own.
  v1::CrisisEvent alone = Flood("operator", "4567", kT, 10.0, 10.0, 11.0, 11.0);
  alone.add_restricted_to_states("PHL");
  Correlate(alone);
  EXPECT_EQ(Correlate(Flood("cap", "elsewhere", kT, 10.2, 10.2, 10.8, 10.8)).incident_id, "cap:elsewhere");
}

TEST_F(CorrelatorRulesTest, FloodsMatchOnOverlappingAreasWithin48Hours) {
  Correlate(Flood("gdacs", "FL1", kT, 38.0, -4.0, 40.0, -2.0));
  EXPECT_EQ(Correlate(Flood("cap", "aemet-1", kT + 47 * 60 * kMinute, 39.5, -2.5, 40.5, -1.0)).incident_id,
            "gdacs:FL1");
  EXPECT_EQ(Correlate(Flood("meteo", "late", kT + 49 * 60 * kMinute, 39.5, -2.5, 40.5, -1.0)).incident_id,
            "meteo:late");
  EXPECT_EQ(Correlate(Flood("other", "apart", kT, 41.0, -4.0, 42.0, -2.0)).incident_id, "other:apart");
}

TEST_F(CorrelatorRulesTest, GlideNumbersAndCapReferencesJoinAcrossSources) {
  v1::CrisisEvent relief;
  relief.set_source("reliefweb");
  relief.set_source_id("52000");
  relief.set_event_id("reliefweb:52000");
  relief.set_status(v1::EVENT_STATUS_ACTUAL);
  relief.set_hazard(v1::HAZARD_KIND_FLOOD);
  relief.add_id_aliases("glide:FL-2024-000199-ESP");
  Correlate(relief);
  v1::CrisisEvent other = Flood("gdacs", "FL1102983", kT, 38, -4, 40, -2);
  other.add_id_aliases("glide:FL-2024-000199-ESP");
  IncidentMatch glide = Correlate(other);
  EXPECT_EQ(glide.rule, MatchRule::kExplicitId);
  EXPECT_EQ(glide.incident_id, "reliefweb:52000");

  v1::CrisisEvent update = Flood("cap", "aemet:2", kT, 10, 10, 11, 11);
  v1::EventReference* ref = update.add_references();
  ref->set_source("gdacs");
  ref->set_source_id("FL1102983");
  EXPECT_EQ(Correlate(update).incident_id, "reliefweb:52000");
}

TEST_F(CorrelatorRulesTest, ExercisesNeverJoinRealIncidents) {
  Correlate(Quake("usgs", "a", kT, 26.66, 129.56, 5.6));
  v1::CrisisEvent drill = Quake("usgs", "a", kT, 26.66, 129.56, 5.6);
  drill.set_status(v1::EVENT_STATUS_EXERCISE);
  IncidentMatch match = Correlate(drill);
  EXPECT_EQ(match.rule, MatchRule::kNewIncident);
  EXPECT_EQ(match.incident_revision, 1);
}

// One long-lived Correlator (as the spool keeps it, with its cell cache fed
// by its own inserts) against an independent oracle of the proximity rule:
// the nearest in time among the live incidents within 10 min, 100 km and
// dM 1.0 with no member of the event's source, ties to the lowest (onset, id).
TEST_F(CorrelatorRulesTest, LongLivedCorrelatorMatchesTheRuleOracleOnAMixedStream) {
  struct Incident {
    std::string id;
    int64_t onset_ms;
    geo::LatLon place;
    double magnitude;
    std::set<std::string> sources;
  };
  std::vector<Incident> incidents;
  Correlator correlator(*db_);
  std::mt19937_64 rng(11);
  std::uniform_real_distribution<double> lat(-4, 4), lon(176, 184), mag(4.5, 6.5);
  std::uniform_int_distribution<int64_t> onset(-90 * kMinute, 90 * kMinute);
  const char* sources[] = {"usgs", "gdacs", "emsc"};
  int proximity = 0;
  auto tx = Transaction::Begin(*db_);  // one commit, not one per statement
  ASSERT_TRUE(tx.ok());
  for (int i = 0; i < 900; ++i) {
    const std::string source = sources[i % 3];
    const std::string id = "e" + std::to_string(i);
    const geo::LatLon p{lat(rng), std::remainder(lon(rng), 360.0)};
    const int64_t t = kT + onset(rng);
    const double m = mag(rng);
    const Incident* want = nullptr;
    for (const Incident& c : incidents) {
      const int64_t dt = std::llabs(c.onset_ms - t);
      if (dt > 10 * kMinute || c.sources.count(source) || geo::DistanceKm(c.place, p) > 100.0 ||
          std::abs(c.magnitude - m) > 1.0) {
        continue;
      }
      const int64_t best = want ? std::llabs(want->onset_ms - t) : INT64_MAX;
      if (dt < best || (dt == best && std::tie(c.onset_ms, c.id) < std::tie(want->onset_ms, want->id))) want = &c;
    }
    v1::CrisisEvent event = Quake(source, id, t, p.lat, p.lon, m);
    auto match = correlator.Correlate(&event, 1);
    ASSERT_TRUE(match.ok()) << match.status().ToString();
    if (want) {
      ++proximity;
      EXPECT_EQ(match->rule, MatchRule::kProximity) << id;
      EXPECT_EQ(match->incident_id, want->id) << id;
      for (Incident& c : incidents) {
        if (c.id == want->id) c.sources.insert(source);
      }
    } else {
      EXPECT_EQ(match->rule, MatchRule::kNewIncident) << id;
      incidents.push_back({source + ":" + id, t, p, m, {source}});
    }
  }
  EXPECT_TRUE(tx->Commit().ok());
  EXPECT_GT(proximity, 50);  // the stream does exercise the rule
}

// The cell cache may hold cells of incidents whose transaction rolled back;
// they must cost a probe, never a match.
TEST_F(CorrelatorRulesTest, IncidentOfARolledBackTransactionIsNeverMatched) {
  Correlator correlator(*db_);
  {
    auto tx = Transaction::Begin(*db_);
    ASSERT_TRUE(tx.ok());
    v1::CrisisEvent gone = Quake("usgs", "gone", kT, 26.66, 129.56, 5.6);
    ASSERT_TRUE(correlator.Correlate(&gone, 1).ok());
  }  // rolled back
  v1::CrisisEvent first = Quake("gdacs", "EQ1", kT + kMinute, 26.66, 129.57, 5.6);
  auto match = correlator.Correlate(&first, 2);
  ASSERT_TRUE(match.ok());
  EXPECT_EQ(match->rule, MatchRule::kNewIncident);
  EXPECT_EQ(match->incident_id, "gdacs:EQ1");
  v1::CrisisEvent second = Quake("emsc", "x", kT + 2 * kMinute, 26.67, 129.57, 5.5);
  match = correlator.Correlate(&second, 3);
  ASSERT_TRUE(match.ok());
  EXPECT_EQ(match->rule, MatchRule::kProximity);
  EXPECT_EQ(match->incident_id, "gdacs:EQ1");
  EXPECT_EQ(match->incident_revision, 2);
}

// Incidents another writer added to a stretch of time the Correlator has not
// read yet are found (the stretch is read from the database when needed).
TEST_F(CorrelatorRulesTest, CellCacheReadsIncidentsWrittenBeforeItLooked) {
  Correlator correlator(*db_);
  v1::CrisisEvent early = Quake("usgs", "early", kT - 5 * 60 * kMinute, 0, 0, 5);  // another stretch
  ASSERT_TRUE(correlator.Correlate(&early, 1).ok());
  v1::CrisisEvent other = Quake("usgs", "other", kT, 26.66, 129.56, 5.6);
  ASSERT_TRUE(Correlator(*db_).Correlate(&other, 1).ok());  // a second writer
  v1::CrisisEvent report = Quake("gdacs", "EQ1", kT + kMinute, 26.66, 129.57, 5.6);
  auto match = correlator.Correlate(&report, 2);
  ASSERT_TRUE(match.ok());
  EXPECT_EQ(match->incident_id, "usgs:other");
  EXPECT_EQ(match->rule, MatchRule::kProximity);
}

// A new incident's row is written complete (no bump read-back): revision 1,
// cancelled exactly when its first event is a Cancel, one history line.
TEST_F(CorrelatorRulesTest, NewIncidentRowIsWrittenCompleteForAlertsAndCancels) {
  v1::CrisisEvent cancel = Quake("gdacs", "EQ9", kT, 10, 10, 5);
  cancel.set_msg_type(v1::MESSAGE_TYPE_CANCEL);
  IncidentMatch cancelled = Correlate(cancel);
  IncidentMatch alert = Correlate(Quake("usgs", "a", kT, 20, 20, 5));
  EXPECT_EQ(cancelled.incident_revision, 1);
  EXPECT_EQ(alert.incident_revision, 1);
  auto q = db_->Prepare(
      "SELECT incident_id, revision, cancelled, updated_ms FROM ingest_incidents ORDER BY incident_id");
  ASSERT_TRUE(q.ok());
  std::vector<std::tuple<std::string, int64_t, int64_t, int64_t>> rows;
  while (*q->Step()) rows.emplace_back(q->ColumnText(0), q->ColumnInt(1), q->ColumnInt(2), q->ColumnInt(3));
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0], std::make_tuple(std::string("gdacs:EQ9"), int64_t{1}, int64_t{1}, int64_t{1}));
  EXPECT_EQ(rows[1], std::make_tuple(std::string("usgs:a"), int64_t{1}, int64_t{0}, int64_t{1}));
  auto history = Correlator(*db_).History("gdacs:EQ9", v1::EVENT_STATUS_ACTUAL);
  ASSERT_TRUE(history.ok());
  ASSERT_EQ(history->size(), 1u);
  EXPECT_EQ((*history)[0].seq, 1);
  EXPECT_EQ((*history)[0].msg_type, v1::MESSAGE_TYPE_CANCEL);
  // A later member of the cancelled incident revives it through the bump.
  v1::CrisisEvent again = Quake("gdacs", "EQ9", kT, 10, 10, 5);
  again.set_revision(kT + 1);
  IncidentMatch revived = Correlate(again);
  EXPECT_EQ(revived.rule, MatchRule::kExplicitId);
  EXPECT_EQ(revived.incident_revision, 2);
}

}  // namespace
}  // namespace amparo::ingest
