// ReliefWeb disaster records (API v1 /disasters JSON) -> CrisisEvent.
//
// Input: the API's response object {"totalCount", "count", "data": [record...]}
// where each record is {"id": "25466", "fields": {...}}; the fields are either
// the full set (name, description, status, glide, primary_country, country[],
// primary_type, type[], url, url_alias, date.{created,changed,event}) or the
// short list preset (id, name, status, glide only).
//
// One event per record, country-level (ReliefWeb gives no shapes and no
// epicentre, so no origin is set):
//   event_id "reliefweb:<id>", source "reliefweb", source_id = id,
//   id_aliases ["glide:<GLIDE number>"] when the record has one (GLIDE is the
//     cross-source disaster number; GDACS carries it too),
//   hazard from the primary type code (primary_type.code, else the type
//     marked primary, else the GLIDE prefix): EQ earthquake, TS tsunami,
//     TC tropical cyclone, FL/FF/SS flood, VO volcano, WF wildfire, DR drought,
//     ST/EC/VW/CW/HT/TO severe weather, CE (complex emergency) conflict, others
//     OTHER; source_hazard_code = the code,
//   one area per country (primary country first), description = country
//     name, geocode {"ISO3", upper-case iso3}; without country fields the
//     GLIDE number's country suffix ("FL-2024-000139-TCD") is used,
//   status: "alert" -> urgency EXPECTED, "ongoing"/"current" -> IMMEDIATE,
//     "past" -> PAST, "external" -> UNKNOWN (all msg_type ALERT);
//     "alert-archive" (an alert that never became a disaster) -> CANCEL,
//   revision = date.changed, else date.created (unix ms); a short record
//     without dates gets its status rank instead (alert/external 1,
//     ongoing 2, past/alert-archive 3) so a status change is still newer,
//   onset_ms = date.event (else created), sent_ms = date.changed (else created),
//   texts[0] = {"en", name, description}, web_url = url_alias (else url), place
//   = the primary country's name.
//
// A record that cannot be mapped (no id, no name, an unknown status, no
// country at all, a bad date) is a RecordRejection naming the field; the
// others are still returned. Pure functions, thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "amparo/v1/crisis_event.pb.h"
#include "common/status.h"
#include "services/ingest/feed_types.h"

namespace amparo::ingest {

inline constexpr std::string_view kReliefWebSource = "reliefweb";

struct ReliefWebParseOptions {
  v1::EventStatus status = v1::EVENT_STATUS_ACTUAL;
  int64_t received_ms = 0;  // 0 leaves received_ms unset
};

struct RecordRejection {
  int index = 0;       // position in `data`
  std::string id;      // the record id when known
  std::string field;   // e.g. "data[3].fields.status"
  std::string reason;

  // "data[3].fields.status: must be one of alert, ongoing, ... (id 123)"
  std::string ToString() const;
};

struct ParsedReliefWeb {
  int record_count = 0;       // records in `data`, accepted or not
  int64_t total_count = -1;   // the API's totalCount (records on the server), -1 when absent
  std::vector<v1::CrisisEvent> events;
  std::vector<RecordRejection> rejections;
};

// Errors (INVALID_ARGUMENT): not JSON ("JSON syntax error at line L, column C
// ..."), not an object, `data` missing or not an array (field "data").
Result<ParsedReliefWeb> ParseReliefWebJson(std::string_view text, const ReliefWebParseOptions& options = {});

// The feed_detect.h entry point: ParseReliefWebJson with the FeedContext's
// exercise flag and received_ms, as a ParsedFeed of format "reliefweb"
// (feature_count = records; rejections carried over field for field).
Result<ParsedFeed> ParseReliefWebFeed(std::string_view bytes, const FeedContext& context);

// The hazard a ReliefWeb / GLIDE type code maps to (see above).
v1::HazardKind ReliefWebHazard(std::string_view code);

}  // namespace amparo::ingest
