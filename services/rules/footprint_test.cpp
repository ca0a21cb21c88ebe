#include "services/rules/footprint.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>

#include <cmath>
#include <string>

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
  auto tsunami = Earthquake(7, 10, 0, 0);  // a hazard without a model
  tsunami.set_hazard(v1::HAZARD_KIND_TSUNAMI);
  EXPECT_FALSE(EventFootprint(tsunami, 6).has_value());
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


// ---- models beyond earthquakes ----

v1::CrisisEvent AtOrigin(v1::HazardKind hazard, double lat, double lon) {
  v1::CrisisEvent e;
  e.set_event_id("test:1");
  e.set_hazard(hazard);
  e.mutable_origin()->set_lat(lat);
  e.mutable_origin()->set_lon(lon);
  return e;
}

void AddSquare(v1::CrisisEvent* e, const std::string& model, double lat, double lon, double half_deg) {
  v1::Area* area = e->add_areas();
  area->set_footprint_model(model);
  area->set_description(model + " square");
  v1::Polygon* p = area->add_polygons();
  for (auto [dy, dx] : {std::pair{-1, -1}, {-1, 1}, {1, 1}, {1, -1}, {-1, -1}}) {
    v1::LatLon* v = p->add_vertices();
    v->set_lat(lat + dy * half_deg);
    v->set_lon(lon + dx * half_deg);
  }
}

TEST(FootprintTest, RadiusOfMaximumWindFollowsWilloughby2006) {
  // 46.4 exp(-0.0155 * 25.72 + 0.0169 * 19.4), hand-evaluated.
  EXPECT_NEAR(RadiusOfMaximumWindKm(92.592, -19.4), 43.228, 0.001);
  EXPECT_NEAR(RadiusOfMaximumWindKm(92.592, 19.4), RadiusOfMaximumWindKm(92.592, -19.4), 1e-12);
  // Stronger storms have tighter cores; latitude beyond 50 degrees is capped.
  EXPECT_LT(RadiusOfMaximumWindKm(200, 15), RadiusOfMaximumWindKm(100, 15));
  EXPECT_EQ(RadiusOfMaximumWindKm(100, 70), RadiusOfMaximumWindKm(100, 50));
  EXPECT_EQ(RadiusOfMaximumWindKm(0, 10), 0.0);
  EXPECT_EQ(RadiusOfMaximumWindKm(std::nan(""), 10), 0.0);
}

TEST(FootprintTest, GaleRadiusFromTheRankineVortexIsClampedAndZeroBelowGaleForce) {
  EXPECT_NEAR(GaleRadiusKm(92.592, -19.4), 93.376, 0.01);   // CALVINIA-19's maximum (50 kt)
  EXPECT_NEAR(GaleRadiusKm(175.9248, 14.6), 217.115, 0.01);  // PHANFONE-19's maximum (95 kt)
  EXPECT_NEAR(GaleRadiusKm(300, 20), 405.42, 0.01);
  // At exactly gale force the gale radius is the radius of maximum wind.
  EXPECT_NEAR(GaleRadiusKm(kGaleForceKmh, 10), RadiusOfMaximumWindKm(kGaleForceKmh, 10), 1e-9);
  EXPECT_EQ(GaleRadiusKm(62.9, 10), 0.0);
  EXPECT_EQ(GaleRadiusKm(400, 50), 500.0);  // clamp
  EXPECT_EQ(GaleRadiusKm(std::nan(""), 10), 0.0);
  double previous = 0;
  for (double v = 63; v <= 300; v += 1) {
    EXPECT_GE(GaleRadiusKm(v, 20), previous) << v;
    previous = GaleRadiusKm(v, 20);
  }
}

TEST(FootprintTest, CycloneUsesTheLatestWindThenTheMaximumThenAnAssumption) {
  auto tc = AtOrigin(v1::HAZARD_KIND_TROPICAL_CYCLONE, -20.5, -178.8);
  tc.mutable_metrics()->set_max_wind_kmh(129.6288);
  tc.mutable_metrics()->set_current_wind_kmh(111);  // SARAI-19: weaker now than at its peak
  auto area = EventFootprint(tc, FootprintOptions{});
  ASSERT_TRUE(area.has_value());
  EXPECT_EQ(area->footprint_model(), "tc-r34-rankine-willoughby2006");
  ASSERT_EQ(area->circles_size(), 1);
  EXPECT_NEAR(area->circles(0).radius_km(), 126.295, 0.01);
  EXPECT_DOUBLE_EQ(area->circles(0).center().lon(), -178.8);
  EXPECT_EQ(area->description(), "gale-force winds within 126 km of -20.500,-178.800 (111 km/h)");
  EXPECT_EQ(DescribeFootprint(*area), "within 126 km (gale-force winds, modelled)");

  tc.mutable_metrics()->clear_current_wind_kmh();
  EXPECT_NEAR(EventFootprint(tc, 6)->circles(0).radius_km(), GaleRadiusKm(129.6288, -20.5), 1e-9);

  tc.mutable_metrics()->clear_max_wind_kmh();
  area = EventFootprint(tc, 6);
  EXPECT_EQ(area->footprint_model(), "tc-r34-assumed-cat1");
  EXPECT_NEAR(area->circles(0).radius_km(), GaleRadiusKm(119, -20.5), 1e-9);
  EXPECT_EQ(DescribeFootprint(*area), "within 140 km (gale-force winds, modelled; wind speed unknown)");

  // Weakened below gale force (PHANFONE-19 at 46 km/h): the core only.
  tc.mutable_metrics()->set_current_wind_kmh(46);
  area = EventFootprint(tc, 6);
  EXPECT_EQ(area->footprint_model(), "tc-rmax-willoughby2006");
  EXPECT_NEAR(area->circles(0).radius_km(), RadiusOfMaximumWindKm(46, -20.5), 1e-9);

  // A gale radius given by the source beats the model, clamped to 500 km.
  tc.mutable_metrics()->set_gale_radius_km(210);
  area = EventFootprint(tc, 6);
  EXPECT_EQ(area->footprint_model(), "tc-r34-source");
  EXPECT_EQ(area->circles(0).radius_km(), 210);
  EXPECT_EQ(DescribeFootprint(*area), "within 210 km (gale-force winds, radius given by the source)");
  tc.mutable_metrics()->set_gale_radius_km(5000);
  EXPECT_EQ(EventFootprint(tc, 6)->circles(0).radius_km(), 500);
}

TEST(FootprintTest, SourcePolygonsBeatTheCycloneModelButABoundingBoxDoesNot) {
  auto tc = AtOrigin(v1::HAZARD_KIND_TROPICAL_CYCLONE, -19.4, 59.8);
  tc.mutable_metrics()->set_max_wind_kmh(92.592);
  AddSquare(&tc, "gdacs-bbox", -33.8, 68.1, 13);  // GDACS RSS map extent
  auto area = EventFootprint(tc, 6);
  EXPECT_EQ(area->footprint_model(), "tc-r34-rankine-willoughby2006");
  EXPECT_EQ(area->polygons_size(), 0);

  AddSquare(&tc, "source", -19.4, 59.8, 2);  // GDACS wind-buffer polygon
  tc.mutable_areas(1)->mutable_polygons(0)->add_holes()->add_vertices()->set_lat(-19.4);
  area = EventFootprint(tc, 6);
  EXPECT_EQ(area->footprint_model(), "source");
  ASSERT_EQ(area->polygons_size(), 1);  // the box is left out
  EXPECT_EQ(area->polygons(0).holes_size(), 1);  // holes are kept
  EXPECT_EQ(area->description(), "source square");
  EXPECT_EQ(DescribeFootprint(*area), "inside the area given by the source (source square)");

  // No model (drought): the bounding box is all there is.
  auto drought = AtOrigin(v1::HAZARD_KIND_DROUGHT, 39.544, 31.926);
  AddSquare(&drought, "gdacs-bbox", 39.544, 31.926, 4);
  area = EventFootprint(drought, 6);
  ASSERT_TRUE(area.has_value());
  EXPECT_EQ(area->footprint_model(), "gdacs-bbox");
  EXPECT_EQ(DescribeFootprint(*area), "inside the map rectangle given by GDACS (gdacs-bbox square, coarse)");
}

TEST(FootprintTest, VolcanoRadiusByVeiAndAlertLevel) {
  EXPECT_EQ(VolcanoRadiusKm(std::nullopt, ""), 10.0);  // neither known: "watch"
  EXPECT_EQ(VolcanoRadiusKm(std::nullopt, "Advisory"), 5.0);
  EXPECT_EQ(VolcanoRadiusKm(std::nullopt, "WATCH"), 10.0);
  EXPECT_EQ(VolcanoRadiusKm(std::nullopt, "warning"), 20.0);
  EXPECT_EQ(VolcanoRadiusKm(std::nullopt, "red"), 20.0);
  EXPECT_EQ(VolcanoRadiusKm(std::nullopt, "orange"), 10.0);
  EXPECT_EQ(VolcanoRadiusKm(std::nullopt, "normal"), 0.0);
  EXPECT_EQ(VolcanoRadiusKm(std::nullopt, "green"), 0.0);
  EXPECT_EQ(VolcanoRadiusKm(std::nullopt, "purple"), 10.0);  // unknown level: default
  EXPECT_EQ(VolcanoRadiusKm(4, ""), 30.0);
  EXPECT_EQ(VolcanoRadiusKm(6, ""), 100.0);
  EXPECT_EQ(VolcanoRadiusKm(12, ""), 200.0);  // clamped to VEI 8
  EXPECT_EQ(VolcanoRadiusKm(2, "warning"), 20.0);  // the larger of the two
  EXPECT_EQ(VolcanoRadiusKm(4, "advisory"), 30.0);
  EXPECT_EQ(VolcanoRadiusKm(-1, ""), 10.0);  // invalid VEI: unknown

  auto vo = AtOrigin(v1::HAZARD_KIND_VOLCANO, -7.54, 110.446);
  vo.mutable_metrics()->set_volcano_vei(4);
  vo.mutable_metrics()->set_volcano_alert_level("Warning");
  auto area = EventFootprint(vo, 6);
  EXPECT_EQ(area->footprint_model(), "volcano-hazard-zone");
  EXPECT_EQ(area->description(), "volcanic hazard zone within 30 km of -7.540,110.446 (VEI 4, alert level warning)");
  EXPECT_EQ(DescribeFootprint(*area), "within 30 km (volcanic hazard zone, modelled)");
  vo.mutable_metrics()->clear_volcano_vei();
  vo.mutable_metrics()->set_volcano_alert_level("normal");
  EXPECT_FALSE(EventFootprint(vo, 6).has_value());
}

TEST(FootprintTest, WildfireIsTheBurnedAreaPlusABuffer) {
  // GDACS WF1028649: 6638 ha = 66.38 km2, a circle of 4.597 km, + 10 km.
  EXPECT_NEAR(WildfireRadiusKm(6638), 14.597, 0.001);
  EXPECT_EQ(WildfireRadiusKm(std::nullopt), 15.0);
  EXPECT_EQ(WildfireRadiusKm(0), 15.0);
  EXPECT_EQ(WildfireRadiusKm(std::nan("")), 15.0);
  EXPECT_EQ(WildfireRadiusKm(1e9), 200.0);  // clamp
  auto wf = AtOrigin(v1::HAZARD_KIND_WILDFIRE, 49.9, 125.1);
  wf.mutable_metrics()->set_burned_area_ha(6638);
  auto area = EventFootprint(wf, 6);
  EXPECT_EQ(area->footprint_model(), "wildfire-area-buffer");
  EXPECT_EQ(area->description(), "fire and smoke within 15 km of 49.900,125.100 (6638 ha burned)");
  EXPECT_EQ(DescribeFootprint(*area), "within 15 km (fire and smoke, modelled)");
}

TEST(FootprintTest, FloodIsACoarseCircleOfTheAffectedArea) {
  EXPECT_NEAR(FloodRadiusKm(10000), 56.419, 0.001);
  EXPECT_EQ(FloodRadiusKm(std::nullopt), 50.0);
  EXPECT_EQ(FloodRadiusKm(-3), 50.0);
  EXPECT_EQ(FloodRadiusKm(1), 5.0);           // lower clamp
  EXPECT_EQ(FloodRadiusKm(1'181'267), 300.0);  // upper clamp
  auto fl = AtOrigin(v1::HAZARD_KIND_FLOOD, 38.6, -0.5);
  auto area = EventFootprint(fl, 6);
  EXPECT_EQ(area->footprint_model(), "flood-area-circle");
  EXPECT_EQ(area->circles(0).radius_km(), 50);
  EXPECT_EQ(DescribeFootprint(*area), "within 50 km (flooding, coarse model)");
}

TEST(FootprintTest, AcledRadiusPerEventTypeWidenedByFatalitiesAndPrecision) {
  EXPECT_EQ(AcledRadiusKm("Battles", std::nullopt, std::nullopt), 25.0);
  EXPECT_EQ(AcledRadiusKm("Explosions/Remote violence", 0, 1), 15.0);
  EXPECT_EQ(AcledRadiusKm("Violence against civilians", std::nullopt, std::nullopt), 10.0);
  EXPECT_EQ(AcledRadiusKm("riots", std::nullopt, std::nullopt), 5.0);
  EXPECT_EQ(AcledRadiusKm("PROTESTS", std::nullopt, std::nullopt), 2.0);
  EXPECT_EQ(AcledRadiusKm("Strategic developments", 10, 1), 0.0);
  EXPECT_EQ(AcledRadiusKm("Earthquake", std::nullopt, std::nullopt), 0.0);
  EXPECT_DOUBLE_EQ(AcledRadiusKm("Battles", 9, std::nullopt), 37.5);  // x1.5
  EXPECT_DOUBLE_EQ(AcledRadiusKm("Battles", 99, std::nullopt), 50.0);  // x2
  EXPECT_DOUBLE_EQ(AcledRadiusKm("Battles", 5000, std::nullopt), 50.0);  // capped at x2
  EXPECT_DOUBLE_EQ(AcledRadiusKm("Riots", 9, 2), 12.5);  // 5 x 1.5 + 5
  EXPECT_DOUBLE_EQ(AcledRadiusKm("Protests", 0, 3), 27.0);

  auto battle = AtOrigin(v1::HAZARD_KIND_CONFLICT, 15.5007, 32.5599);
  battle.set_source_hazard_code("Battles");
  battle.mutable_metrics()->set_fatalities(3);
  battle.mutable_metrics()->set_geo_precision(1);
  v1::Area* codes = battle.add_areas();  // what the ACLED parser adds: a geocode, no shape
  codes->add_geocodes()->set_value("SDN");
  auto area = EventFootprint(battle, 6);
  ASSERT_TRUE(area.has_value());
  EXPECT_EQ(area->footprint_model(), "acled-battles-radius");
  EXPECT_NEAR(area->circles(0).radius_km(), 25 * (1 + 0.5 * std::log10(4.0)), 1e-9);
  EXPECT_EQ(area->description(), "battles within 33 km of 15.501,32.560 (3 fatalities, geo_precision 1)");
  EXPECT_EQ(DescribeFootprint(*area), "within 33 km (battles, modelled)");

  auto protest = AtOrigin(v1::HAZARD_KIND_CIVIL_UNREST, 15.5, 32.5);
  protest.set_source_hazard_code("Protests");
  EXPECT_EQ(DescribeFootprint(*EventFootprint(protest, 6)), "within 2.0 km (protests, modelled)");
  protest.set_source_hazard_code("Strategic developments");
  EXPECT_FALSE(EventFootprint(protest, 6).has_value());
}

TEST(FootprintTest, HazardsWithoutAModelUseSourceAreasOnly) {
  for (auto hazard : {v1::HAZARD_KIND_TSUNAMI, v1::HAZARD_KIND_DROUGHT, v1::HAZARD_KIND_SEVERE_WEATHER,
                      v1::HAZARD_KIND_OTHER}) {
    auto e = AtOrigin(hazard, 10, 10);
    EXPECT_FALSE(EventFootprint(e, 6).has_value()) << hazard;
    AddSquare(&e, "source", 10, 10, 1);
    EXPECT_EQ(EventFootprint(e, 6)->footprint_model(), "source") << hazard;
  }
  // Every model needs a valid origin.
  auto bad = AtOrigin(v1::HAZARD_KIND_WILDFIRE, 91, 0);
  EXPECT_FALSE(EventFootprint(bad, 6).has_value());
}

TEST(FootprintTest, ACountryLevelRecordIsItsCountryAndAdmin1CodesOnly) {
  // ReliefWeb's shape: no origin, no shape, the country as an ISO3 geocode.
  v1::CrisisEvent relief;
  relief.set_event_id("reliefweb:25466");
  relief.set_hazard(v1::HAZARD_KIND_FLOOD);
  v1::Area* country = relief.add_areas();
  country->set_description("Burkina Faso");
  v1::Geocode* iso3 = country->add_geocodes();
  iso3->set_name("ISO3");
  iso3->set_value("BFA");
  v1::Geocode* same = country->add_geocodes();  // a code system registrants do not carry
  same->set_name("SAME");
  same->set_value("006113");
  auto area = EventFootprint(relief, 6);
  ASSERT_TRUE(area.has_value());
  EXPECT_EQ(area->footprint_model(), "source-geocode");
  ASSERT_EQ(area->geocodes_size(), 1);
  EXPECT_EQ(area->geocodes(0).value(), "BFA");
  EXPECT_EQ(area->circles_size() + area->polygons_size(), 0);
  EXPECT_EQ(DescribeFootprint(*area), "anywhere in Burkina Faso (BFA) (the source names the country or region only)");

  // Only codes nobody carries: no footprint.
  country->mutable_geocodes()->DeleteSubrange(0, 1);
  EXPECT_FALSE(EventFootprint(relief, 6).has_value());

  // Next to a shape, codes describe the same place: the shape is the footprint.
  v1::CrisisEvent cap = AtOrigin(v1::HAZARD_KIND_SEVERE_WEATHER, 10, 10);
  AddSquare(&cap, "source", 10, 10, 0.5);
  v1::Geocode* code = cap.mutable_areas(0)->add_geocodes();
  code->set_name("ISO3");
  code->set_value("NGA");
  EXPECT_EQ(EventFootprint(cap, 6)->footprint_model(), "source");
}

TEST(FootprintTest, DescribeEarthquakeAndUnknownFootprints) {
  auto area = EventFootprint(Earthquake(7.1, 10, 28.639, 87.3608), FootprintOptions{});
  EXPECT_EQ(DescribeFootprint(*area), "within 85 km (strong shaking, MMI>=6)");
  area = EventFootprint(Earthquake(7.1, 10, 28.639, 87.3608), FootprintOptions{.earthquake_min_mmi = 7.5});
  EXPECT_EQ(DescribeFootprint(*area), "within 22 km (very strong shaking, MMI>=7.5)");
  v1::Area other;
  other.set_footprint_model("something-new");
  auto* c = other.add_circles();
  c->set_radius_km(12);
  EXPECT_EQ(DescribeFootprint(other), "within 12 km");
  other.clear_circles();
  other.set_description("Zone A");
  EXPECT_EQ(DescribeFootprint(other), "inside Zone A");
  v1::Area source;
  source.set_footprint_model("source");
  EXPECT_EQ(DescribeFootprint(source), "inside the area given by the source");
}

TEST(FootprintTextTest, NumbersReadAsPrintfWritesThem) {
  auto printf_text = [](double v, int decimals) {
    char buf[400];
    std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
    return std::string(buf);
  };
  // Ties, values just under a rounding edge, tiny, negative and huge ones.
  for (double v : {0.0, 0.05, 0.25, 2.5, 3.5, 9.95, 9.949999, 10.5, 11.5, 85.14, 99.5, 1e-7, -0.04, -7.25,
                   123456789.5, 1e300}) {
    EXPECT_EQ(FormatRadiusKm(v), printf_text(v, v < 10 ? 1 : 0)) << v;
    EXPECT_EQ(FormatMmi(v), printf_text(v, v == std::floor(v) ? 0 : 1)) << v;
  }
}

}  // namespace
}  // namespace amparo::rules
