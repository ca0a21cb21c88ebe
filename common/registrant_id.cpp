#include "common/registrant_id.h"

#include <array>
#include <bit>
#include <cstring>

#include "common/json_text.h"

namespace amparo {
namespace {

constexpr char kHex[] = "0123456789abcdef";

// Each byte's two lowercase hex digits, in memory order: one 2-byte copy a
// byte instead of two table lookups (the ids of a webhook body, ~500 a
// body, were 7% of amparo-notify's CPU in bench-pipeline).
constexpr std::array<std::array<char, 2>, 256> kHexPairs = [] {
  std::array<std::array<char, 2>, 256> pairs{};
  for (int b = 0; b < 256; ++b) pairs[b] = {kHex[b >> 4], kHex[b & 15]};
  return pairs;
}();

// How many leading bytes two 16-byte ids share, compared 8 at a time.
size_t SharedLeadingBytes(const char* a, const char* b) {
  for (size_t half = 0; half < 2; ++half) {
    uint64_t x, y;
    std::memcpy(&x, a + 8 * half, 8);
    std::memcpy(&y, b + 8 * half, 8);
    if (x != y) {
      const uint64_t diff = x ^ y;  // the first differing byte is the lowest set one in memory order
      const int bit =
          std::endian::native == std::endian::little ? std::countr_zero(diff) : std::countl_zero(diff);
      return 8 * half + static_cast<size_t>(bit / 8);
    }
  }
  return kPackedRegistrantIdBytes;
}

// The 32 hex digits of a 16-byte id at `out`.
inline void WriteIdHex(const uint8_t* id, char* out) {
  for (size_t i = 0; i < kPackedRegistrantIdBytes; ++i) std::memcpy(out + 2 * i, kHexPairs[id[i]].data(), 2);
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

}  // namespace

bool ParseRegistrantId(std::string_view hex, PackedRegistrantId* out) {
  if (hex.size() != 2 * kPackedRegistrantIdBytes) return false;
  for (size_t i = 0; i < kPackedRegistrantIdBytes; ++i) {
    const int hi = HexValue(hex[2 * i]), lo = HexValue(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    (*out)[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return true;
}

void AppendRegistrantIdHex(const uint8_t* packed, std::string* out) {
  char text[2 * kPackedRegistrantIdBytes];
  WriteIdHex(packed, text);
  out->append(text, sizeof text);
}

std::string FormatRegistrantId(const PackedRegistrantId& id) {
  std::string out;
  AppendRegistrantIdHex(id.data(), &out);
  return out;
}

void AppendCodedRegistrantIds(std::string_view packed, std::string* out) {
  const size_t n = packed.size() / kPackedRegistrantIdBytes;
  const size_t start = out->size();
  out->resize(start + n * (kPackedRegistrantIdBytes + 1));  // the most it can take
  char* p = out->data() + start;
  static constexpr char kZeros[kPackedRegistrantIdBytes] = {};
  const char* prev = kZeros;  // the first id is compared with 16 zero bytes
  for (size_t i = 0; i < n; ++i) {
    const char* id = packed.data() + i * kPackedRegistrantIdBytes;
    const size_t shared = SharedLeadingBytes(id, prev);
    *p++ = static_cast<char>(shared);
    std::memcpy(p, id + shared, kPackedRegistrantIdBytes - shared);
    p += kPackedRegistrantIdBytes - shared;
    prev = id;
  }
  out->resize(static_cast<size_t>(p - out->data()));
}

std::string CodeRegistrantIds(std::string_view packed) {
  std::string out;
  AppendCodedRegistrantIds(packed, &out);
  return out;
}

namespace {

// Calls visit(const uint8_t* id) with each id's 16 bytes, in order; false
// when the list ends in a fault (what comes before it is visited).
template <typename Visit>
bool ForEachCodedId(std::string_view coded, Visit&& visit) {
  uint8_t id[kPackedRegistrantIdBytes] = {};
  const auto* p = reinterpret_cast<const uint8_t*>(coded.data());
  const auto* end = p + coded.size();
  while (p < end) {
    const size_t shared = *p++;
    if (shared > kPackedRegistrantIdBytes) return false;
    const size_t rest = kPackedRegistrantIdBytes - shared;
    if (static_cast<size_t>(end - p) < rest) return false;
    std::memcpy(id + shared, p, rest);
    p += rest;
    visit(static_cast<const uint8_t*>(id));
  }
  return true;
}

template <typename Visit>
void ForEachPackedId(std::string_view packed, Visit&& visit) {
  for (size_t at = 0; at + kPackedRegistrantIdBytes <= packed.size(); at += kPackedRegistrantIdBytes) {
    visit(reinterpret_cast<const uint8_t*>(packed.data() + at));
  }
}

// The ids of the coded or the packed field; false when the alert has neither
// (its ids, if any, are strings).
template <typename Visit>
bool ForEachAlertId(const v1::ConsularAlert& alert, Visit&& visit) {
  if (!alert.registrant_ids_coded().empty()) {
    ForEachCodedId(alert.registrant_ids_coded(), visit);
    return true;
  }
  if (!alert.registrant_ids_packed().empty()) {
    ForEachPackedId(alert.registrant_ids_packed(), visit);
    return true;
  }
  return false;
}

}  // namespace

bool DecodeRegistrantIds(std::string_view coded, std::string* packed) {
  return ForEachCodedId(coded, [&](const uint8_t* id) {
    packed->append(reinterpret_cast<const char*>(id), kPackedRegistrantIdBytes);
  });
}

size_t AlertRegistrantIdCount(const v1::ConsularAlert& alert) {
  size_t n = 0;
  if (ForEachAlertId(alert, [&](const uint8_t*) { ++n; })) return n;
  return static_cast<size_t>(alert.registrant_ids_size());
}

std::vector<std::string> HexRegistrantIds(std::string_view packed) {
  std::vector<std::string> ids;
  ids.reserve(packed.size() / kPackedRegistrantIdBytes);
  ForEachPackedId(packed, [&](const uint8_t* id) { AppendRegistrantIdHex(id, &ids.emplace_back()); });
  return ids;
}

std::vector<std::string> AlertRegistrantIds(const v1::ConsularAlert& alert) {
  std::vector<std::string> ids;
  if (ForEachAlertId(alert, [&](const uint8_t* id) { AppendRegistrantIdHex(id, &ids.emplace_back()); })) {
    return ids;
  }
  return {alert.registrant_ids().begin(), alert.registrant_ids().end()};
}

bool CodeAlertRegistrantIds(v1::ConsularAlert* alert) {
  if (!alert->registrant_ids_coded().empty()) return true;
  std::string packed;
  if (!alert->registrant_ids_packed().empty()) {
    packed = alert->registrant_ids_packed();
    packed.resize(packed.size() / kPackedRegistrantIdBytes * kPackedRegistrantIdBytes);
  } else {
    packed.reserve(static_cast<size_t>(alert->registrant_ids_size()) * kPackedRegistrantIdBytes);
    for (const std::string& hex : alert->registrant_ids()) {
      PackedRegistrantId id;
      if (!ParseRegistrantId(hex, &id)) return false;
      packed.append(reinterpret_cast<const char*>(id.data()), id.size());
    }
  }
  alert->clear_registrant_ids();
  alert->clear_registrant_ids_packed();
  AppendCodedRegistrantIds(packed, alert->mutable_registrant_ids_coded());
  return true;
}

void AppendAlertRegistrantIdsJson(const v1::ConsularAlert& alert, std::string* out) {
  out->push_back('[');
  if (alert.registrant_ids_coded().empty() && alert.registrant_ids_packed().empty()) {
    // Messages from before the binary fields: any text, so escaped.
    for (int i = 0; i < alert.registrant_ids_size(); ++i) {
      if (i > 0) out->push_back(',');
      AppendJsonString(*out, alert.registrant_ids(i));
    }
  } else {
    // Written in place: `"` + 32 hex digits + `"`, a comma between (a
    // push_back per character was ~5% of amparo-notify's CPU in
    // bench-pipeline, ~500 ids per webhook body).
    const size_t n = AlertRegistrantIdCount(alert);
    const size_t start = out->size();
    out->resize(start + (n == 0 ? 0 : n * (2 * kPackedRegistrantIdBytes + 3) - 1));
    char* p = out->data() + start;
    ForEachAlertId(alert, [&](const uint8_t* id) {
      if (p != out->data() + start) *p++ = ',';
      *p++ = '"';
      WriteIdHex(id, p);
      p += 2 * kPackedRegistrantIdBytes;
      *p++ = '"';
    });
  }
  out->push_back(']');
}

}  // namespace amparo
