#include "services/rules/exposure_index.h"

#include <gtest/gtest.h>
#include <malloc.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <numbers>
#include <random>
#include <set>

namespace amparo::rules {
namespace {

constexpr double kDeg = std::numbers::pi / 180;

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
  EXPECT_EQ(std::set<std::string>(g.registrant_ids.begin(), g.registrant_ids.end()),
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
  auto e = index.QueryCircle(center, 15.0, 100);
  EXPECT_EQ(e.at({"PHL", "JPN"}).counts.registrants, 6u);
  for (const auto& id : e.at({"PHL", "JPN"}).registrant_ids) EXPECT_NE(id, TestId(1001));
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
  ASSERT_EQ(g.registrant_ids.size(), 3u);
  EXPECT_EQ(g.registrant_ids[0], TestId(7));
  EXPECT_LT(g.registrant_ids[1], g.registrant_ids[2]);
  EXPECT_TRUE(index.QueryCircle({10, 10}, 1, 0).at({"PHL", "FJI"}).registrant_ids.empty());
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
  EXPECT_EQ(index.QueryCircle({1, 1}, 1, 10).at({"PHL", "FJI"}).registrant_ids,
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
  EXPECT_EQ(std::set<std::string>(g.registrant_ids.begin(), g.registrant_ids.end()),
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
    g.registrant_ids.push_back(r.registrant_id());
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
    std::set<std::string> got_ids(got[key].registrant_ids.begin(), got[key].registrant_ids.end());
    EXPECT_EQ(got_ids, std::set<std::string>(g.registrant_ids.begin(), g.registrant_ids.end()));
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
    auto r =
        Registrant(n, lat, lon, states[rng() % 3], hosts[rng() % 4], 1 + rng() % 6, rng() % 5 == 0 ? 2u : 0u);
    ASSERT_TRUE(index.Upsert(r).ok());
    all.push_back(r);
  }
  // Move and remove some, keeping the reference in step.
  for (uint64_t n = 0; n < 4000; n += 7) {
    all[n].set_lat(lat_all(rng));
    all[n].set_lon(lon_all(rng));
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
    all.push_back(Registrant(n, lat(rng), lon(rng)));
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
  for (auto& p : points) p = {lat(rng), lon(rng)};
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
      "[measure] 1M registrants: bulk build %.0f ms, %.1f heap bytes/registrant, "
      "300 km query %.3f ms (%u found)\n",
      ms(built - start).count(), static_cast<double>(heap_after - heap_before) / kCount,
      ms(queried - built).count(), total);
}

}  // namespace
}  // namespace amparo::rules
