// A 10,000-feature USGS GeoJSON feed end to end through the spool: parse,
// dedupe, correlate, one transaction into ingest_events + the outbox for
// rules. Prints events/s into the outbox, then the replay of the same file
// (every event unchanged).
//
//   usgs_spool [--features N]
//
// The features are the 188 real ones of the USGS day feed fixture, cycled with
// new ids and times shifted 4 h per cycle (9 days in all) (so correlation sees realistic windows).
#include <boost/json.hpp>

#include <unistd.h>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/clock.h"
#include "common/db.h"
#include "common/link.h"
#include "services/ingest/spool.h"

namespace fs = std::filesystem;
using namespace amparo;

int main(int argc, char** argv) {
  int features = 10'000;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--features") && i + 1 < argc) features = std::atoi(argv[++i]);
  }
  std::ifstream in(fs::path(AMPARO_FIXTURES_DIR) /
                   "usgs/summary-exxamalte/usgs_all_earthquakes_past_day.json");
  std::stringstream s;
  s << in.rdbuf();
  boost::json::object day = boost::json::parse(s.str()).as_object();
  const boost::json::array& real = day.at("features").as_array();
  boost::json::array out;
  for (int i = 0; i < features; ++i) {
    boost::json::object f = real[i % real.size()].as_object();
    const std::string id = "bench" + std::to_string(i);
    f["id"] = id;
    boost::json::object& p = f["properties"].as_object();
    p["ids"] = "," + id + ",";
    const int64_t shift = static_cast<int64_t>(i / real.size()) * 4 * 3'600'000;  // 4 h per cycle
    p["time"] = p.at("time").to_number<int64_t>() - shift;
    p["updated"] = p.at("updated").to_number<int64_t>() - shift;
    out.push_back(std::move(f));
  }
  day["features"] = std::move(out);
  const std::string feed = boost::json::serialize(day);

  const fs::path dir = fs::temp_directory_path() / ("amparo-bench-usgs-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  auto db = Db::Open(dir / "ingest.db");
  if (!db.ok() || !ingest::PrepareIngestDb(*db).ok()) return 1;
  ingest::SpoolOptions options;
  options.spool_dir = dir / "spool";
  const Clock& clock = SystemClock::Instance();
  ingest::SpoolProcessor spool(*db, options, clock);
  if (!spool.CreateDirectories().ok()) return 1;

  auto run = [&](const char* name) {
    std::ofstream(options.spool_dir / name, std::ios::binary) << feed;
    auto t0 = std::chrono::steady_clock::now();
    const std::clock_t c0 = std::clock();
    auto outcome = spool.ProcessFile(options.spool_dir / name);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double cpu = double(std::clock() - c0) / CLOCKS_PER_SEC;
    if (!outcome.ok()) {
      std::fprintf(stderr, "%s\n", outcome.status().ToString().c_str());
      return false;
    }
    std::printf(
        "  %-11s %d features (%.1f MB) in %.3f s (%.3f CPU s): %.0f features/s (%.0f per CPU s); "
        "%d events into the outbox, %d unchanged\n",
        name, features, feed.size() / 1e6, secs, cpu, features / secs, features / cpu, outcome->events_sent,
        outcome->events_unchanged);
    return true;
  };
  std::printf("usgs_spool: one %d-feature USGS feed through the spool (parse, dedupe, correlate, commit)\n",
              features);
  bool ok = run("first.json") && run("replay.json");
  auto pending = PendingOutbound(*db, "rules", 1'000'000);
  std::printf("  outbox for rules: %zu envelopes\n", pending.ok() ? pending->size() : 0);
  std::error_code ec;
  fs::remove_all(dir, ec);
  return ok ? 0 : 1;
}
