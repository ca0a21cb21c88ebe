#include "services/rules/search_area.h"

#include <gtest/gtest.h>

#include <boost/geometry.hpp>
#include <cmath>
#include <random>
#include <numbers>
#include <algorithm>

namespace amparo::rules {
namespace {

namespace bg = boost::geometry;
using PlanePoint = bg::model::point<double, 2, bg::cs::cartesian>;
using PlanePolygon = bg::model::polygon<PlanePoint>;

// Points spread over a rectangle: corners, edge points and the interior.
std::vector<geo::LatLon> SamplesOf(const LatLonRect& r, std::mt19937_64& rng) {
  std::uniform_real_distribution<double> u(0, 1);
  std::vector<geo::LatLon> out = {{r.min_lat, r.min_lon}, {r.min_lat, r.max_lon}, {r.max_lat, r.min_lon},
                                  {r.max_lat, r.max_lon}};
  for (int i = 0; i < 60; ++i) {
    double lat = r.min_lat + (r.max_lat - r.min_lat) * u(rng), lon = r.min_lon + (r.max_lon - r.min_lon) * u(rng);
    out.push_back({lat, lon});
    out.push_back({r.min_lat, lon});
    out.push_back({r.max_lat, lon});
    out.push_back({lat, r.min_lon});
    out.push_back({lat, r.max_lon});
  }
  return out;
}

LatLonRect RandomRect(std::mt19937_64& rng) {
  std::uniform_real_distribution<double> u(0, 1);
  double size = std::pow(10.0, -3 + 4 * u(rng));  // 0.001 .. 10 degrees
  double lat0 = -90 + (180 - size) * u(rng), lon0 = -180 + (360 - 2 * size) * u(rng);
  if (u(rng) < 0.2) lon0 = u(rng) < 0.5 ? -180 : 180 - 2 * size;  // against the antimeridian
  if (u(rng) < 0.1) lat0 = u(rng) < 0.5 ? -90 : 90 - size;        // against a pole
  return {lat0, lat0 + size, lon0, lon0 + 2 * size};
}

TEST(CircleShapeTest, ClassificationNeverContradictsThePointTest) {
  std::mt19937_64 rng(11);
  std::uniform_real_distribution<double> u(0, 1);
  int inside = 0, outside = 0, boundary = 0;
  for (int i = 0; i < 20000; ++i) {
    LatLonRect rect = RandomRect(rng);
    // Centres near the rectangle so all three answers occur.
    geo::LatLon c{std::clamp(rect.min_lat + (u(rng) - 0.5) * 20, -90.0, 90.0),
                  std::remainder(rect.min_lon + (u(rng) - 0.5) * 20, 360.0)};
    if (i % 10 == 0) c = {-rect.min_lat, std::remainder(rect.min_lon + 180, 360.0)};  // antipodal
    CircleShape circle({c, std::pow(10.0, 4.3 * u(rng))});
    Overlap o = circle.Classify(rect);
    if (o == Overlap::kBoundary) {
      ++boundary;
      continue;
    }
    (o == Overlap::kInside ? inside : outside)++;
    for (const auto& p : SamplesOf(rect, rng)) {
      ASSERT_EQ(circle.Contains(p), o == Overlap::kInside)
          << "rect " << rect.min_lat << ".." << rect.max_lat << " x " << rect.min_lon << ".." << rect.max_lon
          << " centre " << c.lat << "," << c.lon << " point " << p.lat << "," << p.lon;
    }
  }
  EXPECT_GT(inside, 1000);
  EXPECT_GT(outside, 1000);
  EXPECT_GT(boundary, 500);
}

// The point `km` great-circle kilometres from `c` along `bearing` (radians).
geo::LatLon Destination(geo::LatLon c, double bearing, double km) {
  constexpr double kRad = std::numbers::pi / 180;
  const double a = km / geo::kEarthRadiusKm, phi = c.lat * kRad;
  const double lat = std::asin(std::clamp(
      std::sin(phi) * std::cos(a) + std::cos(phi) * std::sin(a) * std::cos(bearing), -1.0, 1.0));
  const double lon = c.lon * kRad + std::atan2(std::sin(bearing) * std::sin(a) * std::cos(phi),
                                               std::cos(a) - std::sin(phi) * std::sin(lat));
  return {lat / kRad, std::remainder(lon / kRad, 360.0)};
}

TEST(CircleShapeTest, ContainsIsExactlyTheHaversineTestNearTheRimAndTheBox) {
  // Contains() rejects points outside the circle's box before the haversine:
  // it must never disagree with DistanceKm <= radius, above all on the rim,
  // at the box's widest longitudes, across the antimeridian and near poles.
  std::mt19937_64 rng(29);
  std::uniform_real_distribution<double> u(0, 1);
  int inside = 0, outside = 0;
  for (int i = 0; i < 4000; ++i) {
    geo::LatLon c{-90 + 180 * u(rng), -180 + 360 * u(rng)};
    if (i % 8 == 0) c.lat = (u(rng) < 0.5 ? -1 : 1) * (89 + u(rng));  // near a pole
    if (i % 8 == 1) c.lon = u(rng) < 0.5 ? -179.99 : 179.99;          // at the antimeridian
    const double radius = i % 50 == 0 ? 0 : std::pow(10.0, -2 + 6.3 * u(rng));  // 0, 10 m .. 20,000 km
    CircleShape circle({c, radius});
    std::vector<geo::LatLon> points = {c, {90, 0}, {-90, 0}, {c.lat, -180}, {c.lat, 180}};
    for (int k = 0; k < 40; ++k) {
      // On the rim and a hair either side of it, in every direction.
      const double bearing = 2 * std::numbers::pi * u(rng);
      for (double f : {1.0, 1 - 1e-9, 1 + 1e-9, 1 - 1e-6, 1 + 1e-6, 0.5, 1.5}) {
        points.push_back(Destination(c, bearing, radius * f));
      }
    }
    // The box's widest longitudes and its corners (and just beyond them).
    const geo::Box& b = circle.bounds();
    for (double dl : {0.0, 1e-9, -1e-9, 1e-7, -1e-7}) {
      for (double lat : {b.min_lat, b.max_lat, c.lat, (b.min_lat + b.max_lat) / 2}) {
        for (double lon : {b.min_lon + dl, b.max_lon - dl, b.min_lon - dl, b.max_lon + dl}) {
          points.push_back({std::clamp(lat + dl, -90.0, 90.0), std::remainder(lon, 360.0)});
        }
      }
    }
    for (const auto& p : points) {
      const bool want = geo::DistanceKm(c, p) <= radius;
      ASSERT_EQ(circle.Contains(p), want) << "centre " << c.lat << "," << c.lon << " radius " << radius
                                          << " point " << p.lat << "," << p.lon;
      (want ? inside : outside)++;
    }
  }
  EXPECT_GT(inside, 100000);
  EXPECT_GT(outside, 100000);
}

SearchPolygon RandomPolygon(std::mt19937_64& rng, bool across_antimeridian) {
  std::uniform_real_distribution<double> u(0, 1);
  geo::LatLon c{-60 + 120 * u(rng), across_antimeridian ? 179.5 : -170 + 340 * u(rng)};
  double radius = 0.5 + 5 * u(rng);
  SearchPolygon p;
  int n = 4 + static_cast<int>(u(rng) * 40);
  for (int i = 0; i < n; ++i) {
    double a = 2 * std::numbers::pi * i / n, r = radius * (0.3 + 0.7 * u(rng));
    p.outer.push_back({c.lat + r * std::sin(a), std::remainder(c.lon + r * std::cos(a), 360.0)});
  }
  double h = radius * 0.15;
  p.holes.push_back({{c.lat - h, std::remainder(c.lon - h, 360.0)},
                     {c.lat - h, std::remainder(c.lon + h, 360.0)},
                     {c.lat + h, std::remainder(c.lon + h, 360.0)},
                     {c.lat + h, std::remainder(c.lon - h, 360.0)}});
  return p;
}

TEST(PolygonShapeTest, PointTestAgreesWithBoostGeometryIncludingHoles) {
  std::mt19937_64 rng(12);
  std::uniform_real_distribution<double> u(0, 1);
  for (int k = 0; k < 200; ++k) {
    bool across = k % 4 == 0;
    SearchPolygon polygon = RandomPolygon(rng, across);
    PolygonShape shape(polygon);
    ASSERT_TRUE(shape.valid());
    auto plane_lon = [&](double lon) { return across && lon < 0 ? lon + 360 : lon; };
    PlanePolygon ref;
    for (const auto& v : polygon.outer) bg::append(ref.outer(), PlanePoint(plane_lon(v.lon), v.lat));
    ref.inners().resize(1);
    for (const auto& v : polygon.holes[0]) bg::append(ref.inners()[0], PlanePoint(plane_lon(v.lon), v.lat));
    bg::correct(ref);
    for (int i = 0; i < 500; ++i) {
      geo::LatLon p{polygon.outer[0].lat + (u(rng) - 0.5) * 14, std::remainder(polygon.outer[0].lon + (u(rng) - 0.5) * 14, 360.0)};
      if (i % 50 == 0) p = polygon.outer[static_cast<size_t>(i / 50) % polygon.outer.size()];  // vertices
      if (i % 50 == 1) p = polygon.holes[0][static_cast<size_t>(i / 50) % 4];                    // hole corners
      ASSERT_EQ(shape.Contains(p), bg::covered_by(PlanePoint(plane_lon(p.lon), p.lat), ref))
          << k << " " << p.lat << "," << p.lon;
    }
  }
}

TEST(PolygonShapeTest, ClassificationNeverContradictsThePointTest) {
  std::mt19937_64 rng(13);
  std::uniform_real_distribution<double> u(0, 1);
  int inside = 0, outside = 0;
  for (int k = 0; k < 300; ++k) {
    SearchPolygon polygon = RandomPolygon(rng, k % 3 == 0);
    PolygonShape shape(polygon);
    for (int i = 0; i < 100; ++i) {
      double size = std::pow(10.0, -2 + 2.5 * u(rng));
      double lat0 = polygon.outer[0].lat + (u(rng) - 0.7) * 10;
      double lon0 = std::clamp(polygon.outer[0].lon + (u(rng) - 0.7) * 10, -180.0, 180.0 - size);
      LatLonRect rect{lat0, lat0 + size, lon0, lon0 + size};
      Overlap o = shape.Classify(rect);
      if (o == Overlap::kBoundary) continue;
      (o == Overlap::kInside ? inside : outside)++;
      for (const auto& p : SamplesOf(rect, rng)) ASSERT_EQ(shape.Contains(p), o == Overlap::kInside) << k;
    }
  }
  EXPECT_GT(inside, 500);
  EXPECT_GT(outside, 500);
}

TEST(PolygonShapeTest, AntimeridianRingAndTheMinus180Meridian) {
  // 179E..179W: lon -180 (how an index stores 180) lies inside.
  PolygonShape fiji({{{-16, 179}, {-16, -179}, {-18, -179}, {-18, 179}}, {}});
  EXPECT_TRUE(fiji.Contains({-17, 180}));
  EXPECT_TRUE(fiji.Contains({-17, -180}));
  EXPECT_TRUE(fiji.Contains({-17, -179}));  // on the edge
  EXPECT_FALSE(fiji.Contains({-17, 178.9}));
  EXPECT_EQ(fiji.Classify({-17.5, -16.5, -180, -179.5}), Overlap::kInside);
  EXPECT_EQ(fiji.Classify({-17.5, -16.5, 170, 178}), Overlap::kOutside);
  // A ring touching 180 from the west only: -180 counts as its east edge.
  PolygonShape west({{{-16, 170}, {-16, 180}, {-18, 180}, {-18, 170}}, {}});
  EXPECT_TRUE(west.Contains({-17, -180}));
  EXPECT_EQ(west.Classify({-17.5, -16.5, -180, -179}), Overlap::kBoundary);
}

TEST(SearchAreaTest, FromProtoDropsInvalidShapesAndCopiesGeocodesOnRequest) {
  v1::Area area;
  auto* ok = area.add_circles();
  ok->mutable_center()->set_lat(10);
  ok->set_radius_km(5);
  area.add_circles()->set_radius_km(-1);
  auto* tiny = area.add_polygons();
  for (int i = 0; i < 2; ++i) tiny->add_vertices()->set_lat(i);
  auto* g = area.add_geocodes();
  g->set_name("ISO3");
  g->set_value("JPN");
  auto* a1 = area.add_geocodes();
  a1->set_name("ADMIN1");
  a1->set_value("JP-13");
  SearchArea without = SearchAreaFromProto(area, false);
  EXPECT_EQ(without.circles.size(), 1u);
  EXPECT_TRUE(without.polygons.empty());
  EXPECT_TRUE(without.host_countries.empty());
  SearchArea with = SearchAreaFromProto(area, true);
  EXPECT_EQ(with.host_countries, std::vector<std::string>{"JPN"});
  EXPECT_EQ(with.admin1_codes, std::vector<std::string>{"JP-13"});
}

}  // namespace
}  // namespace amparo::rules
