#include "services/rules/footprint.h"

#include <gtest/gtest.h>

#include <cmath>

namespace amparo::rules {
namespace {

v1::CrisisEvent Earthquake(double magnitude, double depth_km, double lat, double lon) {
  v1::CrisisEvent e;
  e.set_event_id("usgs:test");
  e.set_hazard(v1::HAZARD_KIND_EARTHQUAKE);
  e.mutable_metrics()->set_magnitude(magnitude);
  e.mutable_metrics()->set_depth_km(depth_km);
  e.mutable_origin()->set_lat(lat);
  e.mutable_origin()->set_lon(lon);
  return e;
}

TEST(FootprintTest, PredictedIntensityMatchesTheEquationAtKnownDistances) {
  // Hand-evaluated: M7.1 at Rhyp 10 km: rm = -0.209 + 2.042 e^2.1 = 16.466;
  // 2.085 + 1.428*7.1 - 1.402 ln(sqrt(100 + 271.1)) = 8.076.
  EXPECT_NEAR(PredictMmiAllen2012(7.1, 10), 8.076, 0.001);
  // Beyond 50 km the c4 term applies: M6 at 100 km = 4.416 + 0.078 ln 2.
  EXPECT_NEAR(PredictMmiAllen2012(6.0, 100),
              2.085 + 1.428 * 6 -
                  1.402 * std::log(std::sqrt(1e4 + std::pow(-0.209 + 2.042 * std::exp(1.0), 2))) +
                  0.078 * std::log(2.0),
              1e-9);
}

TEST(FootprintTest, KnownRadii) {
  EXPECT_NEAR(EarthquakeRadiusKm(7.1, 10, 6), 85.1, 0.5);  // us6000pi9w, Tibet 2025
  EXPECT_NEAR(EarthquakeRadiusKm(5.6, 10, 6), 15.0, 0.5);  // us2000hf24, off Okinawa
  EXPECT_NEAR(EarthquakeRadiusKm(6.0, 10, 6), 25.2, 0.5);
  EXPECT_NEAR(EarthquakeRadiusKm(8.0, 10, 6), 226.6, 1.0);
  EXPECT_EQ(EarthquakeRadiusKm(3.0, 10, 6), 0.0);
  EXPECT_EQ(EarthquakeRadiusKm(5.0, 10, 6), 0.0);  // MMI 5.97 at the epicentre
  // A higher threshold shrinks the footprint.
  EXPECT_LT(EarthquakeRadiusKm(7.1, 10, 7), EarthquakeRadiusKm(7.1, 10, 6));
}

TEST(FootprintTest, DeeperQuakesReachLessFarAndVeryDeepOnesNotAtAll) {
  double shallow = EarthquakeRadiusKm(7.1, 10, 6);
  double mid = EarthquakeRadiusKm(7.1, 50, 6);
  EXPECT_NEAR(mid, 69.6, 0.5);
  EXPECT_LT(mid, shallow);
  EXPECT_EQ(EarthquakeRadiusKm(7.1, 100, 6), 0.0);  // MMI 5.8 straight above it
  EXPECT_EQ(EarthquakeRadiusKm(7.1, -1.5, 6), EarthquakeRadiusKm(7.1, 0, 6));
}

TEST(FootprintTest, RadiusGrowsWithMagnitudeAndIsCapped) {
  double previous = 0;
  for (double m = 4.0; m <= 9.6; m += 0.1) {
    double r = EarthquakeRadiusKm(m, 10, 6);
    EXPECT_GE(r, previous) << "M" << m;
    previous = r;
  }
  EXPECT_EQ(EarthquakeRadiusKm(9.5, 10, 6), kMaxFootprintRadiusKm);
  EXPECT_EQ(EarthquakeRadiusKm(std::nan(""), 10, 6), 0.0);
  // The radius found is where intensity meets the threshold.
  double r = EarthquakeRadiusKm(6.5, 20, 6);
  EXPECT_NEAR(PredictMmiAllen2012(6.5, std::sqrt(r * r + 400)), 6.0, 1e-6);
}

TEST(FootprintTest, EarthquakeWithoutSourceAreaGetsTheModelledCircle) {
  auto area = EventFootprint(Earthquake(7.1, 10, 28.639, 87.3608), 6);
  ASSERT_TRUE(area.has_value());
  EXPECT_EQ(area->footprint_model(), "eq-mmi-allen2012");
  ASSERT_EQ(area->circles_size(), 1);
  EXPECT_EQ(area->polygons_size(), 0);
  EXPECT_DOUBLE_EQ(area->circles(0).center().lat(), 28.639);
  EXPECT_DOUBLE_EQ(area->circles(0).center().lon(), 87.3608);
  EXPECT_NEAR(area->circles(0).radius_km(), 85.1, 0.5);
  EXPECT_EQ(area->description(), "MMI>=6 within 85 km of 28.639,87.361");
  EXPECT_EQ(EventFootprint(Earthquake(5.6, 10, 26.6579, 129.5633), 6.5)->description(),
            "MMI>=6.5 within 7.3 km of 26.658,129.563");
}

TEST(FootprintTest, NoFootprintWithoutMagnitudeOriginOrEnoughShaking) {
  auto no_mag = Earthquake(7, 10, 0, 0);
  no_mag.mutable_metrics()->clear_magnitude();
  EXPECT_FALSE(EventFootprint(no_mag, 6).has_value());
  auto no_origin = Earthquake(7, 10, 0, 0);
  no_origin.clear_origin();
  EXPECT_FALSE(EventFootprint(no_origin, 6).has_value());
  EXPECT_FALSE(EventFootprint(Earthquake(3.0, 10, 0, 0), 6).has_value());
  auto flood = Earthquake(7, 10, 0, 0);
  flood.set_hazard(v1::HAZARD_KIND_FLOOD);
  EXPECT_FALSE(EventFootprint(flood, 6).has_value());
  // Depth missing: USGS's default 10 km.
  auto no_depth = Earthquake(7.1, 10, 28.639, 87.3608);
  no_depth.mutable_metrics()->clear_depth_km();
  EXPECT_NEAR(EventFootprint(no_depth, 6)->circles(0).radius_km(), 85.1, 0.5);
}

TEST(FootprintTest, SourceShapesWinOverTheModel) {
  auto e = Earthquake(7.1, 10, 28.639, 87.3608);
  auto* a1 = e.add_areas();
  a1->set_description("Zone A");
  auto* c = a1->add_circles();
  c->mutable_center()->set_lat(28);
  c->mutable_center()->set_lon(87);
  c->set_radius_km(30);
  auto* codes_only = e.add_areas();  // no shape: contributes nothing
  codes_only->set_description("Nepal");
  codes_only->add_geocodes()->set_value("NPL");
  auto* a2 = e.add_areas();
  a2->set_description("Zone B");
  auto* p = a2->add_polygons();
  for (int i = 0; i < 4; ++i) p->add_vertices()->set_lat(i);
  auto area = EventFootprint(e, 6);
  ASSERT_TRUE(area.has_value());
  EXPECT_EQ(area->footprint_model(), "source");
  EXPECT_EQ(area->circles_size(), 1);
  EXPECT_EQ(area->circles(0).radius_km(), 30);
  EXPECT_EQ(area->polygons_size(), 1);
  EXPECT_EQ(area->description(), "Zone A; Zone B");

  e.clear_areas();
  auto* only_codes = e.add_areas();
  only_codes->add_geocodes()->set_value("NPL");
  EXPECT_EQ(EventFootprint(e, 6)->footprint_model(), "eq-mmi-allen2012");
}

TEST(FootprintTest, ShakingWords) {
  EXPECT_EQ(ShakingDescription(6), "strong");
  EXPECT_EQ(ShakingDescription(6.5), "strong");
  EXPECT_EQ(ShakingDescription(7), "very strong");
  EXPECT_EQ(ShakingDescription(12), "extreme");
  EXPECT_EQ(FormatMmi(6), "6");
  EXPECT_EQ(FormatMmi(6.5), "6.5");
  EXPECT_EQ(FormatRadiusKm(85.14), "85");
  EXPECT_EQ(FormatRadiusKm(9.46), "9.5");
}

}  // namespace
}  // namespace amparo::rules
