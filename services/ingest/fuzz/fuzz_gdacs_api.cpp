// libFuzzer target: GDACS JSON API (event and geometry documents), called
// directly on any JSON value.
#include <boost/json.hpp>

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "services/ingest/gdacs_api.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  boost::system::error_code ec;
  boost::json::value json =
      boost::json::parse(std::string_view(reinterpret_cast<const char*>(data), size), ec);
  if (ec) return 0;
  (void)amparo::ingest::LooksLikeGdacsApi(json);
  (void)amparo::ingest::ParseGdacsApi(json, amparo::ingest::FeedContext{});
  return 0;
}
