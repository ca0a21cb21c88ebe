// Hostile-input-safe XML parsing for every XML feed (CAP, Atom, RSS, GDACS).
//
// The adapter around libxml2: the only place that decides how XML is read.
//   * No DTD is ever loaded and no external entity resolved: documents are
//     parsed with XML_PARSE_NONET and without XML_PARSE_NOENT/DTDLOAD/DTDVALID/
//     XINCLUDE, the process-wide libxml2 external entity loader is replaced by
//     one that refuses every load (and counts the attempts), and a document
//     whose DOCTYPE declares entities or names an external DTD is rejected.
//   * Bounded: document bytes, element nesting depth and element count
//     (XmlLimits; counted while walking the tree once after the parse).
//   * Encodings: a UTF-8 byte order mark, a double-encoded one
//     (c3 af c2 bb c2 bf, from a feed that encoded its BOM twice: stripped with
//     warning "double-encoded-bom"), leading whitespace before "<?xml"
//     (stripped, warning "leading-whitespace"), and any encoding the XML
//     declaration names that libxml2 knows (ISO-8859-1, ...). Text handed out
//     is UTF-8.
// libxml2 types stay out of this header (forward declarations only) so that
// only ingest's .cpp files depend on libxml2 headers.
//
// Thread safety: ParseXmlSafely may be called from any thread (libxml2 is
// initialised once); an XmlDocument belongs to one thread at a time.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

struct _xmlDoc;
struct _xmlNode;

namespace amparo::ingest {

struct ParseWarning;

// Bounds for one XML document. Defaults fit the largest real feeds (the 7-day
// GDACS RSS is 1.6 MB and ~40,000 elements) with ample margin.
struct XmlLimits {
  int64_t max_document_bytes = 32 << 20;  // larger input: RESOURCE_EXHAUSTED before parsing
  int max_depth = 64;                     // deeper nesting: RESOURCE_EXHAUSTED
  int64_t max_elements = 500'000;         // more elements: RESOURCE_EXHAUSTED
};

// An owned libxml2 document. Move-only.
class XmlDocument {
 public:
  XmlDocument() = default;
  explicit XmlDocument(_xmlDoc* doc) : doc_(doc) {}
  ~XmlDocument();
  XmlDocument(XmlDocument&& other) noexcept : doc_(other.doc_) { other.doc_ = nullptr; }
  XmlDocument& operator=(XmlDocument&& other) noexcept;
  XmlDocument(const XmlDocument&) = delete;
  XmlDocument& operator=(const XmlDocument&) = delete;

  _xmlDoc* get() const { return doc_; }
  _xmlNode* root() const;

 private:
  _xmlDoc* doc_ = nullptr;
};

// Parses `bytes` as described above. Warnings for accepted quirks are
// appended to `warnings` (may be null). Errors:
//   RESOURCE_EXHAUSTED field "xml": a limit was hit ("nesting deeper than 64 elements")
//   INVALID_ARGUMENT field "xml": "not well-formed XML (line 3): <libxml2 message>",
//     "DOCTYPE declares entities: refused (external entity attacks)",
//     "DOCTYPE names an external DTD: refused (DTDs are never loaded)"
Result<XmlDocument> ParseXmlSafely(std::string_view bytes, const XmlLimits& limits,
                                   std::vector<ParseWarning>* warnings);

// How many times libxml2 asked to load an external resource (DTD, entity,
// schema import) since the process started. Every such load was refused;
// tests use this to prove hostile documents did not reach the network or disk.
uint64_t RefusedExternalLoads();

// Makes sure libxml2 is initialised and the refusing entity loader installed.
// Called by ParseXmlSafely and by schema code; idempotent and thread-safe.
void InitXmlOnce();

// Small helpers over libxml2 nodes for the feed parsers.
// The element's local name ("alert" for <cap:alert>).
std::string_view XmlLocalName(const _xmlNode* node);
// The element's namespace URI, "" when none.
std::string_view XmlNamespace(const _xmlNode* node);
// Concatenated text content of the element, whitespace-trimmed.
std::string XmlText(const _xmlNode* node);
// Attribute value (no namespace), "" when absent.
std::string XmlAttribute(const _xmlNode* node, const char* name);
// Element children in document order.
std::vector<const _xmlNode*> XmlChildren(const _xmlNode* node);
// First element child with this local name (any namespace when `ns` is empty).
const _xmlNode* XmlChild(const _xmlNode* node, std::string_view local_name, std::string_view ns = {});
// Trimmed text of XmlChild(...), "" when there is no such child.
std::string XmlChildText(const _xmlNode* node, std::string_view local_name, std::string_view ns = {});

}  // namespace amparo::ingest
