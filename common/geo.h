// Geodesy on the sphere (mean Earth radius 6371.0088 km, IUGG). Accurate to
// about 0.5% against the WGS84 ellipsoid, which is far below the
// uncertainty of any hazard footprint.
#pragma once

namespace amparo::geo {

inline constexpr double kEarthRadiusKm = 6371.0088;

struct LatLon {
  double lat = 0;  // degrees, -90..90
  double lon = 0;  // degrees, -180..180
};

// Great-circle distance (haversine), kilometres.
double DistanceKm(LatLon a, LatLon b);

// A lat/lon box that contains every point within `radius_km` of `center`.
// Longitudes may fall outside -180..180 when the circle crosses the
// antimeridian; `SplitLon` handles that. Near a pole the box spans every
// longitude.
struct Box {
  double min_lat, min_lon, max_lat, max_lon;
};
Box BoundingBox(LatLon center, double radius_km);

bool IsValid(LatLon p);

}  // namespace amparo::geo
