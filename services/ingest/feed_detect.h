// One entry point for every feed format: look at the bytes, pick the parser.
//
//   first significant byte (after a UTF-8 or double-encoded BOM and spaces):
//   '<'  XML, read once by ParseXmlSafely() (xml_safety.h), then by root:
//          <alert> (CAP 1.0/1.1/1.2)                        -> ParseCapDocument   "cap"
//          Atom <feed> / RSS <rss> with embedded CAP alerts  -> ParseCapDocument   "cap-atom"/"cap-rss"
//          RSS whose items carry gdacs: fields              -> ParseGdacsRss      "gdacs-rss"
//          any other RSS or Atom feed                       -> ParseCapDocument (rejects each
//                                                              entry: no embedded CAP alert)
//   '{' or '['  JSON:
//          GDACS API event / geometry (properties.eventtype + eventid) -> ParseGdacsApi
//          ReliefWeb API ("data" array of {"id", "fields"})  -> DISPATCH POINT (not yet supported)
//          anything else                                    -> ParseUsgsGeoJson  "usgs-geojson"
//   otherwise   CSV whose header names event_id_cnty (ACLED) -> DISPATCH POINT (not yet supported)
//               anything else: INVALID_ARGUMENT field "format".
// Formats not wired yet fail with INVALID_ARGUMENT, field "format",
// "<name> is recognised but not supported yet" (see the DISPATCH POINT
// comments in feed_detect.cpp: one line registers a parser).
//
// Whether a parse counts as accepted is decided once, here (FeedRejection),
// for the spool and `amparo check` alike.
// Pure; thread-safe.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"
#include "services/ingest/feed_types.h"

namespace amparo::ingest {

Result<ParsedFeed> ParseFeedBytes(std::string_view bytes, const FeedContext& context);

// Reads `file` (refused unread when above `max_file_bytes`: RESOURCE_EXHAUSTED,
// field "ingest.max_file_bytes"; NOT_FOUND when it vanished; UNAVAILABLE when
// unreadable) and parses it with ParseFeedBytes. What the spool and `amparo
// check` both call, so an operator's check is exactly what ingest would do.
Result<ParsedFeed> ParseFeedFile(const std::filesystem::path& file, int64_t max_file_bytes,
                                 const FeedContext& context);

// Why a parse result is a rejected file, or nullopt when it is accepted:
// the parse failed (its Status, "field: message"), or the feed had entries
// and none became an event ("no usable entry: <first rejection>").
std::optional<std::string> FeedRejection(const Result<ParsedFeed>& parsed);

}  // namespace amparo::ingest
