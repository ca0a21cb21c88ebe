// libFuzzer target: ACLED CSV (events and deletion lists).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "services/ingest/acled_parser.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  (void)amparo::ingest::ParseAcledFeed(std::string_view(reinterpret_cast<const char*>(data), size),
                                       amparo::ingest::FeedContext{});
  return 0;
}
