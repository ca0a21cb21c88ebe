// libFuzzer target: ReliefWeb disaster records (API JSON).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "services/ingest/reliefweb_parser.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  (void)amparo::ingest::ParseReliefWebFeed(std::string_view(reinterpret_cast<const char*>(data), size),
                                           amparo::ingest::FeedContext{});
  return 0;
}
