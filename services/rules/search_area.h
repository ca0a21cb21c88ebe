// SearchArea: the shapes an exposure query asks about, and the exact
// geometry the ExposureIndex (and any brute-force reference) uses on them.
//
// - Circles are spherical caps: a point is inside when its great-circle
//   (haversine, geo::DistanceKm) distance to the centre is <= radius_km.
//   Correct across the antimeridian and over the poles by construction.
// - Polygons follow GeoJSON (RFC 7946 section 3.1.1): an edge is a straight
//   line in (lon, lat) degrees. A ring whose longitudes span more than 180
//   degrees is read as crossing the antimeridian and is evaluated in
//   0..360 longitudes. Rings are one outer ring plus holes; the boundary
//   (of the outer ring and of every hole) belongs to the polygon. This
//   planar reading is the one GeoJSON, CAP feeds and GDACS use; polygons
//   that enclose a pole cannot be expressed in it (use a circle).
// - Geocodes select registrants by their own codes: a host country (ISO3)
//   or an admin-1 code, whatever their coordinates.
// A registrant inside several shapes is counted once.
//
// Thread safety: immutable after construction; safe to share.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "amparo/v1/crisis_event.pb.h"
#include "common/geo.h"

namespace amparo::rules {

struct SearchCircle {
  geo::LatLon center;
  double radius_km = 0;
};

// Vertices in order; the closing vertex may be repeated or not.
using SearchRing = std::vector<geo::LatLon>;

struct SearchPolygon {
  SearchRing outer;
  std::vector<SearchRing> holes;
};

struct SearchArea {
  std::vector<SearchCircle> circles;
  std::vector<SearchPolygon> polygons;
  std::vector<std::string> host_countries;  // geocode ISO3: registrants hosted there
  std::vector<std::string> admin1_codes;    // geocode admin-1: registrants with that code
};

// The shapes of a proto Area. Circles with a non-finite or negative radius or
// an invalid centre and polygons with fewer than 3 distinct vertices or an
// invalid vertex are dropped; outer rings only (ExposureIndex::QueryArea adds
// each polygon's holes). Geocodes are
// copied only when `with_geocodes` (names "ISO3" and "ADMIN1").
SearchArea SearchAreaFromProto(const v1::Area& area, bool with_geocodes);

// An axis-aligned lon/lat rectangle with -180 <= min_lon <= max_lon <= 180
// (closed on every side).
struct LatLonRect {
  double min_lat, max_lat, min_lon, max_lon;
};

enum class Overlap { kOutside, kBoundary, kInside };

// One circle prepared for many tests.
class CircleShape {
 public:
  explicit CircleShape(const SearchCircle& circle);
  // Exactly geo::DistanceKm(center, p) <= radius_km. Points outside the
  // circle's lat/lon box (widened against rounding) are rejected with a few
  // comparisons; only those inside it pay the haversine.
  bool Contains(geo::LatLon p) const;
  // kInside only when every point of `rect` is inside, kOutside only when
  // none is, with a 1 m safety margin against rounding (so callers may take
  // a whole rectangle's points without testing them one by one).
  Overlap Classify(const LatLonRect& rect) const;
  // A lat/lon box holding the circle, possibly wider (longitudes may leave
  // -180..180 as in geo::BoundingBox).
  const geo::Box& bounds() const { return bounds_; }
  const SearchCircle& circle() const { return circle_; }

 private:
  SearchCircle circle_;
  geo::Box bounds_;
  geo::Box reject_;  // bounds_ widened by a rounding margin: no point outside it can be inside
  bool all_lons_;    // reject_ spans every longitude
  double sin_lat_, cos_lat_;
};

// One polygon (outer ring + holes) prepared for many tests.
class PolygonShape {
 public:
  explicit PolygonShape(const SearchPolygon& polygon);
  bool valid() const { return valid_; }
  bool Contains(geo::LatLon p) const;
  Overlap Classify(const LatLonRect& rect) const;
  // Bounds in plain -180..180 longitudes; min_lon > max_lon never happens,
  // an antimeridian polygon gets the whole longitude range.
  const geo::Box& bounds() const { return bounds_; }

 private:
  struct Edge {
    double x0, y0, x1, y1;  // (lon', lat) in the polygon's plane
  };
  double PlaneLon(double lon) const { return unwrap_ && lon < 0 ? lon + 360 : lon; }
  bool ContainsPlane(double x, double y) const;
  Overlap ClassifyPlane(double min_x, double max_x, double min_y, double max_y) const;

  std::vector<Edge> edges_;
  bool unwrap_ = false;
  bool valid_ = false;
  geo::Box bounds_{0, 0, 0, 0};
  double plane_min_x_ = 0, plane_max_x_ = 0;
};

}  // namespace amparo::rules
