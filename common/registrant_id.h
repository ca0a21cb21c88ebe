// Registrant ids in their forms: the 32 lowercase hex characters the gateway
// assigns and users see; the 16 bytes they stand for ("packed": rules'
// in-memory index, ConsularAlert.registrant_ids_packed of older messages);
// and a list of them front-coded, which is how alerts carry them between
// daemons and how every copy of an alert stores them
// (ConsularAlert.registrant_ids_coded).
//
// Front coding: each id is one byte n (0-16), the number of its leading
// bytes equal to the id before it (the first id is compared with 16 zero
// bytes), then its other 16 - n bytes. The gateway gives registrants ids
// from sequences (an 80-bit prefix and a 48-bit counter), and an alert
// lists them sorted, so neighbours share 13-15 bytes: bench-pipeline's
// 1,306,229 ids took 2.9 MB instead of 20.9 MB (7.1x). Random ids cost the
// same 16 bytes plus at most one.
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

// Packed ids (16 bytes each; a trailing fragment is ignored) front-coded,
// appended to *out.
void AppendCodedRegistrantIds(std::string_view packed, std::string* out);
std::string CodeRegistrantIds(std::string_view packed);
// Front-coded ids back to packed ones, appended to *packed. False when
// `coded` is not a whole list (a count over 16, an id cut short); the ids
// before the fault are appended all the same.
bool DecodeRegistrantIds(std::string_view coded, std::string* packed);

// The ids an alert carries, in its order: registrant_ids_coded (what rules
// writes) or, for messages written before it, registrant_ids_packed or
// registrant_ids. What follows a fault in the coded or packed form (an id
// cut short) is not an id and is ignored.
size_t AlertRegistrantIdCount(const v1::ConsularAlert& alert);
std::vector<std::string> AlertRegistrantIds(const v1::ConsularAlert& alert);
// Moves the ids of a message written before the coded field into
// registrant_ids_coded (so it compares equal to the same alert written now).
// False, and the alert unchanged, when one of them is not a 32-hex id.
bool CodeAlertRegistrantIds(v1::ConsularAlert* alert);
// Appends them to *out as a JSON array of strings: ["<hex>",...].
void AppendAlertRegistrantIdsJson(const v1::ConsularAlert& alert, std::string* out);

}  // namespace amparo
