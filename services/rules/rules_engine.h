// RulesEngine: turns crisis events and registry changes into consular alerts.
//
// It keeps the registrants in an in-memory ExposureIndex, fed by the
// registry's change stream (RegistryChange from amparo-gateway) and rebuilt
// from its own `registrants` table at start. For each new revision of a
// crisis event it derives the footprint (footprint.h), counts the exposed
// registrants per (state, host country) and raises or updates one
// ConsularAlert per group, enqueued to peer "notify" in the caller's
// transaction (common/link.h), so an alert is stored exactly when the event
// that caused it is marked processed.
//
// Alert policy (services/rules/alert_policy.h, docs/alert-policy.md):
//  - alert_id "<incident_id>/<STATE>/<HOST>"; incident_id is the correlated
//    incident (CrisisEvent.incident_id, else event_id) for Actual events and
//    "<incident>~exercise" / "<incident>~test" otherwise, so that a drill on
//    a real event never updates the real alerts.
//  - Grouping and inhibition: each source event of an incident has its own
//    say on each (state, host) group (table alert_sources: the candidate
//    alert the policy gives for that event's footprint and counts). The
//    alert follows the highest candidate (level, then phase, then people);
//    lower ones are inhibited. A source's Cancel withdraws only its own say:
//    the alert is cancelled (an all-clear to everyone alerted before) when no
//    source reports the incident any more.
//  - A new revision only when counts, level, phase or cancellation change;
//    the lifecycle says how (NEW, UPDATED, ESCALATED, DOWNGRADED, CANCELLED,
//    EXPIRED, CLOSED). A group that had exposed registrants and has none now
//    gets a zero-count revision (DOWNGRADED).
//  - Phases: the policy proposes; 1 and 2 take effect at once, 3 and 4 wait
//    for an operator's OperatorDecision. Once an operator decided, the phase
//    in force is the operator's until they decide again.
//  - Silences (Silence from the gateway): a matching alert is recorded and
//    sent with silenced = true (notify does not push it); when the silence
//    ends, an open alert is notified again.
//  - Tick(): open alerts are re-notified after the policy's repeat interval
//    (same revision, notification + 1) and expire when every source's
//    expiry passed.
//  - Restricted events (restricted_to_states) reach only those states.
//  - Events with status Draft, System or unspecified raise nothing.
//
// Decisions: every input that decides alerts (crisis events with the
// exposure the index gave for each, no exposure row for an event that
// exposed nobody, silences, operator decisions, productive
// timer ticks, the policy in force) goes to input_log with the time the
// engine used, and every notification to decisions with its rule and inputs,
// so replaying input_log into an empty engine (decision_replay.h) gives
// identical alerts. Registry changes are not logged: the log keeps no
// location or vulnerability flag of anyone, only counts and registrant ids
// (what alerts carry anyway), so the registry's purge is not undone here.
//
// Idempotency: a registry change whose sequence is not above the last one
// applied to that registrant is ignored (deletions keep a tombstone row with
// their sequence), and so is one the registry sync already covers (at or
// below its high-water mark, e.g. older than an applied snapshot); an event
// revision not newer than the stored one for (event_id, status) is ignored.
//
// Resynchronisation (registry_sync.h): the engine also handles
// snapshot_chunk and registry_sequence_mark from the gateway; when a chunk
// completes a snapshot, the registrants table has been replaced and the
// index is rebuilt from it in the same handler.
//
// Index and database consistency: a handler writes the database first and
// changes the index only when that succeeded, so later messages of the same
// batch see the change. If the transaction then fails to commit, the caller
// calls ReconcileIndex(), which re-reads every registrant touched since the
// last ConfirmIndexChanges() from the (rolled back) database and puts the
// index back in step. The set of touched ids is bounded by what one batch
// changes.
//
// Thread safety: one thread (the daemon's poll loop).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>
#include <set>
#include <string>

#include "amparo/v1/envelope.pb.h"
#include "common/clock.h"
#include "common/config.h"
#include "common/db.h"
#include "common/status.h"
#include "services/rules/alert_policy.h"
#include "services/rules/exposure_index.h"
#include "services/rules/registry_sync.h"

namespace amparo::rules {

inline constexpr char kProducer[] = "amparo-rules";
inline constexpr char kNotifyPeer[] = "notify";

struct RulesStats {
  uint64_t registry_changes = 0;  // applied
  uint64_t stale_changes = 0;     // ignored: sequence not newer
  uint64_t invalid_changes = 0;   // skipped inside a registry_changes batch (logged)
  uint64_t events = 0;            // revisions evaluated
  uint64_t stale_events = 0;      // ignored: revision not newer
  uint64_t alerts = 0;            // alert revisions enqueued
  uint64_t snapshots_applied = 0;  // registry snapshots merged (index rebuilt)
  uint64_t repeats = 0;           // notifications repeated (same revision)
  uint64_t silenced = 0;          // notifications sent silenced
  uint64_t expired = 0;           // alerts expired
  uint64_t reevaluations = 0;     // active events re-matched after registry changes
};

struct AlertRow;  // rules_engine.cpp: what the engine keeps per alert

class RulesEngine {
 public:
  // Creates or upgrades the rules tables in `db` (and the link tables).
  static Status Migrate(Db& db);

  // Builds the index from the registrants table of `db` (migrated). `clock`
  // must outlive the engine.
  static Result<std::unique_ptr<RulesEngine>> Create(Db& db, const RulesOptions& options, const Clock& clock,
                                                     const RegistrySyncOptions& sync_options = {});

  // LinkReceiver handler: runs inside the caller's open transaction on `db`.
  // Dispatches crisis_event, registry_change, registry_changes,
  // snapshot_chunk and registry_sequence_mark; any other payload is
  // INVALID_ARGUMENT (dead-lettered by the link). Malformed input is
  // INVALID_ARGUMENT naming the field; database errors are returned as is.
  Status Handle(const v1::Envelope& envelope, Db& db);
  Status HandleRegistryChange(const v1::RegistryChange& change, Db& db);
  // Each change in order, as HandleRegistryChange. A change that is
  // INVALID_ARGUMENT on its own is logged, counted (invalid_changes) and
  // skipped: it would have been dead-lettered alone, and the rest of the
  // batch is good. Any other error fails the whole batch (retried).
  Status HandleRegistryChanges(const v1::RegistryChangeBatch& batch, Db& db);
  Status HandleCrisisEvent(const v1::CrisisEvent& event, Db& db);
  Status HandleSnapshotChunk(const v1::SnapshotChunk& chunk, Db& db);
  Status HandleSilence(const v1::Silence& silence, Db& db);
  // INVALID_ARGUMENT "alert_id" for an unknown alert or another state's.
  Status HandleOperatorDecision(const v1::OperatorDecision& decision, Db& db);

  // Timers, inside the caller's transaction: when registry changes were
  // applied since the last Tick, every active event (not cancelled, not
  // expired, reported within rules.active_event_window_h) is matched again,
  // so its alerts follow people who registered, moved or left; then expiry,
  // repeats after the policy's interval, re-notification when a silence
  // ended. Returns the notifications enqueued.
  Result<int> Tick(Db& db);
  // Replay: one logged re-evaluation (input_log kind "reevaluate") of the
  // log in `recorded` (whose id_lists its exposure names).
  Status ApplyLoggedReevaluation(std::string_view body, Db& recorded, Db& db);

  // Replay (decision_replay.h): from now on every crisis event is matched
  // against no index at all but the exposure recorded for it, given here
  // before each event is handled (an event without one exposes nobody).
  void UseRecordedExposure(Exposure exposure);
  // The open alerts Tick() may have to act on (?1 = now, ms): repeat due,
  // every live source expired, or last notified silenced (NULL: maybe).
  static const char* const kTickAlertsSql;

  // The input_log form of an exposure (counts, counts per flag bit, ids).
  // A group's ids are "ids_sha256": the key of their list in id_lists
  // (id_lists.h), stored there by this call (inside the caller's
  // transaction) if new; the candidates of the same event name the same
  // list, so the log adds 64 characters a group instead of the ids again.
  static Result<std::string> ExposureToJson(const Exposure& exposure, Db& lists);
  // Reads that form, resolving lists in `lists`, and the ones written before
  // it: "ids_b64" (base64 of the packed ids) and "ids" (an array of hex
  // strings). INVALID_ARGUMENT (field "exposure...") for anything else;
  // DATA_LOSS when a named list is missing.
  static Result<Exposure> ExposureFromJson(std::string_view text, Db& lists);

  // The policy used from the next input on (the built-in default until set).
  void SetPolicy(std::shared_ptr<const AlertPolicy> policy);
  const AlertPolicy& policy() const { return *policy_; }

  // The transactions of every Handle() so far committed: forget what they
  // touched.
  void ConfirmIndexChanges();
  // A transaction may have rolled back: re-read the registrants touched since
  // the last confirmation from `db` (outside any transaction) into the index
  // (the whole index when a snapshot was applied meanwhile).
  Status ReconcileIndex(Db& db);

  const ExposureIndex& index() const { return index_; }
  const RulesStats& stats() const { return stats_; }
  RegistrySync& sync() { return sync_; }
  const RegistrySync& sync() const { return sync_; }

 private:
  // HandleRegistryChange; `deferred`: the caller has established that the
  // change is above everything recorded (not covered) and records its
  // sequence itself, whether it was applied or stale.
  Status ApplyRegistryChange(const v1::RegistryChange& change, Db& db, bool deferred);
  RulesEngine(const RulesOptions& options, const Clock& clock, const RegistrySyncOptions& sync_options)
      : options_(options), clock_(clock), sync_(sync_options, clock), policy_(AlertPolicy::Default()) {}
  Status LoadIndex(Db& db);
  Status LogInput(Db& db, std::string_view kind, std::string_view body);
  Status Dispatch(const v1::Envelope& envelope, Db& db);
  // What the index says now for `event` (restricted events: their states only).
  Exposure CurrentExposure(const v1::CrisisEvent& event, const std::optional<v1::Area>& footprint) const;
  // Updates each group's say of `event` from `exposure` and revises the
  // alerts that changed (a Cancel withdraws the event's say).
  // `first_report`: the first revision of the event handled (it has had no
  // say yet).
  Status ApplyEvent(const v1::CrisisEvent& event, const std::optional<v1::Area>& footprint, Exposure exposure,
                    Db& db, bool first_report = false);
  Status ReevaluateActiveEvents(Db& db);
  Result<std::optional<std::string>> ActiveSilence(Db& db, const v1::ConsularAlert& alert) const;
  // Brings alert `alert_id` in line with its sources' say (a revision when
  // anything that matters changed).
  Status Reevaluate(Db& db, const std::string& alert_id);
  // Stores, records and enqueues one notification of `alert` (`repeat`: same
  // revision again); updates `row`.
  Status Emit(Db& db, AlertRow& row, v1::ConsularAlert alert, const std::string& rule_inputs, bool repeat);

  RulesOptions options_;
  const Clock& clock_;
  ExposureIndex index_;
  RegistrySync sync_;
  std::set<std::string> touched_;
  bool index_rebuilt_ = false;  // since the last ConfirmIndexChanges()
  RulesStats stats_;
  std::shared_ptr<const AlertPolicy> policy_;
  bool policy_logged_ = false;  // the policy in force is in input_log
  int64_t now_ms_ = 0;          // the time of the input being handled
  int64_t input_seq_ = 0;       // its input_log row (0: not logged yet)
  bool replaying_ = false;      // UseRecordedExposure() was called
  bool registry_changed_ = false;  // since the last Tick
  std::optional<Exposure> recorded_exposure_;
};

}  // namespace amparo::rules
