// ACLED (Armed Conflict Location & Event Data) CSV -> CrisisEvent.
//
// Two kinds of file, told apart by their header row:
//   * events: the ACLED export columns (event_id_cnty, event_date, year,
//     time_precision, disorder_type, event_type, sub_event_type, actor1, ...,
//     iso, region, country, admin1, admin2, admin3, location, latitude,
//     longitude, geo_precision, source, source_scale, notes, fatalities, tags,
//     timestamp). Required: event_id_cnty, event_date, event_type, iso,
//     latitude, longitude, timestamp; the rest are used when present.
//   * deletions: ACLED's list of withdrawn events, a header without
//     event_type/latitude/longitude but with event_id_cnty and timestamp.
//     Each row becomes a CANCEL of "acled:<event_id_cnty>".
// Columns are found by header name (case-insensitive, surrounding spaces
// ignored), in any order, extra columns ignored. The text is RFC 4180 CSV:
// a UTF-8 BOM is skipped, fields may be quoted (with "" for a quote) and hold
// commas and line breaks, records end in CRLF or LF, blank lines are skipped.
//
// Mapping (one event per row): event_id "acled:<event_id_cnty>", source
// "acled", revision = timestamp (unix s) * 1000 (the same event_id_cnty with a
// newer timestamp is a newer revision: the spool turns it into an UPDATE),
// msg_type ALERT, hazard from event_type (Battles, Explosions/Remote violence,
// Violence against civilians -> CONFLICT; Riots, Protests -> CIVIL_UNREST;
// Strategic developments and anything else -> OTHER), source_hazard_code =
// event_type, metrics.fatalities, origin = latitude/longitude, one area named
// after location/admin1/country with the geocode {"ISO3", <iso numeric
// mapped to alpha-3>}, onset_ms = event_date 00:00 UTC, sent_ms = timestamp,
// texts[0] = {"en", "<sub_event_type> in <place>", notes}.
//
// Streaming: rows are read and handed over one at a time; a bad row is a
// RowRejection (line, column, reason) and reading goes on. Only a file that
// cannot be read as an ACLED file at all (no header, a required column
// missing) is an error. Pure functions, thread-safe.
//
// ACLED's terms forbid redistributing its rows: the tests use synthetic rows.
#pragma once

#include <cstdint>
#include <functional>
#include <istream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "amparo/v1/crisis_event.pb.h"
#include "common/status.h"
#include "services/ingest/feed_types.h"

namespace amparo::ingest {

inline constexpr std::string_view kAcledSource = "acled";

struct AcledParseOptions {
  v1::EventStatus status = v1::EVENT_STATUS_ACTUAL;  // stamped on every event
  int64_t received_ms = 0;                          // stamped as received_ms; 0 leaves it unset
  size_t max_field_bytes = 1 << 20;                  // a longer field rejects its row
  int max_columns = 256;                             // a wider header rejects the file
};

// One row that could not be turned into an event.
struct RowRejection {
  int64_t line = 0;      // 1-based line where the record starts (the header is line 1 unless a blank precedes it)
  std::string column;    // header name of the bad value, "" for the row as a whole
  std::string reason;    // e.g. "latitude 123.5 out of range -90..90"
  std::string event_id_cnty;  // when the row had one

  // "line 7: latitude: latitude 123.5 out of range -90..90 (event_id_cnty SYR1234)"
  std::string ToString() const;
};

enum class AcledFileKind { kEvents, kDeletions };

struct AcledSummary {
  AcledFileKind kind = AcledFileKind::kEvents;
  int64_t rows = 0;           // data records read, accepted or not
  int64_t events = 0;         // handed to on_event
  int64_t rejections = 0;     // handed to on_rejection
  std::vector<std::string> warnings;  // e.g. "line 4: iso: 999 is not an ISO 3166-1 numeric code; no ISO3 geocode"
};

// Reads `in` to its end, calling `on_event` for each good row and
// `on_rejection` for each bad one, in file order. Errors (INVALID_ARGUMENT):
// "empty file: no header row", a required column missing (field = the column),
// a duplicate column, more than max_columns columns; UNAVAILABLE when the stream fails.
Result<AcledSummary> ParseAcledCsvStream(std::istream& in, const AcledParseOptions& options,
                                         const std::function<void(v1::CrisisEvent)>& on_event,
                                         const std::function<void(RowRejection)>& on_rejection);

struct ParsedAcled {
  AcledSummary summary;
  std::vector<v1::CrisisEvent> events;
  std::vector<RowRejection> rejections;
};

// The whole text in memory, collected (same rules as the stream form).
Result<ParsedAcled> ParseAcledCsv(std::string_view text, const AcledParseOptions& options = {});

// The feed_detect.h entry point: ParseAcledCsv with the FeedContext's
// exercise flag and received_ms, as a ParsedFeed of format "acled-csv"
// (feature_count = data rows; each RowRejection becomes a FeatureRejection
// {index = line, id = event_id_cnty, field = "line <n> <column>"}; each
// unknown iso code a ParseWarning "acled-unknown-iso").
Result<ParsedFeed> ParseAcledFeed(std::string_view bytes, const FeedContext& context);

// ISO 3166-1 numeric code -> alpha-3 ("4" -> "AFG"); nullopt when unknown.
std::optional<std::string_view> Iso3FromNumeric(int numeric);

// The hazard ACLED's event_type maps to (see above).
v1::HazardKind AcledHazard(std::string_view event_type);

}  // namespace amparo::ingest
