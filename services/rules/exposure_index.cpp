#include "services/rules/exposure_index.h"

#include <algorithm>
#include <array>
#include <cassert>
#include <cmath>
#include <cstring>
#include <limits>
#include <optional>
#include <unordered_map>
#include <vector>

#include <boost/geometry.hpp>
#include <boost/geometry/index/rtree.hpp>

namespace amparo::rules {
namespace {

namespace bg = boost::geometry;
namespace bgi = boost::geometry::index;

// The tree stores float points to halve its size; floats are within ~1e-5
// degrees of the stored doubles, so candidate boxes are padded by more than
// that and the exact distance test runs on the doubles kept in the record.
using TreePoint = bg::model::point<float, 2, bg::cs::cartesian>;  // (lon, lat)
using TreeBox = bg::model::box<TreePoint>;
using TreeValue = std::pair<TreePoint, uint32_t>;  // point, slot in records_
using Tree = bgi::rtree<TreeValue, bgi::rstar<16>>;
constexpr double kPadDegrees = 1e-4;

using PlanePoint = bg::model::point<double, 2, bg::cs::cartesian>;  // (lon, lat)
using PlanePolygon = bg::model::polygon<PlanePoint>;

using PackedId = std::array<uint8_t, 16>;

constexpr uint16_t kFreeSlot = 0xFFFF;   // Record::state of an unused slot
constexpr size_t kMaxCodes = kFreeSlot;  // interned codes 0..65534

struct Record {
  double lat;
  double lon;
  PackedId id;
  uint32_t household_size;
  uint32_t vulnerability_flags;
  uint16_t state;  // interned code, kFreeSlot when the slot is unused
  uint16_t host;   // interned code
};
static_assert(sizeof(Record) <= 48);

uint64_t Mix(uint64_t x) {  // splitmix64 finaliser
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

size_t HashId(const PackedId& id) {
  uint64_t hi, lo;
  std::memcpy(&hi, id.data(), 8);
  std::memcpy(&lo, id.data() + 8, 8);
  return static_cast<size_t>(Mix(hi) ^ Mix(lo + 0x9e3779b97f4a7c15ULL));
}

// Registrant id -> slot in the records vector: an open-addressing table
// (linear probing, backward-shift deletion) of slot numbers whose keys are
// the ids stored in the records themselves. 4 bytes per cell at most 70%
// full, against ~56 for a node-based std::unordered_map entry.
class SlotTable {
 public:
  static constexpr uint32_t kEmpty = std::numeric_limits<uint32_t>::max();

  size_t size() const { return size_; }

  uint32_t Find(const PackedId& id, const std::vector<Record>& records) const {
    if (cells_.empty()) return kEmpty;
    for (size_t i = HashId(id) & mask_;; i = (i + 1) & mask_) {
      if (cells_[i] == kEmpty) return kEmpty;
      if (records[cells_[i]].id == id) return cells_[i];
    }
  }

  // `slot`'s id must not be in the table yet.
  void Insert(uint32_t slot, const std::vector<Record>& records) {
    if ((size_ + 1) * 10 > cells_.size() * 7) Grow(records);
    Place(slot, records);
    ++size_;
  }

  void Erase(const PackedId& id, const std::vector<Record>& records) {
    size_t i = HashId(id) & mask_;
    while (records[cells_[i]].id != id) i = (i + 1) & mask_;
    cells_[i] = kEmpty;
    --size_;
    // Pull later members of the probe run back so no lookup stops early.
    for (size_t j = (i + 1) & mask_; cells_[j] != kEmpty; j = (j + 1) & mask_) {
      size_t home = HashId(records[cells_[j]].id) & mask_;
      bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
      if (stays) continue;
      cells_[i] = cells_[j];
      cells_[j] = kEmpty;
      i = j;
    }
  }

 private:
  void Place(uint32_t slot, const std::vector<Record>& records) {
    size_t i = HashId(records[slot].id) & mask_;
    while (cells_[i] != kEmpty) i = (i + 1) & mask_;
    cells_[i] = slot;
  }
  void Grow(const std::vector<Record>& records) {
    std::vector<uint32_t> old = std::move(cells_);
    cells_.assign(old.empty() ? 16 : old.size() * 2, kEmpty);
    mask_ = cells_.size() - 1;
    for (uint32_t slot : old) {
      if (slot != kEmpty) Place(slot, records);
    }
  }

  std::vector<uint32_t> cells_;
  size_t mask_ = 0;
  size_t size_ = 0;
};

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

bool PackId(std::string_view text, PackedId* out) {
  if (text.size() != 32) return false;
  for (size_t i = 0; i < 16; ++i) {
    int hi = HexValue(text[2 * i]), lo = HexValue(text[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    (*out)[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return true;
}

std::string UnpackId(const PackedId& id) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(32, '0');
  for (size_t i = 0; i < 16; ++i) {
    out[2 * i] = kHex[id[i] >> 4];
    out[2 * i + 1] = kHex[id[i] & 15];
  }
  return out;
}

TreePoint ToTreePoint(const Record& r) {
  return TreePoint(static_cast<float>(r.lon), static_cast<float>(r.lat));
}

TreeBox PaddedBox(double min_lon, double min_lat, double max_lon, double max_lat) {
  return TreeBox(
      TreePoint(static_cast<float>(min_lon - kPadDegrees), static_cast<float>(min_lat - kPadDegrees)),
      TreePoint(static_cast<float>(max_lon + kPadDegrees), static_cast<float>(max_lat + kPadDegrees)));
}

// Candidate boxes for a lon/lat box whose longitudes may leave -180..180
// (geo::BoundingBox of a circle crossing the antimeridian, or an unwrapped
// polygon): one box, two boxes split at the antimeridian, or the whole
// latitude band when the pieces would overlap.
std::vector<TreeBox> SplitAtAntimeridian(double min_lon, double min_lat, double max_lon, double max_lat) {
  if (max_lon - min_lon >= 360 || (min_lon <= -180 && max_lon >= 180)) {
    return {PaddedBox(-180, min_lat, 180, max_lat)};
  }
  if (min_lon < -180) {
    return {PaddedBox(min_lon + 360, min_lat, 180, max_lat), PaddedBox(-180, min_lat, max_lon, max_lat)};
  }
  if (max_lon > 180) {
    return {PaddedBox(min_lon, min_lat, 180, max_lat), PaddedBox(-180, min_lat, max_lon - 360, max_lat)};
  }
  return {PaddedBox(min_lon, min_lat, max_lon, max_lat)};
}

uint32_t SaturatingAdd(uint32_t a, uint32_t b) {
  return b > std::numeric_limits<uint32_t>::max() - a ? std::numeric_limits<uint32_t>::max() : a + b;
}

}  // namespace

struct ExposureIndex::Impl {
  std::vector<Record> records;
  std::vector<uint32_t> free_slots;
  SlotTable slot_by_id;
  std::vector<std::string> codes;  // interned state/host codes
  std::unordered_map<std::string, uint16_t> code_ids;
  Tree tree;
  bool bulk_loading = false;

  std::optional<uint16_t> FindCode(const std::string& code) const {
    auto it = code_ids.find(code);
    if (it == code_ids.end()) return std::nullopt;
    return it->second;
  }
  uint16_t Intern(const std::string& code) {
    if (auto id = FindCode(code)) return *id;
    auto id = static_cast<uint16_t>(codes.size());
    codes.push_back(code);
    code_ids.emplace(code, id);
    return id;
  }

  // Adds the slots of registrants inside `box` that pass `keep` to `out`.
  template <typename Keep>
  void Collect(const TreeBox& box, Keep keep, std::vector<uint32_t>* out) const {
    for (auto it = tree.qbegin(bgi::intersects(box)); it != tree.qend(); ++it) {
      if (keep(records[it->second])) out->push_back(it->second);
    }
  }

  // Returns the number of boxes queried (more than one can yield repeats).
  size_t CollectCircle(geo::LatLon center, double radius_km, std::vector<uint32_t>* out) const {
    if (!geo::IsValid(center) || !(radius_km >= 0) || !std::isfinite(radius_km)) return 0;
    geo::Box b = geo::BoundingBox(center, radius_km);
    auto boxes = SplitAtAntimeridian(b.min_lon, b.min_lat, b.max_lon, b.max_lat);
    for (const auto& box : boxes) {
      Collect(
          box,
          [&](const Record& r) {
            return geo::DistanceKm(center, {r.lat, r.lon}) <= radius_km;
          },
          out);
    }
    return boxes.size();
  }

  size_t CollectPolygon(const v1::Polygon& polygon, std::vector<uint32_t>* out) const {
    if (polygon.vertices_size() < 3) return 0;
    double min_lon = 180, max_lon = -180, min_lat = 90, max_lat = -90;
    for (const auto& v : polygon.vertices()) {
      if (!geo::IsValid({v.lat(), v.lon()})) return 0;
      min_lon = std::min(min_lon, v.lon());
      max_lon = std::max(max_lon, v.lon());
      min_lat = std::min(min_lat, v.lat());
      max_lat = std::max(max_lat, v.lat());
    }
    // A ring spanning more than half the globe in longitude is read as one
    // crossing the antimeridian: work in 0..360 so its edges stay short.
    const bool unwrap = max_lon - min_lon > 180;
    auto plane_lon = [unwrap](double lon) { return unwrap && lon < 0 ? lon + 360 : lon; };
    PlanePolygon ring;
    double plane_min_lon = 360, plane_max_lon = -180;
    for (const auto& v : polygon.vertices()) {
      double lon = plane_lon(v.lon());
      plane_min_lon = std::min(plane_min_lon, lon);
      plane_max_lon = std::max(plane_max_lon, lon);
      bg::append(ring.outer(), PlanePoint(lon, v.lat()));
    }
    bg::correct(ring);  // closes the ring and fixes its orientation
    auto boxes = SplitAtAntimeridian(plane_min_lon, min_lat, plane_max_lon, max_lat);
    for (const auto& box : boxes) {
      Collect(
          box, [&](const Record& r) { return bg::covered_by(PlanePoint(plane_lon(r.lon), r.lat), ring); },
          out);
    }
    return boxes.size();
  }

  Exposure Aggregate(std::vector<uint32_t>& slots, bool may_repeat, size_t max_ids) const {
    if (may_repeat) {
      std::sort(slots.begin(), slots.end());
      slots.erase(std::unique(slots.begin(), slots.end()), slots.end());
    }
    struct Group {
      ExposureCounts counts;
      std::vector<uint32_t> slots;
    };
    std::unordered_map<uint32_t, Group> groups;  // key: state << 16 | host
    for (uint32_t slot : slots) {
      const Record& r = records[slot];
      Group& g = groups[static_cast<uint32_t>(r.state) << 16 | r.host];
      ++g.counts.registrants;
      g.counts.household_members = SaturatingAdd(g.counts.household_members, r.household_size);
      if (r.vulnerability_flags != 0) ++g.counts.vulnerable;
      g.slots.push_back(slot);
    }
    Exposure result;
    for (auto& [key, group] : groups) {
      GroupExposure& out = result[{codes[key >> 16], codes[key & 0xFFFF]}];
      out.counts = group.counts;
      // Vulnerable people first: they are whom consular staff must reach first.
      auto before = [this](uint32_t a, uint32_t b) {
        const Record& ra = records[a];
        const Record& rb = records[b];
        bool va = ra.vulnerability_flags != 0, vb = rb.vulnerability_flags != 0;
        if (va != vb) return va;
        return ra.id < rb.id;
      };
      size_t n = std::min(max_ids, group.slots.size());
      std::partial_sort(group.slots.begin(), group.slots.begin() + static_cast<ptrdiff_t>(n),
                        group.slots.end(), before);
      out.registrant_ids.reserve(n);
      for (size_t i = 0; i < n; ++i) out.registrant_ids.push_back(UnpackId(records[group.slots[i]].id));
    }
    return result;
  }
};

ExposureIndex::ExposureIndex() : impl_(std::make_unique<Impl>()) {}
ExposureIndex::~ExposureIndex() = default;
ExposureIndex::ExposureIndex(ExposureIndex&&) noexcept = default;
ExposureIndex& ExposureIndex::operator=(ExposureIndex&&) noexcept = default;

Status ExposureIndex::Validate(const v1::RegistrantLocation& location) {
  PackedId id;
  if (!PackId(location.registrant_id(), &id)) {
    return InvalidArgument("must be 32 lowercase hex characters", "registrant_id");
  }
  if (location.state().empty() || location.state().size() > 16) {
    return InvalidArgument("must be an ISO 3166-1 alpha-3 code", "state");
  }
  if (location.host_country().size() > 16) {
    return InvalidArgument("must be an ISO 3166-1 alpha-3 code or empty", "host_country");
  }
  if (!geo::IsValid({location.lat(), location.lon()})) {
    return InvalidArgument("lat must be within -90..90 and lon within -180..180", "lat");
  }
  if (location.household_size() == 0) return InvalidArgument("must be at least 1", "household_size");
  return Status::Ok();
}

Status ExposureIndex::Upsert(const v1::RegistrantLocation& location) {
  AMPARO_RETURN_IF_ERROR(Validate(location));
  PackedId id;
  PackId(location.registrant_id(), &id);  // cannot fail after Validate()
  Impl& m = *impl_;
  size_t new_codes = !m.FindCode(location.state()).has_value() +
                     (location.host_country() != location.state() && !m.FindCode(location.host_country()));
  if (m.codes.size() + new_codes > kMaxCodes) {
    return {StatusCode::kResourceExhausted, "more than 65535 distinct state/host codes"};
  }
  Record record{location.lat(),
                location.lon(),
                id,
                location.household_size(),
                location.vulnerability_flags(),
                m.Intern(location.state()),
                m.Intern(location.host_country())};

  uint32_t slot = m.slot_by_id.Find(id, m.records);
  if (slot != SlotTable::kEmpty) {
    if (!m.bulk_loading) m.tree.remove(TreeValue(ToTreePoint(m.records[slot]), slot));
    m.records[slot] = record;
    if (!m.bulk_loading) m.tree.insert(TreeValue(ToTreePoint(record), slot));
    return Status::Ok();
  }
  if (!m.free_slots.empty()) {
    slot = m.free_slots.back();
    m.free_slots.pop_back();
    m.records[slot] = record;
  } else {
    slot = static_cast<uint32_t>(m.records.size());
    m.records.push_back(record);
  }
  m.slot_by_id.Insert(slot, m.records);
  if (!m.bulk_loading) m.tree.insert(TreeValue(ToTreePoint(record), slot));
  return Status::Ok();
}

bool ExposureIndex::Remove(std::string_view registrant_id) {
  Impl& m = *impl_;
  PackedId id;
  if (!PackId(registrant_id, &id)) return false;
  uint32_t slot = m.slot_by_id.Find(id, m.records);
  if (slot == SlotTable::kEmpty) return false;
  if (!m.bulk_loading) m.tree.remove(TreeValue(ToTreePoint(m.records[slot]), slot));
  m.slot_by_id.Erase(id, m.records);  // before the slot is marked free: it reads the id
  m.records[slot].state = kFreeSlot;
  m.free_slots.push_back(slot);
  return true;
}

bool ExposureIndex::Contains(std::string_view registrant_id) const {
  PackedId id;
  return PackId(registrant_id, &id) && impl_->slot_by_id.Find(id, impl_->records) != SlotTable::kEmpty;
}

size_t ExposureIndex::Size() const { return impl_->slot_by_id.size(); }

void ExposureIndex::BeginBulkLoad() { impl_->bulk_loading = true; }

void ExposureIndex::EndBulkLoad() {
  Impl& m = *impl_;
  if (!m.bulk_loading) return;
  std::vector<TreeValue> values;
  values.reserve(m.slot_by_id.size());
  for (uint32_t slot = 0; slot < m.records.size(); ++slot) {
    if (m.records[slot].state != kFreeSlot) values.emplace_back(ToTreePoint(m.records[slot]), slot);
  }
  m.tree = Tree(values.begin(), values.end());  // the range constructor packs (STR-like bulk load)
  m.bulk_loading = false;
}

Exposure ExposureIndex::QueryCircle(geo::LatLon center, double radius_km, size_t max_ids_per_group) const {
  assert(!impl_->bulk_loading);
  std::vector<uint32_t> slots;
  size_t boxes = impl_->CollectCircle(center, radius_km, &slots);
  return impl_->Aggregate(slots, boxes > 1, max_ids_per_group);
}

Exposure ExposureIndex::QueryArea(const v1::Area& area, size_t max_ids_per_group) const {
  assert(!impl_->bulk_loading);
  std::vector<uint32_t> slots;
  size_t boxes = 0;
  for (const auto& circle : area.circles()) {
    boxes += impl_->CollectCircle({circle.center().lat(), circle.center().lon()}, circle.radius_km(), &slots);
  }
  for (const auto& polygon : area.polygons()) boxes += impl_->CollectPolygon(polygon, &slots);
  return impl_->Aggregate(slots, boxes > 1, max_ids_per_group);
}

}  // namespace amparo::rules
