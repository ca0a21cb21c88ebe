#include "services/rules/footprint.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

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

std::string FormatDecimal(double value, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", decimals, value);
  return buf;
}

}  // namespace

std::string FormatMmi(double mmi) { return FormatDecimal(mmi, mmi == std::floor(mmi) ? 0 : 1); }

std::string FormatRadiusKm(double km) { return FormatDecimal(km, km < 10 ? 1 : 0); }

double PredictMmiAllen2012(double magnitude, double hypocentral_km) {
  double r = std::max(hypocentral_km, 1.0);
  double rm = kM1 + kM2 * std::exp(magnitude - 5);
  double mmi = kC0 + kC1 * magnitude + kC2 * std::log(std::sqrt(r * r + rm * rm));
  if (r > kSlopeChangeKm) mmi += kC4 * std::log(r / kSlopeChangeKm);
  return mmi;
}

double EarthquakeRadiusKm(double magnitude, double depth_km, double min_mmi) {
  if (!std::isfinite(magnitude) || !std::isfinite(depth_km) || !std::isfinite(min_mmi)) return 0;
  double depth = std::max(depth_km, 0.0);
  double lo = depth;  // invariant: MMI(lo) >= min_mmi
  double hi = std::sqrt(kMaxFootprintRadiusKm * kMaxFootprintRadiusKm + depth * depth);
  if (PredictMmiAllen2012(magnitude, lo) < min_mmi) return 0;
  if (PredictMmiAllen2012(magnitude, hi) >= min_mmi) return kMaxFootprintRadiusKm;
  // Bisection finds the largest distance reaching the threshold because MMI
  // falls with distance wherever it can cross a threshold: c4 > 0 makes it
  // rise only for M > ~9.6 and Rhyp of 50..75 km, where it is far above any
  // threshold that matters (and such quakes hit the 1000 km cap above).
  for (int i = 0; i < 60 && hi - lo > 1e-6; ++i) {
    double mid = (lo + hi) / 2;
    (PredictMmiAllen2012(magnitude, mid) >= min_mmi ? lo : hi) = mid;
  }
  return std::sqrt(std::max(lo * lo - depth * depth, 0.0));
}

std::string ShakingDescription(double mmi) {
  // USGS descriptions of the Modified Mercalli Intensity scale.
  static constexpr const char* kWords[] = {"not felt", "not felt", "weak",   "weak",
                                           "light",    "moderate", "strong", "very strong",
                                           "severe",   "violent",  "extreme"};
  int level = static_cast<int>(std::floor(mmi));
  return kWords[std::clamp(level, 0, 10)];
}

std::optional<v1::Area> EventFootprint(const v1::CrisisEvent& event, double min_mmi) {
  v1::Area source;
  for (const auto& area : event.areas()) {
    if (area.circles_size() == 0 && area.polygons_size() == 0) continue;
    source.mutable_circles()->MergeFrom(area.circles());
    source.mutable_polygons()->MergeFrom(area.polygons());
    source.mutable_geocodes()->MergeFrom(area.geocodes());
    if (!area.description().empty()) {
      if (!source.description().empty()) source.mutable_description()->append("; ");
      source.mutable_description()->append(area.description());
    }
  }
  if (source.circles_size() > 0 || source.polygons_size() > 0) {
    source.set_footprint_model(kFootprintModelSource);
    return source;
  }

  if (event.hazard() != v1::HAZARD_KIND_EARTHQUAKE || !event.has_origin() ||
      !event.metrics().has_magnitude()) {
    return std::nullopt;
  }
  const auto& m = event.metrics();
  if (!geo::IsValid({event.origin().lat(), event.origin().lon()})) return std::nullopt;
  double depth = m.has_depth_km() ? m.depth_km() : kDefaultDepthKm;
  double radius = EarthquakeRadiusKm(m.magnitude(), depth, min_mmi);
  if (radius <= 0) return std::nullopt;

  v1::Area area;
  auto* circle = area.add_circles();
  *circle->mutable_center() = event.origin();
  circle->set_radius_km(radius);
  area.set_footprint_model(kFootprintModelAllen2012);
  area.set_description("MMI>=" + FormatMmi(min_mmi) + " within " + FormatRadiusKm(radius) + " km of " +
                       FormatDecimal(event.origin().lat(), 3) + "," + FormatDecimal(event.origin().lon(), 3));
  return area;
}

}  // namespace amparo::rules
