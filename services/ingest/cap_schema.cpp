#include "services/ingest/cap_schema.h"

#include <libxml/tree.h>
#include <libxml/xmlschemas.h>

#include <mutex>

#include "services/ingest/feed_types.h"
#include "services/ingest/xml_safety.h"

namespace amparo::ingest {
namespace internal {
extern const std::string_view kCap10Xsd;
extern const std::string_view kCap11Xsd;
extern const std::string_view kCap12Xsd;
}  // namespace internal

namespace {

struct CompiledSchema {
  xmlSchemaPtr schema = nullptr;
  std::string error;  // why compiling failed, when schema is null
};

// Removes "{namespace}" qualifiers from libxml2 messages: operators read
// "Element 'info'", not "Element '{urn:oasis:names:tc:emergency:cap:1.2}info'".
std::string StripNamespaces(std::string text) {
  for (size_t open = text.find('{'); open != std::string::npos; open = text.find('{', open)) {
    size_t close = text.find('}', open);
    if (close == std::string::npos) break;
    text.erase(open, close - open + 1);
  }
  return text;
}

void CollectError(void* user, xmlErrorPtr error) {  // libxml2 2.9 signature (non-const)
  auto* errors = static_cast<std::vector<std::string>*>(user);
  if (errors->size() >= 20) return;  // a broken document can produce thousands; the first ones say it
  std::string message = error && error->message ? TrimCopy(error->message) : "schema error";
  errors->push_back("line " + std::to_string(error ? error->line : 0) + ": " + StripNamespaces(message));
}

CompiledSchema Compile(std::string_view xsd) {
  InitXmlOnce();  // the refusing entity loader also covers <xs:import>/<xs:include>
  CompiledSchema out;
  xmlSchemaParserCtxtPtr parser = xmlSchemaNewMemParserCtxt(xsd.data(), static_cast<int>(xsd.size()));
  if (parser == nullptr) {
    out.error = "cannot create schema parser";
    return out;
  }
  std::vector<std::string> errors;
  xmlSchemaSetParserStructuredErrors(parser, CollectError, &errors);
  out.schema = xmlSchemaParse(parser);
  xmlSchemaFreeParserCtxt(parser);
  if (out.schema == nullptr) out.error = errors.empty() ? "schema does not compile" : errors.front();
  return out;
}

const CompiledSchema& SchemaFor(CapVersion version) {
  // Parsed once, never freed: process-lifetime immutable data shared by all threads.
  static std::once_flag once;
  static CompiledSchema schemas[3];
  std::call_once(once, [] {
    schemas[0] = Compile(internal::kCap10Xsd);
    schemas[1] = Compile(internal::kCap11Xsd);
    schemas[2] = Compile(internal::kCap12Xsd);
  });
  return schemas[static_cast<int>(version)];
}

}  // namespace

std::optional<CapVersion> CapVersionFromNamespace(std::string_view ns) {
  if (ns == kCap12Namespace) return CapVersion::k12;
  if (ns == kCap11Namespace) return CapVersion::k11;
  if (ns == kCap10Namespace) return CapVersion::k10;
  return std::nullopt;
}

std::string_view CapVersionName(CapVersion version) {
  switch (version) {
    case CapVersion::k10:
      return "1.0";
    case CapVersion::k11:
      return "1.1";
    case CapVersion::k12:
      return "1.2";
  }
  return "?";
}

Result<std::vector<std::string>> ValidateCapElement(_xmlNode* alert, CapVersion version) {
  const CompiledSchema& compiled = SchemaFor(version);
  if (compiled.schema == nullptr) {
    return Internal("embedded CAP " + std::string(CapVersionName(version)) + " schema: " + compiled.error);
  }
  xmlSchemaValidCtxtPtr ctxt = xmlSchemaNewValidCtxt(compiled.schema);
  if (ctxt == nullptr) return Internal("cannot create schema validation context");
  std::vector<std::string> errors;
  xmlSchemaSetValidStructuredErrors(ctxt, CollectError, &errors);
  int rc = xmlSchemaValidateOneElement(ctxt, alert);
  xmlSchemaFreeValidCtxt(ctxt);
  if (rc < 0) return Internal("libxml2 schema validation failed internally (" + std::to_string(rc) + ")");
  if (rc > 0 && errors.empty()) errors.push_back("document does not match the CAP schema");
  return errors;
}

}  // namespace amparo::ingest
