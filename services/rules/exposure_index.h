// ExposureIndex: the registrants amparo-rules matches crises against, kept in
// memory in a spatial index (Boost.Geometry R*-tree of lon/lat points).
//
// It answers "who is inside this area" as counts per (state, host country)
// plus the exposed registrant ids, capped. The index holds only what matching
// needs (no admin1, no contact data) and keeps it compact: per registrant a
// 16-byte packed id, the coordinates, household size, vulnerability flags and
// interned state/host ids (exposure_index_test prints the heap bytes per
// registrant measured for 1M synthetic registrants).
//
// Registrant ids must be 32 lowercase hex characters (what the gateway's
// NewId() assigns); other ids are rejected with INVALID_ARGUMENT.
//
// Thread safety: none; the owner (RulesEngine) uses it from one thread.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "amparo/v1/crisis_event.pb.h"
#include "amparo/v1/registry.pb.h"
#include "common/geo.h"
#include "common/status.h"

namespace amparo::rules {

// How many people one (state, host country) has inside an area.
struct ExposureCounts {
  uint32_t registrants = 0;
  uint32_t household_members = 0;  // sum of household_size (saturates at UINT32_MAX)
  uint32_t vulnerable = 0;         // registrants with any vulnerability flag set
  bool operator==(const ExposureCounts&) const = default;
};

// (state, host_country), both ISO3; host_country may be "".
using ExposureKey = std::pair<std::string, std::string>;

struct GroupExposure {
  ExposureCounts counts;
  // Exposed registrant ids, at most the `max_ids_per_group` the query asked
  // for: vulnerable registrants first, then by ascending id (deterministic).
  std::vector<std::string> registrant_ids;
};

// Every (state, host) with at least one registrant inside the area.
using Exposure = std::map<ExposureKey, GroupExposure>;

class ExposureIndex {
 public:
  ExposureIndex();
  ~ExposureIndex();
  ExposureIndex(ExposureIndex&&) noexcept;
  ExposureIndex& operator=(ExposureIndex&&) noexcept;
  ExposureIndex(const ExposureIndex&) = delete;
  ExposureIndex& operator=(const ExposureIndex&) = delete;

  // The checks Upsert() makes on its input, without touching any index:
  // INVALID_ARGUMENT naming the field, or OK.
  static Status Validate(const v1::RegistrantLocation& location);

  // Adds a registrant or replaces the one with the same id (moving its point).
  // INVALID_ARGUMENT (naming the field) for a bad id, state, coordinates or
  // household_size 0; RESOURCE_EXHAUSTED past 65535 distinct state/host codes.
  // The index is unchanged on error.
  Status Upsert(const v1::RegistrantLocation& location);
  // Removes a registrant; returns false when the id is not indexed.
  bool Remove(std::string_view registrant_id);
  bool Contains(std::string_view registrant_id) const;
  size_t Size() const;

  // Start-up fast path: between BeginBulkLoad() and EndBulkLoad(), Upsert()
  // only records registrants and EndBulkLoad() builds the tree once with the
  // packing algorithm (several times faster than inserting one by one, and a
  // better tree). Queries must not run in between.
  void BeginBulkLoad();
  void EndBulkLoad();

  // Registrants within `radius_km` great-circle kilometres of `center`
  // (boundary included). Handles circles crossing the antimeridian and
  // circles reaching a pole.
  Exposure QueryCircle(geo::LatLon center, double radius_km, size_t max_ids_per_group) const;
  // Registrants inside any circle or polygon of `area` (each counted once).
  // Polygons are taken in plain lon/lat coordinates (edges are straight in
  // degrees, boundary included); a polygon whose longitudes span more than
  // 180 degrees is taken to cross the antimeridian. Polygons with fewer than
  // 3 vertices or invalid coordinates, and geocodes, are ignored.
  Exposure QueryArea(const v1::Area& area, size_t max_ids_per_group) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace amparo::rules
