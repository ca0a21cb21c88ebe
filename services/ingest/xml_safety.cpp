#include "services/ingest/xml_safety.h"

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xmlerror.h>

#include <atomic>
#include <mutex>
#include <utility>

#include "services/ingest/feed_types.h"

namespace amparo::ingest {
namespace {

std::atomic<uint64_t> g_refused_loads{0};

// Every external load (DTD, external entity, XInclude, schema import) ends
// here and is refused: ingest never needs one, and each one is an attack
// surface (XXE file disclosure, SSRF, billion-laughs over the network).
xmlParserInputPtr RefuseExternalLoad(const char* /*url*/, const char* /*id*/, xmlParserCtxtPtr /*ctxt*/) {
  g_refused_loads.fetch_add(1, std::memory_order_relaxed);
  return nullptr;
}

constexpr std::string_view kDoubleEncodedBom = "\xC3\xAF\xC2\xBB\xC2\xBF";
constexpr std::string_view kUtf8Bom = "\xEF\xBB\xBF";

bool IsXmlSpace(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

Status Exhausted(std::string message) { return {StatusCode::kResourceExhausted, std::move(message), "xml"}; }

// Walks the tree once, counting elements and depth, stopping at the first
// bound hit (an iterative walk: a hostile depth cannot overflow our stack).
Status CheckTreeBounds(xmlNodePtr root, const XmlLimits& limits) {
  int64_t elements = 0;
  int depth = 0;
  xmlNodePtr node = root;
  while (node != nullptr) {
    if (node->type == XML_ELEMENT_NODE) {
      if (++elements > limits.max_elements)
        return Exhausted("more than " + std::to_string(limits.max_elements) +
                         " elements (ingest.xml_max_elements)");
      if (depth + 1 > limits.max_depth)
        return Exhausted("nesting deeper than " + std::to_string(limits.max_depth) +
                         " elements (ingest.xml_max_depth)");
    }
    if (node->type == XML_ELEMENT_NODE && node->children != nullptr) {
      node = node->children;
      ++depth;
      continue;
    }
    while (node != nullptr && node->next == nullptr) {
      node = node->parent;
      --depth;
      if (node == root || depth < 0) return Status::Ok();
    }
    if (node == nullptr || node == root) break;
    node = node->next;
  }
  return Status::Ok();
}

}  // namespace

void InitXmlOnce() {
  static std::once_flag once;
  std::call_once(once, [] {
    xmlInitParser();
    xmlSetExternalEntityLoader(RefuseExternalLoad);
  });
}

uint64_t RefusedExternalLoads() { return g_refused_loads.load(std::memory_order_relaxed); }

XmlDocument::~XmlDocument() {
  if (doc_ != nullptr) xmlFreeDoc(doc_);
}

XmlDocument& XmlDocument::operator=(XmlDocument&& other) noexcept {
  if (this != &other) {
    if (doc_ != nullptr) xmlFreeDoc(doc_);
    doc_ = std::exchange(other.doc_, nullptr);
  }
  return *this;
}

_xmlNode* XmlDocument::root() const { return doc_ ? xmlDocGetRootElement(doc_) : nullptr; }

Result<XmlDocument> ParseXmlSafely(std::string_view bytes, const XmlLimits& limits,
                                   std::vector<ParseWarning>* warnings) {
  InitXmlOnce();
  if (static_cast<int64_t>(bytes.size()) > limits.max_document_bytes) {
    return Exhausted("document of " + std::to_string(bytes.size()) + " bytes exceeds " +
                     std::to_string(limits.max_document_bytes) + " (ingest.xml_max_document_bytes)");
  }
  auto warn = [&](std::string code, std::string detail) {
    if (warnings) warnings->push_back({std::move(code), std::move(detail)});
  };
  // A feed that decoded its UTF-8 BOM as Latin-1 and re-encoded it (seen in
  // the wild on GDACS mirrors) leaves these 6 bytes, which no XML parser
  // accepts before the declaration.
  if (bytes.substr(0, kDoubleEncodedBom.size()) == kDoubleEncodedBom) {
    bytes.remove_prefix(kDoubleEncodedBom.size());
    warn("double-encoded-bom", "stripped c3 af c2 bb c2 bf before the document");
  }
  std::string_view body = bytes.substr(0, kUtf8Bom.size()) == kUtf8Bom ? bytes.substr(kUtf8Bom.size()) : bytes;
  size_t lead = 0;
  while (lead < body.size() && IsXmlSpace(body[lead])) ++lead;
  if (lead > 0 && body.substr(lead, 5) == "<?xml") {
    bytes = body.substr(lead);
    warn("leading-whitespace", "stripped " + std::to_string(lead) + " bytes before the XML declaration");
  }
  if (bytes.size() > static_cast<size_t>(INT32_MAX)) return Exhausted("document too large for libxml2");

  xmlParserCtxtPtr ctxt = xmlNewParserCtxt();
  if (ctxt == nullptr) return Internal("libxml2: cannot allocate a parser context");
  // NONET: no network even if something asked; NOERROR/NOWARNING: messages
  // come back through the context, never on stderr. Deliberately absent:
  // NOENT (entity substitution), DTDLOAD, DTDATTR, DTDVALID, XINCLUDE, HUGE.
  const int options = XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING | XML_PARSE_NOCDATA;
  xmlDocPtr raw = xmlCtxtReadMemory(ctxt, bytes.data(), static_cast<int>(bytes.size()), "feed.xml", nullptr,
                                    options);
  XmlDocument doc(raw);
  if (raw == nullptr || !ctxt->wellFormed) {
    const xmlError* error = xmlCtxtGetLastError(ctxt);
    std::string message = error && error->message ? TrimCopy(error->message) : "unknown error";
    int line = error ? error->line : 0;
    bool depth = error && error->code == XML_ERR_INTERNAL_ERROR && message.find("Excessive depth") != std::string::npos;
    xmlFreeParserCtxt(ctxt);
    if (depth) return Exhausted("nesting too deep for the XML parser: " + message);
    return InvalidArgument("not well-formed XML (line " + std::to_string(line) + "): " + message, "xml");
  }
  xmlFreeParserCtxt(ctxt);

  for (xmlDtdPtr dtd : {raw->intSubset, raw->extSubset}) {
    if (dtd == nullptr) continue;
    if (dtd->entities != nullptr || dtd->pentities != nullptr) {
      return InvalidArgument("DOCTYPE declares entities: refused (external entity attacks)", "xml");
    }
    if (dtd->SystemID != nullptr) {
      return InvalidArgument("DOCTYPE names an external DTD: refused (DTDs are never loaded)", "xml");
    }
  }
  xmlNodePtr root = xmlDocGetRootElement(raw);
  if (root == nullptr) return InvalidArgument("document has no root element", "xml");
  AMPARO_RETURN_IF_ERROR(CheckTreeBounds(root, limits));
  return doc;
}

std::string_view XmlLocalName(const _xmlNode* node) {
  return node && node->name ? std::string_view(reinterpret_cast<const char*>(node->name)) : std::string_view();
}

std::string_view XmlNamespace(const _xmlNode* node) {
  return node && node->ns && node->ns->href ? std::string_view(reinterpret_cast<const char*>(node->ns->href))
                                            : std::string_view();
}

std::string XmlText(const _xmlNode* node) {
  if (node == nullptr) return {};
  xmlChar* content = xmlNodeGetContent(node);
  if (content == nullptr) return {};
  std::string text = TrimCopy(reinterpret_cast<const char*>(content));
  xmlFree(content);
  return text;
}

std::string XmlAttribute(const _xmlNode* node, const char* name) {
  if (node == nullptr) return {};
  xmlChar* value = xmlGetNoNsProp(node, reinterpret_cast<const xmlChar*>(name));
  if (value == nullptr) return {};
  std::string text(reinterpret_cast<const char*>(value));
  xmlFree(value);
  return text;
}

std::vector<const _xmlNode*> XmlChildren(const _xmlNode* node) {
  std::vector<const _xmlNode*> out;
  if (node == nullptr) return out;
  for (const xmlNode* child = node->children; child != nullptr; child = child->next) {
    if (child->type == XML_ELEMENT_NODE) out.push_back(child);
  }
  return out;
}

const _xmlNode* XmlChild(const _xmlNode* node, std::string_view local_name, std::string_view ns) {
  if (node == nullptr) return nullptr;
  for (const xmlNode* child = node->children; child != nullptr; child = child->next) {
    if (child->type != XML_ELEMENT_NODE || XmlLocalName(child) != local_name) continue;
    if (ns.empty() || XmlNamespace(child) == ns) return child;
  }
  return nullptr;
}

std::string XmlChildText(const _xmlNode* node, std::string_view local_name, std::string_view ns) {
  return XmlText(XmlChild(node, local_name, ns));
}

}  // namespace amparo::ingest
