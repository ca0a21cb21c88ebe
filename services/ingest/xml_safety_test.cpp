#include "services/ingest/xml_safety.h"

#include <gtest/gtest.h>

#include "services/ingest/feed_detect.h"
#include "services/ingest/feed_types.h"
#include "services/ingest/test_fixtures.h"

namespace amparo::ingest {
namespace {

using testing_support::ReadFixture;

std::string Nested(int depth) {
  std::string open, close;
  for (int i = 0; i < depth; ++i) {
    open += "<e>";
    close += "</e>";
  }
  return open + close;
}

TEST(XmlSafetyTest, XeeFixturesAreRefusedWithoutAnyExternalLoad) {
  const uint64_t loads_before = RefusedExternalLoads();
  for (const char* file : {"cap/google-cap-library/xee.cap", "cap/google-cap-library/xee.atom"}) {
    std::vector<ParseWarning> warnings;
    auto doc = ParseXmlSafely(ReadFixture(file), XmlLimits{}, &warnings);
    ASSERT_FALSE(doc.ok()) << file;
    EXPECT_EQ(doc.status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(doc.status().field(), "xml");
    EXPECT_EQ(doc.status().message(), "DOCTYPE declares entities: refused (external entity attacks)");
  }
  // libxml2 was never even asked to fetch payload1.dtd, payload2..4 or /etc/passwd.
  EXPECT_EQ(RefusedExternalLoads(), loads_before);
}

TEST(XmlSafetyTest, FileEntityContentNeverAppears) {
  const std::string xxe =
      "<?xml version=\"1.0\"?><!DOCTYPE alert [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]>"
      "<alert xmlns=\"urn:oasis:names:tc:emergency:cap:1.2\"><identifier>&xxe;</identifier></alert>";
  auto parsed = ParseFeedBytes(xxe, FeedContext{});
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.status().message(), "DOCTYPE declares entities: refused (external entity attacks)");
  EXPECT_EQ(parsed.status().ToString().find("root:"), std::string::npos);
}

TEST(XmlSafetyTest, BillionLaughsIsRefused) {
  const std::string lol =
      "<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\"><!ENTITY lol2 \"&lol;&lol;&lol;&lol;\">]>"
      "<lolz>&lol2;</lolz>";
  auto doc = ParseXmlSafely(lol, XmlLimits{}, nullptr);
  ASSERT_FALSE(doc.ok());
  EXPECT_EQ(doc.status().code(), StatusCode::kInvalidArgument);
}

TEST(XmlSafetyTest, ExternalDtdIsRefused) {
  auto doc = ParseXmlSafely("<!DOCTYPE a SYSTEM \"http://127.0.0.1:9/x.dtd\"><a/>", XmlLimits{}, nullptr);
  ASSERT_FALSE(doc.ok());
  EXPECT_EQ(doc.status().message(), "DOCTYPE names an external DTD: refused (DTDs are never loaded)");
}

TEST(XmlSafetyTest, PlainDoctypeIsAccepted) {
  auto doc = ParseXmlSafely("<!DOCTYPE a><a><b/></a>", XmlLimits{}, nullptr);
  ASSERT_TRUE(doc.ok()) << doc.status().ToString();
  EXPECT_EQ(XmlLocalName(doc->root()), "a");
}

TEST(XmlSafetyTest, DepthBound) {
  XmlLimits limits;
  limits.max_depth = 10;
  EXPECT_TRUE(ParseXmlSafely(Nested(10), limits, nullptr).ok());
  auto doc = ParseXmlSafely(Nested(11), limits, nullptr);
  ASSERT_FALSE(doc.ok());
  EXPECT_EQ(doc.status().code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(doc.status().message(), "nesting deeper than 10 elements (ingest.xml_max_depth)");
}

TEST(XmlSafetyTest, ElementCountBound) {
  XmlLimits limits;
  limits.max_elements = 50;
  std::string flat = "<r>";
  for (int i = 0; i < 49; ++i) flat += "<i/>";
  EXPECT_TRUE(ParseXmlSafely(flat + "</r>", limits, nullptr).ok());
  auto doc = ParseXmlSafely(flat + "<i/></r>", limits, nullptr);
  ASSERT_FALSE(doc.ok());
  EXPECT_EQ(doc.status().code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(doc.status().message(), "more than 50 elements (ingest.xml_max_elements)");
}

TEST(XmlSafetyTest, SizeBoundBeforeParsing) {
  XmlLimits limits;
  limits.max_document_bytes = 16;
  auto doc = ParseXmlSafely("<a>0123456789abcdef</a>", limits, nullptr);
  ASSERT_FALSE(doc.ok());
  EXPECT_EQ(doc.status().code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(doc.status().message(), "document of 23 bytes exceeds 16 (ingest.xml_max_document_bytes)");
}

TEST(XmlSafetyTest, MalformedNamesTheLine) {
  auto doc = ParseXmlSafely("<a>\n<b></a>", XmlLimits{}, nullptr);
  ASSERT_FALSE(doc.ok());
  EXPECT_EQ(doc.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(doc.status().message().rfind("not well-formed XML (line 2): ", 0), 0u) << doc.status().message();
}

TEST(XmlSafetyTest, Utf8BomIsSilentDoubleEncodedBomIsStrippedWithWarning) {
  std::vector<ParseWarning> warnings;
  ASSERT_TRUE(ParseXmlSafely("\xEF\xBB\xBF<?xml version=\"1.0\"?><a/>", XmlLimits{}, &warnings).ok());
  EXPECT_TRUE(warnings.empty());
  auto doc = ParseXmlSafely(ReadFixture("gdacs/rss-ocha-hdx/xml-rss.xml"), XmlLimits{}, &warnings);
  ASSERT_TRUE(doc.ok()) << doc.status().ToString();
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_EQ(warnings[0].code, "double-encoded-bom");
  EXPECT_EQ(XmlLocalName(doc->root()), "rss");
}

TEST(XmlSafetyTest, Iso88591IsConvertedToUtf8) {
  const std::string latin1 = "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><a>M\xE9xico</a>";
  auto doc = ParseXmlSafely(latin1, XmlLimits{}, nullptr);
  ASSERT_TRUE(doc.ok()) << doc.status().ToString();
  EXPECT_EQ(XmlText(doc->root()), "M\xC3\xA9xico");
  auto fixture = ParseXmlSafely(ReadFixture("cap/google-cap-library/earthquake-iso8859-1.cap"), XmlLimits{}, nullptr);
  ASSERT_TRUE(fixture.ok()) << fixture.status().ToString();
  EXPECT_EQ(XmlChildText(fixture->root(), "identifier"), "USGS-earthquakes-usB000D5T4.3947362.7.20121014T225304.360Z.0");
}

}  // namespace
}  // namespace amparo::ingest
