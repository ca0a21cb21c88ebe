// libFuzzer target: USGS GeoJSON summary and detail feeds.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "services/ingest/usgs_parser.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  (void)amparo::ingest::ParseUsgsGeoJson(std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
