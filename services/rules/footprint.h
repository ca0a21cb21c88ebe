// Footprints: the area of a crisis event that registrants are matched
// against.
//
// When the source gives shapes of its own (CAP <circle>/<polygon>), those are
// the footprint ("source"). Otherwise an earthquake's footprint is the circle
// within which the predicted Modified Mercalli Intensity (MMI) reaches a
// threshold, from the intensity prediction equation of
//   Allen, T.I., Wald, D.J. and Worden, C.B. (2012), "Intensity attenuation
//   for active crustal regions", Journal of Seismology 16:409-433,
//   doi:10.1007/s10950-012-9278-7,
// hypocentral-distance form (see footprint.cpp for the equation and
// coefficients). It predicts median intensity on average ground from
// magnitude and distance only: it knows nothing of fault extent, directivity
// or site amplification, so it is a screening radius, not a ShakeMap.
//
// Pure functions; thread-safe.
#pragma once

#include <optional>
#include <string>

#include "amparo/v1/crisis_event.pb.h"

namespace amparo::rules {

inline constexpr char kFootprintModelAllen2012[] = "eq-mmi-allen2012";
inline constexpr char kFootprintModelSource[] = "source";
// No modelled footprint is larger than this (epicentral km).
inline constexpr double kMaxFootprintRadiusKm = 1000;
// Depth assumed when an earthquake has none (the depth USGS fixes for
// shallow events it cannot resolve).
inline constexpr double kDefaultDepthKm = 10;

// Median MMI predicted at `hypocentral_km` from a moment magnitude
// `magnitude` earthquake (Allen, Wald & Worden 2012, hypocentral form).
// Distances under 1 km are taken as 1 km.
double PredictMmiAllen2012(double magnitude, double hypocentral_km);

// Epicentral radius (km) within which the predicted MMI is at least
// `min_mmi`: 0 when even the epicentre stays below it, at most
// kMaxFootprintRadiusKm. Negative depths (above sea level) count as 0;
// non-finite inputs give 0.
double EarthquakeRadiusKm(double magnitude, double depth_km, double min_mmi);

// "strong" for 6, "very strong" for 7...: the MMI scale's shaking words.
std::string ShakingDescription(double mmi);

// "6" for 6.0, "6.5" for 6.5.
std::string FormatMmi(double mmi);
// Whole kilometres from 10 km up ("85"), one decimal below ("2.5").
std::string FormatRadiusKm(double km);

// The area `event` is matched against, or nullopt when it has none: the
// event's own circles and polygons (all its areas merged into one Area,
// footprint_model "source") when it has any; else, for an earthquake with an
// origin and a magnitude, one circle of EarthquakeRadiusKm (footprint_model
// "eq-mmi-allen2012", description like "MMI>=6 within 85 km of
// 28.639,87.361"), nullopt when that radius is 0.
std::optional<v1::Area> EventFootprint(const v1::CrisisEvent& event, double min_mmi);

}  // namespace amparo::rules
