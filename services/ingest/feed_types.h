// Types every feed parser in ingest shares: what a parse produced
// (ParsedFeed), what the caller tells the parser (FeedContext), and the small
// helpers parsers of different formats need alike (times, hazard codes).
//
// A parser returns Result<ParsedFeed>:
//   * an error Status when the whole input is refused (not the format, not
//     well formed, hostile, schema-invalid in strict mode...);
//   * otherwise the events it could read, a FeatureRejection per entry it
//     could not (the rest of the feed still counts), and named warnings for
//     accepted real-world deviations (lenient validation).
// Pure value types; thread-compatible.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "amparo/v1/crisis_event.pb.h"
#include "common/status.h"
#include "services/ingest/xml_safety.h"

namespace amparo::ingest {

class TrustStore;

// One entry (feature, item, alert) that could not be turned into an event.
struct FeatureRejection {
  int index = 0;       // position of the entry in its feed; 0 for a single-entry file
  std::string id;      // the entry's own id when it had a usable one, else ""
  std::string field;   // path of the bad value, e.g. "features[3].geometry.coordinates"
  std::string reason;  // e.g. "latitude 123.0 out of range -90..90"

  // "features[3].geometry.coordinates: latitude 123.0 out of range -90..90 (id us1234)"
  std::string ToString() const;
};

// A deviation from the format's specification that the parser accepted
// (lenient validation, or a harmless encoding quirk). `code` is a stable
// name tests and operators match on, e.g. "polygon-after-geocode".
struct ParseWarning {
  std::string code;
  std::string detail;  // where and what, e.g. "alert[0] info[0] area[1]"

  // "polygon-after-geocode: alert[0] info[0] area[1]"
  std::string ToString() const;
};

struct ParsedFeed {
  enum class Kind { kSummary, kDetail };
  Kind kind = Kind::kSummary;  // USGS only: summary feed or detail feed
  // The detected format: "usgs-geojson", "cap", "cap-atom", "cap-rss",
  // "gdacs-rss", "gdacs-api-event", "gdacs-api-geometry" (others register theirs).
  std::string format;
  int feature_count = 0;  // entries in the input, accepted or not
  std::vector<v1::CrisisEvent> events;
  std::vector<FeatureRejection> rejections;
  std::vector<ParseWarning> warnings;
};

// How strictly XML feeds are checked against their schema (per source, config
// `ingest.validation` / `[[ingest.poll]].validation`).
enum class ValidationMode {
  kStrict,   // any schema or specification error rejects the message
  kLenient,  // known real-world deviations are accepted with a named warning
};

// What the caller knows about the bytes it hands to a parser.
struct FeedContext {
  ValidationMode validation = ValidationMode::kStrict;
  // The spool file is an exercise: events the source calls Actual become
  // Exercise (Test, Exercise, Draft, System are kept as they are).
  bool exercise = false;
  int64_t received_ms = 0;  // stamped on every event; 0 leaves it unset
  XmlLimits xml_limits;
  // Signers trusted for XML-DSig signed CAP (xmldsig.h); nullptr = nobody.
  // Not owned; outlives the parse.
  const TrustStore* trust_store = nullptr;
  // Refuse validly signed messages whose signer is not trusted.
  bool require_trusted_signers = false;
};

// Source-independent helpers (exposed for every parser and their tests).

// "2021-08-03T05:28:23-00:00", "2012-08-29T16:29:00-04:00", "2024-10-27T15:00:00"
// (no zone = UTC), "...Z", fractional seconds allowed. nullopt when malformed.
std::optional<int64_t> ParseIsoTimeMs(std::string_view text);
// RFC 822 / 1123 dates as RSS uses them: "Sun, 29 Dec 2019 12:00:00 GMT",
// "Thu, 29 Jul 2021 07:35 GMT", "+0000" offsets. nullopt when malformed.
std::optional<int64_t> ParseRfc822TimeMs(std::string_view text);

// GDACS event type codes: EQ TC FL VO WF DR TS -> hazard; else OTHER.
v1::HazardKind HazardFromGdacsType(std::string_view event_type);
// A hazard from free text (CAP <event>, a title): keyword match, else nullopt.
std::optional<v1::HazardKind> HazardFromText(std::string_view text);
// GDACS alert level (Green/Orange/Red, any case) -> CAP-like severity used
// across GDACS formats: Red SEVERE, Orange MODERATE, Green MINOR, else UNKNOWN.
v1::Severity SeverityFromGdacsLevel(std::string_view level);

// Applies FeedContext.exercise to a status the source gave.
v1::EventStatus ApplyExercise(v1::EventStatus status, const FeedContext& context);

std::string TrimCopy(std::string_view text);
// `text` in double quotes, for error messages ("got \"abc\"").
std::string Quote(std::string_view text);
// "line L, column C (byte B)" of `offset` in `text`, for an operator opening
// the file in an editor.
std::string TextPosition(std::string_view text, size_t offset);
// Reads a whole file of at most `max_file_bytes` (checked before reading:
// kResourceExhausted naming ingest.max_file_bytes); kNotFound / kUnavailable
// when it cannot be read whole.
Result<std::string> ReadBoundedFile(const std::filesystem::path& file, int64_t max_file_bytes);

}  // namespace amparo::ingest
