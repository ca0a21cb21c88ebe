#include "services/rules/registry_sync.h"

#include <algorithm>

#include "common/crypto.h"
#include "common/link.h"
#include "common/log.h"
#include "services/rules/exposure_index.h"

namespace amparo::rules {
namespace {

constexpr char kProducer[] = "amparo-rules";

Result<std::optional<std::pair<uint64_t, uint64_t>>> FindRange(Db& db, const char* sql, uint64_t value) {
  auto q = db.Prepare(sql);
  if (!q.ok()) return q.status();
  q->Bind(1, static_cast<int64_t>(value));
  auto row = q->Step();
  if (!row.ok()) return row.status();
  if (!*row) return std::optional<std::pair<uint64_t, uint64_t>>();
  return std::optional<std::pair<uint64_t, uint64_t>>(
      {static_cast<uint64_t>(q->ColumnInt(0)), static_cast<uint64_t>(q->ColumnInt(1))});
}

Status ExecWith(Db& db, const char* sql, std::initializer_list<int64_t> values) {
  auto q = db.Prepare(sql);
  if (!q.ok()) return q.status();
  int i = 1;
  for (int64_t v : values) q->Bind(i++, v);
  return q->Run();
}

}  // namespace

const char* RegistrySync::Migration() {
  return R"sql(
      -- Registry resynchronisation state (registry_sync.h). One row.
      CREATE TABLE registry_sync (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        applied_sequence INTEGER NOT NULL,
        known_sequence INTEGER NOT NULL,
        gap_since_ms INTEGER NOT NULL,
        pending_snapshot_id TEXT NOT NULL,
        snapshot_requested_ms INTEGER NOT NULL,
        snapshots_applied INTEGER NOT NULL
      );
      INSERT INTO registry_sync VALUES (1, 0, 0, 0, '', 0, 0);
      -- Changes applied above applied_sequence, as disjoint ranges.
      CREATE TABLE registry_ahead (
        first INTEGER PRIMARY KEY,
        last INTEGER NOT NULL
      );
      CREATE INDEX registry_ahead_by_last ON registry_ahead (last);
      -- The chunks of the awaited snapshot received so far.
      CREATE TABLE snapshot_chunks (
        snapshot_id TEXT NOT NULL,
        chunk_index INTEGER NOT NULL,
        sequence INTEGER NOT NULL,
        final INTEGER NOT NULL,
        chunk_count INTEGER NOT NULL,
        registrant_count INTEGER NOT NULL,
        PRIMARY KEY (snapshot_id, chunk_index)
      ) WITHOUT ROWID;
      CREATE TABLE snapshot_staging (
        snapshot_id TEXT NOT NULL,
        registrant_id TEXT NOT NULL,
        state TEXT NOT NULL,
        host_country TEXT NOT NULL,
        admin1 TEXT NOT NULL,
        lat REAL NOT NULL,
        lon REAL NOT NULL,
        household_size INTEGER NOT NULL,
        vulnerability_flags INTEGER NOT NULL,
        PRIMARY KEY (snapshot_id, registrant_id)
      ) WITHOUT ROWID;
      )sql";
}

const char* RegistrySync::RegistryBehindMigration() {
  return R"sql(
      -- Set when the registry announced a sequence below what rules applied
      -- (its database was restored): the next snapshot replaces everything.
      ALTER TABLE registry_sync ADD COLUMN registry_behind INTEGER NOT NULL DEFAULT 0;
  )sql";
}

Result<RegistrySyncState> RegistrySync::State(Db& db) const {
  auto q = db.Prepare(
      "SELECT applied_sequence, known_sequence, gap_since_ms, pending_snapshot_id, snapshot_requested_ms, "
      "snapshots_applied, (SELECT count(*) FROM registry_ahead), registry_behind FROM registry_sync WHERE id = 1");
  if (!q.ok()) return q.status();
  auto row = q->Step();
  if (!row.ok()) return row.status();
  if (!*row) return Status(StatusCode::kDataLoss, "registry_sync row is missing");
  RegistrySyncState s;
  s.applied_sequence = static_cast<uint64_t>(q->ColumnInt(0));
  s.known_sequence = static_cast<uint64_t>(q->ColumnInt(1));
  s.gap_since_ms = q->ColumnInt(2);
  s.pending_snapshot_id = q->ColumnText(3);
  s.snapshot_requested_ms = q->ColumnInt(4);
  s.snapshots_applied = static_cast<uint64_t>(q->ColumnInt(5));
  s.ahead_ranges = q->ColumnInt(6);
  s.registry_behind = q->ColumnInt(7) != 0;
  return s;
}

Status RegistrySync::Save(Db& db, const RegistrySyncState& state) const {
  RegistrySyncState s = state;
  if (!s.has_gap()) {
    s.gap_since_ms = 0;
  } else if (s.gap_since_ms == 0) {
    s.gap_since_ms = clock_.NowMs();
  }
  auto q = db.Prepare(
      "UPDATE registry_sync SET applied_sequence = ?, known_sequence = ?, gap_since_ms = ?, "
      "pending_snapshot_id = ?, snapshot_requested_ms = ?, snapshots_applied = ?, registry_behind = ? WHERE id = 1");
  if (!q.ok()) return q.status();
  q->Bind(1, static_cast<int64_t>(s.applied_sequence))
      .Bind(2, static_cast<int64_t>(s.known_sequence))
      .Bind(3, s.gap_since_ms)
      .Bind(4, s.pending_snapshot_id)
      .Bind(5, s.snapshot_requested_ms)
      .Bind(6, static_cast<int64_t>(s.snapshots_applied))
      .Bind(7, s.registry_behind ? 1 : 0);
  return q->Run();
}

Result<bool> RegistrySync::Covers(Db& db, uint64_t sequence) const {
  if (sequence == 0) return InvalidArgument("must be at least 1", "sequence");
  auto state = State(db);
  if (!state.ok()) return state.status();
  if (sequence <= state->applied_sequence) return true;
  auto range = FindRange(db, "SELECT first, last FROM registry_ahead WHERE first <= ? ORDER BY first DESC LIMIT 1",
                         sequence);
  if (!range.ok()) return range.status();
  return range->has_value() && (*range)->second >= sequence;
}

Status RegistrySync::Advance(Db& db, RegistrySyncState& state) const {
  AMPARO_RETURN_IF_ERROR(
      ExecWith(db, "DELETE FROM registry_ahead WHERE last <= ?", {static_cast<int64_t>(state.applied_sequence)}));
  while (true) {
    auto range = FindRange(db, "SELECT first, last FROM registry_ahead WHERE first <= ? ORDER BY first LIMIT 1",
                           state.applied_sequence + 1);
    if (!range.ok()) return range.status();
    if (!range->has_value()) break;
    state.applied_sequence = std::max(state.applied_sequence, (*range)->second);
    AMPARO_RETURN_IF_ERROR(
        ExecWith(db, "DELETE FROM registry_ahead WHERE first = ?", {static_cast<int64_t>((*range)->first)}));
  }
  state.known_sequence = std::max(state.known_sequence, state.applied_sequence);
  return Status::Ok();
}

Status RegistrySync::RecordRun(Db& db, uint64_t first, uint64_t last) {
  if (first == 0 || last < first) return InvalidArgument("an empty or zero run", "sequence");
  auto state = State(db);
  if (!state.ok()) return state.status();
  RegistrySyncState& s = *state;
  if (s.ahead_ranges != 0 || s.applied_sequence + 1 != first) {
    for (uint64_t seq = first; seq <= last; ++seq) AMPARO_RETURN_IF_ERROR(RecordChange(db, seq));
    return Status::Ok();
  }
  s.applied_sequence = last;
  s.known_sequence = std::max(s.known_sequence, last);
  return Save(db, s);
}

Status RegistrySync::RecordChange(Db& db, uint64_t sequence) {
  auto state = State(db);
  if (!state.ok()) return state.status();
  RegistrySyncState& s = *state;
  if (sequence <= s.applied_sequence) return Status::Ok();
  s.known_sequence = std::max(s.known_sequence, sequence);
  if (sequence == s.applied_sequence + 1) {
    s.applied_sequence = sequence;
    AMPARO_RETURN_IF_ERROR(Advance(db, s));
    return Save(db, s);
  }
  // Out of order: extend or join the neighbouring ranges.
  auto below = FindRange(db, "SELECT first, last FROM registry_ahead WHERE last = ?", sequence - 1);
  if (!below.ok()) return below.status();
  auto above = FindRange(db, "SELECT first, last FROM registry_ahead WHERE first = ?", sequence + 1);
  if (!above.ok()) return above.status();
  const int64_t seq = static_cast<int64_t>(sequence);
  if (below->has_value() && above->has_value()) {
    AMPARO_RETURN_IF_ERROR(ExecWith(db, "DELETE FROM registry_ahead WHERE first = ?", {seq + 1}));
    AMPARO_RETURN_IF_ERROR(ExecWith(db, "UPDATE registry_ahead SET last = ? WHERE first = ?",
                                    {static_cast<int64_t>((*above)->second), static_cast<int64_t>((*below)->first)}));
  } else if (below->has_value()) {
    AMPARO_RETURN_IF_ERROR(ExecWith(db, "UPDATE registry_ahead SET last = ? WHERE first = ?",
                                    {seq, static_cast<int64_t>((*below)->first)}));
  } else if (above->has_value()) {
    AMPARO_RETURN_IF_ERROR(ExecWith(db, "UPDATE registry_ahead SET first = ? WHERE first = ?", {seq, seq + 1}));
  } else {
    AMPARO_RETURN_IF_ERROR(ExecWith(db, "INSERT OR IGNORE INTO registry_ahead (first, last) VALUES (?, ?)", {seq, seq}));
  }
  return Save(db, s);
}

Status RegistrySync::RecordMark(Db& db, const v1::RegistrySequenceMark& mark) {
  auto state = State(db);
  if (!state.ok()) return state.status();
  if (mark.sequence() < state->applied_sequence && !state->registry_behind) {
    // The registry is behind what rules applied: the gateway database was
    // restored or replaced. The registry is the source of truth (rules must
    // end with exactly its content), so the next snapshot replaces every
    // row, including changes the restored registry no longer has.
    log::Error("registry sequence is behind what rules applied: adopting the registry's content",
               {{"registry_sequence", std::to_string(mark.sequence())},
                {"applied_sequence", std::to_string(state->applied_sequence)}});
    state->registry_behind = true;
    return Save(db, *state);
  }
  if (mark.sequence() <= state->known_sequence) return Status::Ok();
  state->known_sequence = mark.sequence();
  return Save(db, *state);
}

Result<bool> RegistrySync::StageChunk(Db& db, const v1::SnapshotChunk& chunk) {
  if (chunk.snapshot_id().empty()) return InvalidArgument("required", "snapshot_id");
  auto state = State(db);
  if (!state.ok()) return state.status();
  if (chunk.snapshot_id() != state->pending_snapshot_id) {
    // An answer to a request that was superseded (or that a restored
    // database no longer knows): waiting for another one.
    log::Info("snapshot chunk ignored: not the awaited snapshot",
              {{"snapshot_id", chunk.snapshot_id()}, {"awaited", state->pending_snapshot_id}});
    return false;
  }
  auto meta = db.Prepare(
      "INSERT OR IGNORE INTO snapshot_chunks (snapshot_id, chunk_index, sequence, final, chunk_count, "
      "registrant_count) VALUES (?, ?, ?, ?, ?, ?)");
  if (!meta.ok()) return meta.status();
  meta->Bind(1, chunk.snapshot_id())
      .Bind(2, static_cast<int64_t>(chunk.chunk_index()))
      .Bind(3, static_cast<int64_t>(chunk.sequence()))
      .Bind(4, chunk.final() ? 1 : 0)
      .Bind(5, static_cast<int64_t>(chunk.chunk_count()))
      .Bind(6, static_cast<int64_t>(chunk.registrant_count()));
  AMPARO_RETURN_IF_ERROR(meta->Run());
  if (db.Changes() == 0) return false;  // the same chunk again

  auto stage = db.Prepare(
      "INSERT OR REPLACE INTO snapshot_staging (snapshot_id, registrant_id, state, host_country, admin1, lat, "
      "lon, household_size, vulnerability_flags) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)");
  if (!stage.ok()) return stage.status();
  for (const v1::RegistrantLocation& loc : chunk.registrants()) {
    if (Status st = ExposureIndex::Validate(loc); !st.ok()) {
      log::Error("snapshot registrant skipped", {{"registrant_id", loc.registrant_id()}, {"error", st.ToString()}});
      continue;
    }
    stage->Bind(1, chunk.snapshot_id())
        .Bind(2, loc.registrant_id())
        .Bind(3, loc.state())
        .Bind(4, loc.host_country())
        .Bind(5, loc.admin1())
        .Bind(6, loc.lat())
        .Bind(7, loc.lon())
        .Bind(8, static_cast<int64_t>(loc.household_size()))
        .Bind(9, static_cast<int64_t>(loc.vulnerability_flags()));
    AMPARO_RETURN_IF_ERROR(stage->Run());
  }

  // Complete when the final chunk is here and so are all chunk_count chunks.
  auto done = db.Prepare(
      "SELECT f.sequence, f.chunk_count, f.registrant_count, "
      "(SELECT count(*) FROM snapshot_chunks c WHERE c.snapshot_id = f.snapshot_id) "
      "FROM snapshot_chunks f WHERE f.snapshot_id = ? AND f.final = 1");
  if (!done.ok()) return done.status();
  done->Bind(1, chunk.snapshot_id());
  auto row = done->Step();
  if (!row.ok()) return row.status();
  if (!*row || done->ColumnInt(3) < done->ColumnInt(1)) return false;
  const uint64_t sequence = static_cast<uint64_t>(done->ColumnInt(0));
  const uint64_t registrant_count = static_cast<uint64_t>(done->ColumnInt(2));
  done->Reset();
  AMPARO_RETURN_IF_ERROR(ApplySnapshot(db, chunk.snapshot_id(), sequence, registrant_count));
  return true;
}

Status RegistrySync::ApplySnapshot(Db& db, const std::string& snapshot_id, uint64_t sequence,
                                   uint64_t registrant_count) {
  const int64_t seq = static_cast<int64_t>(sequence);
  auto before = State(db);
  if (!before.ok()) return before.status();
  const bool reset = before->registry_behind;
  if (reset) {
    // The registry went back in time: nothing rules holds is newer than it.
    AMPARO_RETURN_IF_ERROR(db.Exec("DELETE FROM registrants"));
    AMPARO_RETURN_IF_ERROR(db.Exec("DELETE FROM registry_ahead"));
  } else {
    // Rows newer than the snapshot (changes that overtook it) stay; every
    // other row, tombstones included, is what the snapshot replaces.
    AMPARO_RETURN_IF_ERROR(ExecWith(db, "DELETE FROM registrants WHERE sequence <= ?", {seq}));
  }
  auto merge = db.Prepare(
      "INSERT OR IGNORE INTO registrants (registrant_id, state, host_country, admin1, lat, lon, household_size, "
      "vulnerability_flags, sequence, deleted) SELECT registrant_id, state, host_country, admin1, lat, lon, "
      "household_size, vulnerability_flags, ?, 0 FROM snapshot_staging WHERE snapshot_id = ?");
  if (!merge.ok()) return merge.status();
  merge->Bind(1, seq).Bind(2, snapshot_id);
  AMPARO_RETURN_IF_ERROR(merge->Run());
  const int merged = db.Changes();
  AMPARO_RETURN_IF_ERROR(db.Exec("DELETE FROM snapshot_staging"));
  AMPARO_RETURN_IF_ERROR(db.Exec("DELETE FROM snapshot_chunks"));

  auto state = State(db);
  if (!state.ok()) return state.status();
  state->applied_sequence = reset ? sequence : std::max(state->applied_sequence, sequence);
  state->known_sequence = reset ? sequence : std::max(state->known_sequence, sequence);
  state->registry_behind = false;
  AMPARO_RETURN_IF_ERROR(Advance(db, *state));
  state->pending_snapshot_id.clear();
  state->snapshot_requested_ms = 0;
  ++state->snapshots_applied;
  AMPARO_RETURN_IF_ERROR(Save(db, *state));
  log::Info("registry snapshot applied", {{"snapshot_id", snapshot_id},
                                          {"sequence", std::to_string(sequence)},
                                          {"registrants", std::to_string(registrant_count)},
                                          {"merged", std::to_string(merged)},
                                          {"applied_sequence", std::to_string(state->applied_sequence)}});
  return Status::Ok();
}

Result<v1::SnapshotRequest> RegistrySync::Request(Db& db, v1::SnapshotRequest::Reason reason, bool probe_only) {
  auto tx = Transaction::Begin(db);
  if (!tx.ok()) return tx.status();
  auto state = State(db);
  if (!state.ok()) return state.status();
  v1::Envelope env = MakeEnvelope(kProducer, clock_);
  v1::SnapshotRequest& request = *env.mutable_snapshot_request();
  request.set_snapshot_id(NewId());
  request.set_applied_sequence(state->applied_sequence);
  request.set_probe_only(probe_only);
  request.set_reason(reason);
  AMPARO_RETURN_IF_ERROR(EnqueueOutbound(db, kGatewayPeer, env));
  if (!probe_only) {
    // Chunks of an earlier request are of no use any more.
    AMPARO_RETURN_IF_ERROR(db.Exec("DELETE FROM snapshot_staging"));
    AMPARO_RETURN_IF_ERROR(db.Exec("DELETE FROM snapshot_chunks"));
    state->pending_snapshot_id = request.snapshot_id();
    state->snapshot_requested_ms = clock_.NowMs();
    AMPARO_RETURN_IF_ERROR(Save(db, *state));
  }
  AMPARO_RETURN_IF_ERROR(tx->Commit());
  last_probe_ms_ = clock_.NowMs();
  log::Info(probe_only ? "registry probe sent" : "registry snapshot requested",
            {{"snapshot_id", request.snapshot_id()},
             {"reason", v1::SnapshotRequest::Reason_Name(reason)},
             {"applied_sequence", std::to_string(state->applied_sequence)},
             {"known_sequence", std::to_string(state->known_sequence)}});
  return request;
}

Result<std::optional<v1::SnapshotRequest>> RegistrySync::Start(Db& db) {
  auto state = State(db);
  if (!state.ok()) return state.status();
  auto any = db.Prepare("SELECT EXISTS (SELECT 1 FROM registrants)");
  if (!any.ok()) return any.status();
  auto row = any->Step();
  if (!row.ok()) return row.status();
  const bool empty = any->ColumnInt(0) == 0 && state->applied_sequence == 0 && state->known_sequence == 0 &&
                     state->ahead_ranges == 0;
  any->Reset();
  if (!state->pending_snapshot_id.empty()) {
    last_probe_ms_ = clock_.NowMs();
    return std::optional<v1::SnapshotRequest>();  // still awaited; Tick() asks again after the timeout
  }
  auto request = empty ? Request(db, v1::SnapshotRequest::REASON_EMPTY_START, false)
                       : Request(db, v1::SnapshotRequest::REASON_PROBE, true);
  if (!request.ok()) return request.status();
  return std::optional<v1::SnapshotRequest>(*request);
}

Result<std::optional<v1::SnapshotRequest>> RegistrySync::Tick(Db& db, bool inbox_drained) {
  auto state = State(db);
  if (!state.ok()) return state.status();
  const int64_t now = clock_.NowMs();
  std::optional<std::pair<v1::SnapshotRequest::Reason, bool>> ask;
  if (state->registry_behind && state->pending_snapshot_id.empty()) {
    ask = {{v1::SnapshotRequest::REASON_REGISTRY_BEHIND, false}};
  } else if (!state->pending_snapshot_id.empty()) {
    if (now - state->snapshot_requested_ms >= options_.snapshot_timeout_ms) {
      ask = {{v1::SnapshotRequest::REASON_RETRY, false}};
    }
  } else if (state->ahead_ranges > options_.max_ahead_ranges) {
    ask = {{v1::SnapshotRequest::REASON_TOO_FAR_AHEAD, false}};
  } else if (state->has_gap() && inbox_drained && state->gap_since_ms > 0 &&
             now - state->gap_since_ms >= options_.gap_timeout_ms) {
    ask = {{v1::SnapshotRequest::REASON_GAP, false}};
  } else if (now - last_probe_ms_ >= options_.probe_interval_ms) {
    ask = {{v1::SnapshotRequest::REASON_PROBE, true}};
  }
  if (!ask) return std::optional<v1::SnapshotRequest>();
  auto request = Request(db, ask->first, ask->second);
  if (!request.ok()) return request.status();
  return std::optional<v1::SnapshotRequest>(*request);
}

}  // namespace amparo::rules
