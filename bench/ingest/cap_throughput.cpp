// CAP parse + validate + normalise throughput on one core, against a bare
// libxml2 parse (xmlReadMemory) of the same bytes in the same run.
//
//   cap_throughput [--messages N] [--strict] [--unsigned]
//
// Every single-alert CAP fixture that ingest accepts (cap/**, GDACS CAP) is
// loaded, then the set is repeated until N messages (default 10,000). Each
// message goes through ParseFeedBytes(), exactly what the spool does: format
// detection, the hardened XML parse, OASIS schema validation (lenient unless
// --strict), the specification checks, XML-DSig verification when signed,
// and normalisation to CrisisEvent.
#include <libxml/parser.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "services/ingest/feed_detect.h"

namespace fs = std::filesystem;
using amparo::ingest::FeedContext;
using amparo::ingest::ParseFeedBytes;
using amparo::ingest::ValidationMode;

int main(int argc, char** argv) {
  int messages = 10'000;
  bool unsigned_only = false;  // skip XML-DSig signed messages (RSA verification dominates them)
  ValidationMode mode = ValidationMode::kLenient;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--messages") && i + 1 < argc) messages = std::atoi(argv[++i]);
    if (!std::strcmp(argv[i], "--strict")) mode = ValidationMode::kStrict;
    if (!std::strcmp(argv[i], "--unsigned")) unsigned_only = true;
  }
  FeedContext context;
  context.validation = mode;
  context.received_ms = 1;

  std::vector<std::string> corpus;
  size_t skipped = 0;
  for (const char* dir : {"cap", "gdacs/cap-kontur"}) {
    for (const auto& entry : fs::recursive_directory_iterator(fs::path(AMPARO_FIXTURES_DIR) / dir)) {
      const fs::path ext = entry.path().extension();
      if (!entry.is_regular_file() || ext == ".xsd" || ext == ".md") continue;
      std::ifstream in(entry.path(), std::ios::binary);
      std::stringstream s;
      s << in.rdbuf();
      auto parsed = ParseFeedBytes(s.str(), context);
      const bool is_signed = s.str().find("http://www.w3.org/2000/09/xmldsig#") != std::string::npos;
      if (parsed.ok() && parsed->format == "cap" && parsed->events.size() == 1 &&
          !(unsigned_only && is_signed)) {
        corpus.push_back(s.str());
      } else {
        ++skipped;
      }
    }
  }
  if (corpus.empty()) {
    std::fprintf(stderr, "no CAP fixtures found under %s\n", AMPARO_FIXTURES_DIR);
    return 1;
  }
  size_t bytes = 0;
  for (int i = 0; i < messages; ++i) bytes += corpus[i % corpus.size()].size();

  using Clock = std::chrono::steady_clock;
  // Warm-up (schemas compiled, caches filled), then the two timed passes.
  for (const std::string& m : corpus) (void)ParseFeedBytes(m, context);

  auto t0 = Clock::now();
  std::clock_t c0 = std::clock();
  size_t events = 0;
  for (int i = 0; i < messages; ++i) {
    auto parsed = ParseFeedBytes(corpus[i % corpus.size()], context);
    events += parsed.ok() ? parsed->events.size() : 0;
  }
  const double full_s = std::chrono::duration<double>(Clock::now() - t0).count();
  const double full_cpu = double(std::clock() - c0) / CLOCKS_PER_SEC;

  t0 = Clock::now();
  c0 = std::clock();
  size_t docs = 0;
  for (int i = 0; i < messages; ++i) {
    const std::string& m = corpus[i % corpus.size()];
    xmlDocPtr doc = xmlReadMemory(m.data(), static_cast<int>(m.size()), nullptr, nullptr, XML_PARSE_NONET);
    docs += doc != nullptr;
    xmlFreeDoc(doc);
  }
  const double bare_s = std::chrono::duration<double>(Clock::now() - t0).count();
  const double bare_cpu = double(std::clock() - c0) / CLOCKS_PER_SEC;

  std::printf("cap_throughput: %d messages (%zu distinct fixtures, %zu other files skipped), %.1f MB, %s\n",
              messages, corpus.size(), skipped, bytes / 1e6,
              mode == ValidationMode::kStrict ? "strict" : "lenient");
  if (unsigned_only) std::printf("  (unsigned messages only)\n");
  std::printf("  parse+validate+normalise: %.0f messages/s (%.1f us/message, %zu events)\n",
              messages / full_s, 1e6 * full_s / messages, events);
  std::printf("  bare xmlReadMemory:       %.0f messages/s (%.1f us/message, %zu docs)\n", messages / bare_s,
              1e6 * bare_s / messages, docs);
  std::printf("  per CPU second: %.0f vs %.0f messages/s\n", messages / full_cpu, messages / bare_cpu);
  std::printf("  ratio: ingest takes %.1fx the time of a bare libxml2 parse (%.1fx in CPU time)\n",
              full_s / bare_s, full_cpu / bare_cpu);
  return 0;
}
