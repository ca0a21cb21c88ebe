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
#include "services/ingest/feed_types.h"

namespace boost::json {
class value;
}  // namespace boost::json

namespace amparo::ingest {

// The source name every USGS event carries ("usgs:<id>" event ids).
inline constexpr std::string_view kUsgsSource = "usgs";

struct UsgsParseOptions {
  // CAP status stamped on every event (EXERCISE for exercise files).
  v1::EventStatus status = v1::EVENT_STATUS_ACTUAL;
  // Stamped as received_ms on every event; 0 leaves it unset.
  int64_t received_ms = 0;
};

// FeatureRejection and ParsedFeed (feed_types.h) are shared by every feed parser.

// Parses one feed document held in memory. Errors (INVALID_ARGUMENT only):
//   "JSON syntax error at line 3, column 7 (byte 41): syntax error"
//   field "type": "must be \"FeatureCollection\" or \"Feature\", got \"Topology\""
//   field "features": "must be an array"
Result<ParsedFeed> ParseUsgsGeoJson(std::string_view text, const UsgsParseOptions& options = {});

// The same for a document already parsed as JSON (by feed detection, which
// parses every JSON file once): the value `ParseUsgsGeoJson(text)` would have
// built from `text`. It must come from a parse with the default
// boost::json::parse_options (at most 32 levels deep), as ParseUsgsGeoJson's
// own: a deeper document is a syntax error there. Never fails on JSON syntax.
Result<ParsedFeed> ParseUsgsGeoJsonValue(const boost::json::value& root, const UsgsParseOptions& options = {});

// Reads `file` and parses it. A file larger than `max_file_bytes` is refused
// before any byte is read (RESOURCE_EXHAUSTED, field "ingest.max_file_bytes");
// an unreadable file is NOT_FOUND / UNAVAILABLE.
Result<ParsedFeed> ParseUsgsGeoJsonFile(const std::filesystem::path& file, int64_t max_file_bytes,
                                        const UsgsParseOptions& options = {});

}  // namespace amparo::ingest
