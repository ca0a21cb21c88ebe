// ExposureIndex: every registrant amparo-rules matches crises against, in
// memory, answering "how many registrants and household members of each
// state, host country, admin-1 area and vulnerability flag are inside this
// area" and, when asked, who they are.
//
// Layout (see exposure_index.cpp for the reasons): a static part rebuilt in
// one pass (registrants sorted along a Morton curve over a lon/lat grid, an
// adaptive quadtree over that order whose larger nodes keep per-profile
// counts, so a query takes whole nodes inside the area without touching
// their registrants) plus a small dynamic delta for registry changes since
// the last rebuild; removals tombstone the static copy and fix the node
// counts at once. A rebuild runs inside the Upsert/Remove that crosses the
// delta threshold (at 10M registrants: about once per 40,000 changes).
// Per registrant 31.5 bytes at 10M (16-byte id, 4-byte profile, 4 bytes of
// cell-relative coordinates, 4.5 of id table, ~2 of tree, node counts and
// tombstones; docs/PERFORMANCE.md): MemoryBytes() tells.
//
// Positions are kept on a grid of 2^-28 of the longitude and latitude
// ranges (at most 8.4 cm off); every answer is exact for the stored position, which
// StoredPosition() gives, so a brute-force scan over stored positions with
// the predicates of search_area.h returns the very same counts and ids.
//
// Registrant ids must be 32 lowercase hex characters (what the gateway's
// NewId() assigns); other ids are rejected with INVALID_ARGUMENT.
//
// Thread safety: none, queries included (they use scratch space inside the
// index). The owner (RulesEngine) uses it from one thread, so a query runs
// either before or after a whole Upsert/Remove, never during one.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "amparo/v1/crisis_event.pb.h"
#include "amparo/v1/registry.pb.h"
#include "common/geo.h"
#include "common/registrant_id.h"
#include "common/status.h"
#include "services/rules/search_area.h"

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
  // The same counts split by the registrants' admin-1 code ("" = unknown).
  std::map<std::string, ExposureCounts> by_admin1;
  // with_flag[b]: registrants whose vulnerability_flags has bit b set.
  std::array<uint32_t, 32> with_flag{};
  // Exposed registrant ids, at most the `max_ids_per_group` the query asked
  // for: vulnerable registrants first, then by ascending id (deterministic).
  // Packed, 16 bytes each (common/registrant_id.h), as alerts carry them.
  std::string packed_ids;

  size_t id_count() const { return packed_ids.size() / kPackedRegistrantIdBytes; }
  // The ids as 32-hex strings, in order.
  std::vector<std::string> registrant_ids() const;
  // Appends one id given as 32 lowercase hex; false (nothing appended) for
  // anything else.
  bool AddId(std::string_view hex);
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
  // household_size 0; RESOURCE_EXHAUSTED past 65535 distinct state/host/
  // admin-1 codes or 2^31 distinct (state, host, admin-1, flags, household)
  // profiles.
  // The index is unchanged on error.
  Status Upsert(const v1::RegistrantLocation& location);
  // Removes a registrant; returns false when the id is not indexed.
  bool Remove(std::string_view registrant_id);
  bool Contains(std::string_view registrant_id) const;
  size_t Size() const;

  // Start-up fast path: between BeginBulkLoad() and EndBulkLoad(), Upsert()
  // only validates and records registrants (a later Upsert of the same id
  // wins) and EndBulkLoad() builds the static part once. Remove(), Contains()
  // and Size() in between first finish the load; queries must not run.
  void BeginBulkLoad();
  void EndBulkLoad();

  // Registrants within `radius_km` great-circle kilometres of `center`
  // (boundary included). Handles circles crossing the antimeridian and
  // circles reaching a pole.
  Exposure QueryCircle(geo::LatLon center, double radius_km, size_t max_ids_per_group) const;
  // Registrants inside any circle or polygon of `area` (each counted once).
  // Polygons follow search_area.h (GeoJSON planar edges, antimeridian
  // rings) and their holes are honoured (a hole that is not a valid ring
  // excludes nobody).
  // Invalid shapes are ignored. Geocodes (ISO3 host country, ADMIN1) count
  // only when the area has no valid shape: in CAP, codes next to a shape
  // describe the same place, so they never widen it.
  Exposure QueryArea(const v1::Area& area, size_t max_ids_per_group) const;
  // The general form: circles, polygons with holes and geocodes (host
  // country, admin-1), each registrant counted once. With
  // max_ids_per_group == 0 no registrant is visited where a whole tree node
  // lies inside the area.
  Exposure Query(const SearchArea& area, size_t max_ids_per_group) const;

  // Every exposed registrant's packed id (16 bytes, FormatId() makes the hex
  // string), in no particular order: the fast path for long lists.
  using PackedId = PackedRegistrantId;
  void ListExposed(const SearchArea& area, std::vector<PackedId>* ids) const;
  static std::string FormatId(const PackedId& id);

  // The position the index keeps for `p` (see the header comment).
  static geo::LatLon StoredPosition(geo::LatLon p);
  // Bytes held by the index's own structures (arrays, tree, tables).
  size_t MemoryBytes() const;
  // Rebuilds the static part now (also done automatically; for benchmarks
  // and for callers that want to pay the cost at a quiet moment).
  void Compact();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace amparo::rules
