// Registrant ids in their two forms: the 32 lowercase hex characters the
// gateway assigns (NewId()) and users see, and the 16 bytes they stand for,
// which is how alerts carry them between daemons
// (ConsularAlert.registrant_ids_packed): half the bytes and one field instead
// of one string per id in every copy an alert makes on its way to a webhook.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "amparo/v1/alert.pb.h"

namespace amparo {

inline constexpr size_t kPackedRegistrantIdBytes = 16;
using PackedRegistrantId = std::array<uint8_t, kPackedRegistrantIdBytes>;

// 32 lowercase hex characters -> 16 bytes. False (and *out unspecified) for
// anything else: wrong length, upper case, not hex.
bool ParseRegistrantId(std::string_view hex, PackedRegistrantId* out);
// 16 bytes -> their 32 lowercase hex characters, appended to *out.
void AppendRegistrantIdHex(const uint8_t* packed, std::string* out);
std::string FormatRegistrantId(const PackedRegistrantId& id);
// Concatenated 16-byte ids -> their 32-hex strings, in order; a trailing
// fragment shorter than 16 bytes is not an id and is ignored.
std::vector<std::string> HexRegistrantIds(std::string_view packed);

// The ids an alert carries, in its order: registrant_ids_packed (what rules
// writes) or, for a message written before that field, registrant_ids. A
// trailing fragment shorter than 16 bytes is not an id and is ignored.
size_t AlertRegistrantIdCount(const v1::ConsularAlert& alert);
std::vector<std::string> AlertRegistrantIds(const v1::ConsularAlert& alert);
// Moves the ids of a message written before the packed field into
// registrant_ids_packed (so it compares equal to the same alert written now).
// False, and the alert unchanged, when one of them is not a 32-hex id.
bool PackAlertRegistrantIds(v1::ConsularAlert* alert);
// Appends them to *out as a JSON array of strings: ["<hex>",...].
void AppendAlertRegistrantIdsJson(const v1::ConsularAlert& alert, std::string* out);

}  // namespace amparo
