// libFuzzer target: ParseFeedBytes, the dispatch every spool file goes
// through (format detection, then every parser). Lenient mode, which runs
// the most code (normalised copies, warnings).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "services/ingest/feed_detect.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  amparo::ingest::FeedContext context;
  context.validation = amparo::ingest::ValidationMode::kLenient;
  context.received_ms = 1;
  auto parsed =
      amparo::ingest::ParseFeedBytes(std::string_view(reinterpret_cast<const char*>(data), size), context);
  (void)amparo::ingest::FeedRejection(parsed);
  return 0;
}
