// Footprints: the area of a crisis event that registrants are matched
// against. docs/footprints.md describes every model, its reference and its
// limits for operators.
//
// Order of preference (EventFootprint):
//   1. The source's own shapes (CAP <circle>/<polygon>, GDACS polygons):
//      every area with a circle or polygon, merged ("source").
//   2. A documented model around the event's origin, by hazard:
//      - earthquake: circle within which the predicted Modified Mercalli
//        Intensity reaches a threshold, intensity prediction equation of
//          Allen, T.I., Wald, D.J. and Worden, C.B. (2012), "Intensity
//          attenuation for active crustal regions", J. Seismology
//          16:409-433, doi:10.1007/s10950-012-9278-7
//        (median intensity on average ground: a screening radius, not a
//        ShakeMap; ShakeMap contours are a separate download ingest does not
//        fetch);
//      - tropical cyclone: radius of gale-force (34 kt) winds, from the
//        source when it gives one, else a modified Rankine vortex whose
//        radius of maximum wind comes from Willoughby, Darling & Rahn (2006);
//      - volcano: hazard-zone radius by VEI and/or alert level;
//      - wildfire: equal-area circle of the burned area plus a buffer;
//      - flood: equal-area circle of the affected area (coarse);
//      - conflict/civil unrest (ACLED): radius per ACLED event type, widened
//        by fatalities and by ACLED's geo_precision.
//      Tsunami, drought, severe weather and other hazards have no model.
//   3. A GDACS RSS bounding box ("gdacs-bbox", the map extent of the item),
//      only when nothing better exists.
//   4. The source's country or admin-1 codes ("source-geocode": geocodes
//      named ISO3 or ADMIN1, matched through the registrants' own codes)
//      when it gives no shape at all, e.g. ReliefWeb's country-level
//      disasters. Geocodes next to a shape describe the same place in CAP,
//      so they never widen a shape or a model.
//
// Pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "amparo/v1/crisis_event.pb.h"

namespace amparo::rules {

// Values of Area.footprint_model.
inline constexpr char kFootprintModelSource[] = "source";
inline constexpr char kFootprintModelGdacsBbox[] = "gdacs-bbox";
inline constexpr char kFootprintModelSourceGeocode[] = "source-geocode";
inline constexpr char kFootprintModelAllen2012[] = "eq-mmi-allen2012";
inline constexpr char kFootprintModelTcGale[] = "tc-r34-rankine-willoughby2006";
inline constexpr char kFootprintModelTcGaleAssumed[] = "tc-r34-assumed-cat1";
inline constexpr char kFootprintModelTcGaleSource[] = "tc-r34-source";
inline constexpr char kFootprintModelTcCore[] = "tc-rmax-willoughby2006";
inline constexpr char kFootprintModelVolcano[] = "volcano-hazard-zone";
inline constexpr char kFootprintModelWildfire[] = "wildfire-area-buffer";
inline constexpr char kFootprintModelFlood[] = "flood-area-circle";
inline constexpr char kFootprintModelAcledBattles[] = "acled-battles-radius";
inline constexpr char kFootprintModelAcledExplosions[] = "acled-explosions-radius";
inline constexpr char kFootprintModelAcledViolenceAgainstCivilians[] = "acled-vac-radius";
inline constexpr char kFootprintModelAcledRiots[] = "acled-riots-radius";
inline constexpr char kFootprintModelAcledProtests[] = "acled-protests-radius";

// No modelled footprint is larger than this (km from the origin).
inline constexpr double kMaxFootprintRadiusKm = 1000;
// Depth assumed when an earthquake has none (the depth USGS fixes for
// shallow events it cannot resolve).
inline constexpr double kDefaultDepthKm = 10;
// Gale force: 34 kt sustained (63 km/h), the wind radius every warning
// centre reports (R34).
inline constexpr double kGaleForceKmh = 63;

struct FootprintOptions {
  // Earthquakes: the footprint is where predicted MMI >= this. Default 6
  // ("strong": damage begins).
  double earthquake_min_mmi = 6;
};

// ---- earthquakes ----

// Median MMI predicted at `hypocentral_km` from a moment magnitude
// `magnitude` earthquake (Allen, Wald & Worden 2012, hypocentral form).
// Distances under 1 km are taken as 1 km.
double PredictMmiAllen2012(double magnitude, double hypocentral_km);

// Epicentral radius (km) within which the predicted MMI is at least
// `min_mmi`: 0 when even the epicentre stays below it, at most
// kMaxFootprintRadiusKm. Negative depths (above sea level) count as 0;
// non-finite inputs give 0.
double EarthquakeRadiusKm(double magnitude, double depth_km, double min_mmi);

// ---- tropical cyclones ----

// Radius of maximum wind (km) from maximum sustained wind and latitude,
// Willoughby, Darling & Rahn (2006) eq. 10a. |lat| is capped at 50 degrees;
// non-finite or non-positive wind gives 0.
double RadiusOfMaximumWindKm(double max_wind_kmh, double lat_deg);

// Radius of gale-force winds (km): modified Rankine vortex
// V(r) = Vmax (Rmax / r)^0.5 outside Rmax, solved for V = kGaleForceKmh,
// at most 500 km. 0 when the wind is below gale force or not finite.
double GaleRadiusKm(double max_wind_kmh, double lat_deg);

// ---- volcanoes, wildfires, floods ----

// Hazard-zone radius (km) from the Volcanic Explosivity Index and/or the
// alert level (USGS "normal|advisory|watch|warning" or aviation colour
// "green|yellow|orange|red", any case): the larger of the two when both are
// known, 10 km when neither is, 0 (no footprint) when the level is
// normal/green and the VEI unknown. An unrecognised level counts as unknown.
double VolcanoRadiusKm(std::optional<int> vei, std::string_view alert_level);

// Radius (km) of a circle with the burned area plus a 10 km fire and smoke
// buffer; 15 km when the area is unknown, not finite or not positive. At most
// 200 km.
double WildfireRadiusKm(std::optional<double> burned_area_ha);

// Radius (km) of a circle with the affected area, between 5 and 300 km; 50
// km when the area is unknown, not finite or not positive.
double FloodRadiusKm(std::optional<double> affected_area_km2);

// ---- conflict events (ACLED) ----

// Radius (km) for an ACLED `event_type` (case-insensitive: "Battles",
// "Explosions/Remote violence", "Violence against civilians", "Riots",
// "Protests"): the type's base radius times a fatality factor
// min(2, 1 + 0.5 log10(1 + fatalities)), plus a geo_precision allowance (5 km
// for 2, 25 km for 3). 0 for "Strategic developments" and unknown types.
double AcledRadiusKm(std::string_view event_type, std::optional<int64_t> fatalities,
                     std::optional<int> geo_precision);

// ---- words ----

// "strong" for 6, "very strong" for 7...: the MMI scale's shaking words.
std::string ShakingDescription(double mmi);

// "6" for 6.0, "6.5" for 6.5.
std::string FormatMmi(double mmi);
// Whole kilometres from 10 km up ("85"), one decimal below ("2.5").
std::string FormatRadiusKm(double km);

// ---- footprints ----

// The area `event` is matched against, or nullopt when it has none, in the
// order of preference above. A modelled footprint is one circle around the
// origin (which must be a valid lat/lon) with footprint_model set to one of
// the kFootprintModel* names and a description naming what, how far and from
// where (earthquake: "MMI>=6 within 85 km of 28.639,87.361"). Source shapes
// keep their holes.
std::optional<v1::Area> EventFootprint(const v1::CrisisEvent& event, const FootprintOptions& options);
// Same with FootprintOptions{.earthquake_min_mmi = min_mmi}.
std::optional<v1::Area> EventFootprint(const v1::CrisisEvent& event, double min_mmi);

// A short phrase for operators saying where the exposed people are:
// "within 85 km (strong shaking, MMI>=6)", "within 120 km (gale-force winds,
// modelled)", "inside the area given by the source (Okinawa east coast)".
// Accepts any Area (footprint_model unknown: "within R km" for one circle,
// else "inside <description>").
std::string DescribeFootprint(const v1::Area& footprint);

}  // namespace amparo::rules
