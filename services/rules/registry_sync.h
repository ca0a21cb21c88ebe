// RegistrySync: amparo-rules' half of the registry resynchronisation (the
// ZeroMQ guide's Clone pattern over the durable link; the gateway's half is
// services/gateway/registry_stream.h).
//
// The gateway numbers every registry change with a registry-wide sequence
// (1, 2, 3, ...) and sends every one, so a sequence rules never receives was
// lost. RegistrySync keeps, in the rules database (table registry_sync):
//  - applied_sequence: every change <= this is applied or superseded (the
//    global high-water mark);
//  - registry_ahead: ranges of changes applied above it (the link resends an
//    unacknowledged message after a timeout, so after a reconnect or a crash
//    messages can arrive out of order: they are applied at once, per
//    registrant sequence, and tracked here until the hole below fills);
//  - known_sequence: the highest sequence seen in a change or announced by a
//    RegistrySequenceMark; a gap is applied_sequence < known_sequence.
//
// When to ask for a snapshot (Start() and Tick(), each enqueuing one
// SnapshotRequest for peer "gateway"):
//  - empty start (no registry state at all): at once;
//  - a gap that has lasted gap_timeout_ms and is still there when the inbox
//    has nothing left to process (a resend fills ordinary holes within
//    link.resend_after_ms, so only a lost change keeps one open);
//  - more than max_ahead_ranges out-of-order ranges (the bound on tracking);
//  - a requested snapshot not complete after snapshot_timeout_ms (again);
//  - the registry announced (mark) a sequence below applied_sequence: its
//    database was restored from an older backup. The registry is the source
//    of truth, so that snapshot replaces every row, even changes rules saw
//    that the restored registry no longer has, and the sequences restart
//    from the registry's.
// Otherwise it probes (probe_only request, answered by a mark) at start and
// every probe_interval_ms, so a database restored from an old backup, or one
// that lost the newest changes, finds its gap even when nothing is written.
//
// Applying a snapshot (StageChunk): chunks of the awaited snapshot id are
// staged in snapshot_staging (other ids are ignored); when every chunk is
// there (the final one says how many; chunks may arrive out of order too)
// the snapshot taken at registry sequence S is merged in one transaction:
// rows whose registrant sequence is <= S (live or tombstone) are replaced by
// the snapshot's registrants (registrant sequence S), rows with a sequence
// > S (changes after the snapshot that arrived first) win, and changes
// <= S that arrive later are stale (applied_sequence >= S). The result is
// exactly the registry after change S plus every later change received,
// whatever the order in which chunks and changes arrived. The caller then
// rebuilds its index from the table.
//
// Every method but Start() and Tick() runs inside the caller's open
// transaction (the link handler's), so the state moves together with the
// registrant rows it describes. Thread safety: one thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "amparo/v1/envelope.pb.h"
#include "common/clock.h"
#include "common/db.h"
#include "common/status.h"

namespace amparo::rules {

inline constexpr char kGatewayPeer[] = "gateway";

struct RegistrySyncOptions {
  // How long a gap may stay open (with an empty inbox) before a snapshot.
  int64_t gap_timeout_ms = 10'000;
  // A snapshot not complete after this long is asked for again.
  int64_t snapshot_timeout_ms = 600'000;
  // A probe of the gateway's sequence this often (and at start).
  int64_t probe_interval_ms = 60'000;
  // Out-of-order ranges tracked at most; past this, a snapshot at once.
  int64_t max_ahead_ranges = 10'000;
};

struct RegistrySyncState {
  uint64_t applied_sequence = 0;
  uint64_t known_sequence = 0;
  int64_t gap_since_ms = 0;         // 0: no gap
  std::string pending_snapshot_id;  // "": none awaited
  int64_t snapshot_requested_ms = 0;
  uint64_t snapshots_applied = 0;
  int64_t ahead_ranges = 0;
  bool registry_behind = false;     // the registry is behind rules: adopt it at the next snapshot
  bool has_gap() const { return applied_sequence < known_sequence; }
};

class RegistrySync {
 public:
  // The schema, one migration appended to the rules database's list.
  static const char* Migration();
  // Appended later: the registry_behind flag (a restored registry).
  static const char* RegistryBehindMigration();

  // `clock` must outlive this object.
  RegistrySync(const RegistrySyncOptions& options, const Clock& clock) : options_(options), clock_(clock) {}

  Result<RegistrySyncState> State(Db& db) const;

  // Whether change `sequence` is already applied or superseded (then the
  // caller drops it). INVALID_ARGUMENT (field "sequence") for 0.
  Result<bool> Covers(Db& db, uint64_t sequence) const;
  // Records that change `sequence` was handled (applied, or stale for its
  // registrant): moves the high-water mark or the ranges above it.
  Status RecordChange(Db& db, uint64_t sequence);
  // RecordChange for every sequence from `first` to `last`, in one read and
  // one write of the state when they continue the high-water mark.
  Status RecordRun(Db& db, uint64_t first, uint64_t last);
  // The gateway had reached `mark.sequence`.
  Status RecordMark(Db& db, const v1::RegistrySequenceMark& mark);
  // Stages one chunk; true when it completed the awaited snapshot and the
  // registrants table now holds it (see the header comment). Registrants
  // that fail ExposureIndex::Validate are skipped and logged.
  // INVALID_ARGUMENT for a chunk without snapshot_id.
  Result<bool> StageChunk(Db& db, const v1::SnapshotChunk& chunk);

  // Own transaction: at start, a snapshot request on an empty start, else a
  // probe. Returns the request enqueued, if any.
  Result<std::optional<v1::SnapshotRequest>> Start(Db& db);
  // Own transaction, only when there is something to send: the decisions
  // listed in the header comment. `inbox_drained`: nothing left to process.
  Result<std::optional<v1::SnapshotRequest>> Tick(Db& db, bool inbox_drained);

 private:
  Status Save(Db& db, const RegistrySyncState& state) const;
  // Moves applied_sequence over the ranges it now reaches.
  Status Advance(Db& db, RegistrySyncState& state) const;
  Result<v1::SnapshotRequest> Request(Db& db, v1::SnapshotRequest::Reason reason, bool probe_only);
  Status ApplySnapshot(Db& db, const std::string& snapshot_id, uint64_t sequence, uint64_t registrant_count);

  RegistrySyncOptions options_;
  const Clock& clock_;
  int64_t last_probe_ms_ = 0;
};

}  // namespace amparo::rules
