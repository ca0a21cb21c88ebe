#include "common/geo.h"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace amparo::geo {
namespace {
constexpr double kDeg = std::numbers::pi / 180.0;
}

double DistanceKm(LatLon a, LatLon b) {
  double dlat = (b.lat - a.lat) * kDeg;
  double dlon = (b.lon - a.lon) * kDeg;
  double h = std::sin(dlat / 2) * std::sin(dlat / 2) +
             std::cos(a.lat * kDeg) * std::cos(b.lat * kDeg) * std::sin(dlon / 2) * std::sin(dlon / 2);
  return 2 * kEarthRadiusKm * std::asin(std::min(1.0, std::sqrt(h)));
}

Box BoundingBox(LatLon c, double radius_km) {
  double dlat = radius_km / kEarthRadiusKm / kDeg;
  double min_lat = c.lat - dlat, max_lat = c.lat + dlat;
  if (max_lat >= 90 || min_lat <= -90) {
    return {std::max(min_lat, -90.0), -180, std::min(max_lat, 90.0), 180};
  }
  // Widest longitude span of the circle (at the latitude of tangency).
  double angular = radius_km / kEarthRadiusKm;
  double dlon = std::asin(std::min(1.0, std::sin(angular) / std::cos(c.lat * kDeg))) / kDeg;
  return {min_lat, c.lon - dlon, max_lat, c.lon + dlon};
}

bool IsValid(LatLon p) {
  return std::isfinite(p.lat) && std::isfinite(p.lon) && p.lat >= -90 && p.lat <= 90 && p.lon >= -180 &&
         p.lon <= 180;
}

}  // namespace amparo::geo
