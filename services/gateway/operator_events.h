// Operator-entered events (issue 4): a crisis an operator draws in the
// console or posts to POST /api/v1/events (a circle or polygon, a hazard, a
// severity, free text). The gateway keeps each event in `operator_events`
// (its current revision and the validated request, the "spec") and, in the
// SAME transaction, enqueues the CrisisEvent revision for peer "ingest"
// (config.ingest.inbox). amparo-ingest treats it exactly as any source's
// event (dedupe, correlation, forward to rules), so an operator event takes
// the same path to alerts as a USGS or CAP one.
//
// The CrisisEvent: event_id "operator:<id>" (id = 32 hex), source
// "operator", source_id <id>, revision 1, 2, ... (ALERT, then UPDATE for
// every PATCH, CANCEL for DELETE), scope "Restricted" and
// restricted_to_states = [the caller's state]: rules match only that
// state's nationals, so one state's operator never alerts another state.
//
// Tenant isolation: every function takes the caller's state and scopes its
// SQL by it; another state's event is kNotFound, exactly like a missing one.
// Audit (common/audit.h, same transaction): "event.create", "event.update",
// "event.cancel", "event.read", "event.list" with subject the event_id ("*"
// for lists).
//
// Thread safety: functions are stateless; a Db belongs to one thread.
// Errors: kInvalidArgument with the JSON path of the bad field
// ("area.circles[0].radius_km"), kNotFound, kFailedPrecondition (an event
// already cancelled), and whatever the database returns.
#pragma once

#include <boost/json/object.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "amparo/v1/crisis_event.pb.h"
#include "common/clock.h"
#include "common/db.h"
#include "common/status.h"
#include "services/gateway/gateway_store.h"

namespace amparo::gateway {

// The gateway migration that creates `operator_events` (appended to the
// gateway's list in gateway_store.cpp; never edit it once shipped).
const std::string& OperatorEventsMigration();

// Bounds of one event (documented in docs/openapi.yaml).
inline constexpr size_t kMaxHeadlineChars = 200;
inline constexpr size_t kMaxDescriptionChars = 4000;
inline constexpr size_t kMaxAreaDescriptionChars = 500;
inline constexpr double kMaxRadiusKm = 1000;
inline constexpr size_t kMaxShapes = 64;            // circles + polygons
inline constexpr size_t kMaxVertices = 10000;       // over every ring of the event

// Validates a POST body and returns the canonical spec: every field present
// with its default filled in ("status" "actual", "urgency" and "certainty"
// "unknown", "language" "en", "description" "", "expires" null, area
// "description" "", "circles" [], "polygons" []), expires rewritten as
// RFC 3339 UTC milliseconds. `now_ms`: "expires" must be later.
Result<boost::json::object> ValidateOperatorEvent(const boost::json::object& body, int64_t now_ms);

// A stored event.
struct OperatorEvent {
  std::string id;      // 32 hex; the event_id is "operator:" + id
  std::string state;   // ISO3 of the operator who posted it
  int64_t revision = 1;
  v1::MessageType msg_type = v1::MESSAGE_TYPE_ALERT;  // of the latest revision
  boost::json::object spec;                          // canonical (ValidateOperatorEvent)
  int64_t created_ms = 0;
  int64_t updated_ms = 0;
  std::string event_id() const { return "operator:" + id; }
  bool cancelled() const { return msg_type == v1::MESSAGE_TYPE_CANCEL; }
};

// The CrisisEvent of `event`'s current revision, sent at `sent_ms`.
v1::CrisisEvent OperatorCrisisEvent(const OperatorEvent& event, int64_t sent_ms);

// The API form: {"event_id", "state", "revision", "msg_type", "cancelled",
// the spec's fields, "created_at", "updated_at"}.
boost::json::object OperatorEventToJson(const OperatorEvent& event);

// Stores a new event of `state` from a canonical `spec`, enqueues its ALERT
// for "ingest" and audits "event.create", in one transaction.
Result<OperatorEvent> CreateOperatorEvent(Db& db, std::string_view state, boost::json::object spec,
                                          const Access& access, const Clock& clock);

// `id` is the event_id ("operator:<hex>") or the bare hex id.
// Reads one event and audits "event.read". kNotFound (not audited) when
// `state` has no such event.
Result<OperatorEvent> GetOperatorEvent(Db& db, std::string_view state, std::string_view id,
                                       const Access& access, const Clock& clock);

struct OperatorEventPage {
  std::vector<OperatorEvent> items;        // newest first (by creation)
  std::optional<std::string> next_cursor;  // pass back for the next page
};
// `state`'s events, newest first; `cursor` "" for the first page; `limit`
// 1..1000. Audits "event.list" when the page is not empty. kInvalidArgument
// (field "cursor") for a cursor this function did not hand out.
Result<OperatorEventPage> ListOperatorEvents(Db& db, std::string_view state, std::string_view cursor,
                                             int limit, const Access& access, const Clock& clock);

// Applies a JSON merge patch (RFC 7396, top-level keys; "area" is replaced
// whole; null resets an optional field) to the event's spec, validates the
// result like a create ("expires" must be in the future only when the patch
// sets it; "status" cannot change), stores revision + 1, enqueues the
// UPDATE and audits "event.update". kNotFound, kFailedPrecondition when the
// event is cancelled.
Result<OperatorEvent> UpdateOperatorEvent(Db& db, std::string_view state, std::string_view id,
                                          const boost::json::object& patch, const Access& access,
                                          const Clock& clock);

// Stores revision + 1 as cancelled, enqueues the CANCEL and audits
// "event.cancel". kNotFound; kFailedPrecondition when already cancelled.
Result<OperatorEvent> CancelOperatorEvent(Db& db, std::string_view state, std::string_view id,
                                          const Access& access, const Clock& clock);

}  // namespace amparo::gateway
