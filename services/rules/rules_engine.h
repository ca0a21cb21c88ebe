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
// Alert policy (walking skeleton; the full policy comes in a later issue):
//  - alert_id "<incident_id>/<STATE>/<HOST>"; incident_id is the event_id for
//    Actual events and "<event_id>~exercise" / "<event_id>~test" otherwise,
//    so that a drill on a real event never updates the real alerts.
//  - A new revision only when counts, level or cancellation change.
//  - Level CRITICAL when any exposed registrant is vulnerable or the event's
//    PAGER alert is orange or red; WARNING otherwise; INFO for revisions with
//    nobody exposed (all-clear) and cancellations.
//  - A group that had exposed registrants and has none in a newer revision
//    (or whose event lost its footprint) gets a zero-count revision.
//  - msg_type CANCEL: every non-cancelled alert of the incident gets a
//    cancelled revision with zero counts, reason "cancelled by source".
//  - Events with status Draft, System or unspecified raise nothing.
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
#include <set>
#include <string>

#include "amparo/v1/envelope.pb.h"
#include "common/clock.h"
#include "common/config.h"
#include "common/db.h"
#include "common/status.h"
#include "services/rules/exposure_index.h"
#include "services/rules/registry_sync.h"

namespace amparo::rules {

inline constexpr char kProducer[] = "amparo-rules";
inline constexpr char kNotifyPeer[] = "notify";

struct RulesStats {
  uint64_t registry_changes = 0;  // applied
  uint64_t stale_changes = 0;     // ignored: sequence not newer
  uint64_t events = 0;            // revisions evaluated
  uint64_t stale_events = 0;      // ignored: revision not newer
  uint64_t alerts = 0;            // alert revisions enqueued
  uint64_t snapshots_applied = 0;  // registry snapshots merged (index rebuilt)
};

class RulesEngine {
 public:
  // Creates or upgrades the rules tables in `db` (and the link tables).
  static Status Migrate(Db& db);

  // Builds the index from the registrants table of `db` (migrated). `clock`
  // must outlive the engine.
  static Result<std::unique_ptr<RulesEngine>> Create(Db& db, const RulesOptions& options, const Clock& clock,
                                                     const RegistrySyncOptions& sync_options = {});

  // LinkReceiver handler: runs inside the caller's open transaction on `db`.
  // Dispatches crisis_event, registry_change, snapshot_chunk and
  // registry_sequence_mark; any other payload is
  // INVALID_ARGUMENT (dead-lettered by the link). Malformed input is
  // INVALID_ARGUMENT naming the field; database errors are returned as is.
  Status Handle(const v1::Envelope& envelope, Db& db);
  Status HandleRegistryChange(const v1::RegistryChange& change, Db& db);
  Status HandleCrisisEvent(const v1::CrisisEvent& event, Db& db);
  Status HandleSnapshotChunk(const v1::SnapshotChunk& chunk, Db& db);

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
  RulesEngine(const RulesOptions& options, const Clock& clock, const RegistrySyncOptions& sync_options)
      : options_(options), clock_(clock), sync_(sync_options, clock) {}
  Status LoadIndex(Db& db);

  RulesOptions options_;
  const Clock& clock_;
  ExposureIndex index_;
  RegistrySync sync_;
  std::set<std::string> touched_;
  bool index_rebuilt_ = false;  // since the last ConfirmIndexChanges()
  RulesStats stats_;
};

}  // namespace amparo::rules
