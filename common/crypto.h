// Small crypto helpers over OpenSSL and libsodium. All functions are
// thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"

namespace amparo {

// `n` bytes from the OS CSPRNG (libsodium randombytes).
std::string RandomBytes(size_t n);
// 128 random bits as 32 lowercase hex digits: registrant ids, tokens' ids.
std::string NewId();
// 32 lowercase hex digits that sort by time: `unix_ms` as 48 bits
// big-endian (12 digits), then 80 random bits (20 digits), as in UUIDv7.
// Link message ids: each inbox keeps them in a unique index, and random keys
// made every batch rewrite leaves all over it (most of what a daemon wrote
// per message); in time order the inserts land at its end. Unique as long
// as fewer than ~2^40 ids are made in one millisecond.
std::string NewTimeOrderedId(int64_t unix_ms);
std::string HexEncode(std::string_view bytes);
// Standard base64 with padding (RFC 4648 section 4).
std::string Base64Encode(std::string_view bytes);
// Strict: rejects characters outside the alphabet and non-canonical input.
Result<std::string> Base64Decode(std::string_view text);
// URL-safe base64 without padding (RFC 4648 section 5): tokens.
std::string Base64UrlEncode(std::string_view bytes);
std::string Sha256(std::string_view bytes);      // raw 32 bytes
std::string Sha256Hex(std::string_view bytes);
std::string HmacSha256(std::string_view key, std::string_view message);  // raw 32 bytes
// Constant-time comparison of equal-length secrets.
bool ConstantTimeEquals(std::string_view a, std::string_view b);

}  // namespace amparo
