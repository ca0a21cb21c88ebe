// Operators' actions on alerts (issue 5, "Alert policy"): silences and
// decisions on one alert. The gateway validates and records them, audits
// them, and hands each to amparo-rules (peer "rules") in the same
// transaction; rules decides what they mean for the next revision.
//
//   silence   Alertmanager-style: alerts of the token's state matching every
//             given matcher (incident_id, host_country, hazard) between
//             starts and ends are recorded and shown to operators but not
//             pushed to the embassy's channels. Sent as v1::Silence
//             (Envelope.silence); lifting one early re-sends it with
//             expired = true.
//   decision  confirm_phase (puts `phase` 1..4 in force: phases 3 and 4 need
//             this), reject_phase (keeps the phase in force; `phase`, when
//             given, names the rejected proposal), close (no further
//             revisions or repeats). Sent as v1::OperatorDecision
//             (Envelope.operator_decision) with a fresh decision_id.
//
// Every create, lift, decision and read is audited (common/audit.h) with the
// token id (who), the action (what: "silence.create", "silence.lift",
// "silence.read", "silence.list", "alert.decision", "alert.decision.list"),
// the time (when), the caller's purpose and the operator's reason in the
// detail (why). Another state's silence or alert is kNotFound ("no such
// silence" / "no such alert"), exactly like a missing one, and not audited.
//
// Thread safety: stateless functions; a Db belongs to one thread.
#pragma once

#include <boost/json/object.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/db.h"
#include "common/status.h"
#include "services/gateway/gateway_store.h"

namespace amparo::gateway {

inline constexpr size_t kMaxReasonChars = 500;                    // Unicode code points
inline constexpr int64_t kMaxSilenceAheadMs = 30LL * 86'400'000;  // ends at most 30 days from now

struct SilenceRecord {
  std::string id;            // 32 hex, assigned by CreateSilence
  std::string state;         // ISO3: only this state's alerts
  std::string incident_id;   // "" = any incident
  std::string host_country;  // "" = any host country
  std::string hazard;        // HazardName() ("earthquake", ...), "" = any hazard
  int64_t starts_ms = 0;
  int64_t ends_ms = 0;
  std::string reason;
  std::string created_by;  // token id
  int64_t created_ms = 0;
  int64_t lifted_ms = 0;  // 0 unless lifted early
  std::string lifted_by;  // token id of who lifted it
};

// "active" | "pending" (starts later) | "expired" (ended or lifted) at `now_ms`.
std::string_view SilenceStatus(const SilenceRecord& silence, int64_t now_ms);

// Validates a POST /api/v1/silences body for `state` by `created_by`:
// {incident_id?, host_country?, hazard?, starts?, ends, reason}. starts
// defaults to now; ends must be after now and starts and at most 30 days
// from now; reason 1..500 characters. kInvalidArgument naming the field.
Result<SilenceRecord> SilenceFromJson(const boost::json::object& body, std::string_view state,
                                      std::string_view created_by, const Clock& clock);

// The API form: {silence_id, state, incident_id|null, host_country|null,
// hazard|null, starts_at, ends_at, reason, created_by, created_at, status,
// expired (lifted early), lifted_at|null, lifted_by}.
boost::json::object SilenceToJson(const SilenceRecord& silence, int64_t now_ms);

// Stores the silence with a fresh id, enqueues its v1::Silence for "rules"
// and audits "silence.create", in one transaction.
Result<SilenceRecord> CreateSilence(Db& db, SilenceRecord silence, const Access& access, const Clock& clock);

// The state's silences, active and expired, newest first (by created time);
// `limit` 1..1000. Audits "silence.list".
Result<std::vector<SilenceRecord>> ListSilences(Db& db, std::string_view state, int limit,
                                                const Access& access, const Clock& clock);

// One silence of the state; audits "silence.read". kNotFound otherwise.
Result<SilenceRecord> GetSilence(Db& db, std::string_view state, std::string_view id, const Access& access,
                                 const Clock& clock);

// Lifts the silence now: records who and when, enqueues its v1::Silence
// with expired = true for "rules" and audits "silence.lift" with `reason`
// (may be empty, at most 500 characters, else kInvalidArgument "reason"),
// in one transaction. kNotFound for another state's or a
// missing silence; kFailedPrecondition when it has already ended or been
// lifted.
Result<SilenceRecord> LiftSilence(Db& db, std::string_view state, std::string_view id,
                                  std::string_view reason, const Access& access, const Clock& clock);

struct DecisionRecord {
  std::string id;  // 32 hex, assigned by RecordDecision
  std::string alert_id;
  std::string state;
  std::string action;  // "confirm_phase" | "reject_phase" | "close"
  int phase = 0;       // 1..4 for confirm_phase; 0 or 1..4 for reject_phase; 0 for close
  std::string reason;
  std::string decided_by;  // token id
  int64_t decided_ms = 0;
};

// Validates a POST /api/v1/alerts/{id}/decisions body: {action, phase?,
// reason}. kInvalidArgument naming the field.
Result<DecisionRecord> DecisionFromJson(const boost::json::object& body);

// {decision_id, alert_id, action, phase|null, reason, by, at}.
boost::json::object DecisionToJson(const DecisionRecord& decision);

// Records `decision` on alert `alert_id` of `state` (which must be stored
// for that state, else kNotFound "no such alert"), with a fresh id, by
// access.actor, now; enqueues its v1::OperatorDecision for "rules" and
// audits "alert.decision", in one transaction.
Result<DecisionRecord> RecordDecision(Db& db, std::string_view state, std::string_view alert_id,
                                      DecisionRecord decision, const Access& access, const Clock& clock);

// The decisions on one alert of the state, newest first; audits
// "alert.decision.list". kNotFound "no such alert" when the state has no
// such alert.
Result<std::vector<DecisionRecord>> ListDecisions(Db& db, std::string_view state, std::string_view alert_id,
                                                  const Access& access, const Clock& clock);

}  // namespace amparo::gateway
