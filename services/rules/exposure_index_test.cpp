#include "services/rules/exposure_index.h"

#include <gtest/gtest.h>
#include <malloc.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <numbers>
#include <random>
#include <set>
#include <algorithm>

namespace amparo::rules {
namespace {

constexpr double kDeg = std::numbers::pi / 180;

std::set<std::string> IdSet(const GroupExposure& g) {
  const std::vector<std::string> ids = g.registrant_ids();
  return {ids.begin(), ids.end()};
}

std::string TestId(uint64_t n) {
  char buf[40];
  std::snprintf(buf, sizeof(buf), "%016llx%016llx",
                static_cast<unsigned long long>(n * 0x9e3779b97f4a7c15ULL),
                static_cast<unsigned long long>(n));
  return buf;
}

v1::RegistrantLocation Registrant(uint64_t n, double lat, double lon, std::string state = "PHL",
                                  std::string host = "FJI", uint32_t household = 1, uint32_t flags = 0) {
  v1::RegistrantLocation r;
  r.set_registrant_id(TestId(n));
  r.set_state(std::move(state));
  r.set_host_country(std::move(host));
  r.set_lat(lat);
  r.set_lon(lon);
  r.set_household_size(household);
  r.set_vulnerability_flags(flags);
  return r;
}

// The point `km` great-circle kilometres from `from` along `bearing_deg`.
geo::LatLon Destination(geo::LatLon from, double bearing_deg, double km) {
  double d = km / geo::kEarthRadiusKm, b = bearing_deg * kDeg;
  double lat1 = from.lat * kDeg, lon1 = from.lon * kDeg;
  double lat2 = std::asin(std::sin(lat1) * std::cos(d) + std::cos(lat1) * std::sin(d) * std::cos(b));
  double lon2 = lon1 + std::atan2(std::sin(b) * std::sin(d) * std::cos(lat1),
                                  std::cos(d) - std::sin(lat1) * std::sin(lat2));
  double lon = std::remainder(lon2 / kDeg, 360.0);
  return {lat2 / kDeg, lon};
}

uint32_t Total(const Exposure& e) {
  uint32_t n = 0;
  for (const auto& [key, g] : e) n += g.counts.registrants;
  return n;
}

TEST(ExposureIndexTest, CircleAcrossTheAntimeridianFindsPointsOnBothSides) {
  ExposureIndex index;
  geo::LatLon suva{-18.1416, 178.4419};
  geo::LatLon center{-16.5, 179.9};  // Vanua Levu, Fiji, 0.1 degree west of the antimeridian
  ASSERT_TRUE(index.Upsert(Registrant(1, -16.5, -179.8)).ok());  // ~32 km east, across the line
  ASSERT_TRUE(index.Upsert(Registrant(2, -16.5, 179.6)).ok());   // ~32 km west
  ASSERT_TRUE(index.Upsert(Registrant(3, -16.5, -179.0)).ok());  // ~117 km east
  ASSERT_TRUE(index.Upsert(Registrant(4, suva.lat, suva.lon)).ok());
  auto e = index.QueryCircle(center, 50, 100);
  ASSERT_EQ(e.size(), 1u);
  const auto& g = e.at({"PHL", "FJI"});
  EXPECT_EQ(g.counts.registrants, 2u);
  EXPECT_EQ(IdSet(g),
            (std::set<std::string>{TestId(1), TestId(2)}));
  // Centred east of the line: 11 km to one, 53 km across the line to the other.
  EXPECT_EQ(Total(index.QueryCircle({-16.5, -179.9}, 50, 100)), 1u);
  EXPECT_EQ(Total(index.QueryCircle({-16.5, -179.9}, 60, 100)), 2u);
  EXPECT_EQ(Total(index.QueryCircle({-16.5, -179.9}, 130, 100)), 3u);
}

TEST(ExposureIndexTest, CircleReachingThePoleFindsPointsAtEveryLongitude) {
  ExposureIndex index;
  geo::LatLon center{89.9, 45};
  geo::LatLon across = Destination(center, 0, 40);  // over the pole, lon ~ -135
  ASSERT_LT(across.lon, -100);
  ASSERT_TRUE(index.Upsert(Registrant(1, across.lat, across.lon, "NOR", "")).ok());
  ASSERT_TRUE(index.Upsert(Registrant(2, 89.95, 100, "NOR", "")).ok());
  ASSERT_TRUE(index.Upsert(Registrant(3, 89.0, 45, "NOR", "")).ok());  // 100 km south
  auto e = index.QueryCircle(center, 50, 10);
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e.at({"NOR", ""}).counts.registrants, 2u);
  EXPECT_EQ(Total(index.QueryCircle({-89.99, 0}, 10, 10)), 0u);
}

TEST(ExposureIndexTest, PointsJustInsideCountAndJustOutsideDoNot) {
  ExposureIndex index;
  geo::LatLon center{26.6579, 129.5633};
  uint64_t n = 0;
  for (double bearing : {0.0, 45.0, 90.0, 180.0, 270.0, 333.0}) {
    geo::LatLon in = Destination(center, bearing, 15.0 - 0.01);
    geo::LatLon out = Destination(center, bearing, 15.0 + 0.01);
    ASSERT_TRUE(index.Upsert(Registrant(++n, in.lat, in.lon, "PHL", "JPN")).ok());
    ASSERT_TRUE(index.Upsert(Registrant(1000 + n, out.lat, out.lon, "PHL", "JPN")).ok());
  }
  // Half a metre inside at the circle's northern- and southernmost points
  // (what a query's latitude band must keep).
  for (double bearing : {0.0, 180.0}) {
    geo::LatLon edge = Destination(center, bearing, 15.0 - 0.0005);
    ASSERT_TRUE(index.Upsert(Registrant(++n, edge.lat, edge.lon, "PHL", "JPN")).ok());
  }
  auto e = index.QueryCircle(center, 15.0, 100);
  EXPECT_EQ(e.at({"PHL", "JPN"}).counts.registrants, 8u);
  for (const auto& id : e.at({"PHL", "JPN"}).registrant_ids()) EXPECT_NE(id, TestId(1001));
}

TEST(ExposureIndexTest, CountsHouseholdsAndVulnerablePerStateAndHost) {
  ExposureIndex index;
  ASSERT_TRUE(index.Upsert(Registrant(1, 35.0, 135.0, "PHL", "JPN", 4, 0)).ok());
  ASSERT_TRUE(index.Upsert(Registrant(2, 35.01, 135.0, "PHL", "JPN", 2, 4)).ok());
  ASSERT_TRUE(index.Upsert(Registrant(3, 35.02, 135.0, "IDN", "JPN", 1, 0)).ok());
  ASSERT_TRUE(index.Upsert(Registrant(4, 35.03, 135.0, "PHL", "KOR", 3, 1)).ok());
  auto e = index.QueryCircle({35.0, 135.0}, 10, 100);
  ASSERT_EQ(e.size(), 3u);
  EXPECT_EQ(e.at({"PHL", "JPN"}).counts, (ExposureCounts{2, 6, 1}));
  EXPECT_EQ(e.at({"IDN", "JPN"}).counts, (ExposureCounts{1, 1, 0}));
  EXPECT_EQ(e.at({"PHL", "KOR"}).counts, (ExposureCounts{1, 3, 1}));
}

TEST(ExposureIndexTest, CapsIdsWithVulnerableRegistrantsFirst) {
  ExposureIndex index;
  for (uint64_t n = 1; n <= 10; ++n) {
    ASSERT_TRUE(index.Upsert(Registrant(n, 10, 10, "PHL", "FJI", 1, n == 7 ? 8 : 0)).ok());
  }
  auto e = index.QueryCircle({10, 10}, 1, 3);
  const auto& g = e.at({"PHL", "FJI"});
  EXPECT_EQ(g.counts.registrants, 10u);
  ASSERT_EQ(g.id_count(), 3u);
  EXPECT_EQ(g.registrant_ids()[0], TestId(7));
  EXPECT_LT(g.registrant_ids()[1], g.registrant_ids()[2]);
  EXPECT_TRUE(index.QueryCircle({10, 10}, 1, 0).at({"PHL", "FJI"}).packed_ids.empty());
}

TEST(ExposureIndexTest, KeptIdsAreTheVulnerableThenTheLowestIdsInByteOrder) {
  ExposureIndex index;
  // Ids differing in their first, middle and last bytes; a '*' marks the vulnerable.
  const std::vector<std::string> ids = {
      "ff00000000000000000000000000000a*", "0100000000000000ff00000000000000",
      "80000000000000000000000000000001*", "0100000000000000000000000000ffff",
      "7fffffffffffffffffffffffffffffff",  "00000000000000010000000000000000*",
      "0100000000000000000000000000fffe",  "00ffffffffffffffffffffffffffffff",
      "8000000000000000ffffffffffffffff",  "0000000000000000ffffffffffffffff*"};
  for (const std::string& marked : ids) {
    v1::RegistrantLocation r = Registrant(1, 10, 10, "PHL", "FJI", 1, marked.back() == '*' ? 8 : 0);
    r.set_registrant_id(marked.substr(0, 32));
    ASSERT_TRUE(index.Upsert(r).ok());
  }
  const auto g = index.QueryCircle({10, 10}, 1, 7).at({"PHL", "FJI"});
  EXPECT_EQ(g.counts.registrants, 10u);
  EXPECT_EQ(g.registrant_ids(),
            (std::vector<std::string>{"0000000000000000ffffffffffffffff", "00000000000000010000000000000000",
                                      "80000000000000000000000000000001", "ff00000000000000000000000000000a",
                                      "00ffffffffffffffffffffffffffffff", "0100000000000000000000000000fffe",
                                      "0100000000000000000000000000ffff"}));
}

// Thousands of random ids, some sharing leading bytes, capped below their
// number: the kept ids equal a plain sort's (vulnerable first, then by id).
TEST(ExposureIndexTest, ManyKeptIdsEqualAPlainSortOfThem) {
  ExposureIndex index;
  std::mt19937_64 rng(20261128);
  std::vector<std::string> vulnerable, others;
  for (int i = 0; i < 6000; ++i) {
    char buf[40];
    // Every fourth id shares its first 8 bytes with the one before.
    const uint64_t hi =
        (i % 4 == 3) ? std::stoull(others.empty() ? "0" : others.back().substr(0, 16), nullptr, 16) : rng();
    std::snprintf(buf, sizeof buf, "%016llx%016llx", static_cast<unsigned long long>(hi),
                  static_cast<unsigned long long>(rng()));
    const bool is_vulnerable = i % 7 == 0;
    v1::RegistrantLocation r = Registrant(1, 10, 10, "PHL", "FJI", 1, is_vulnerable ? 8 : 0);
    r.set_registrant_id(buf);
    ASSERT_TRUE(index.Upsert(r).ok());
    (is_vulnerable ? vulnerable : others).push_back(buf);
  }
  std::sort(vulnerable.begin(), vulnerable.end());
  std::sort(others.begin(), others.end());
  std::vector<std::string> expected = vulnerable;
  expected.insert(expected.end(), others.begin(), others.end());
  expected.resize(2500);
  const auto g = index.QueryCircle({10, 10}, 1, 2500).at({"PHL", "FJI"});
  EXPECT_EQ(g.counts.registrants, 6000u);
  EXPECT_EQ(g.registrant_ids(), expected);
}

// The gateway's ids: a random prefix per import and a counter. Two imports
// in one area, their registrants in no particular order, capped.
TEST(ExposureIndexTest, KeptIdsOfSequencesEqualAPlainSortOfThem) {
  ExposureIndex index;
  std::mt19937_64 rng(7);
  std::vector<std::string> ids;
  for (const char* prefix : {"5d1f00aa00bb00cc00dd", "5d1f00aa00bb00cc00de"}) {
    for (uint64_t counter = 0xfffff0; counter < 0xfffff0 + 3000; ++counter) {
      char buf[40];
      std::snprintf(buf, sizeof buf, "%s%012llx", prefix, static_cast<unsigned long long>(counter));
      ids.push_back(buf);
    }
  }
  std::shuffle(ids.begin(), ids.end(), rng);
  for (const std::string& id : ids) {
    v1::RegistrantLocation r = Registrant(1, 10, 10);
    r.set_registrant_id(id);
    ASSERT_TRUE(index.Upsert(r).ok());
  }
  std::sort(ids.begin(), ids.end());
  ids.resize(4000);
  EXPECT_EQ(index.QueryCircle({10, 10}, 1, 4000).at({"PHL", "FJI"}).registrant_ids(), ids);
  // One import alone: only the counter's low bits differ.
  ExposureIndex one;
  for (int i = 0; i < 300; ++i) {
    char buf[40];
    std::snprintf(buf, sizeof buf, "00000000000000000000%012x", (i * 37) % 300);
    v1::RegistrantLocation r = Registrant(1, 10, 10);
    r.set_registrant_id(buf);
    ASSERT_TRUE(one.Upsert(r).ok());
  }
  const auto kept = one.QueryCircle({10, 10}, 1, 5).at({"PHL", "FJI"}).registrant_ids();
  EXPECT_EQ(kept,
            (std::vector<std::string>{"00000000000000000000000000000000", "00000000000000000000000000000001",
                                      "00000000000000000000000000000002", "00000000000000000000000000000003",
                                      "00000000000000000000000000000004"}));
}

TEST(ExposureIndexTest, MovingARegistrantMovesItsPoint) {
  ExposureIndex index;
  ASSERT_TRUE(index.Upsert(Registrant(1, 14.6, 121.0, "IDN", "PHL", 2)).ok());
  EXPECT_EQ(Total(index.QueryCircle({14.6, 121.0}, 5, 10)), 1u);
  ASSERT_TRUE(index.Upsert(Registrant(1, 10.3, 123.9, "IDN", "PHL", 5)).ok());  // Manila -> Cebu
  EXPECT_EQ(index.Size(), 1u);
  EXPECT_TRUE(index.QueryCircle({14.6, 121.0}, 5, 10).empty());
  auto e = index.QueryCircle({10.3, 123.9}, 5, 10);
  EXPECT_EQ(e.at({"IDN", "PHL"}).counts, (ExposureCounts{1, 5, 0}));
}

TEST(ExposureIndexTest, RemovedRegistrantsAreNotFoundAndSlotsAreReused) {
  ExposureIndex index;
  ASSERT_TRUE(index.Upsert(Registrant(1, 1, 1)).ok());
  ASSERT_TRUE(index.Upsert(Registrant(2, 1, 1)).ok());
  EXPECT_TRUE(index.Remove(TestId(1)));
  EXPECT_FALSE(index.Remove(TestId(1)));
  EXPECT_FALSE(index.Contains(TestId(1)));
  EXPECT_EQ(index.Size(), 1u);
  EXPECT_EQ(index.QueryCircle({1, 1}, 1, 10).at({"PHL", "FJI"}).registrant_ids(),
            (std::vector<std::string>{TestId(2)}));
  ASSERT_TRUE(index.Upsert(Registrant(3, 2, 2)).ok());  // takes the freed slot
  EXPECT_EQ(Total(index.QueryCircle({1, 1}, 1, 10)), 1u);
  EXPECT_EQ(Total(index.QueryCircle({2, 2}, 1, 10)), 1u);
}

TEST(ExposureIndexTest, RejectsBadInputNamingTheFieldAndStaysUnchanged) {
  ExposureIndex index;
  auto bad_id = Registrant(1, 0, 0);
  bad_id.set_registrant_id("ABCDEF");
  EXPECT_EQ(index.Upsert(bad_id).field(), "registrant_id");
  auto upper = Registrant(1, 0, 0);
  upper.set_registrant_id(std::string(32, 'A'));
  EXPECT_EQ(index.Upsert(upper).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(index.Upsert(Registrant(1, 91, 0)).field(), "lat");
  EXPECT_EQ(index.Upsert(Registrant(1, 0, 180.5)).field(), "lat");
  EXPECT_EQ(index.Upsert(Registrant(1, 0, 0, "")).field(), "state");
  EXPECT_EQ(index.Upsert(Registrant(1, 0, 0, "PHL", "FJI", 0)).field(), "household_size");
  auto nan = Registrant(1, std::nan(""), 0);
  EXPECT_EQ(index.Upsert(nan).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(index.Size(), 0u);
}

TEST(ExposureIndexTest, GeocodesCountOnlyWhenTheAreaHasNoShape) {
  ExposureIndex index;
  ASSERT_TRUE(index.Upsert(Registrant(1, 12.3, -1.5, "PHL", "BFA", 3)).ok());
  ASSERT_TRUE(index.Upsert(Registrant(2, 11.2, -4.3, "NPL", "BFA")).ok());
  ASSERT_TRUE(index.Upsert(Registrant(3, 13.5, 2.1, "PHL", "NER")).ok());
  v1::Area country;
  v1::Geocode* code = country.add_geocodes();
  code->set_name("ISO3");
  code->set_value("BFA");
  auto whole = index.QueryArea(country, 10);
  ASSERT_EQ(whole.size(), 2u);
  EXPECT_EQ(whole.at({"PHL", "BFA"}).counts.household_members, 3u);
  EXPECT_EQ(whole.at({"NPL", "BFA"}).counts.registrants, 1u);
  // With a shape, the code does not widen it: only registrant 1 is inside.
  auto* circle = country.add_circles();
  circle->mutable_center()->set_lat(12.3);
  circle->mutable_center()->set_lon(-1.5);
  circle->set_radius_km(10);
  auto shaped = index.QueryArea(country, 10);
  ASSERT_EQ(shaped.size(), 1u);
  EXPECT_EQ(shaped.at({"PHL", "BFA"}).counts.registrants, 1u);
}

TEST(ExposureIndexTest, PolygonsIncludingOneAcrossTheAntimeridian) {
  ExposureIndex index;
  ASSERT_TRUE(index.Upsert(Registrant(1, -17.0, 179.5)).ok());
  ASSERT_TRUE(index.Upsert(Registrant(2, -17.0, -179.5)).ok());
  ASSERT_TRUE(index.Upsert(Registrant(3, -17.0, -178.0)).ok());
  ASSERT_TRUE(index.Upsert(Registrant(4, 40.0, 10.0)).ok());
  v1::Area area;
  auto* across = area.add_polygons();  // 179E..179W, 16S..18S, closed ring
  for (auto [lat, lon] :
       {std::pair{-16.0, 179.0}, {-16.0, -179.0}, {-18.0, -179.0}, {-18.0, 179.0}, {-16.0, 179.0}}) {
    auto* v = across->add_vertices();
    v->set_lat(lat);
    v->set_lon(lon);
  }
  auto* square = area.add_polygons();  // not closed: the index closes it
  for (auto [lat, lon] : {std::pair{39.0, 9.0}, {39.0, 11.0}, {41.0, 11.0}, {41.0, 9.0}}) {
    auto* v = square->add_vertices();
    v->set_lat(lat);
    v->set_lon(lon);
  }
  auto* circle = area.add_circles();  // overlaps registrant 4: still counted once
  circle->mutable_center()->set_lat(40.0);
  circle->mutable_center()->set_lon(10.0);
  circle->set_radius_km(20);
  auto e = index.QueryArea(area, 10);
  const auto& g = e.at({"PHL", "FJI"});
  EXPECT_EQ(g.counts.registrants, 3u);
  EXPECT_EQ(IdSet(g),
            (std::set<std::string>{TestId(1), TestId(2), TestId(4)}));
}

TEST(ExposureIndexTest, ChurnKeepsEveryIdFindable) {
  std::mt19937_64 rng(42);
  ExposureIndex index;
  std::set<uint64_t> present;
  for (int round = 0; round < 20000; ++round) {
    uint64_t n = rng() % 3000;
    if (rng() % 3 == 0) {
      EXPECT_EQ(index.Remove(TestId(n)), present.erase(n) == 1);
    } else {
      ASSERT_TRUE(
          index.Upsert(Registrant(n, static_cast<double>(n % 20) - 10, static_cast<double>(n % 17) + 100))
              .ok());
      present.insert(n);
    }
  }
  ASSERT_EQ(index.Size(), present.size());
  for (uint64_t n = 0; n < 3000; ++n) EXPECT_EQ(index.Contains(TestId(n)), present.count(n) == 1) << n;
  EXPECT_EQ(Total(index.QueryCircle({0, 0}, 20000, 0)), present.size());
}

// Brute force over a plain vector, the reference the index must equal.
Exposure BruteForce(const std::vector<v1::RegistrantLocation>& all, geo::LatLon center, double radius_km) {
  Exposure e;
  for (const auto& r : all) {
    if (geo::DistanceKm(center, {r.lat(), r.lon()}) > radius_km) continue;
    auto& g = e[{r.state(), r.host_country()}];
    ++g.counts.registrants;
    g.counts.household_members += r.household_size();
    if (r.vulnerability_flags() != 0) ++g.counts.vulnerable;
    EXPECT_TRUE(g.AddId(r.registrant_id()));
  }
  return e;
}

void ExpectSameAsBruteForce(const ExposureIndex& index, const std::vector<v1::RegistrantLocation>& all,
                            geo::LatLon center, double radius_km) {
  auto got = index.QueryCircle(center, radius_km, 1'000'000);
  auto want = BruteForce(all, center, radius_km);
  ASSERT_EQ(got.size(), want.size()) << center.lat << "," << center.lon << " r=" << radius_km;
  for (auto& [key, g] : want) {
    ASSERT_TRUE(got.count(key)) << key.first << "/" << key.second;
    EXPECT_EQ(got[key].counts, g.counts) << center.lat << "," << center.lon << " r=" << radius_km;
    std::set<std::string> got_ids = IdSet(got[key]);
    EXPECT_EQ(got_ids, IdSet(g));
  }
}

TEST(ExposureIndexTest, RandomCirclesMatchBruteForce) {
  std::mt19937_64 rng(20250107);
  std::uniform_real_distribution<double> lat_all(-90, 90), lon_all(-180, 180), unit(0, 1);
  const std::vector<std::string> states = {"PHL", "IDN", "MEX"}, hosts = {"JPN", "FJI", "NOR", ""};
  std::vector<v1::RegistrantLocation> all;
  ExposureIndex index;
  for (uint64_t n = 0; n < 4000; ++n) {
    double lat, lon;
    double zone = unit(rng);
    if (zone < 0.25) {  // around the antimeridian
      lat = -30 + 40 * unit(rng);
      lon = unit(rng) < 0.5 ? 178 + 2 * unit(rng) : -180 + 2 * unit(rng);
    } else if (zone < 0.4) {  // polar caps
      lat = (unit(rng) < 0.5 ? 1 : -1) * (87 + 3 * unit(rng));
      lon = lon_all(rng);
    } else if (zone < 0.7) {  // a dense city-sized cluster
      lat = 26.6 + 0.5 * unit(rng);
      lon = 129.3 + 0.5 * unit(rng);
    } else {
      lat = lat_all(rng);
      lon = lon_all(rng);
    }
    geo::LatLon stored = ExposureIndex::StoredPosition({lat, lon});  // the oracle works on these
    auto r = Registrant(n, stored.lat, stored.lon, states[rng() % 3], hosts[rng() % 4], 1 + rng() % 6,
                        rng() % 5 == 0 ? 2u : 0u);
    ASSERT_TRUE(index.Upsert(r).ok());
    all.push_back(r);
  }
  // Move and remove some, keeping the reference in step.
  for (uint64_t n = 0; n < 4000; n += 7) {
    geo::LatLon moved = ExposureIndex::StoredPosition({lat_all(rng), lon_all(rng)});
    all[n].set_lat(moved.lat);
    all[n].set_lon(moved.lon);
    ASSERT_TRUE(index.Upsert(all[n]).ok());
  }
  std::vector<v1::RegistrantLocation> kept;
  for (uint64_t n = 0; n < all.size(); ++n) {
    if (n % 11 == 3) {
      ASSERT_TRUE(index.Remove(all[n].registrant_id()));
    } else {
      kept.push_back(all[n]);
    }
  }
  ASSERT_EQ(index.Size(), kept.size());

  for (int i = 0; i < 600; ++i) {
    geo::LatLon center;
    double zone = unit(rng);
    if (zone < 0.3) {
      center = {-30 + 40 * unit(rng), unit(rng) < 0.5 ? 179 + unit(rng) : -180 + unit(rng)};
    } else if (zone < 0.45) {
      center = {(unit(rng) < 0.5 ? 1 : -1) * (85 + 5 * unit(rng)), lon_all(rng)};
    } else if (zone < 0.7) {
      center = {26.6 + 0.5 * unit(rng), 129.3 + 0.5 * unit(rng)};
    } else {
      center = {lat_all(rng), lon_all(rng)};
    }
    double radius = unit(rng) < 0.5 ? 1 + 60 * unit(rng) : 1 + 1000 * unit(rng);
    ExpectSameAsBruteForce(index, kept, center, radius);
    if (HasFailure()) return;
  }
}

TEST(ExposureIndexTest, BulkLoadGivesTheSameAnswersAsUpserts) {
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> lat(-60, 60), lon(-180, 180);
  std::vector<v1::RegistrantLocation> all;
  ExposureIndex bulk;
  bulk.BeginBulkLoad();
  for (uint64_t n = 0; n < 2000; ++n) {
    geo::LatLon p = ExposureIndex::StoredPosition({lat(rng), lon(rng)});
    all.push_back(Registrant(n, p.lat, p.lon));
    ASSERT_TRUE(bulk.Upsert(all.back()).ok());
  }
  all[5].set_lat(1.5);  // an update during the load wins
  ASSERT_TRUE(bulk.Upsert(all[5]).ok());
  bulk.EndBulkLoad();
  EXPECT_EQ(bulk.Size(), 2000u);
  for (int i = 0; i < 100; ++i)
    ExpectSameAsBruteForce(bulk, all, {lat(rng), lon(rng)}, 2000 * (i % 3 + 1) / 3.0);
  ASSERT_TRUE(bulk.Remove(all[0].registrant_id()));  // the packed tree stays editable
  EXPECT_EQ(bulk.Size(), 1999u);
}

// Bytes malloc has handed out: arena chunks plus mmap()ed large blocks.
size_t HeapBytes() {
  struct mallinfo2 info = mallinfo2();
  return info.uordblks + info.hblkhd;
}

// A measurement, not a timed assertion: prints the bulk-build time and heap
// bytes per registrant for 1M synthetic registrants (build type matters).
TEST(ExposureIndexTest, MeasuresOneMillionRegistrants) {
  constexpr uint64_t kCount = 1'000'000;
  std::mt19937_64 rng(1);
  std::uniform_real_distribution<double> lat(-50, 60), lon(-180, 180);
  std::vector<geo::LatLon> points(kCount);
  for (auto& p : points) p = ExposureIndex::StoredPosition({lat(rng), lon(rng)});
  v1::RegistrantLocation r = Registrant(0, 0, 0);
  malloc_trim(0);
  size_t heap_before = HeapBytes();
  auto start = std::chrono::steady_clock::now();
  ExposureIndex index;
  index.BeginBulkLoad();
  for (uint64_t n = 0; n < kCount; ++n) {
    r.set_registrant_id(TestId(n));
    r.set_lat(points[n].lat);
    r.set_lon(points[n].lon);
    ASSERT_TRUE(index.Upsert(r).ok());
  }
  index.EndBulkLoad();
  auto built = std::chrono::steady_clock::now();
  malloc_trim(0);
  size_t heap_after = HeapBytes();
  geo::LatLon center{35.0, 135.0};
  auto e = index.QueryCircle(center, 300, 1000);
  auto queried = std::chrono::steady_clock::now();
  ASSERT_EQ(index.Size(), kCount);
  uint32_t brute = 0;
  for (const auto& p : points) brute += geo::DistanceKm(center, p) <= 300;
  uint32_t total = Total(e);
  EXPECT_EQ(total, brute);
  using ms = std::chrono::duration<double, std::milli>;
  std::printf(
      "[measure] 1M registrants: bulk build %.0f ms, %.1f heap bytes/registrant (%.1f in structures), "
      "300 km query %.3f ms (%u found)\n",
      ms(built - start).count(), static_cast<double>(heap_after - heap_before) / kCount,
      static_cast<double>(index.MemoryBytes()) / kCount,
      ms(queried - built).count(), total);
}


// ---- the static tree, the delta and every area kind against brute force ----

struct Person {
  v1::RegistrantLocation loc;
  geo::LatLon stored;
};

// Brute force over stored positions with the predicates of search_area.h:
// the reference every index answer must equal exactly.
Exposure BruteForceArea(const std::vector<Person>& people, const SearchArea& area) {
  std::vector<CircleShape> circles;
  std::vector<PolygonShape> polygons;
  for (const auto& c : area.circles) circles.emplace_back(c);
  for (const auto& p : area.polygons) polygons.emplace_back(p);
  Exposure e;
  for (const auto& person : people) {
    const auto& r = person.loc;
    bool in = std::find(area.host_countries.begin(), area.host_countries.end(), r.host_country()) !=
                  area.host_countries.end() ||
              std::find(area.admin1_codes.begin(), area.admin1_codes.end(), r.admin1()) != area.admin1_codes.end();
    for (const auto& c : circles) in = in || c.Contains(person.stored);
    for (const auto& p : polygons) in = in || (p.valid() && p.Contains(person.stored));
    if (!in) continue;
    auto& g = e[{r.state(), r.host_country()}];
    for (ExposureCounts* c : {&g.counts, &g.by_admin1[r.admin1()]}) {
      ++c->registrants;
      c->household_members += r.household_size();
      if (r.vulnerability_flags() != 0) ++c->vulnerable;
    }
    for (int b = 0; b < 32; ++b) g.with_flag[b] += (r.vulnerability_flags() >> b) & 1;
    EXPECT_TRUE(g.AddId(r.registrant_id()));
  }
  return e;
}

void ExpectSameExposure(const Exposure& want, const Exposure& got, bool compare_ids, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (const auto& [key, w] : want) {
    auto it = got.find(key);
    ASSERT_NE(it, got.end()) << what << " " << key.first << "/" << key.second;
    EXPECT_EQ(it->second.counts, w.counts) << what;
    EXPECT_EQ(it->second.by_admin1, w.by_admin1) << what;
    EXPECT_EQ(it->second.with_flag, w.with_flag) << what;
    if (compare_ids) {
      std::set<std::string> a = IdSet(it->second);
      EXPECT_EQ(a, IdSet(w)) << what;
    }
  }
}

SearchPolygon Star(geo::LatLon c, double radius_deg, int points, std::mt19937_64& rng, bool hole) {
  std::uniform_real_distribution<double> unit(0, 1);
  SearchPolygon p;
  for (int i = 0; i < points; ++i) {
    double a = 2 * std::numbers::pi * i / points;
    double r = radius_deg * (0.5 + 0.5 * unit(rng));
    double lon = std::remainder(c.lon + r * std::cos(a) / std::max(0.2, std::cos(c.lat * kDeg)), 360.0);
    p.outer.push_back(ExposureIndex::StoredPosition({std::clamp(c.lat + r * std::sin(a), -89.0, 89.0), lon}));
  }
  if (hole) {
    p.holes.assign(1, {});
    double dl = radius_deg / 4;
    for (auto [dy, dx] : {std::pair{-1, -1}, {-1, 1}, {1, 1}, {1, -1}}) {
      p.holes[0].push_back(ExposureIndex::StoredPosition(
          {std::clamp(c.lat + dy * dl, -89.0, 89.0), std::remainder(c.lon + dx * dl, 360.0)}));
    }
  }
  return p;
}

class ExposureIndexRandomTest : public ::testing::Test {
 protected:
  std::vector<Person> people_;
  std::mt19937_64 rng_{99};
  std::uniform_real_distribution<double> unit_{0, 1};

  geo::LatLon RandomPlace() {
    double zone = unit_(rng_);
    if (zone < 0.2) return {-30 + 40 * unit_(rng_), unit_(rng_) < 0.5 ? 178 + 2 * unit_(rng_) : -180 + 2 * unit_(rng_)};
    if (zone < 0.3) return {(unit_(rng_) < 0.5 ? 1 : -1) * (86 + 4 * unit_(rng_)), -180 + 360 * unit_(rng_)};
    if (zone < 0.8) return {14.5 + 0.4 * unit_(rng_), 120.9 + 0.4 * unit_(rng_)};  // Manila-sized cluster
    return {-90 + 180 * unit_(rng_), -180 + 360 * unit_(rng_)};
  }
  v1::RegistrantLocation RandomRegistrant(uint64_t n) {
    static const char* kStates[] = {"PHL", "IDN", "MEX", "NPL"};
    static const char* kHosts[] = {"JPN", "FJI", "NOR", ""};
    static const char* kAdmin1[] = {"", "JP-13", "FJ-C", "NO-03"};
    geo::LatLon p = ExposureIndex::StoredPosition(RandomPlace());
    uint32_t flags = rng_() % 4 == 0 ? static_cast<uint32_t>(1u << (rng_() % 9)) | (rng_() % 2 ? 2u : 0u) : 0u;
    auto r = Registrant(n, p.lat, p.lon, kStates[rng_() % 4], kHosts[rng_() % 4], 1 + rng_() % 7, flags);
    r.set_admin1(kAdmin1[rng_() % 4]);
    return r;
  }
  void Put(ExposureIndex& index, v1::RegistrantLocation r) {
    ASSERT_TRUE(index.Upsert(r).ok());
    geo::LatLon stored{r.lat(), r.lon()};
    for (auto& p : people_) {
      if (p.loc.registrant_id() == r.registrant_id()) {
        p = {r, stored};
        return;
      }
    }
    people_.push_back({r, stored});
  }
  SearchArea RandomArea() {
    SearchArea a;
    double kind = unit_(rng_);
    geo::LatLon c = RandomPlace();
    if (kind < 0.45) {
      a.circles.push_back({c, unit_(rng_) < 0.5 ? 1 + 80 * unit_(rng_) : 1 + 1500 * unit_(rng_)});
    } else if (kind < 0.85) {
      a.polygons.push_back(Star(c, 0.05 + 6 * unit_(rng_), 5 + static_cast<int>(rng_() % 40), rng_, unit_(rng_) < 0.5));
      if (unit_(rng_) < 0.3) a.circles.push_back({RandomPlace(), 300});
    } else {
      a.circles.push_back({c, 50 + 200 * unit_(rng_)});
      if (unit_(rng_) < 0.5) a.host_countries.push_back("FJI");
      if (unit_(rng_) < 0.5) a.admin1_codes.push_back("JP-13");
    }
    return a;
  }
  void CheckQueries(ExposureIndex& index, int queries, const std::string& phase) {
    for (int i = 0; i < queries; ++i) {
      SearchArea area = RandomArea();
      Exposure want = BruteForceArea(people_, area);
      ExpectSameExposure(want, index.Query(area, 0), false, phase + " counts #" + std::to_string(i));
      ExpectSameExposure(want, index.Query(area, 1'000'000), true, phase + " ids #" + std::to_string(i));
      std::vector<ExposureIndex::PackedId> listed;
      index.ListExposed(area, &listed);
      size_t total = 0;
      for (const auto& [k, g] : want) total += g.id_count();
      EXPECT_EQ(listed.size(), total) << phase;
      if (HasFailure()) return;
    }
  }
};

TEST_F(ExposureIndexRandomTest, StaticTreeDeltaAndRebuildsMatchBruteForce) {
  ExposureIndex index;
  index.BeginBulkLoad();
  std::vector<v1::RegistrantLocation> initial;
  for (uint64_t n = 0; n < 40000; ++n) {
    initial.push_back(RandomRegistrant(n));
    ASSERT_TRUE(index.Upsert(initial.back()).ok());
    people_.push_back({initial.back(), {initial.back().lat(), initial.back().lon()}});
  }
  index.EndBulkLoad();
  ASSERT_EQ(index.Size(), 40000u);
  CheckQueries(index, 30, "static");
  // Changes: moves and removals tombstone the static copy, new people and
  // moved ones live in the delta.
  for (uint64_t n = 0; n < 40000; n += 9) {
    auto moved = RandomRegistrant(n);
    Put(index, moved);
  }
  for (uint64_t n = 3; n < 40000; n += 13) {
    const std::string id = TestId(n);
    ASSERT_TRUE(index.Remove(id));
    people_.erase(std::find_if(people_.begin(), people_.end(),
                               [&](const Person& p) { return p.loc.registrant_id() == id; }));
  }
  for (uint64_t n = 50000; n < 52000; ++n) Put(index, RandomRegistrant(n));
  ASSERT_EQ(index.Size(), people_.size());
  CheckQueries(index, 30, "static+delta");
  // Enough further changes to force an automatic rebuild (delta >= 16384).
  for (uint64_t n = 60000; n < 77000; ++n) {
    auto r = RandomRegistrant(n);
    ASSERT_TRUE(index.Upsert(r).ok());
    people_.push_back({r, {r.lat(), r.lon()}});
  }
  ASSERT_EQ(index.Size(), people_.size());
  for (const auto& p : people_) ASSERT_TRUE(index.Contains(p.loc.registrant_id()));
  CheckQueries(index, 30, "rebuilt");
  index.Compact();
  CheckQueries(index, 10, "compacted");
}

v1::Polygon ToProto(const SearchPolygon& p) {
  v1::Polygon out;
  for (geo::LatLon v : p.outer) {
    v1::LatLon* pv = out.add_vertices();
    pv->set_lat(v.lat);
    pv->set_lon(v.lon);
  }
  for (const SearchRing& hole : p.holes) {
    v1::Ring* ring = out.add_holes();
    for (geo::LatLon v : hole) {
      v1::LatLon* pv = ring->add_vertices();
      pv->set_lat(v.lat);
      pv->set_lon(v.lon);
    }
  }
  return out;
}

// QueryArea (the engine's entry point) honours the holes of proto polygons:
// a donut over the Manila cluster and random stars with holes, against the
// brute-force oracle.
TEST_F(ExposureIndexRandomTest, QueryAreaHonoursProtoPolygonHoles) {
  ExposureIndex index;
  for (uint64_t n = 0; n < 20000; ++n) {  // distinct ids: no need for Put's search
    auto r = RandomRegistrant(n);
    ASSERT_TRUE(index.Upsert(r).ok());
    people_.push_back({r, {r.lat(), r.lon()}});
  }
  const SearchPolygon donut = {
      {{14.55, 120.95}, {14.55, 121.25}, {14.85, 121.25}, {14.85, 120.95}, {14.55, 120.95}},
      {{{14.65, 121.05}, {14.65, 121.15}, {14.75, 121.15}, {14.75, 121.05}, {14.65, 121.05}}}};
  v1::Area proto;
  *proto.add_polygons() = ToProto(donut);
  SearchArea with_hole;
  with_hole.polygons.push_back(donut);
  SearchArea without_hole;
  without_hole.polygons.push_back({donut.outer, {}});
  const Exposure want = BruteForceArea(people_, with_hole);
  const Exposure filled = BruteForceArea(people_, without_hole);
  auto total = [](const Exposure& e) {
    uint64_t n = 0;
    for (const auto& [key, g] : e) n += g.counts.registrants;
    return n;
  };
  // Not vacuous: people live both in the ring and in the hole.
  ASSERT_GT(total(want), 1000u);
  ASSERT_GT(total(filled) - total(want), 300u);
  ExpectSameExposure(want, index.QueryArea(proto, 0), false, "donut counts");
  ExpectSameExposure(want, index.QueryArea(proto, 1'000'000), true, "donut ids");

  // A hole that is no ring (two vertices) removes no one.
  v1::Area malformed = proto;
  malformed.mutable_polygons(0)->mutable_holes(0)->mutable_vertices()->DeleteSubrange(2, 3);
  ExpectSameExposure(filled, index.QueryArea(malformed, 0), false, "malformed hole");

  for (int i = 0; i < 20; ++i) {
    SearchArea area;
    area.polygons.push_back(Star(RandomPlace(), 0.05 + 6 * unit_(rng_), 5 + static_cast<int>(rng_() % 40), rng_,
                                 /*hole=*/true));
    v1::Area as_proto;
    *as_proto.add_polygons() = ToProto(area.polygons[0]);
    ExpectSameExposure(BruteForceArea(people_, area), index.QueryArea(as_proto, 1'000'000), true,
                       "star #" + std::to_string(i));
    if (HasFailure()) return;
  }
}

TEST(ExposureIndexTest, PolygonBoundaryAndHolesAreExact) {
  ExposureIndex index;
  // Coordinates on a 1/1024 grid of the lat and lon ranges are stored
  // exactly, so points can sit exactly on edges and vertices.
  auto grid = [](int i, int j) { return geo::LatLon{-90 + i * 180.0 / 1024, -180 + j * 360.0 / 1024}; };
  // On an outer vertex, the outer edges, the hole's edges and vertex, and
  // strictly inside: all count. Inside the hole and outside do not.
  const std::vector<std::pair<int, int>> in_points = {{568, 568}, {568, 572}, {572, 576}, {570, 572},
                                                      {572, 570}, {574, 574}, {569, 569}};
  const std::vector<std::pair<int, int>> out_points = {{572, 572}, {571, 573}, {567, 572}, {572, 577}, {577, 572}};
  uint64_t n = 0;
  for (auto [i, j] : in_points) {
    geo::LatLon p = grid(i, j);
    geo::LatLon stored = ExposureIndex::StoredPosition(p);
    ASSERT_EQ(stored.lat, p.lat);
    ASSERT_EQ(stored.lon, p.lon);
    ASSERT_TRUE(index.Upsert(Registrant(++n, p.lat, p.lon, "PHL", "VNM")).ok());
  }
  for (auto [i, j] : out_points) {
    ASSERT_TRUE(index.Upsert(Registrant(100 + ++n, grid(i, j).lat, grid(i, j).lon, "PHL", "VNM")).ok());
  }
  SearchArea area;
  area.polygons.push_back({{grid(568, 568), grid(568, 576), grid(576, 576), grid(576, 568)},
                           {{grid(570, 570), grid(570, 574), grid(574, 574), grid(574, 570)}}});
  for (bool compacted : {false, true}) {
    if (compacted) index.Compact();
    auto e = index.Query(area, 100);
    ASSERT_EQ(e.size(), 1u);
    const auto& g = e.at({"PHL", "VNM"});
    EXPECT_EQ(g.counts.registrants, in_points.size());
    std::set<std::string> want;
    for (uint64_t i = 1; i <= in_points.size(); ++i) want.insert(TestId(i));
    EXPECT_EQ(IdSet(g), want);
  }
}

TEST(ExposureIndexTest, GeocodesSelectByHostAndAdmin1AndCountOnceWithShapes) {
  ExposureIndex index;
  auto tokyo = Registrant(1, 35.68, 139.69, "PHL", "JPN", 3, 0);
  tokyo.set_admin1("JP-13");
  auto osaka = Registrant(2, 34.69, 135.50, "PHL", "JPN", 2, 4);
  osaka.set_admin1("JP-27");
  auto suva = Registrant(3, -18.14, 178.44, "IDN", "FJI", 1, 1);
  auto manila = Registrant(4, 14.6, 121.0, "IDN", "PHL", 1, 0);
  for (const auto& r : {tokyo, osaka, suva, manila}) ASSERT_TRUE(index.Upsert(r).ok());
  for (bool compacted : {false, true}) {
    if (compacted) index.Compact();
    SearchArea by_admin1;
    by_admin1.admin1_codes = {"JP-13"};
    by_admin1.circles.push_back({{35.68, 139.69}, 10});  // Tokyo again: still once
    auto e = index.Query(by_admin1, 10);
    ASSERT_EQ(e.size(), 1u);
    EXPECT_EQ(e.at({"PHL", "JPN"}).counts, (ExposureCounts{1, 3, 0}));
    SearchArea by_host;
    by_host.host_countries = {"JPN", "FJI"};
    e = index.Query(by_host, 0);
    ASSERT_EQ(e.size(), 2u);
    EXPECT_EQ(e.at({"PHL", "JPN"}).counts, (ExposureCounts{2, 5, 1}));
    EXPECT_EQ(e.at({"PHL", "JPN"}).by_admin1.at("JP-27"), (ExposureCounts{1, 2, 1}));
    EXPECT_EQ(e.at({"PHL", "JPN"}).with_flag[2], 1u);
    EXPECT_EQ(e.at({"IDN", "FJI"}).with_flag[0], 1u);
    // QueryArea (the engine's entry point) uses geocodes when there is no
    // shape (GeocodesCountOnlyWhenTheAreaHasNoShape), and never widens one.
    v1::Area proto;
    auto* g = proto.add_geocodes();
    g->set_name("ISO3");
    g->set_value("JPN");
    EXPECT_EQ(index.QueryArea(proto, 10).at({"PHL", "JPN"}).counts, (ExposureCounts{2, 5, 1}));
    auto* far = proto.add_circles();  // in the sea, nobody
    far->mutable_center()->set_lat(0);
    far->mutable_center()->set_lon(-150);
    far->set_radius_km(10);
    EXPECT_TRUE(index.QueryArea(proto, 10).empty());
  }
}

TEST(ExposureIndexTest, StoredPositionIsStableAndWithinNineCentimetres) {
  std::mt19937_64 rng(5);
  std::uniform_real_distribution<double> lat(-90, 90), lon(-180, 180);
  for (int i = 0; i < 100000; ++i) {
    geo::LatLon p{lat(rng), lon(rng)};
    geo::LatLon s = ExposureIndex::StoredPosition(p);
    EXPECT_LT(geo::DistanceKm(p, s), 8.5e-5);
    geo::LatLon again = ExposureIndex::StoredPosition(s);
    ASSERT_EQ(again.lat, s.lat);
    ASSERT_EQ(again.lon, s.lon);
  }
  EXPECT_EQ(ExposureIndex::StoredPosition({0, 180}).lon, -180);
  EXPECT_LT(geo::DistanceKm(ExposureIndex::StoredPosition({90, 0}), {90, 0}), 8e-5);
}

TEST(ExposureIndexTest, StructuresStayUnderThirtyTwoBytesPerRegistrant) {
  std::mt19937_64 rng(3);
  std::normal_distribution<double> spread(0, 0.3);
  ExposureIndex index;
  index.BeginBulkLoad();
  v1::RegistrantLocation r = Registrant(0, 0, 0);
  const geo::LatLon cities[] = {{14.6, 121.0}, {25.2, 55.3}, {35.7, 139.7}, {1.35, 103.8}, {24.7, 46.7}};
  constexpr uint64_t kCount = 400000;
  for (uint64_t n = 0; n < kCount; ++n) {
    geo::LatLon c = cities[n % 5];
    r.set_registrant_id(TestId(n));
    r.set_lat(std::clamp(c.lat + spread(rng), -90.0, 90.0));
    r.set_lon(c.lon + spread(rng));
    r.set_state(n % 3 ? "PHL" : "IND");
    r.set_household_size(1 + n % 5);
    r.set_vulnerability_flags(n % 7 == 0 ? 4 : 0);
    ASSERT_TRUE(index.Upsert(r).ok());
  }
  index.EndBulkLoad();
  EXPECT_LE(index.MemoryBytes(), kCount * 32) << static_cast<double>(index.MemoryBytes()) / kCount;
}

}  // namespace
}  // namespace amparo::rules
