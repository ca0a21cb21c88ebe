#include "common/geo.h"

#include <gtest/gtest.h>

namespace amparo::geo {
namespace {

TEST(GeoTest, DistanceMatchesKnownCityPair) {
  // Paris - London, about 343.5 km great-circle.
  EXPECT_NEAR(DistanceKm({48.8566, 2.3522}, {51.5074, -0.1278}), 343.5, 1.5);
}

TEST(GeoTest, DistanceAcrossAntimeridianIsShort) {
  EXPECT_NEAR(DistanceKm({0, 179.9}, {0, -179.9}), 22.2, 0.2);
}

TEST(GeoTest, BoundingBoxContainsCircleAndWrapsAntimeridian) {
  Box b = BoundingBox({-17.7, 179.5}, 200);
  EXPECT_GT(b.max_lon, 180.0);  // crosses: caller splits
  EXPECT_LT(b.min_lon, 179.5);
  Box polar = BoundingBox({89.5, 10}, 100);
  EXPECT_EQ(polar.min_lon, -180);
  EXPECT_EQ(polar.max_lon, 180);
  EXPECT_EQ(polar.max_lat, 90);
}

}  // namespace
}  // namespace amparo::geo
