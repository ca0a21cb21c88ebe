#include "services/rules/exposure_index.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cassert>
#include <cmath>
#include <cstring>
#include <limits>
#include <numbers>
#include <numeric>
#include <optional>
#include <unordered_map>
#include <vector>

#include "services/rules/id_table.h"

namespace amparo::rules {
namespace {

// `v` as its 8 bytes most significant first (what memcpy then writes).
uint64_t ToBigEndian(uint64_t v) {
  if constexpr (std::endian::native == std::endian::little) return __builtin_bswap64(v);
  return v;
}
// 8 bytes read most significant first: the number they stand for.
uint64_t FromBigEndian(uint64_t v) { return ToBigEndian(v); }

// A registrant id as one 128-bit big-endian number, for sorting.
struct IdKey {
  uint64_t hi, lo;
  bool operator<(const IdKey& o) const { return hi != o.hi ? hi < o.hi : lo < o.lo; }
};

using PackedId = ExposureIndex::PackedId;

// Tree shape. A leaf holds at most kLeafSize registrants (its points are
// tested one by one when the area's boundary crosses it); a node with at
// least kAggregateMin registrants keeps its per-profile counts (so a node
// inside the area costs one entry per distinct profile, not one per person).
// Both trade memory against query time; see docs/PERFORMANCE.md.
constexpr uint32_t kLeafSize = 128;
constexpr uint32_t kAggregateMin = 2048;
// Coordinates are kGridBits-bit grid positions (15 cm of longitude, 7.5 cm
// of latitude at the equator); each point keeps the low 16 bits of both,
// and a leaf at level >= kImpliedLevel implies the high bits. Leaves above
// that level (sparse places) store the high parts in `high_`.
constexpr int kGridBits = 28;
constexpr uint32_t kGridMax = (1u << kGridBits) - 1;
constexpr int kImpliedLevel = kGridBits - 16;
// A rebuild folds the delta into the static part once it reaches
// max(kMinDelta, static size / kDeltaDivisor) registrants: queries scan
// the delta one by one, rebuilds cost O(n).
constexpr size_t kMinDelta = 16384;
constexpr size_t kDeltaDivisor = 256;

constexpr double kGridCells = 1u << kGridBits;

uint32_t GridX(double lon) {  // lon 180 wraps to -180: one meridian
  auto v = static_cast<uint64_t>(std::llround((lon + 180.0) * (kGridCells / 360.0)));
  return static_cast<uint32_t>(v & kGridMax);
}
uint32_t GridY(double lat) {  // the north pole is kept 7.5 cm south of it
  auto v = static_cast<uint64_t>(std::llround((lat + 90.0) * (kGridCells / 180.0)));
  return static_cast<uint32_t>(std::min<uint64_t>(v, kGridMax));
}
// Exact in double: 360 / 2^28 = 45 * 2^-25, and x * 45 < 2^34.
double LonOf(uint64_t x) { return static_cast<double>(x) * (360.0 / kGridCells) - 180.0; }
double LatOf(uint64_t y) { return static_cast<double>(y) * (180.0 / kGridCells) - 90.0; }

uint64_t SpreadBits(uint32_t v) {  // bit i -> bit 2i
  uint64_t x = v;
  x = (x | (x << 16)) & 0x0000FFFF0000FFFFULL;
  x = (x | (x << 8)) & 0x00FF00FF00FF00FFULL;
  x = (x | (x << 4)) & 0x0F0F0F0F0F0F0F0FULL;
  x = (x | (x << 2)) & 0x3333333333333333ULL;
  x = (x | (x << 1)) & 0x5555555555555555ULL;
  return x;
}
uint32_t GatherBits(uint64_t x) {  // bit 2i -> bit i
  x &= 0x5555555555555555ULL;
  x = (x | (x >> 1)) & 0x3333333333333333ULL;
  x = (x | (x >> 2)) & 0x0F0F0F0F0F0F0F0FULL;
  x = (x | (x >> 4)) & 0x00FF00FF00FF00FFULL;
  x = (x | (x >> 8)) & 0x0000FFFF0000FFFFULL;
  x = (x | (x >> 16)) & 0x00000000FFFFFFFFULL;
  return static_cast<uint32_t>(x);
}
uint64_t MortonKey(uint32_t x, uint32_t y) { return SpreadBits(x) | SpreadBits(y) << 1; }


uint32_t SaturateU32(uint64_t v) {
  return v > std::numeric_limits<uint32_t>::max() ? std::numeric_limits<uint32_t>::max()
                                                  : static_cast<uint32_t>(v);
}

// Whether [a0, a1] and [b0, b1] overlap, longitudes taken modulo 360.
bool LonOverlap(double a0, double a1, double b0, double b1) {
  for (double shift : {-360.0, 0.0, 360.0}) {
    if (a0 + shift <= b1 && b0 <= a1 + shift) return true;
  }
  return false;
}

bool BoxTouches(const geo::Box& box, const LatLonRect& rect) {
  return box.min_lat <= rect.max_lat && rect.min_lat <= box.max_lat &&
         LonOverlap(box.min_lon, box.max_lon, rect.min_lon, rect.max_lon);
}

// What one registrant contributes to counts, interned: registrants share a
// few hundred thousand distinct profiles at most.
struct Profile {
  uint16_t state, host, admin1;
  uint32_t flags, household;
};

struct ProfileKeyHash {
  size_t operator()(const std::pair<uint64_t, uint64_t>& k) const {
    return std::hash<uint64_t>()(k.first * 0x9e3779b97f4a7c15ULL ^ k.second);
  }
};

// A registrant as the delta and the builders hold it.
struct Record {
  PackedId id;
  uint32_t x, y;  // grid position
  uint32_t profile;
};

// One quadtree node over a contiguous range of the sorted arrays. Its cell
// is (cx, cy) at `level` (2^level cells per axis); single-child chains are
// skipped, so a child may be several levels deeper than its parent.
struct Node {
  uint32_t begin, end;
  uint32_t first_child;  // children are contiguous in nodes_
  uint32_t agg_begin;  // per-profile counts: aggs[agg_begin, next node's agg_begin)
  uint32_t high_begin;          // leaves above kImpliedLevel: high parts in high_
  uint32_t cx, cy;
  uint8_t level;
  uint8_t child_count;
};

struct AggEntry {
  uint32_t profile;
  uint32_t count;  // live registrants of that profile (removals decrement)
};

// The haversine of geo::DistanceKm for points of one small leaf, without
// trigonometry per point: sin and cos of (leaf offset + point offset) by the
// angle-sum identities, the point offset (< 0.1 degree) through Taylor
// series accurate to ~1e-20. Test() returns 1 (inside), -1 (outside) or 0
// when h lies within a band around the threshold far wider than every
// rounding and truncation error (~1e-15 absolute), where only the exact
// geo::DistanceKm may decide. So results equal the exact test's.
class LeafCircleTest {
 public:
  LeafCircleTest(const SearchCircle& c, const LatLonRect& leaf)
      : lat_c_((leaf.min_lat + leaf.max_lat) / 2), lon_c_((leaf.min_lon + leaf.max_lon) / 2) {
    constexpr double kRad = std::numbers::pi / 180;
    const double a = (lat_c_ - c.center.lat) * kRad / 2, cc = (lon_c_ - c.center.lon) * kRad / 2;
    sin_a_ = std::sin(a);
    cos_a_ = std::cos(a);
    sin_c_ = std::sin(cc);
    cos_c_ = std::cos(cc);
    sin_lat_c_ = std::sin(lat_c_ * kRad);
    cos_lat_c_ = std::cos(lat_c_ * kRad);
    cos_lat0_ = std::cos(c.center.lat * kRad);
    const double half = c.radius_km / (2 * geo::kEarthRadiusKm);
    always_in_ = half >= std::numbers::pi / 2;
    const double s = std::sin(std::min(half, std::numbers::pi / 2));
    h_r_ = s * s;
    band_ = h_r_ * 1e-7 + 1e-13;
  }
  int Test(geo::LatLon p) const {
    if (always_in_) return 0;
    constexpr double kRad = std::numbers::pi / 180;
    const double b = (p.lat - lat_c_) * kRad / 2, d = (p.lon - lon_c_) * kRad / 2;
    const double s1 = sin_a_ * CosSmall(b) + cos_a_ * SinSmall(b);
    const double s2 = sin_c_ * CosSmall(d) + cos_c_ * SinSmall(d);
    const double cos_lat = cos_lat_c_ * CosSmall(2 * b) - sin_lat_c_ * SinSmall(2 * b);
    const double h = s1 * s1 + cos_lat0_ * cos_lat * s2 * s2;
    if (h < h_r_ - band_) return 1;
    if (h > h_r_ + band_) return -1;
    return 0;
  }

 private:
  static double SinSmall(double x) {
    const double x2 = x * x;
    return x * (1 - x2 / 6 * (1 - x2 / 20 * (1 - x2 / 42)));
  }
  static double CosSmall(double x) {
    const double x2 = x * x;
    return 1 - x2 / 2 * (1 - x2 / 12 * (1 - x2 / 30));
  }
  double lat_c_, lon_c_;
  double sin_a_, cos_a_, sin_c_, cos_c_, sin_lat_c_, cos_lat_c_, cos_lat0_;
  double h_r_, band_;
  bool always_in_ = false;
};

}  // namespace

struct ExposureIndex::Impl {
  // Interned codes (states, hosts, admin-1 codes share one table).
  std::vector<std::string> codes;
  std::unordered_map<std::string, uint16_t> code_ids;
  std::vector<Profile> profiles;
  std::unordered_map<std::pair<uint64_t, uint64_t>, uint32_t, ProfileKeyHash> profile_ids;
  std::vector<uint32_t> live_per_profile;  // for geocode counts

  // Static part, sorted by Morton key.
  size_t base_n = 0;
  std::vector<PackedId> ids;
  std::vector<uint32_t> prof;
  std::vector<uint16_t> xlo, ylo;
  std::vector<uint32_t> high_;  // (x >> 16) << 16 | (y >> 16)
  std::vector<Node> nodes;
  std::vector<AggEntry> aggs;
  std::vector<uint64_t> dead;  // tombstones, one bit per static slot
  size_t dead_count = 0;

  // Changes since the last rebuild.
  std::vector<Record> delta;
  size_t delta_cap = kMinDelta;

  // Registrant id -> handle: static slot, or base_n + delta index.
  IdTable table;

  bool bulk_loading = false;
  std::vector<Record> staged;

  // Query scratch: per-profile counts (zero between queries) and the
  // profiles touched.
  mutable std::vector<uint32_t> scratch_counts;
  mutable std::vector<uint32_t> touched;
  // Collect(): each touched profile's list of candidate ids (nullptr otherwise).
  mutable std::vector<std::vector<IdKey>*> scratch_bucket;

  // ---- interning ----
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
  Result<uint32_t> InternProfile(const v1::RegistrantLocation& loc) {
    size_t new_codes = 0;
    std::vector<const std::string*> fresh;
    for (const std::string* c : {&loc.state(), &loc.host_country(), &loc.admin1()}) {
      if (!FindCode(*c) && std::find_if(fresh.begin(), fresh.end(), [&](auto* f) { return *f == *c; }) ==
                               fresh.end()) {
        fresh.push_back(c);
        ++new_codes;
      }
    }
    if (codes.size() + new_codes > 0xFFFF) {
      return Status{StatusCode::kResourceExhausted, "more than 65535 distinct state/host/admin1 codes"};
    }
    Profile p{Intern(loc.state()), Intern(loc.host_country()), Intern(loc.admin1()), loc.vulnerability_flags(),
              loc.household_size()};
    std::pair<uint64_t, uint64_t> key{uint64_t{p.state} << 48 | uint64_t{p.host} << 32 | p.admin1,
                                      uint64_t{p.flags} << 32 | p.household};
    auto it = profile_ids.find(key);
    if (it != profile_ids.end()) return it->second;
    if (profiles.size() >= (1u << 31)) {
      return Status{StatusCode::kResourceExhausted, "more than 2^31 distinct registrant profiles"};
    }
    auto id = static_cast<uint32_t>(profiles.size());
    profiles.push_back(p);
    live_per_profile.push_back(0);
    profile_ids.emplace(key, id);
    return id;
  }

  // ---- static part access ----
  uint32_t AggEnd(uint32_t index) const {
    return index + 1 < nodes.size() ? nodes[index + 1].agg_begin : static_cast<uint32_t>(aggs.size());
  }
  bool IsDead(size_t slot) const { return dead[slot >> 6] >> (slot & 63) & 1; }
  const PackedId& IdOfHandle(uint32_t handle) const {
    return handle < base_n ? ids[handle] : delta[handle - base_n].id;
  }
  auto IdOf() const {
    return [this](uint32_t handle) -> const PackedId& { return IdOfHandle(handle); };
  }
  static LatLonRect RectOf(const Node& n) {
    int shift = kGridBits - n.level;
    uint64_t x0 = uint64_t{n.cx} << shift, y0 = uint64_t{n.cy} << shift;
    uint64_t span = (uint64_t{1} << shift) - 1;
    return {LatOf(y0), LatOf(y0 + span), LonOf(x0), LonOf(x0 + span)};
  }
  // Grid position of static slot `i`, a point of leaf `leaf`.
  std::pair<uint32_t, uint32_t> PositionOf(const Node& leaf, size_t i) const {
    uint32_t hx, hy;
    if (leaf.level >= kImpliedLevel) {
      hx = leaf.cx >> (leaf.level - kImpliedLevel);
      hy = leaf.cy >> (leaf.level - kImpliedLevel);
    } else {
      uint32_t h = high_[leaf.high_begin + (i - leaf.begin)];
      hx = h >> 16;
      hy = h & 0xFFFF;
    }
    return {hx << 16 | xlo[i], hy << 16 | ylo[i]};
  }

  // ---- build ----
  // Replaces the static part with `records` (distinct ids) and empties the
  // delta.
  void Build(std::vector<Record> records) {
    const size_t n = records.size();
    std::vector<std::pair<uint64_t, uint32_t>> order(n);
    for (size_t i = 0; i < n; ++i) {
      order[i] = {MortonKey(records[i].x, records[i].y), static_cast<uint32_t>(i)};
    }
    RadixSort(&order);
    base_n = n;
    ids.assign(n, PackedId{});
    prof.assign(n, 0);
    xlo.assign(n, 0);
    ylo.assign(n, 0);
    std::vector<uint64_t> keys(n);
    for (size_t i = 0; i < n; ++i) {
      const Record& r = records[order[i].second];
      keys[i] = order[i].first;
      ids[i] = r.id;
      prof[i] = r.profile;
      xlo[i] = static_cast<uint16_t>(r.x & 0xFFFF);
      ylo[i] = static_cast<uint16_t>(r.y & 0xFFFF);
    }
    records.clear();
    records.shrink_to_fit();
    order.clear();
    order.shrink_to_fit();
    nodes.clear();
    high_.clear();
    if (n > 0) {
      nodes.push_back({});
      BuildNode(keys, 0, 0, static_cast<uint32_t>(n));
    }
    keys.clear();
    keys.shrink_to_fit();
    nodes.shrink_to_fit();
    high_.shrink_to_fit();
    BuildAggregates();
    dead.assign((n + 63) / 64, 0);
    dead_count = 0;
    delta.clear();
    delta.shrink_to_fit();
    delta_cap = std::max(kMinDelta, n / kDeltaDivisor);
    table.Reset(n + delta_cap + 1, static_cast<uint32_t>(n + delta_cap + 1));
    for (uint32_t i = 0; i < n; ++i) table.Insert(ids[i], i, IdOf());
  }

  static void RadixSort(std::vector<std::pair<uint64_t, uint32_t>>* v) {
    std::vector<std::pair<uint64_t, uint32_t>> tmp(v->size());
    for (int shift = 0; shift < 64; shift += 16) {
      std::vector<size_t> count(65537, 0);
      for (const auto& e : *v) ++count[((e.first >> shift) & 0xFFFF) + 1];
      if (std::find(count.begin(), count.end(), v->size()) != count.end()) continue;  // one digit: no-op
      std::partial_sum(count.begin(), count.end(), count.begin());
      for (const auto& e : *v) tmp[count[(e.first >> shift) & 0xFFFF]++] = e;
      v->swap(tmp);
    }
  }

  // Fills nodes[index] for the sorted range [begin, end) (non-empty).
  void BuildNode(const std::vector<uint64_t>& keys, uint32_t index, uint32_t begin, uint32_t end) {
    uint64_t diff = keys[begin] ^ keys[end - 1];
    // The deepest cell holding the whole range.
    int level = diff == 0 ? kGridBits : kGridBits - 1 - (63 - std::countl_zero(diff)) / 2;
    int shift = kGridBits - level;
    uint32_t x = GatherBits(keys[begin]), y = GatherBits(keys[begin] >> 1);
    Node node{};
    node.begin = begin;
    node.end = end;
    node.level = static_cast<uint8_t>(level);
    node.cx = static_cast<uint32_t>(uint64_t{x} >> shift);
    node.cy = static_cast<uint32_t>(uint64_t{y} >> shift);
    if (end - begin <= kLeafSize || level == kGridBits) {
      if (level < kImpliedLevel) {
        node.high_begin = static_cast<uint32_t>(high_.size());
        for (uint32_t i = begin; i < end; ++i) {
          uint32_t px = GatherBits(keys[i]), py = GatherBits(keys[i] >> 1);
          high_.push_back((px >> 16) << 16 | (py >> 16));
        }
      }
      nodes[index] = node;
      return;
    }
    // Split on the two key bits of `level`: quadrants come in key order.
    const int bit = 2 * (kGridBits - 1 - level);
    uint32_t bounds[5] = {begin, 0, 0, 0, end};
    for (uint64_t q = 1; q < 4; ++q) {
      uint64_t prefix = (keys[begin] >> (bit + 2) << 2 | q) << bit;
      bounds[q] = static_cast<uint32_t>(
          std::lower_bound(keys.begin() + begin, keys.begin() + end, prefix) - keys.begin());
    }
    node.first_child = static_cast<uint32_t>(nodes.size());
    std::vector<std::pair<uint32_t, uint32_t>> children;
    for (int q = 0; q < 4; ++q) {
      if (bounds[q] < bounds[q + 1]) children.emplace_back(bounds[q], bounds[q + 1]);
    }
    node.child_count = static_cast<uint8_t>(children.size());
    nodes[index] = node;
    nodes.resize(nodes.size() + children.size());
    for (size_t c = 0; c < children.size(); ++c) {
      BuildNode(keys, node.first_child + static_cast<uint32_t>(c), children[c].first, children[c].second);
    }
  }

  void BuildAggregates() {
    aggs.clear();
    std::vector<uint32_t> counts(profiles.size(), 0);
    std::vector<uint32_t> seen;
    for (Node& node : nodes) {
      node.agg_begin = static_cast<uint32_t>(aggs.size());
      if (node.end - node.begin < kAggregateMin) continue;
      for (uint32_t i = node.begin; i < node.end; ++i) {
        if (counts[prof[i]]++ == 0) seen.push_back(prof[i]);
      }
      std::sort(seen.begin(), seen.end());
      for (uint32_t p : seen) {
        aggs.push_back({p, counts[p]});
        counts[p] = 0;
      }
      seen.clear();
    }
    aggs.shrink_to_fit();
  }

  // Every live registrant, static part first.
  std::vector<Record> LiveRecords() const {
    std::vector<Record> out;
    out.reserve(base_n - dead_count + delta.size());
    for (const Node& node : nodes) {
      if (node.child_count != 0) continue;
      for (uint32_t i = node.begin; i < node.end; ++i) {
        if (IsDead(i)) continue;
        auto [x, y] = PositionOf(node, i);
        out.push_back({ids[i], x, y, prof[i]});
      }
    }
    out.insert(out.end(), delta.begin(), delta.end());
    return out;
  }

  void Rebuild() { Build(LiveRecords()); }

  void MaybeRebuild() {
    if (delta.size() >= delta_cap || dead_count >= std::max(delta_cap, base_n / 4)) Rebuild();
  }

  // Tombstones static slot `slot` and takes it out of every node's counts.
  void Kill(uint32_t slot) {
    dead[slot >> 6] |= uint64_t{1} << (slot & 63);
    ++dead_count;
    const uint32_t p = prof[slot];
    --live_per_profile[p];
    uint32_t index = 0;
    while (true) {
      const Node& node = nodes[index];
      if (node.agg_begin != AggEnd(index)) {
        auto first = aggs.begin() + node.agg_begin, last = aggs.begin() + AggEnd(index);
        auto it = std::lower_bound(first, last, p, [](const AggEntry& e, uint32_t v) { return e.profile < v; });
        assert(it != last && it->profile == p && it->count > 0);
        --it->count;
      }
      if (node.child_count == 0) return;
      uint32_t next = node.first_child;
      while (nodes[next].end <= slot) ++next;
      index = next;
    }
  }

  void FinishBulkLoad() {
    if (!bulk_loading) return;
    bulk_loading = false;
    std::vector<Record> all = LiveRecords();
    all.insert(all.end(), staged.begin(), staged.end());
    staged.clear();
    staged.shrink_to_fit();
    // Later records win: drop every earlier record of the same id.
    std::vector<bool> superseded(all.size(), false);
    {
      IdTable seen;
      seen.Reset(all.size() + 1, static_cast<uint32_t>(all.size() + 1));
      auto id_of = [&all](uint32_t h) -> const PackedId& { return all[h].id; };
      for (uint32_t i = 0; i < all.size(); ++i) {
        uint32_t old = seen.Find(all[i].id, id_of);
        if (old == IdTable::kNone) {
          seen.Insert(all[i].id, i, id_of);
        } else {
          superseded[old] = true;
          seen.Update(all[i].id, i, id_of);
        }
      }
    }
    std::vector<Record> kept;
    kept.reserve(all.size());
    for (size_t i = 0; i < all.size(); ++i) {
      if (!superseded[i]) kept.push_back(all[i]);
    }
    all.clear();
    all.shrink_to_fit();
    std::fill(live_per_profile.begin(), live_per_profile.end(), 0);
    for (const Record& r : kept) ++live_per_profile[r.profile];
    Build(std::move(kept));
  }

  // ---- queries ----
  struct Shapes {
    std::vector<CircleShape> circles;
    std::vector<PolygonShape> polygons;
    std::vector<uint8_t> geo_match;  // per profile; empty without geocodes
    // Grid rows (y) outside [y_lo, y_hi] are outside every shape: the
    // delta's records are settled by two integer comparisons, before the
    // degrees and Contains() (most of a query that exposes nobody).
    uint32_t y_lo = kGridMax, y_hi = 0;
    bool GeoMatch(uint32_t profile) const { return !geo_match.empty() && geo_match[profile]; }
    void CoverLatitudes(double min_lat, double max_lat) {
      // Widened by 0.001 degrees (~110 m) and a cell: a generous margin
      // over the shapes' own (1e-6 degrees) and the grid's rounding.
      const uint32_t lo = GridY(std::max(-90.0, min_lat - 1e-3));
      const uint32_t hi = GridY(std::min(90.0, max_lat + 1e-3));
      y_lo = std::min(y_lo, lo == 0 ? 0 : lo - 1);
      y_hi = std::max(y_hi, std::min(kGridMax, hi + 1));
    }
    bool Contains(geo::LatLon p) const {
      for (const auto& c : circles) {
        if (c.Contains(p)) return true;
      }
      for (const auto& poly : polygons) {
        if (poly.Contains(p)) return true;
      }
      return false;
    }
    Overlap Classify(const LatLonRect& rect) const {
      Overlap result = Overlap::kOutside;
      for (const auto& c : circles) {
        if (!BoxTouches(c.bounds(), rect)) continue;
        Overlap o = c.Classify(rect);
        if (o == Overlap::kInside) return o;
        if (o == Overlap::kBoundary) result = o;
      }
      for (const auto& poly : polygons) {
        if (!BoxTouches(poly.bounds(), rect)) continue;
        Overlap o = poly.Classify(rect);
        if (o == Overlap::kInside) return o;
        if (o == Overlap::kBoundary) result = o;
      }
      return result;
    }
  };

  Shapes Prepare(const SearchArea& area) const {
    Shapes s;
    for (const auto& c : area.circles) {
      if (!geo::IsValid(c.center) || !(c.radius_km >= 0) || !std::isfinite(c.radius_km)) continue;
      s.circles.emplace_back(c);
      s.CoverLatitudes(s.circles.back().bounds().min_lat, s.circles.back().bounds().max_lat);
    }
    for (const auto& p : area.polygons) {
      PolygonShape shape(p);
      if (!shape.valid()) continue;
      s.CoverLatitudes(shape.bounds().min_lat, shape.bounds().max_lat);
      s.polygons.push_back(std::move(shape));
    }
    if (!area.host_countries.empty() || !area.admin1_codes.empty()) {
      std::vector<uint8_t> host_hit(codes.size(), 0), admin1_hit(codes.size(), 0);
      for (const auto& c : area.host_countries) {
        if (auto id = FindCode(c)) host_hit[*id] = 1;
      }
      for (const auto& c : area.admin1_codes) {
        if (auto id = FindCode(c)) admin1_hit[*id] = 1;
      }
      s.geo_match.resize(profiles.size(), 0);
      for (size_t p = 0; p < profiles.size(); ++p) {
        s.geo_match[p] = host_hit[profiles[p].host] || admin1_hit[profiles[p].admin1];
      }
    }
    return s;
  }

  // Exposed registrants: counts per profile (in scratch_counts/touched) and,
  // when `positions` is given, their handles.
  struct Walk {
    const Impl& m;
    const Shapes& shapes;
    std::vector<uint32_t>* positions;  // nullptr: counts only

    void Add(uint32_t profile, uint32_t n) const {
      if (m.scratch_counts[profile] == 0) m.touched.push_back(profile);
      m.scratch_counts[profile] += n;
    }
    void TakeWhole(uint32_t index) const {
      const Node& node = m.nodes[index];
      const uint32_t agg_end = m.AggEnd(index);
      if (positions == nullptr && node.agg_begin != agg_end) {
        for (uint32_t a = node.agg_begin; a < agg_end; ++a) {
          const AggEntry& e = m.aggs[a];
          if (e.count != 0 && !shapes.GeoMatch(e.profile)) Add(e.profile, e.count);
        }
        return;
      }
      for (uint32_t i = node.begin; i < node.end; ++i) {
        if (m.IsDead(i) || shapes.GeoMatch(m.prof[i])) continue;
        Add(m.prof[i], 1);
        if (positions) positions->push_back(i);
      }
    }
    void ScanLeaf(const Node& node) const {
      // Small leaves with one circle (the common case at a circle's rim):
      // a trig-free haversine expanded around the leaf centre decides all
      // but the points within a few millimetres of the rim, which get the
      // exact test.
      std::optional<LeafCircleTest> fast;
      if (shapes.circles.size() == 1 && shapes.polygons.empty() && node.level >= kImpliedLevel) {
        fast.emplace(shapes.circles[0].circle(), RectOf(node));
      }
      for (uint32_t i = node.begin; i < node.end; ++i) {
        if (m.IsDead(i) || shapes.GeoMatch(m.prof[i])) continue;
        auto [x, y] = m.PositionOf(node, i);
        const geo::LatLon p{LatOf(y), LonOf(x)};
        int verdict = fast ? fast->Test(p) : 0;
        if (verdict < 0 || (verdict == 0 && !shapes.Contains(p))) continue;
        Add(m.prof[i], 1);
        if (positions) positions->push_back(i);
      }
    }
    void Visit(uint32_t index) const {
      const Node& node = m.nodes[index];
      Overlap o = shapes.Classify(RectOf(node));
      if (o == Overlap::kOutside) return;
      if (o == Overlap::kInside) return TakeWhole(index);
      if (node.child_count == 0) return ScanLeaf(node);
      for (uint32_t c = 0; c < node.child_count; ++c) Visit(node.first_child + c);
    }
  };

  void Run(const Shapes& shapes, std::vector<uint32_t>* positions) const {
    if (scratch_counts.size() < profiles.size()) scratch_counts.resize(profiles.size(), 0);
    touched.clear();
    Walk walk{*this, shapes, positions};
    if (!shapes.circles.empty() || !shapes.polygons.empty()) {
      if (!nodes.empty()) walk.Visit(0);
      for (uint32_t d = 0; d < delta.size(); ++d) {
        const Record& r = delta[d];
        if (r.y < shapes.y_lo || r.y > shapes.y_hi) continue;
        if (shapes.GeoMatch(r.profile) || !shapes.Contains({LatOf(r.y), LonOf(r.x)})) continue;
        walk.Add(r.profile, 1);
        if (positions) positions->push_back(static_cast<uint32_t>(base_n + d));
      }
    }
    if (!shapes.geo_match.empty()) {
      // Geocodes select by profile: the live counts need no walk at all.
      for (uint32_t p = 0; p < profiles.size(); ++p) {
        if (shapes.geo_match[p] && live_per_profile[p] != 0) walk.Add(p, live_per_profile[p]);
      }
      if (positions) {
        for (uint32_t i = 0; i < base_n; ++i) {
          if (!IsDead(i) && shapes.geo_match[prof[i]]) positions->push_back(i);
        }
        for (uint32_t d = 0; d < delta.size(); ++d) {
          if (shapes.geo_match[delta[d].profile]) positions->push_back(static_cast<uint32_t>(base_n + d));
        }
      }
    }
  }

  uint32_t ProfileOfHandle(uint32_t h) const { return h < base_n ? prof[h] : delta[h - base_n].profile; }

  Exposure Collect(const std::vector<uint32_t>* positions, size_t max_ids) const {
    // (state << 16 | host) -> result group (and its candidate ids), filled
    // from the touched profiles.
    struct Candidates {
      GroupExposure* group;
      std::vector<IdKey> vulnerable, others;
    };
    std::unordered_map<uint32_t, Candidates> groups;
    const bool with_ids = positions != nullptr && max_ids != 0;
    if (with_ids && scratch_bucket.size() < profiles.size()) scratch_bucket.resize(profiles.size(), nullptr);
    Exposure result;
    for (uint32_t p : touched) {
      const uint32_t n = scratch_counts[p];
      scratch_counts[p] = 0;
      const Profile& pr = profiles[p];
      uint32_t key = uint32_t{pr.state} << 16 | pr.host;
      auto [it, fresh] = groups.try_emplace(key);
      if (fresh) it->second.group = &result[{codes[pr.state], codes[pr.host]}];
      GroupExposure& g = *it->second.group;
      // Where this profile's people go, for the id pass below.
      if (with_ids) scratch_bucket[p] = pr.flags != 0 ? &it->second.vulnerable : &it->second.others;
      const uint64_t members = uint64_t{n} * pr.household;
      const uint32_t vulnerable = pr.flags != 0 ? n : 0;
      for (ExposureCounts* c : {&g.counts, &g.by_admin1[codes[pr.admin1]]}) {
        c->registrants += n;
        c->household_members = SaturateU32(uint64_t{c->household_members} + members);
        c->vulnerable += vulnerable;
      }
      for (uint32_t flags = pr.flags; flags != 0; flags &= flags - 1) {
        g.with_flag[std::countr_zero(flags)] += n;
      }
    }
    if (!with_ids) {
      touched.clear();
      return result;
    }

    // Vulnerable people first (whom consular staff must reach first), then
    // ascending id: each group's candidates in two lists, each sorted by the
    // id read as one 128-bit big-endian number (two integer comparisons; a
    // byte-wise compare of the arrays was a library call per comparison).
    // Each person's list comes from the table filled above (two hash
    // lookups a person were a third of this function's time).
    auto key_of = [](const PackedId& id) {
      uint64_t hi, lo;
      std::memcpy(&hi, id.data(), 8);
      std::memcpy(&lo, id.data() + 8, 8);
      return IdKey{FromBigEndian(hi), FromBigEndian(lo)};
    };
    for (uint32_t h : *positions) scratch_bucket[ProfileOfHandle(h)]->push_back(key_of(IdOfHandle(h)));
    for (uint32_t p : touched) scratch_bucket[p] = nullptr;
    touched.clear();
    std::vector<IdKey> sorted;
    for (auto& [key, c] : groups) {
      GroupExposure* group = c.group;
      const size_t k = std::min(max_ids, c.vulnerable.size() + c.others.size());
      group->packed_ids.resize(k * kPackedRegistrantIdBytes);
      char* out = group->packed_ids.data();
      // The `n` smallest of `keys`, ascending, written as 16 bytes each.
      // One bucket pass, then a small sort per bucket: the buckets are the 8
      // bits just below the highest bit in which any two keys differ. The
      // keys agree above it, so bucket order is key order whatever the ids
      // look like: random (the first byte) or the gateway's sequences (a
      // shared prefix, then a counter). A third of the time of std::sort
      // over the whole list (~2,200 candidates per exposing event in
      // bench-pipeline, where that sort was ~7% of amparo-rules' CPU).
      auto take = [&out, &sorted](std::vector<IdKey>& keys, size_t n) {
        if (keys.empty()) return;
        uint64_t diff_hi = 0, diff_lo = 0;
        for (const IdKey& key : keys) {
          diff_hi |= key.hi ^ keys[0].hi;
          diff_lo |= key.lo ^ keys[0].lo;
        }
        const bool on_hi = diff_hi != 0;
        const uint64_t diff = on_hi ? diff_hi : diff_lo;
        const int top = diff == 0 ? 0 : 63 - std::countl_zero(diff);
        const int shift = std::max(0, top - 7);
        auto digit = [&](const IdKey& key) { return ((on_hi ? key.hi : key.lo) >> shift) & 255; };
        std::array<uint32_t, 257> start{};
        for (const IdKey& key : keys) ++start[digit(key) + 1];
        for (size_t b = 1; b < start.size(); ++b) start[b] += start[b - 1];
        sorted.resize(keys.size());
        std::array<uint32_t, 256> next;
        std::copy(start.begin(), start.end() - 1, next.begin());
        for (const IdKey& key : keys) sorted[next[digit(key)]++] = key;
        size_t written = 0;
        for (size_t b = 0; b < 256 && written < n; ++b) {
          auto first = sorted.begin() + start[b], last = sorted.begin() + start[b + 1];
          std::sort(first, last);
          for (auto it = first; it != last && written < n; ++it, ++written) {
            const uint64_t big_endian[2] = {ToBigEndian(it->hi), ToBigEndian(it->lo)};
            std::memcpy(out, big_endian, sizeof big_endian);
            out += sizeof big_endian;
          }
        }
      };
      const size_t first = std::min(k, c.vulnerable.size());
      take(c.vulnerable, first);
      take(c.others, k - first);
    }
    return result;
  }
};

ExposureIndex::ExposureIndex() : impl_(std::make_unique<Impl>()) {}
ExposureIndex::~ExposureIndex() = default;
ExposureIndex::ExposureIndex(ExposureIndex&&) noexcept = default;
ExposureIndex& ExposureIndex::operator=(ExposureIndex&&) noexcept = default;

std::string ExposureIndex::FormatId(const PackedId& id) { return FormatRegistrantId(id); }

std::vector<std::string> GroupExposure::registrant_ids() const { return HexRegistrantIds(packed_ids); }

bool GroupExposure::AddId(std::string_view hex) {
  PackedRegistrantId id;
  if (!ParseRegistrantId(hex, &id)) return false;
  packed_ids.append(reinterpret_cast<const char*>(id.data()), id.size());
  return true;
}

geo::LatLon ExposureIndex::StoredPosition(geo::LatLon p) {
  return {LatOf(GridY(p.lat)), LonOf(GridX(p.lon))};
}

Status ExposureIndex::Validate(const v1::RegistrantLocation& location) {
  PackedId id;
  if (!ParseRegistrantId(location.registrant_id(), &id)) {
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
  Impl& m = *impl_;
  Record record;
  ParseRegistrantId(location.registrant_id(), &record.id);  // cannot fail after Validate()
  auto profile = m.InternProfile(location);
  if (!profile.ok()) return profile.status();
  record.profile = *profile;
  record.x = GridX(location.lon());
  record.y = GridY(location.lat());
  if (m.bulk_loading) {
    m.staged.push_back(record);
    return Status::Ok();
  }
  const uint32_t handle = m.table.Find(record.id, m.IdOf());
  if (handle != IdTable::kNone && handle >= m.base_n) {
    Record& old = m.delta[handle - m.base_n];
    --m.live_per_profile[old.profile];
    old = record;
    ++m.live_per_profile[record.profile];
    return Status::Ok();
  }
  if (handle != IdTable::kNone) m.Kill(handle);
  const auto new_handle = static_cast<uint32_t>(m.base_n + m.delta.size());
  m.delta.push_back(record);
  ++m.live_per_profile[record.profile];
  if (handle != IdTable::kNone) {
    m.table.Update(record.id, new_handle, m.IdOf());
  } else {
    m.table.Insert(record.id, new_handle, m.IdOf());
  }
  m.MaybeRebuild();
  return Status::Ok();
}

bool ExposureIndex::Remove(std::string_view registrant_id) {
  Impl& m = *impl_;
  m.FinishBulkLoad();
  PackedId id;
  if (!ParseRegistrantId(registrant_id, &id)) return false;
  const uint32_t handle = m.table.Find(id, m.IdOf());
  if (handle == IdTable::kNone) return false;
  m.table.Erase(id, m.IdOf());
  if (handle < m.base_n) {
    m.Kill(handle);
  } else {
    const size_t d = handle - m.base_n;
    --m.live_per_profile[m.delta[d].profile];
    if (d + 1 != m.delta.size()) {
      m.delta[d] = m.delta.back();
      m.table.Update(m.delta[d].id, handle, m.IdOf());
    }
    m.delta.pop_back();
  }
  m.MaybeRebuild();
  return true;
}

bool ExposureIndex::Contains(std::string_view registrant_id) const {
  impl_->FinishBulkLoad();
  PackedId id;
  return ParseRegistrantId(registrant_id, &id) && impl_->table.Find(id, impl_->IdOf()) != IdTable::kNone;
}

size_t ExposureIndex::Size() const {
  impl_->FinishBulkLoad();
  return impl_->base_n - impl_->dead_count + impl_->delta.size();
}

void ExposureIndex::BeginBulkLoad() { impl_->bulk_loading = true; }
void ExposureIndex::EndBulkLoad() { impl_->FinishBulkLoad(); }
void ExposureIndex::Compact() {
  impl_->FinishBulkLoad();
  impl_->Rebuild();
}

Exposure ExposureIndex::QueryCircle(geo::LatLon center, double radius_km, size_t max_ids_per_group) const {
  SearchArea area;
  area.circles.push_back({center, radius_km});
  return Query(area, max_ids_per_group);
}

Exposure ExposureIndex::QueryArea(const v1::Area& area, size_t max_ids_per_group) const {
  // SearchAreaFromProto reads outer rings only and drops invalid polygons, so
  // each polygon is converted alone to keep its holes with it. A hole that is
  // not a valid ring on its own is dropped: it removes no one, so nobody near
  // a malformed hole is missed.
  v1::Area circles_only;
  *circles_only.mutable_circles() = area.circles();
  SearchArea search = SearchAreaFromProto(circles_only, /*with_geocodes=*/false);
  for (const v1::Polygon& polygon : area.polygons()) {
    v1::Area outer_only;
    *outer_only.add_polygons()->mutable_vertices() = polygon.vertices();
    SearchArea converted = SearchAreaFromProto(outer_only, /*with_geocodes=*/false);
    if (converted.polygons.empty()) continue;
    SearchPolygon& kept = converted.polygons.front();
    for (const v1::Ring& hole : polygon.holes()) {
      SearchPolygon as_polygon;
      for (const v1::LatLon& v : hole.vertices()) as_polygon.outer.push_back({v.lat(), v.lon()});
      if (PolygonShape(as_polygon).valid()) kept.holes.push_back(std::move(as_polygon.outer));
    }
    search.polygons.push_back(std::move(kept));
  }
  if (search.circles.empty() && search.polygons.empty()) {
    // No shape at all: the area is its country / admin-1 codes (a footprint
    // "source-geocode"). Next to a shape they describe the same place.
    SearchArea codes = SearchAreaFromProto(v1::Area(area), /*with_geocodes=*/true);
    search.host_countries = std::move(codes.host_countries);
    search.admin1_codes = std::move(codes.admin1_codes);
  }
  return Query(search, max_ids_per_group);
}

Exposure ExposureIndex::Query(const SearchArea& area, size_t max_ids_per_group) const {
  assert(!impl_->bulk_loading);
  Impl::Shapes shapes = impl_->Prepare(area);
  if (max_ids_per_group == 0) {
    impl_->Run(shapes, nullptr);
    return impl_->Collect(nullptr, 0);
  }
  std::vector<uint32_t> positions;
  impl_->Run(shapes, &positions);
  return impl_->Collect(&positions, max_ids_per_group);
}

void ExposureIndex::ListExposed(const SearchArea& area, std::vector<PackedId>* ids) const {
  assert(!impl_->bulk_loading);
  Impl::Shapes shapes = impl_->Prepare(area);
  std::vector<uint32_t> positions;
  impl_->Run(shapes, &positions);
  for (uint32_t p : impl_->touched) impl_->scratch_counts[p] = 0;
  impl_->touched.clear();
  ids->clear();
  ids->reserve(positions.size());
  for (uint32_t h : positions) ids->push_back(impl_->IdOfHandle(h));
}

size_t ExposureIndex::MemoryBytes() const {
  const Impl& m = *impl_;
  auto bytes = [](const auto& v) { return v.capacity() * sizeof(v[0]); };
  size_t codes_bytes = 0;
  for (const auto& c : m.codes) codes_bytes += sizeof(c) + c.capacity() + 48;  // + map node
  return bytes(m.ids) + bytes(m.prof) + bytes(m.xlo) + bytes(m.ylo) + bytes(m.high_) + bytes(m.nodes) +
         bytes(m.aggs) + bytes(m.dead) + bytes(m.delta) + bytes(m.staged) + m.table.MemoryBytes() +
         bytes(m.profiles) + bytes(m.live_per_profile) + m.profile_ids.size() * 48 +
         bytes(m.scratch_counts) + bytes(m.touched) + codes_bytes;
}

}  // namespace amparo::rules
