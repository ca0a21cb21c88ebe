// IdTable: registrant id (16 bytes) -> 32-bit handle, the lookup behind
// ExposureIndex's Upsert/Remove/Contains.
//
// Open addressing with linear probing over 32-bit cells, 88% full after a
// rebuild, rehashed at 90% (entries plus tombstones).
// The ids themselves are not stored: a cell holds the handle plus as many
// bits of the id's hash as the handle leaves free (a fingerprint, so a probe
// rarely has to fetch an id to compare), and the caller passes `id_of`
// (handle -> id) to resolve them. About 4.5 bytes per entry instead of the
// ~60 of a node-based map.
//
// Handles must be below the `max_handle` given to Reset(). Erase leaves a
// tombstone; the table rehashes itself when tombstones and entries fill it.
// Thread safety: none.
#pragma once

#include <array>
#include <bit>
#include <cstdint>
#include <cstring>
#include <vector>

namespace amparo::rules {

class IdTable {
 public:
  using Id = std::array<uint8_t, 16>;
  static constexpr uint32_t kNone = 0xFFFFFFFFu;

  // Empties the table, sized for `expected` entries with handles < max_handle.
  void Reset(size_t expected, uint32_t max_handle) {
    handle_bits_ = static_cast<uint32_t>(std::bit_width(uint64_t{max_handle} + 2));
    handle_mask_ = handle_bits_ >= 32 ? 0xFFFFFFFFu : (1u << handle_bits_) - 1;
    cells_.assign(CapacityFor(expected), kEmpty);
    live_ = used_ = 0;
  }

  template <typename IdOf>
  uint32_t Find(const Id& id, const IdOf& id_of) const {
    if (cells_.empty()) return kNone;
    const uint64_t h = Hash(id);
    const uint32_t fp = Fingerprint(h);
    for (size_t i = Home(h);; i = Next(i)) {
      uint32_t c = cells_[i];
      if (c == kEmpty) return kNone;
      if (c != kTombstone && (c & ~handle_mask_) == fp && id_of((c & handle_mask_) - 2) == id) {
        return (c & handle_mask_) - 2;
      }
    }
  }

  // `id` (whose handle is `handle`) must not be in the table.
  template <typename IdOf>
  void Insert(const Id& id, uint32_t handle, const IdOf& id_of) {
    if (cells_.empty() || (used_ + 1) * 100 > cells_.size() * 90) {
      // Mostly tombstones: same size; mostly entries: twice the size.
      size_t want = live_ + 1;
      if (want * 100 > cells_.size() * 70) want *= 2;
      Rehash(want, id_of);
    }
    const uint64_t h = Hash(id);
    size_t i = Home(h);
    while (cells_[i] != kEmpty && cells_[i] != kTombstone) i = Next(i);
    if (cells_[i] == kEmpty) ++used_;
    cells_[i] = Fingerprint(h) | (handle + 2);
    ++live_;
  }

  // `id` must be in the table; its handle becomes `handle`.
  template <typename IdOf>
  void Update(const Id& id, uint32_t handle, const IdOf& id_of) {
    cells_[Locate(id, id_of)] = Fingerprint(Hash(id)) | (handle + 2);
  }

  // `id` must be in the table.
  template <typename IdOf>
  void Erase(const Id& id, const IdOf& id_of) {
    cells_[Locate(id, id_of)] = kTombstone;
    --live_;
  }

  size_t size() const { return live_; }
  size_t MemoryBytes() const { return cells_.capacity() * sizeof(uint32_t); }

 private:
  static constexpr uint32_t kEmpty = 0;
  static constexpr uint32_t kTombstone = 1;

  static size_t CapacityFor(size_t n) { return n * 100 / 88 + 16; }

  static uint64_t Mix(uint64_t x) {  // splitmix64 finaliser
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
  }
  static uint64_t Hash(const Id& id) {
    uint64_t hi, lo;
    std::memcpy(&hi, id.data(), 8);
    std::memcpy(&lo, id.data() + 8, 8);
    return Mix(hi ^ Mix(lo + 0x9e3779b97f4a7c15ULL));
  }
  uint32_t Fingerprint(uint64_t h) const { return static_cast<uint32_t>(h) & ~handle_mask_; }
  size_t Home(uint64_t h) const {
    __extension__ using U128 = unsigned __int128;  // multiply-shift range reduction
    return static_cast<size_t>((static_cast<U128>(h) * cells_.size()) >> 64);
  }
  size_t Next(size_t i) const { return i + 1 == cells_.size() ? 0 : i + 1; }

  template <typename IdOf>
  size_t Locate(const Id& id, const IdOf& id_of) const {
    const uint64_t h = Hash(id);
    const uint32_t fp = Fingerprint(h);
    for (size_t i = Home(h);; i = Next(i)) {
      uint32_t c = cells_[i];
      if (c != kTombstone && c != kEmpty && (c & ~handle_mask_) == fp && id_of((c & handle_mask_) - 2) == id) {
        return i;
      }
    }
  }

  template <typename IdOf>
  void Rehash(size_t expected, const IdOf& id_of) {
    std::vector<uint32_t> old = std::move(cells_);
    cells_.assign(CapacityFor(expected), kEmpty);
    used_ = 0;
    for (uint32_t c : old) {
      if (c == kEmpty || c == kTombstone) continue;
      size_t i = Home(Hash(id_of((c & handle_mask_) - 2)));
      while (cells_[i] != kEmpty) i = Next(i);
      cells_[i] = c;
      ++used_;
    }
  }

  std::vector<uint32_t> cells_;
  uint32_t handle_bits_ = 32;
  uint32_t handle_mask_ = 0xFFFFFFFFu;
  size_t live_ = 0;
  size_t used_ = 0;  // live + tombstones
};

}  // namespace amparo::rules
