// Correlation: many reports of one crisis -> ONE incident.
//
// Every event revision ingest is about to send passes through
// Correlator::Correlate() inside the spool's transaction. It finds the
// incident the event belongs to, or opens a new one, and stamps
// CrisisEvent.incident_id (the event_id of the incident's first event) and
// incident_aliases (the incident's other event_ids). amparo-rules keys its
// alerts by incident_id, so USGS and GDACS reporting the same earthquake raise
// one alert, not two. Every correlated revision is appended to the incident's
// revision history (History()).
//
// Matching rules, tried in this order (docs/ingest-correlation.md has the
// same table with examples):
//
//   1. Explicit ids (any hazard, any msgType, including Cancel). An event
//      joins the incident that already holds any of its keys:
//        event_id                       "usgs:us2000hf24", "gdacs:EQ1279931"
//        "<source>:<source_id>"          the source's own id
//        "<source>:<alias>"              USGS `ids`, GDACS "<type><id>-<episode>",
//                                        CAP identifiers, ACLED event_id_cnty
//        "glide:<number>" aliases         GLIDE numbers (ReliefWeb), cross-source
//        "<source>:<source_id>" of each   CAP <references> (Update/Cancel name
//          reference                      the message they supersede)
//      GDACS episodes share event_id "gdacs:<type><eventid>" and USGS id
//      changes map back through `ids` (spool.h), so both land here.
//   2. Proximity (only when no key matched; never for a Cancel; never with an
//      incident that already holds an event of the SAME source: one source's
//      two reports are two crises, e.g. an aftershock sequence):
//        hazard                  time window (onset)  place                       other
//        EARTHQUAKE              |dt| <= 10 min       epicentres <= 100 km apart  |dM| <= 1.0 when both known
//        TROPICAL_CYCLONE, FLOOD,
//        VOLCANO, WILDFIRE,
//        DROUGHT, SEVERE_WEATHER |dt| <= 48 h         bounding boxes of the areas (or the origin) overlap
//        TSUNAMI, CONFLICT, CIVIL_UNREST, OTHER: no proximity matching (ids only).
//      The place of an event is its origin, else the centre of its first
//      polygon or circle (GDACS CAP gives only a polygon around the epicentre);
//      the onset is onset_ms, else sent_ms. An incident is compared on its
//      first event's place, onset and magnitude; its box grows with every
//      member. A cancelled incident takes no new proximity matches. Among
//      several candidates the nearest in time wins. Restricted events
//      (restricted_to_states: operator-entered, one state's own) never match
//      by proximity, and no event joins an incident that has an operator
//      member by proximity: one state's private report and the public ones
//      stay separate incidents.
//   3. Otherwise a new incident: incident_id = the event's event_id.
//
// Status is part of every key: exercises and tests never join real incidents.
//
// Thread safety: a Correlator belongs to the thread that owns its Db. Every
// call must run inside the caller's transaction (the spool's), so an event and
// its incident bookkeeping commit together.
//
// Cell cache: to skip the index probes of empty cells, a Correlator remembers
// which 1-degree cells hold earthquake incidents per stretch of onset time
// (read from the database the first time a stretch is needed, then kept
// current by its own inserts). It is a superset (a rolled-back insert only
// costs a probe), so answers never change; but incidents another Correlator or
// connection adds to a stretch this one has already read are not seen by its
// proximity rule: keep one long-lived Correlator per database that writes
// incidents (the spool's). Bounded: past kMaxCachedRows rows it starts over.
#pragma once

#include <cstdint>
#include <bitset>
#include <string>
#include <unordered_map>
#include <vector>

#include "amparo/v1/crisis_event.pb.h"
#include "common/db.h"
#include "common/status.h"

namespace amparo::ingest {

// The source name of operator-entered (restricted) events.
inline constexpr char kRestrictedSource[] = "operator";

// Bounds of the proximity rule (defaults are the documented table).
struct CorrelationRules {
  int64_t earthquake_window_ms = 10 * 60 * 1000;
  double earthquake_max_distance_km = 100.0;
  double earthquake_max_magnitude_delta = 1.0;
  int64_t area_window_ms = 48 * 3600 * 1000;  // cyclones, floods, volcanoes, fires, droughts, storms
};

// How an event found its incident.
enum class MatchRule { kNewIncident, kExplicitId, kProximity };
std::string_view MatchRuleName(MatchRule rule);  // "new", "id", "proximity"

struct IncidentMatch {
  std::string incident_id;
  MatchRule rule = MatchRule::kNewIncident;
  int64_t incident_revision = 0;  // 1 for the first event of an incident, then 2, 3, ...
};

// One line of an incident's history, in order.
struct IncidentRevision {
  int64_t seq = 0;  // the incident revision, 1, 2, ...
  std::string event_id;
  int64_t event_revision = 0;
  v1::MessageType msg_type = v1::MESSAGE_TYPE_UNSPECIFIED;
  MatchRule rule = MatchRule::kNewIncident;
  int64_t recorded_ms = 0;
};

// Tables the correlator needs; appended to IngestMigrations() (spool.h).
std::string CorrelatorMigration();
// Adds each incident's 1-degree cell of its place (lat_cell, lon_cell, filled
// in for existing rows) and an index on it, so the earthquake proximity rule
// reads only the incidents in the cells within reach of an event (and its
// time window), not every incident of the window: a burst of N quakes with
// one onset (an aftershock sequence, a backfill) costs O(N) lookups, not
// O(N^2). Appended after CorrelatorMigration().
std::string CorrelatorCellMigration();

class Correlator {
 public:
  // `db` must outlive this and have had PrepareIngestDb().
  explicit Correlator(Db& db, CorrelationRules rules = {}) : db_(db), rules_(rules) {}

  // Finds or opens the incident of `event` (see the rules above), records the
  // membership and the revision, and sets event->incident_id and
  // event->incident_aliases. `event` must already carry its stable event_id,
  // status and final msg_type. Errors: storage failures only.
  Result<IncidentMatch> Correlate(v1::CrisisEvent* event, int64_t now_ms);

  // The revisions recorded for an incident, oldest first (empty when unknown).
  Result<std::vector<IncidentRevision>> History(const std::string& incident_id, v1::EventStatus status);

  // Bound of the cell cache (rows of 360 cells; about 120 bytes each).
  static constexpr size_t kMaxCachedRows = 1 << 18;

 private:
  // One row of cells (one lat_cell; or, with lat_cell == kStretchLoaded, the
  // marker that a stretch of onset time was read) of earthquake incidents of
  // one status; the value has a bit per lon_cell that holds one.
  struct CellRow {
    int status;
    int64_t stretch;  // onset_ms / stretch length, rounded down
    int lat_cell;
    bool operator==(const CellRow&) const = default;
  };
  struct CellRowHash {
    size_t operator()(const CellRow& k) const;
  };
  static constexpr int kStretchLoaded = -1;

  // Narrows `lat`/`lon` (the cells within reach) to those holding an
  // earthquake incident with an onset in [from_ms, to_ms]; false when none
  // does. Errors: storage failures.
  Result<bool> KeepOccupiedCells(int status, int64_t from_ms, int64_t to_ms, std::vector<int>* lat,
                                 std::vector<int>* lon);
  void RememberCell(int status, int64_t onset_ms, int lat_cell, int lon_cell);
  Status RecordHistory(const IncidentMatch& match, const v1::CrisisEvent& event, int status, int64_t now_ms);
  int64_t StretchOf(int64_t onset_ms) const;

  Db& db_;
  CorrelationRules rules_;
  std::unordered_map<CellRow, std::bitset<360>, CellRowHash> cells_;
};

}  // namespace amparo::ingest
