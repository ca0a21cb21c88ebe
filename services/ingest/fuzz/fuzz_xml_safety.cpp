// libFuzzer target: the hardened XML reader every XML feed goes through
// (BOMs, encodings, DOCTYPE refusal, limits), with small limits so the depth
// and element bounds are hit, then every node helper over the whole tree.
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "services/ingest/feed_types.h"
#include "services/ingest/xml_safety.h"

namespace {

void Walk(const _xmlNode* node, int depth) {
  if (depth > 64) return;
  (void)amparo::ingest::XmlLocalName(node);
  (void)amparo::ingest::XmlNamespace(node);
  (void)amparo::ingest::XmlText(node);
  (void)amparo::ingest::XmlAttribute(node, "id");
  (void)amparo::ingest::XmlChildText(node, "value");
  for (const _xmlNode* child : amparo::ingest::XmlChildren(node)) Walk(child, depth + 1);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace amparo::ingest;
  XmlLimits limits;
  limits.max_depth = 24;
  limits.max_elements = 20'000;
  std::vector<ParseWarning> warnings;
  auto doc = ParseXmlSafely(std::string_view(reinterpret_cast<const char*>(data), size), limits, &warnings);
  if (doc.ok() && doc->root() != nullptr) Walk(doc->root(), 0);
  return 0;
}
