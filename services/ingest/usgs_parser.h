// USGS earthquake GeoJSON -> CrisisEvent.
//
// Accepts the two shapes the USGS feeds publish
// (https://earthquake.usgs.gov/earthquakes/feed/v1.0/geojson.php):
//   * a summary feed: {"type": "FeatureCollection", "features": [Feature...]}
//   * a detail feed:  a single {"type": "Feature", ...}
// and normalises each feature to one CrisisEvent revision as the wire
// conventions say (event_id "usgs:<id>", revision = `updated`, ...).
//
// Validation happens here, once, at the edge (STYLE.md 9). Two levels:
//   * the whole input is refused (the Result is an INVALID_ARGUMENT) when it
//     is not JSON, not an object, or not a FeatureCollection/Feature;
//   * a bad feature inside a FeatureCollection is reported as a
//     FeatureRejection naming the field and the reason, and the rest of the
//     features are still parsed.
//
// msg_type is ALERT, or CANCEL when the feature's status is "deleted"; turning
// an ALERT into an UPDATE needs the history of what was sent and is the
// spool's job (spool.h). Pure functions, thread-safe.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "amparo/v1/crisis_event.pb.h"
#include "common/status.h"

namespace amparo::ingest {

// The source name every USGS event carries ("usgs:<id>" event ids).
inline constexpr std::string_view kUsgsSource = "usgs";

struct UsgsParseOptions {
  // CAP status stamped on every event (EXERCISE for exercise files).
  v1::EventStatus status = v1::EVENT_STATUS_ACTUAL;
  // Stamped as received_ms on every event; 0 leaves it unset.
  int64_t received_ms = 0;
};

// One feature that could not be turned into an event.
struct FeatureRejection {
  int index = 0;       // position in `features`; 0 for a single-Feature file
  std::string id;      // the feature's `id` when it had a usable one, else ""
  std::string field;   // JSON path of the bad value, e.g. "features[3].geometry.coordinates"
  std::string reason;  // e.g. "latitude 123.0 out of range -90..90"

  // "features[3].geometry.coordinates: latitude 123.0 out of range -90..90 (id us1234)"
  std::string ToString() const;
};

struct ParsedFeed {
  enum class Kind { kSummary, kDetail };
  Kind kind = Kind::kSummary;
  int feature_count = 0;  // features in the input, accepted or not
  std::vector<v1::CrisisEvent> events;
  std::vector<FeatureRejection> rejections;
};

// Parses one feed document held in memory. Errors (INVALID_ARGUMENT only):
//   "JSON syntax error at line 3, column 7 (byte 41): syntax error"
//   field "type": "must be \"FeatureCollection\" or \"Feature\", got \"Topology\""
//   field "features": "must be an array"
Result<ParsedFeed> ParseUsgsGeoJson(std::string_view text, const UsgsParseOptions& options = {});

// Reads `file` and parses it. A file larger than `max_file_bytes` is refused
// before any byte is read (RESOURCE_EXHAUSTED, field "ingest.max_file_bytes");
// an unreadable file is NOT_FOUND / UNAVAILABLE.
Result<ParsedFeed> ParseUsgsGeoJsonFile(const std::filesystem::path& file, int64_t max_file_bytes,
                                        const UsgsParseOptions& options = {});

}  // namespace amparo::ingest
