#include "services/rules/search_area.h"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace amparo::rules {
namespace {

constexpr double kDeg = std::numbers::pi / 180;
// Rectangles are classified with this much slack so that rounding in the
// classification can never disagree with the per-point test (DistanceKm is
// accurate to well under a millimetre; acos near 0 to ~0.1 m).
constexpr double kMarginKm = 1e-3;
// Slack for the planar polygon tests, in degrees (~0.1 mm).
constexpr double kPlaneEps = 1e-9;
// Slack of a circle's rejection box, in degrees (~11 cm of latitude). The
// box's own rounding (and DistanceKm's) is below 1e-12 degrees, so a point
// outside the widened box is outside by the exact test too.
constexpr double kBoxSlackDeg = 1e-6;

bool LonInRange(double lon, double min_lon, double max_lon) {
  for (double l : {lon, lon - 360, lon + 360}) {
    if (l >= min_lon && l <= max_lon) return true;
  }
  return false;
}

double WrapLon(double lon) {
  while (lon > 180) lon -= 360;
  while (lon < -180) lon += 360;
  return lon;
}

SearchRing OpenRing(const SearchRing& ring) {
  SearchRing out = ring;
  while (out.size() > 1 && out.front().lat == out.back().lat && out.front().lon == out.back().lon) {
    out.pop_back();
  }
  return out;
}

}  // namespace

SearchArea SearchAreaFromProto(const v1::Area& area, bool with_geocodes) {
  SearchArea out;
  for (const auto& c : area.circles()) {
    geo::LatLon center{c.center().lat(), c.center().lon()};
    if (!geo::IsValid(center) || !(c.radius_km() >= 0) || !std::isfinite(c.radius_km())) continue;
    out.circles.push_back({center, c.radius_km()});
  }
  for (const auto& p : area.polygons()) {
    SearchPolygon polygon;
    for (const auto& v : p.vertices()) polygon.outer.push_back({v.lat(), v.lon()});
    if (PolygonShape(polygon).valid()) out.polygons.push_back(std::move(polygon));
  }
  if (with_geocodes) {
    for (const auto& g : area.geocodes()) {
      if (g.value().empty()) continue;
      if (g.name() == "ISO3") out.host_countries.push_back(g.value());
      if (g.name() == "ADMIN1") out.admin1_codes.push_back(g.value());
    }
  }
  return out;
}

CircleShape::CircleShape(const SearchCircle& circle)
    : circle_(circle),
      bounds_(geo::BoundingBox(circle.center, circle.radius_km)),
      reject_{bounds_.min_lat - kBoxSlackDeg, bounds_.min_lon - kBoxSlackDeg, bounds_.max_lat + kBoxSlackDeg,
              bounds_.max_lon + kBoxSlackDeg},
      // Within the slack of a pole every longitude is near: no longitude test.
      all_lons_(reject_.max_lon - reject_.min_lon >= 360 || reject_.max_lat >= 90 || reject_.min_lat <= -90),
      sin_lat_(std::sin(circle.center.lat * kDeg)),
      cos_lat_(std::cos(circle.center.lat * kDeg)) {}

bool CircleShape::Contains(geo::LatLon p) const {
  // Most points a query meets (an index's delta, sparse leaves) are far from
  // the circle: the box settles them without trigonometry. A great-circle
  // distance is never shorter than the latitude difference, and
  // geo::BoundingBox's longitude span is the cap's widest (see geo.h).
  if (p.lat < reject_.min_lat || p.lat > reject_.max_lat) return false;
  if (!all_lons_ && !LonInRange(p.lon, reject_.min_lon, reject_.max_lon)) return false;
  return geo::DistanceKm(circle_.center, p) <= circle_.radius_km;
}

Overlap CircleShape::Classify(const LatLonRect& rect) const {
  const double r = circle_.radius_km;
  // Rectangles small against the circle (the many at its rim) are settled
  // by the triangle inequality around their centre: every point of the
  // rectangle is within `reach` km of it (a path along the meridian, then
  // along the widest parallel, is no shorter than the great circle).
  {
    const double lat_near_equator =
        rect.min_lat <= 0 && rect.max_lat >= 0 ? 0 : std::min(std::abs(rect.min_lat), std::abs(rect.max_lat));
    const double reach = ((rect.max_lat - rect.min_lat) / 2 +
                          std::cos(lat_near_equator * kDeg) * (rect.max_lon - rect.min_lon) / 2) *
                         kDeg * geo::kEarthRadiusKm;
    if (reach <= r / 4) {
      const double d = geo::DistanceKm(circle_.center,
                                       {(rect.min_lat + rect.max_lat) / 2, (rect.min_lon + rect.max_lon) / 2});
      if (d + reach <= r - kMarginKm) return Overlap::kInside;
      if (d - reach > r + kMarginKm) return Overlap::kOutside;
      return Overlap::kBoundary;
    }
  }
  const double lat_p = circle_.center.lat, lon_p = circle_.center.lon;
  const double phi0 = rect.min_lat * kDeg, phi1 = rect.max_lat * kDeg;
  // cos of the central angle from the centre to (phi, lon).
  auto cos_to = [&](double phi, double lon) {
    return sin_lat_ * std::sin(phi) + cos_lat_ * std::cos(phi) * std::cos((lon - lon_p) * kDeg);
  };
  auto to_km = [](double cos_angle) {
    return std::acos(std::clamp(cos_angle, -1.0, 1.0)) * geo::kEarthRadiusKm;
  };

  // Nearest point. With the centre's meridian crossing the rectangle, it is
  // straight north or south (or the centre itself); otherwise it lies on a
  // meridian edge, since along a parallel the distance grows with the
  // longitude difference.
  double min_km;
  if (LonInRange(lon_p, rect.min_lon, rect.max_lon)) {
    double dlat = 0;
    if (lat_p < rect.min_lat) dlat = rect.min_lat - lat_p;
    if (lat_p > rect.max_lat) dlat = lat_p - rect.max_lat;
    min_km = dlat * kDeg * geo::kEarthRadiusKm;
  } else {
    double best_cos = -1;
    for (double edge_lon : {rect.min_lon, rect.max_lon}) {
      // Along a meridian, cos(angle) = A sin(phi) + B cos(phi) =
      // hypot(A, B) cos(phi - phi_star): largest at phi_star or an end.
      double a = sin_lat_, b = cos_lat_ * std::cos((edge_lon - lon_p) * kDeg);
      double phi_star = std::atan2(a, b);
      if (phi_star >= phi0 && phi_star <= phi1) best_cos = std::max(best_cos, std::hypot(a, b));
      best_cos = std::max({best_cos, cos_to(phi0, edge_lon), cos_to(phi1, edge_lon)});
    }
    min_km = to_km(best_cos);
  }
  if (min_km > r + kMarginKm) return Overlap::kOutside;

  // Farthest point: the antipode when inside, else on the boundary: the
  // corners, the far critical point of each meridian edge, and the
  // anti-meridian of the centre on each parallel edge.
  const double anti_lon = WrapLon(lon_p + 180);
  double max_km;
  if (-lat_p >= rect.min_lat && -lat_p <= rect.max_lat && LonInRange(anti_lon, rect.min_lon, rect.max_lon)) {
    max_km = std::numbers::pi * geo::kEarthRadiusKm;
  } else {
    double worst_cos = 1;
    for (double edge_lon : {rect.min_lon, rect.max_lon}) {
      double a = sin_lat_, b = cos_lat_ * std::cos((edge_lon - lon_p) * kDeg);
      double phi_far = std::atan2(a, b) + (std::atan2(a, b) > 0 ? -std::numbers::pi : std::numbers::pi);
      if (phi_far >= phi0 && phi_far <= phi1) worst_cos = std::min(worst_cos, -std::hypot(a, b));
      worst_cos = std::min({worst_cos, cos_to(phi0, edge_lon), cos_to(phi1, edge_lon)});
    }
    if (LonInRange(anti_lon, rect.min_lon, rect.max_lon)) {
      worst_cos = std::min({worst_cos, cos_to(phi0, anti_lon), cos_to(phi1, anti_lon)});
    }
    max_km = to_km(worst_cos);
  }
  if (max_km <= r - kMarginKm) return Overlap::kInside;
  return Overlap::kBoundary;
}

PolygonShape::PolygonShape(const SearchPolygon& polygon) {
  SearchRing outer = OpenRing(polygon.outer);
  if (outer.size() < 3) return;
  double min_lon = 180, max_lon = -180, min_lat = 90, max_lat = -90;
  for (const auto& v : outer) {
    if (!geo::IsValid(v)) return;
    min_lon = std::min(min_lon, v.lon);
    max_lon = std::max(max_lon, v.lon);
    min_lat = std::min(min_lat, v.lat);
    max_lat = std::max(max_lat, v.lat);
  }
  unwrap_ = max_lon - min_lon > 180;
  bounds_ = unwrap_ ? geo::Box{min_lat, -180, max_lat, 180} : geo::Box{min_lat, min_lon, max_lat, max_lon};
  plane_min_x_ = 1e9;
  plane_max_x_ = -1e9;
  auto add_ring = [&](const SearchRing& ring) {
    for (size_t i = 0; i < ring.size(); ++i) {
      const auto& a = ring[i];
      const auto& b = ring[(i + 1) % ring.size()];
      edges_.push_back({PlaneLon(a.lon), a.lat, PlaneLon(b.lon), b.lat});
      plane_min_x_ = std::min(plane_min_x_, PlaneLon(a.lon));
      plane_max_x_ = std::max(plane_max_x_, PlaneLon(a.lon));
    }
  };
  add_ring(outer);
  for (const auto& hole : polygon.holes) {
    SearchRing h = OpenRing(hole);
    if (h.size() < 3 || !std::all_of(h.begin(), h.end(), [](const auto& v) { return geo::IsValid(v); })) {
      continue;
    }
    add_ring(h);
  }
  valid_ = true;
}

bool PolygonShape::ContainsPlane(double x, double y) const {
  bool inside = false;
  for (const Edge& e : edges_) {
    // On the edge (boundary included): collinear and within its box.
    double cross = (e.x1 - e.x0) * (y - e.y0) - (e.y1 - e.y0) * (x - e.x0);
    if (cross == 0 && x >= std::min(e.x0, e.x1) && x <= std::max(e.x0, e.x1) && y >= std::min(e.y0, e.y1) &&
        y <= std::max(e.y0, e.y1)) {
      return true;
    }
    // Even-odd crossing count of a ray towards +x: holes flip back to outside.
    if ((e.y0 > y) != (e.y1 > y)) {
      double x_at = e.x0 + (e.x1 - e.x0) * (y - e.y0) / (e.y1 - e.y0);
      if (x < x_at) inside = !inside;
    }
  }
  return inside;
}

bool PolygonShape::Contains(geo::LatLon p) const {
  if (!valid_) return false;
  if (p.lat < bounds_.min_lat || p.lat > bounds_.max_lat) return false;
  double x = PlaneLon(p.lon);
  if (ContainsPlane(x, p.lat)) return true;
  // -180 and 180 are one meridian; an index stores it as -180.
  if (p.lon == -180 && !unwrap_) return ContainsPlane(180, p.lat);
  return false;
}

Overlap PolygonShape::ClassifyPlane(double min_x, double max_x, double min_y, double max_y) const {
  min_x -= kPlaneEps;
  max_x += kPlaneEps;
  min_y -= kPlaneEps;
  max_y += kPlaneEps;
  if (max_x < plane_min_x_ || min_x > plane_max_x_ || max_y < bounds_.min_lat || min_y > bounds_.max_lat) {
    return Overlap::kOutside;
  }
  for (const Edge& e : edges_) {
    if (std::max(e.x0, e.x1) < min_x || std::min(e.x0, e.x1) > max_x || std::max(e.y0, e.y1) < min_y ||
        std::min(e.y0, e.y1) > max_y) {
      continue;
    }
    // The edge's boxes overlap: it touches the rectangle unless all four
    // corners lie strictly on one side of its line.
    double dx = e.x1 - e.x0, dy = e.y1 - e.y0;
    int positive = 0, negative = 0;
    for (auto [cx, cy] : {std::pair{min_x, min_y}, {min_x, max_y}, {max_x, min_y}, {max_x, max_y}}) {
      double side = dx * (cy - e.y0) - dy * (cx - e.x0);
      positive += side > 0;
      negative += side < 0;
    }
    if (positive != 4 && negative != 4) return Overlap::kBoundary;
  }
  // No edge comes near: every point of the rectangle shares its centre's fate.
  return ContainsPlane((min_x + max_x) / 2, (min_y + max_y) / 2) ? Overlap::kInside : Overlap::kOutside;
}

Overlap PolygonShape::Classify(const LatLonRect& rect) const {
  if (!valid_) return Overlap::kOutside;
  if (rect.max_lat < bounds_.min_lat || rect.min_lat > bounds_.max_lat) return Overlap::kOutside;
  Overlap result;
  if (!unwrap_) {
    result = ClassifyPlane(rect.min_lon, rect.max_lon, rect.min_lat, rect.max_lat);
    // Points on -180 are also tested as 180 (see Contains).
    if (rect.min_lon <= -180 && result != Overlap::kBoundary &&
        ClassifyPlane(180, 180, rect.min_lat, rect.max_lat) != result) {
      return Overlap::kBoundary;
    }
    return result;
  }
  if (rect.max_lon < 0) return ClassifyPlane(rect.min_lon + 360, rect.max_lon + 360, rect.min_lat, rect.max_lat);
  if (rect.min_lon >= 0) return ClassifyPlane(rect.min_lon, rect.max_lon, rect.min_lat, rect.max_lat);
  Overlap west = ClassifyPlane(rect.min_lon + 360, 360, rect.min_lat, rect.max_lat);
  Overlap east = ClassifyPlane(0, rect.max_lon, rect.min_lat, rect.max_lat);
  return west == east ? west : Overlap::kBoundary;
}

}  // namespace amparo::rules
