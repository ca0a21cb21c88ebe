// libFuzzer target: CAP 1.0-1.2 (single alerts, Atom and RSS of CAP), in
// strict and lenient validation over the same document.
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "services/ingest/cap_parser.h"
#include "services/ingest/xml_safety.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace amparo::ingest;
  std::vector<ParseWarning> warnings;
  auto doc =
      ParseXmlSafely(std::string_view(reinterpret_cast<const char*>(data), size), XmlLimits{}, &warnings);
  if (!doc.ok()) return 0;
  (void)LooksLikeCapDocument(*doc);
  for (ValidationMode mode : {ValidationMode::kStrict, ValidationMode::kLenient}) {
    FeedContext context;
    context.validation = mode;
    (void)ParseCapDocument(*doc, context);
  }
  return 0;
}
