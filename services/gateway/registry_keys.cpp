#include "services/gateway/registry_keys.h"

#include <sodium.h>
#include <sys/stat.h>

#include <cassert>
#include <fstream>
#include <sstream>

#include "common/crypto.h"

namespace amparo::gateway {
namespace {

namespace fs = std::filesystem;

constexpr size_t kKeyIdLength = 8;
constexpr size_t kNonceLength = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;
constexpr size_t kTagLength = crypto_aead_xchacha20poly1305_ietf_ABYTES;

Result<std::string> ReadKeyFile(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return Status(StatusCode::kUnavailable, "cannot read " + file.string());
  std::stringstream text;
  text << in.rdbuf();
  std::string s = text.str();
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  auto key = Base64Decode(s);
  if (!key.ok() || key->size() != crypto_aead_xchacha20poly1305_ietf_KEYBYTES) {
    return Status(StatusCode::kDataLoss, file.string() + " is not base64 of a 32-byte key");
  }
  return key;
}

// Written to a temporary name with 0600 from the start, then renamed, so a
// crash never leaves a half key nor a moment where it is world-readable.
Status WriteKeyFile(const fs::path& file, std::string_view key) {
  fs::path tmp = file;
  tmp += ".tmp";
  mode_t old_mask = umask(077);
  {
    std::ofstream out(tmp, std::ios::trunc | std::ios::binary);
    out << Base64Encode(key) << "\n";
    out.flush();
    if (!out) {
      umask(old_mask);
      return Unavailable("cannot write " + tmp.string());
    }
  }
  umask(old_mask);
  std::error_code ec;
  fs::permissions(tmp, fs::perms::owner_read | fs::perms::owner_write, ec);
  if (!ec) fs::rename(tmp, file, ec);
  if (ec) return Unavailable("cannot install " + file.string() + ": " + ec.message());
  return Status::Ok();
}

}  // namespace

// libsodium must be initialised once before use; sodium_init() is
// idempotent and thread-safe.
static void InitSodium() {
  static const int kInitialised = sodium_init();
  (void)kInitialised;
}

std::string RegistryKeyId(std::string_view key) { return Sha256Hex(key).substr(0, kKeyIdLength); }

Status EnsureRegistryKey(const fs::path& keys_dir) {
  std::error_code ec;
  fs::create_directories(keys_dir, ec);
  if (ec) return Unavailable("cannot create " + keys_dir.string() + ": " + ec.message());
  fs::permissions(keys_dir, fs::perms::owner_all, ec);
  const fs::path file = keys_dir / kRegistryKeyFile;
  if (fs::exists(file, ec)) return Status::Ok();
  return WriteKeyFile(file, RandomBytes(crypto_aead_xchacha20poly1305_ietf_KEYBYTES));
}

Result<std::string> RotateRegistryKey(const fs::path& keys_dir) {
  const fs::path file = keys_dir / kRegistryKeyFile;
  auto current = ReadKeyFile(file);
  if (!current.ok()) return current.status();
  const fs::path kept = keys_dir / ("registry." + RegistryKeyId(*current) + ".key");
  std::error_code ec;
  fs::copy_file(file, kept, fs::copy_options::overwrite_existing, ec);
  if (ec) return Unavailable("cannot keep the old key as " + kept.string() + ": " + ec.message());
  fs::permissions(kept, fs::perms::owner_read | fs::perms::owner_write, ec);
  std::string fresh = RandomBytes(crypto_aead_xchacha20poly1305_ietf_KEYBYTES);
  AMPARO_RETURN_IF_ERROR(WriteKeyFile(file, fresh));
  return RegistryKeyId(fresh);
}

Result<RegistryKeys> RegistryKeys::Load(const fs::path& keys_dir) {
  InitSodium();
  const fs::path file = keys_dir / kRegistryKeyFile;
  std::error_code ec;
  if (!fs::exists(file, ec)) {
    return Status(StatusCode::kFailedPrecondition, file.string() + " is missing (amparo init creates it)",
                  "keys_dir");
  }
  auto current = ReadKeyFile(file);
  if (!current.ok()) return current.status();
  RegistryKeys keys;
  keys.current_id_ = RegistryKeyId(*current);
  keys.keys_[keys.current_id_] = *current;
  for (const auto& entry : fs::directory_iterator(keys_dir, ec)) {
    std::string name = entry.path().filename().string();
    // registry.<8 hex>.key
    if (name.size() != 9 + kKeyIdLength + 4 || name.rfind("registry.", 0) != 0 ||
        name.substr(name.size() - 4) != ".key") {
      continue;
    }
    auto old = ReadKeyFile(entry.path());
    if (!old.ok()) return old.status();
    std::string id = RegistryKeyId(*old);
    if (name.substr(9, kKeyIdLength) != id) {
      return Status(StatusCode::kDataLoss,
                    entry.path().string() + " holds key " + id + ", not the one it names");
    }
    keys.keys_[id] = *old;
  }
  if (ec) return Unavailable("cannot list " + keys_dir.string() + ": " + ec.message());
  return keys;
}

RegistryKeys RegistryKeys::FromBytes(std::string current, std::map<std::string, std::string> old_keys) {
  InitSodium();
  RegistryKeys keys;
  keys.current_id_ = RegistryKeyId(current);
  for (auto& [unused, k] : old_keys) keys.keys_[RegistryKeyId(k)] = k;
  keys.keys_[keys.current_id_] = std::move(current);
  return keys;
}

std::string RegistryKeys::Seal(std::string_view plaintext, std::string_view ad) const {
  std::string out;
  SealInto(plaintext, ad, RandomBytes(kNonceLength), &out);
  return out;
}

void RegistryKeys::SealInto(std::string_view plaintext, std::string_view ad, std::string_view nonce,
                            std::string* out) const {
  static_assert(kSealNonceBytes == kNonceLength);
  assert(nonce.size() == kNonceLength);
  const std::string& key = keys_.at(current_id_);
  out->assign(current_id_);
  out->append(nonce.data(), kNonceLength);
  const size_t prefix = out->size();
  out->resize(prefix + plaintext.size() + kTagLength);
  unsigned long long written = 0;
  crypto_aead_xchacha20poly1305_ietf_encrypt(reinterpret_cast<unsigned char*>(out->data() + prefix), &written,
                                             reinterpret_cast<const unsigned char*>(plaintext.data()),
                                             plaintext.size(),
                                             reinterpret_cast<const unsigned char*>(ad.data()), ad.size(),
                                             nullptr, reinterpret_cast<const unsigned char*>(nonce.data()),
                                             reinterpret_cast<const unsigned char*>(key.data()));
  out->resize(prefix + written);
}

std::string_view RegistryKeys::KeyIdOf(std::string_view sealed) {
  if (sealed.size() < kKeyIdLength) return {};
  return sealed.substr(0, kKeyIdLength);
}

Result<std::string> RegistryKeys::Open(std::string_view sealed, std::string_view ad) const {
  if (sealed.size() < kKeyIdLength + kNonceLength + kTagLength) {
    return Status(StatusCode::kDataLoss, "sealed value is truncated");
  }
  std::string id(sealed.substr(0, kKeyIdLength));
  auto it = keys_.find(id);
  if (it == keys_.end()) {
    return Status(StatusCode::kDataLoss, "sealed with registry key " + id + ", which is not in keys_dir");
  }
  std::string_view nonce = sealed.substr(kKeyIdLength, kNonceLength);
  std::string_view cipher = sealed.substr(kKeyIdLength + kNonceLength);
  std::string out(cipher.size() - kTagLength, '\0');
  unsigned long long written = 0;
  if (crypto_aead_xchacha20poly1305_ietf_decrypt(
          reinterpret_cast<unsigned char*>(out.data()), &written, nullptr,
          reinterpret_cast<const unsigned char*>(cipher.data()), cipher.size(),
          reinterpret_cast<const unsigned char*>(ad.data()), ad.size(),
          reinterpret_cast<const unsigned char*>(nonce.data()),
          reinterpret_cast<const unsigned char*>(it->second.data())) != 0) {
    return Status(StatusCode::kDataLoss, "sealed value does not authenticate (altered or moved)");
  }
  out.resize(written);
  return out;
}

}  // namespace amparo::gateway
