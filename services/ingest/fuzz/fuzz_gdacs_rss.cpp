// libFuzzer target: GDACS RSS/GeoRSS (called directly, whatever the root).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "services/ingest/gdacs_rss.h"
#include "services/ingest/xml_safety.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace amparo::ingest;
  auto doc =
      ParseXmlSafely(std::string_view(reinterpret_cast<const char*>(data), size), XmlLimits{}, nullptr);
  if (!doc.ok()) return 0;
  (void)LooksLikeGdacsRss(*doc);
  (void)ParseGdacsRss(*doc, FeedContext{});
  return 0;
}
