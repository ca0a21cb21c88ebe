// Encryption at rest for the registry's personal data (names, contact
// channels, emergency contacts): libsodium AEAD XChaCha20-Poly1305 with a
// 256-bit key read from a file in config.keys_dir, never from the database.
//
// Key files (base64 of 32 random bytes, mode 0600):
//   <keys_dir>/registry.key            the current key: every new seal uses it
//   <keys_dir>/registry.<key_id>.key   earlier keys, kept to open old rows
// A key id is the first 8 hex digits of SHA-256(key). Every sealed value
// starts with the id of the key that sealed it, so rows sealed before a
// rotation still open; ReencryptRegistry() (gateway_store.h) moves them all
// to the current key. docs/operations.md describes the rotation.
//
// Sealed layout: key_id (8 ASCII hex) || nonce (24 bytes) || ciphertext+tag.
// The associated data binds a value to its row (registrant id and state), so
// a ciphertext copied onto another row does not open.
//
// Thread safety: a loaded RegistryKeys is immutable and safe to share.
#pragma once

#include <cstddef>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>

#include "common/status.h"

namespace amparo::gateway {

inline constexpr std::string_view kRegistryKeyFile = "registry.key";

// "0a1b2c3d": the first 8 hex digits of SHA-256(key).
std::string RegistryKeyId(std::string_view key);

// Creates `keys_dir` (0700) and <keys_dir>/registry.key (32 random bytes,
// base64, 0600) unless the key file exists. Idempotent. Called by the
// gateway at start and by `amparo init`. kUnavailable when the directory
// or file cannot be written.
Status EnsureRegistryKey(const std::filesystem::path& keys_dir);

// Moves registry.key to registry.<key_id>.key and writes a fresh
// registry.key. Returns the new key id. Run ReencryptRegistry() afterwards.
Result<std::string> RotateRegistryKey(const std::filesystem::path& keys_dir);

class RegistryKeys {
 public:
  // Reads registry.key (required) and every registry.<id>.key. Errors:
  // kFailedPrecondition when registry.key is missing, kDataLoss when a key
  // file is not base64 of 32 bytes or its name does not match its key id.
  static Result<RegistryKeys> Load(const std::filesystem::path& keys_dir);
  // Keys from bytes (tests, benchmarks): `current` seals, all open.
  static RegistryKeys FromBytes(std::string current, std::map<std::string, std::string> old_keys = {});

  const std::string& current_id() const { return current_id_; }
  bool Has(std::string_view key_id) const { return keys_.count(std::string(key_id)) > 0; }

  // Seals `plaintext` with the current key.
  std::string Seal(std::string_view plaintext, std::string_view associated_data) const;
  // Seal() into `out` (overwritten; its capacity is reused, so a bulk
  // writer allocates nothing per row) with a caller-drawn `nonce`: exactly
  // kSealNonceBytes from a CSPRNG, never reused (random 192-bit nonces never
  // collide in practice). Seal() draws its own.
  static constexpr size_t kSealNonceBytes = 24;
  void SealInto(std::string_view plaintext, std::string_view associated_data, std::string_view nonce,
                std::string* out) const;
  // Opens a value sealed by any known key. kDataLoss when the key is unknown
  // or the value was altered (or belongs to another row).
  Result<std::string> Open(std::string_view sealed, std::string_view associated_data) const;
  // The key id a sealed value names ("" when too short).
  static std::string_view KeyIdOf(std::string_view sealed);

 private:
  std::string current_id_;
  std::map<std::string, std::string> keys_;  // id -> 32 raw bytes
};

}  // namespace amparo::gateway
