#include "common/registrant_id.h"

#include "common/json_text.h"

namespace amparo {
namespace {

constexpr char kHex[] = "0123456789abcdef";

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
  for (size_t i = 0; i < kPackedRegistrantIdBytes; ++i) {
    text[2 * i] = kHex[packed[i] >> 4];
    text[2 * i + 1] = kHex[packed[i] & 15];
  }
  out->append(text, sizeof text);
}

std::string FormatRegistrantId(const PackedRegistrantId& id) {
  std::string out;
  AppendRegistrantIdHex(id.data(), &out);
  return out;
}

size_t AlertRegistrantIdCount(const v1::ConsularAlert& alert) {
  if (!alert.registrant_ids_packed().empty()) {
    return alert.registrant_ids_packed().size() / kPackedRegistrantIdBytes;
  }
  return static_cast<size_t>(alert.registrant_ids_size());
}

std::vector<std::string> HexRegistrantIds(std::string_view packed) {
  std::vector<std::string> ids;
  ids.reserve(packed.size() / kPackedRegistrantIdBytes);
  for (size_t at = 0; at + kPackedRegistrantIdBytes <= packed.size(); at += kPackedRegistrantIdBytes) {
    AppendRegistrantIdHex(reinterpret_cast<const uint8_t*>(packed.data() + at), &ids.emplace_back());
  }
  return ids;
}

std::vector<std::string> AlertRegistrantIds(const v1::ConsularAlert& alert) {
  if (alert.registrant_ids_packed().empty()) {
    return {alert.registrant_ids().begin(), alert.registrant_ids().end()};
  }
  return HexRegistrantIds(alert.registrant_ids_packed());
}

bool PackAlertRegistrantIds(v1::ConsularAlert* alert) {
  std::string packed;
  packed.reserve(static_cast<size_t>(alert->registrant_ids_size()) * kPackedRegistrantIdBytes);
  for (const std::string& hex : alert->registrant_ids()) {
    PackedRegistrantId id;
    if (!ParseRegistrantId(hex, &id)) return false;
    packed.append(reinterpret_cast<const char*>(id.data()), id.size());
  }
  alert->clear_registrant_ids();
  alert->mutable_registrant_ids_packed()->append(packed);
  return true;
}

void AppendAlertRegistrantIdsJson(const v1::ConsularAlert& alert, std::string* out) {
  const std::string& packed = alert.registrant_ids_packed();
  out->push_back('[');
  if (packed.empty()) {
    // Messages from before the packed field: any text, so escaped.
    for (int i = 0; i < alert.registrant_ids_size(); ++i) {
      if (i > 0) out->push_back(',');
      AppendJsonString(*out, alert.registrant_ids(i));
    }
  } else {
    // Written in place: `"` + 32 hex digits + `"`, a comma between (a
    // push_back per character was ~5% of amparo-notify's CPU in
    // bench-pipeline, ~500 ids per webhook body).
    const size_t n = packed.size() / kPackedRegistrantIdBytes;
    const size_t start = out->size();
    out->resize(start + (n == 0 ? 0 : n * (2 * kPackedRegistrantIdBytes + 3) - 1));
    char* p = out->data() + start;
    const auto* id = reinterpret_cast<const uint8_t*>(packed.data());
    for (size_t i = 0; i < n; ++i, id += kPackedRegistrantIdBytes) {
      if (i > 0) *p++ = ',';
      *p++ = '"';
      for (size_t b = 0; b < kPackedRegistrantIdBytes; ++b) {
        *p++ = kHex[id[b] >> 4];
        *p++ = kHex[id[b] & 15];
      }
      *p++ = '"';
    }
  }
  out->push_back(']');
}

}  // namespace amparo
