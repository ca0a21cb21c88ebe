#include "services/rules/footprint.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <numbers>
#include <set>
#include <string_view>
#include <utility>

#include "common/geo.h"

namespace amparo::rules {
namespace {

// Allen, Wald & Worden (2012), J. Seismology 16:409-433, coefficient table for
// the hypocentral-distance (Rhyp) form, active crustal regions:
//   MMI = c0 + c1*M + c2*ln(sqrt(Rhyp^2 + Rm^2)) + S,  Rm = m1 + m2*exp(M - 5)
//   S   = 0 for Rhyp <= 50 km, c4*ln(Rhyp/50) beyond.
// Coefficients as given in the paper's table; the same values appear in
// independent public implementations of this equation.
constexpr double kC0 = 2.085;
constexpr double kC1 = 1.428;
constexpr double kC2 = -1.402;
constexpr double kC4 = 0.078;
constexpr double kM1 = -0.209;
constexpr double kM2 = 2.042;
constexpr double kSlopeChangeKm = 50;

// As printf("%.*f") in the C locale (std::to_chars' contract), without
// printf's format parsing: a few of these per event were 5% of amparo-rules.
std::string FormatDecimal(double value, int decimals) {
  char buf[400];  // %.3f of the largest double needs 313 characters
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), value, std::chars_format::fixed, decimals);
  if (ec != std::errc()) return "?";
  return std::string(buf, end);
}

}  // namespace

std::string FormatMmi(double mmi) { return FormatDecimal(mmi, mmi == std::floor(mmi) ? 0 : 1); }

std::string FormatRadiusKm(double km) { return FormatDecimal(km, km < 10 ? 1 : 0); }

namespace {

// The equation for one magnitude: what depends on it alone is computed once
// (a bisection evaluates it ~30 times per event), the same operations in the
// same order as before, so the same results to the bit.
struct Allen2012 {
  double magnitude_term, rm;
  explicit Allen2012(double magnitude)
      : magnitude_term(kC0 + kC1 * magnitude), rm(kM1 + kM2 * std::exp(magnitude - 5)) {}
  double Mmi(double hypocentral_km) const {
    double r = std::max(hypocentral_km, 1.0);
    double mmi = magnitude_term + kC2 * std::log(std::sqrt(r * r + rm * rm));
    if (r > kSlopeChangeKm) mmi += kC4 * std::log(r / kSlopeChangeKm);
    return mmi;
  }
};

}  // namespace

double PredictMmiAllen2012(double magnitude, double hypocentral_km) {
  return Allen2012(magnitude).Mmi(hypocentral_km);
}

double EarthquakeRadiusKm(double magnitude, double depth_km, double min_mmi) {
  if (!std::isfinite(magnitude) || !std::isfinite(depth_km) || !std::isfinite(min_mmi)) return 0;
  const Allen2012 ipe(magnitude);
  double depth = std::max(depth_km, 0.0);
  double lo = depth;  // invariant: MMI(lo) >= min_mmi
  double hi = std::sqrt(kMaxFootprintRadiusKm * kMaxFootprintRadiusKm + depth * depth);
  if (ipe.Mmi(lo) < min_mmi) return 0;
  if (ipe.Mmi(hi) >= min_mmi) return kMaxFootprintRadiusKm;
  // Bisection finds the largest distance reaching the threshold because MMI
  // falls with distance wherever it can cross a threshold: c4 > 0 makes it
  // rise only for M > ~9.6 and Rhyp of 50..75 km, where it is far above any
  // threshold that matters (and such quakes hit the 1000 km cap above).
  for (int i = 0; i < 60 && hi - lo > 1e-6; ++i) {
    double mid = (lo + hi) / 2;
    (ipe.Mmi(mid) >= min_mmi ? lo : hi) = mid;
  }
  return std::sqrt(std::max(lo * lo - depth * depth, 0.0));
}

namespace {

// ---- tropical cyclones ----
// Willoughby, H.E., Darling, R.W.R. and Rahn, M.E. (2006), "Parametric
// representation of the primary hurricane vortex. Part II: A new family of
// sectionally continuous profiles", Monthly Weather Review 134:1102-1120,
// eq. 10a (fit to 1977-2000 aircraft profiles):
//   Rmax [km] = 46.4 exp(-0.0155 Vmax [m/s] + 0.0169 |lat|)
constexpr double kRmaxScaleKm = 46.4;
constexpr double kRmaxPerWindMs = -0.0155;
constexpr double kRmaxPerLatDeg = 0.0169;
// Beyond 50 degrees storms are extratropical; the fit has no data there.
constexpr double kRmaxMaxLatDeg = 50;
// Outside Rmax the wind decays as a modified Rankine vortex,
// V(r) = Vmax (Rmax / r)^x (Depperman 1947). x = 0.5 is the classical value;
// Holland, Belanger & Fritz (2010), Mon. Wea. Rev. 138:4393-4401, find the
// outer exponent of observed profiles varying around 0.5.
constexpr double kRankineDecayExponent = 0.5;
// R34 beyond this is outside the observed range of all but a handful of
// storms (Typhoon Tip); a cap keeps a bad wind value from covering an ocean.
constexpr double kTcMaxGaleRadiusKm = 500;
// When the source gives no wind: a Category 1 hurricane on the
// Saffir-Simpson scale (64 kt, 119 km/h), the intensity GDACS counts
// exposed population from.
constexpr double kTcAssumedWindKmh = 119;

// ---- volcanoes ----
// Hazard-zone radii are screening choices following exclusion-zone practice:
// PHIVOLCS keeps a 6 km permanent danger zone at Mayon and extends it to
// 7-8 km at higher alert levels; Indonesia's PVMBG widened Merapi's zone to
// 20 km in the VEI 4 eruption of 2010; Pinatubo's (VEI 6, 1991) went to 40 km.
// By USGS Volcano Alert Level (Gardner & Guffanti 2006, USGS Fact Sheet
// 2006-3139) or the matching ICAO aviation colour code:
constexpr double kVolcanoAdvisoryRadiusKm = 5;   // advisory / yellow: unrest
constexpr double kVolcanoWatchRadiusKm = 10;     // watch / orange: eruption likely or minor
constexpr double kVolcanoWarningRadiusKm = 20;   // warning / red: hazardous eruption
// By Volcanic Explosivity Index (Newhall & Self 1982, J. Geophys. Res.
// 87:1231-1238), index 0..8.
constexpr double kVolcanoRadiusByVeiKm[] = {5, 5, 10, 15, 30, 50, 100, 200, 200};
// Neither known: an eruption reported without level is taken as "watch".
constexpr double kVolcanoDefaultRadiusKm = kVolcanoWatchRadiusKm;

// ---- wildfires ----
// Beyond the burned area: ember spotting is commonly up to a few km and
// reached ~30 km on Black Saturday (Victoria, 2009); evacuation orders and
// dense smoke typically reach 5-15 km. 10 km is a screening choice.
constexpr double kWildfireBufferKm = 10;
// Area unknown: the buffer plus the radius (~2.5 km) of a 2,000 ha fire,
// rounded up.
constexpr double kWildfireDefaultRadiusKm = 15;
constexpr double kWildfireMaxRadiusKm = 200;

// ---- floods ----
// A circle with the affected area says nothing about where the water is: a
// coarse stand-in until the source gives polygons.
constexpr double kFloodMinRadiusKm = 5;
constexpr double kFloodMaxRadiusKm = 300;
// Area unknown (GDACS GLOFAS floods carry none): a river-basin reach around
// the reported centroid.
constexpr double kFloodDefaultRadiusKm = 50;

// ---- conflict events (ACLED) ----
// Base radii per ACLED event type (ACLED Codebook 2023 definitions); Amparo's
// screening choices, not published values:
//  - Battles: armed clashes move and draw indirect fire; tube artillery
//    reaches 20-30 km.
//  - Explosions/Remote violence: air/drone strikes, shelling, IEDs at the
//    reported place; follow-up strikes hit the surroundings.
//  - Violence against civilians: attacks, abductions, sexual violence by
//    armed groups in and around the locality.
//  - Riots: violent demonstrations and mob violence across a town centre.
//  - Protests: peaceful demonstrations, a few streets around the venue.
//  - Strategic developments: agreements, arrests, looting, base changes: no
//    footprint.
struct AcledType {
  std::string_view event_type;  // lower case
  double base_radius_km;
  const char* model;
  const char* words;
};
constexpr AcledType kAcledTypes[] = {
    {"battles", 25, kFootprintModelAcledBattles, "battles"},
    {"explosions/remote violence", 15, kFootprintModelAcledExplosions, "explosions/remote violence"},
    {"violence against civilians", 10, kFootprintModelAcledViolenceAgainstCivilians,
     "violence against civilians"},
    {"riots", 5, kFootprintModelAcledRiots, "riots"},
    {"protests", 2, kFootprintModelAcledProtests, "protests"},
};
// Reported deaths mark larger or longer fighting: each tenfold adds half the
// base radius, at most doubling it (0 -> x1, 9 -> x1.5, 99+ -> x2).
constexpr double kAcledFatalityGrowthPerDecade = 0.5;
constexpr double kAcledMaxFatalityFactor = 2;
// ACLED geo_precision 2 puts the event at the nearest town, 3 at the capital
// or centroid of a larger region: the radius grows by this much.
constexpr double kAcledPrecision2AllowanceKm = 5;
constexpr double kAcledPrecision3AllowanceKm = 25;

std::string Lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

const AcledType* FindAcledType(std::string_view event_type) {
  const std::string type = Lower(event_type);
  for (const AcledType& t : kAcledTypes)
    if (t.event_type == type) return &t;
  return nullptr;
}

double CircleRadiusForAreaKm(double area_km2) { return std::sqrt(area_km2 / std::numbers::pi); }

std::string LatLonText(const v1::LatLon& p) { return FormatDecimal(p.lat(), 3) + "," + FormatDecimal(p.lon(), 3); }

// Operator phrases by model, completed as "within R km (<phrase>)".
constexpr std::pair<std::string_view, std::string_view> kModelPhrases[] = {
    {kFootprintModelTcGale, "gale-force winds, modelled"},
    {kFootprintModelTcGaleAssumed, "gale-force winds, modelled; wind speed unknown"},
    {kFootprintModelTcGaleSource, "gale-force winds, radius given by the source"},
    {kFootprintModelTcCore, "storm core, winds below gale force, modelled"},
    {kFootprintModelVolcano, "volcanic hazard zone, modelled"},
    {kFootprintModelWildfire, "fire and smoke, modelled"},
    {kFootprintModelFlood, "flooding, coarse model"},
    {kFootprintModelAcledBattles, "battles, modelled"},
    {kFootprintModelAcledExplosions, "explosions/remote violence, modelled"},
    {kFootprintModelAcledViolenceAgainstCivilians, "violence against civilians, modelled"},
    {kFootprintModelAcledRiots, "riots, modelled"},
    {kFootprintModelAcledProtests, "protests, modelled"},
};

v1::Area Circle(const v1::LatLon& center, double radius_km, const char* model, const std::string& description) {
  v1::Area area;
  auto* circle = area.add_circles();
  *circle->mutable_center() = center;
  circle->set_radius_km(std::min(radius_km, kMaxFootprintRadiusKm));
  area.set_footprint_model(model);
  area.set_description(description);
  return area;
}

// Each hazard model: the footprint around `origin` (valid), or nullopt.
std::optional<v1::Area> EarthquakeFootprint(const v1::CrisisEvent& event, double min_mmi) {
  const auto& m = event.metrics();
  if (!m.has_magnitude()) return std::nullopt;
  double depth = m.has_depth_km() ? m.depth_km() : kDefaultDepthKm;
  double radius = EarthquakeRadiusKm(m.magnitude(), depth, min_mmi);
  if (radius <= 0) return std::nullopt;
  return Circle(event.origin(), radius, kFootprintModelAllen2012,
                "MMI>=" + FormatMmi(min_mmi) + " within " + FormatRadiusKm(radius) + " km of " +
                    LatLonText(event.origin()));
}

std::optional<v1::Area> CycloneFootprint(const v1::CrisisEvent& event) {
  const auto& m = event.metrics();
  const v1::LatLon& origin = event.origin();
  if (m.has_gale_radius_km() && std::isfinite(m.gale_radius_km()) && m.gale_radius_km() > 0) {
    double radius = std::min(m.gale_radius_km(), kTcMaxGaleRadiusKm);
    return Circle(origin, radius, kFootprintModelTcGaleSource,
                  "gale-force winds within " + FormatRadiusKm(radius) + " km of " + LatLonText(origin) +
                      " (radius given by the source)");
  }
  // The latest advisory's wind describes the storm where it is now; the
  // event's maximum may belong to a stretch of track long past.
  std::optional<double> wind;
  if (m.has_current_wind_kmh() && std::isfinite(m.current_wind_kmh()) && m.current_wind_kmh() > 0) {
    wind = m.current_wind_kmh();
  } else if (m.has_max_wind_kmh() && std::isfinite(m.max_wind_kmh()) && m.max_wind_kmh() > 0) {
    wind = m.max_wind_kmh();
  }
  if (!wind) {
    double radius = GaleRadiusKm(kTcAssumedWindKmh, origin.lat());
    return Circle(origin, radius, kFootprintModelTcGaleAssumed,
                  "gale-force winds within " + FormatRadiusKm(radius) + " km of " + LatLonText(origin) +
                      " (wind unknown: Category 1, " + FormatDecimal(kTcAssumedWindKmh, 0) + " km/h, assumed)");
  }
  if (*wind < kGaleForceKmh) {
    double radius = RadiusOfMaximumWindKm(*wind, origin.lat());
    return Circle(origin, radius, kFootprintModelTcCore,
                  "storm core within " + FormatRadiusKm(radius) + " km of " + LatLonText(origin) + " (" +
                      FormatDecimal(*wind, 0) + " km/h, below gale force)");
  }
  double radius = GaleRadiusKm(*wind, origin.lat());
  return Circle(origin, radius, kFootprintModelTcGale,
                "gale-force winds within " + FormatRadiusKm(radius) + " km of " + LatLonText(origin) + " (" +
                    FormatDecimal(*wind, 0) + " km/h)");
}

std::optional<v1::Area> VolcanoFootprint(const v1::CrisisEvent& event) {
  const auto& m = event.metrics();
  std::optional<int> vei;
  if (m.has_volcano_vei()) vei = m.volcano_vei();
  double radius = VolcanoRadiusKm(vei, m.volcano_alert_level());
  if (radius <= 0) return std::nullopt;
  std::string inputs;
  if (vei) inputs = "VEI " + std::to_string(*vei);
  if (!m.volcano_alert_level().empty()) {
    inputs += (inputs.empty() ? "" : ", ") + std::string("alert level ") + Lower(m.volcano_alert_level());
  }
  if (inputs.empty()) inputs = "level unknown";
  return Circle(event.origin(), radius, kFootprintModelVolcano,
                "volcanic hazard zone within " + FormatRadiusKm(radius) + " km of " + LatLonText(event.origin()) +
                    " (" + inputs + ")");
}

std::optional<v1::Area> WildfireFootprint(const v1::CrisisEvent& event) {
  const auto& m = event.metrics();
  std::optional<double> area;
  if (m.has_burned_area_ha()) area = m.burned_area_ha();
  double radius = WildfireRadiusKm(area);
  std::string inputs = area && *area > 0 ? FormatDecimal(*area, 0) + " ha burned" : "burned area unknown";
  return Circle(event.origin(), radius, kFootprintModelWildfire,
                "fire and smoke within " + FormatRadiusKm(radius) + " km of " + LatLonText(event.origin()) + " (" +
                    inputs + ")");
}

std::optional<v1::Area> FloodFootprint(const v1::CrisisEvent& event) {
  const auto& m = event.metrics();
  std::optional<double> area;
  if (m.has_affected_area_km2()) area = m.affected_area_km2();
  double radius = FloodRadiusKm(area);
  std::string inputs = area && *area > 0 ? FormatDecimal(*area, 0) + " km2 affected" : "affected area unknown";
  return Circle(event.origin(), radius, kFootprintModelFlood,
                "flooding within " + FormatRadiusKm(radius) + " km of " + LatLonText(event.origin()) + " (" +
                    inputs + ", coarse)");
}

std::optional<v1::Area> AcledFootprint(const v1::CrisisEvent& event) {
  const AcledType* type = FindAcledType(event.source_hazard_code());
  if (type == nullptr) return std::nullopt;
  const auto& m = event.metrics();
  std::optional<int64_t> fatalities;
  if (m.has_fatalities()) fatalities = m.fatalities();
  std::optional<int> precision;
  if (m.has_geo_precision()) precision = m.geo_precision();
  double radius = AcledRadiusKm(type->event_type, fatalities, precision);
  if (radius <= 0) return std::nullopt;
  std::string inputs = fatalities ? std::to_string(*fatalities) + " fatalities" : "fatalities unknown";
  if (precision) inputs += ", geo_precision " + std::to_string(*precision);
  return Circle(event.origin(), radius, type->model,
                std::string(type->words) + " within " + FormatRadiusKm(radius) + " km of " +
                    LatLonText(event.origin()) + " (" + inputs + ")");
}

std::optional<v1::Area> ModelledFootprint(const v1::CrisisEvent& event, const FootprintOptions& options) {
  if (!event.has_origin() || !geo::IsValid({event.origin().lat(), event.origin().lon()})) return std::nullopt;
  switch (event.hazard()) {
    case v1::HAZARD_KIND_EARTHQUAKE:
      return EarthquakeFootprint(event, options.earthquake_min_mmi);
    case v1::HAZARD_KIND_TROPICAL_CYCLONE:
      return CycloneFootprint(event);
    case v1::HAZARD_KIND_VOLCANO:
      return VolcanoFootprint(event);
    case v1::HAZARD_KIND_WILDFIRE:
      return WildfireFootprint(event);
    case v1::HAZARD_KIND_FLOOD:
      return FloodFootprint(event);
    case v1::HAZARD_KIND_CONFLICT:
    case v1::HAZARD_KIND_CIVIL_UNREST:
      return AcledFootprint(event);
    default:
      // Tsunami (inundation depends on bathymetry and coast), drought
      // (regional, slow), severe weather and other hazards: no model; the
      // source's own areas or nothing.
      return std::nullopt;
  }
}

// All areas of `event` with a shape whose footprint_model is (or is not)
// "gdacs-bbox", merged into one Area, or nullopt when there are none.
std::optional<v1::Area> MergedAreas(const v1::CrisisEvent& event, bool bounding_boxes) {
  v1::Area merged;
  for (const auto& area : event.areas()) {
    if (area.circles_size() == 0 && area.polygons_size() == 0) continue;
    if ((area.footprint_model() == kFootprintModelGdacsBbox) != bounding_boxes) continue;
    merged.mutable_circles()->MergeFrom(area.circles());
    merged.mutable_polygons()->MergeFrom(area.polygons());
    merged.mutable_geocodes()->MergeFrom(area.geocodes());
    if (!area.description().empty()) {
      if (!merged.description().empty()) merged.mutable_description()->append("; ");
      merged.mutable_description()->append(area.description());
    }
  }
  if (merged.circles_size() == 0 && merged.polygons_size() == 0) return std::nullopt;
  merged.set_footprint_model(bounding_boxes ? kFootprintModelGdacsBbox : kFootprintModelSource);
  return merged;
}

// The ISO3 and ADMIN1 geocodes of all of `event`'s areas, merged, or nullopt
// when there are none (other code systems, e.g. SAME or EMMA_ID, name places
// the registrants' codes cannot match).
std::optional<v1::Area> GeocodeAreas(const v1::CrisisEvent& event) {
  v1::Area merged;
  std::set<std::pair<std::string, std::string>> seen;
  for (const auto& area : event.areas()) {
    bool used = false;
    for (const auto& code : area.geocodes()) {
      if ((code.name() != "ISO3" && code.name() != "ADMIN1") || code.value().empty()) continue;
      used = true;
      if (seen.insert({code.name(), code.value()}).second) *merged.add_geocodes() = code;
    }
    if (used && !area.description().empty()) {
      if (!merged.description().empty()) merged.mutable_description()->append("; ");
      merged.mutable_description()->append(area.description());
    }
  }
  if (merged.geocodes_size() == 0) return std::nullopt;
  merged.set_footprint_model(kFootprintModelSourceGeocode);
  return merged;
}

}  // namespace

std::string ShakingDescription(double mmi) {
  // USGS descriptions of the Modified Mercalli Intensity scale.
  static constexpr const char* kWords[] = {"not felt", "not felt", "weak",   "weak",
                                           "light",    "moderate", "strong", "very strong",
                                           "severe",   "violent",  "extreme"};
  int level = static_cast<int>(std::floor(mmi));
  return kWords[std::clamp(level, 0, 10)];
}

double RadiusOfMaximumWindKm(double max_wind_kmh, double lat_deg) {
  if (!std::isfinite(max_wind_kmh) || !std::isfinite(lat_deg) || max_wind_kmh <= 0) return 0;
  double wind_ms = max_wind_kmh / 3.6;
  double lat = std::min(std::abs(lat_deg), kRmaxMaxLatDeg);
  return kRmaxScaleKm * std::exp(kRmaxPerWindMs * wind_ms + kRmaxPerLatDeg * lat);
}

double GaleRadiusKm(double max_wind_kmh, double lat_deg) {
  if (!std::isfinite(max_wind_kmh) || max_wind_kmh < kGaleForceKmh) return 0;
  double rmax = RadiusOfMaximumWindKm(max_wind_kmh, lat_deg);
  // Vmax (Rmax / r)^x = V34  <=>  r = Rmax (Vmax / V34)^(1/x)
  double radius = rmax * std::pow(max_wind_kmh / kGaleForceKmh, 1 / kRankineDecayExponent);
  return std::min(radius, kTcMaxGaleRadiusKm);
}

double VolcanoRadiusKm(std::optional<int> vei, std::string_view alert_level) {
  std::optional<double> by_level;
  const std::string level = Lower(alert_level);
  if (level == "normal" || level == "green") by_level = 0;
  if (level == "advisory" || level == "yellow") by_level = kVolcanoAdvisoryRadiusKm;
  if (level == "watch" || level == "orange") by_level = kVolcanoWatchRadiusKm;
  if (level == "warning" || level == "red") by_level = kVolcanoWarningRadiusKm;
  std::optional<double> by_vei;
  if (vei && *vei >= 0) by_vei = kVolcanoRadiusByVeiKm[std::min(*vei, 8)];
  if (!by_level && !by_vei) return kVolcanoDefaultRadiusKm;
  return std::max(by_level.value_or(0), by_vei.value_or(0));
}

double WildfireRadiusKm(std::optional<double> burned_area_ha) {
  if (!burned_area_ha || !std::isfinite(*burned_area_ha) || *burned_area_ha <= 0) return kWildfireDefaultRadiusKm;
  double radius = CircleRadiusForAreaKm(*burned_area_ha / 100) + kWildfireBufferKm;  // 100 ha = 1 km2
  return std::min(radius, kWildfireMaxRadiusKm);
}

double FloodRadiusKm(std::optional<double> affected_area_km2) {
  if (!affected_area_km2 || !std::isfinite(*affected_area_km2) || *affected_area_km2 <= 0) {
    return kFloodDefaultRadiusKm;
  }
  return std::clamp(CircleRadiusForAreaKm(*affected_area_km2), kFloodMinRadiusKm, kFloodMaxRadiusKm);
}

double AcledRadiusKm(std::string_view event_type, std::optional<int64_t> fatalities,
                     std::optional<int> geo_precision) {
  const AcledType* type = FindAcledType(event_type);
  if (type == nullptr) return 0;
  double factor = 1;
  if (fatalities && *fatalities > 0) {
    factor = std::min(kAcledMaxFatalityFactor,
                      1 + kAcledFatalityGrowthPerDecade * std::log10(1 + static_cast<double>(*fatalities)));
  }
  double allowance = 0;
  if (geo_precision == 2) allowance = kAcledPrecision2AllowanceKm;
  if (geo_precision == 3) allowance = kAcledPrecision3AllowanceKm;
  return type->base_radius_km * factor + allowance;
}

std::optional<v1::Area> EventFootprint(const v1::CrisisEvent& event, const FootprintOptions& options) {
  if (auto source = MergedAreas(event, /*bounding_boxes=*/false)) return source;
  // A GDACS RSS bounding box is the extent of the item's map (26 degrees
  // square for every cyclone, 8 for earthquakes), not where the hazard is:
  // a model around the origin is closer to the truth.
  if (auto modelled = ModelledFootprint(event, options)) return modelled;
  if (auto box = MergedAreas(event, /*bounding_boxes=*/true)) return box;
  return GeocodeAreas(event);
}

std::optional<v1::Area> EventFootprint(const v1::CrisisEvent& event, double min_mmi) {
  return EventFootprint(event, FootprintOptions{.earthquake_min_mmi = min_mmi});
}

std::string DescribeFootprint(const v1::Area& footprint) {
  const std::string& model = footprint.footprint_model();
  const std::string& description = footprint.description();
  if (model == kFootprintModelSource) {
    return description.empty() ? "inside the area given by the source"
                               : "inside the area given by the source (" + description + ")";
  }
  if (model == kFootprintModelSourceGeocode) {
    std::string codes;
    for (const auto& code : footprint.geocodes()) codes += (codes.empty() ? "" : ", ") + code.value();
    return "anywhere in " + (description.empty() ? codes : description + " (" + codes + ")") +
           " (the source names the country or region only)";
  }
  if (model == kFootprintModelGdacsBbox) {
    return description.empty() ? "inside the map rectangle given by GDACS (coarse)"
                               : "inside the map rectangle given by GDACS (" + description + ", coarse)";
  }
  if (footprint.circles_size() == 1 && footprint.polygons_size() == 0) {
    const std::string within = "within " + FormatRadiusKm(footprint.circles(0).radius_km()) + " km";
    if (model == kFootprintModelAllen2012) {
      // The threshold is not a field of Area: EventFootprint writes it first
      // in the description ("MMI>=6 within ...").
      constexpr std::string_view kPrefix = "MMI>=";
      if (description.rfind(kPrefix, 0) == 0) {
        size_t end = description.find(' ', kPrefix.size());
        const std::string mmi_text = description.substr(kPrefix.size(), end - kPrefix.size());
        char* parsed_end = nullptr;
        double mmi = std::strtod(mmi_text.c_str(), &parsed_end);
        if (!mmi_text.empty() && parsed_end == mmi_text.c_str() + mmi_text.size()) {
          return within + " (" + ShakingDescription(mmi) + " shaking, MMI>=" + mmi_text + ")";
        }
      }
      return within + " (strong shaking, modelled)";
    }
    for (const auto& [name, phrase] : kModelPhrases) {
      if (model == name) return within + " (" + std::string(phrase) + ")";
    }
    return within;
  }
  return description.empty() ? "inside the event's area" : "inside " + description;
}

}  // namespace amparo::rules
