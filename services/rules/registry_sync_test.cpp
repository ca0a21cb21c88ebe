#include "services/rules/registry_sync.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <map>
#include <optional>

#include "common/link.h"
#include "common/testing.h"
#include "services/rules/rules_engine.h"

namespace amparo::rules {
namespace {

std::string Id(uint64_t n) {
  char buf[40];
  std::snprintf(buf, sizeof(buf), "%032llx", static_cast<unsigned long long>(n));
  return buf;
}

v1::RegistrantLocation Loc(uint64_t n, double lat, uint32_t household = 1, uint32_t flags = 0,
                           const std::string& admin1 = "") {
  v1::RegistrantLocation loc;
  loc.set_registrant_id(Id(n));
  loc.set_state("PHL");
  loc.set_host_country("JPN");
  loc.set_admin1(admin1);
  loc.set_lat(lat);
  loc.set_lon(139.0);
  loc.set_household_size(household);
  loc.set_vulnerability_flags(flags);
  return loc;
}

// Drives a RulesEngine (and its RegistrySync) on a temp database, each
// envelope in its own transaction as the link receiver does.
class RegistrySyncTest : public ::testing::Test {
 protected:
  void SetUp() override {
    db_.emplace(std::move(*Db::Open(dir_ / "rules.db")));
    ASSERT_TRUE(RulesEngine::Migrate(*db_).ok());
    sync_options_.gap_timeout_ms = 1000;
    sync_options_.snapshot_timeout_ms = 60'000;
    sync_options_.probe_interval_ms = 30'000;
    sync_options_.max_ahead_ranges = 3;
    Reopen();
  }

  void Reopen() {
    engine_.reset();
    auto engine = RulesEngine::Create(*db_, RulesOptions{}, clock_, sync_options_);
    ASSERT_TRUE(engine.ok()) << engine.status().ToString();
    engine_ = std::move(*engine);
  }

  Status Handle(const v1::Envelope& env) {
    auto tx = Transaction::Begin(*db_);
    if (!tx.ok()) return tx.status();
    Status st = engine_->Handle(env, *db_);
    if (st.ok()) st = tx->Commit();
    if (st.ok()) {
      engine_->ConfirmIndexChanges();
    } else {
      EXPECT_TRUE(engine_->ReconcileIndex(*db_).ok());
    }
    return st;
  }

  void Upsert(uint64_t seq, const v1::RegistrantLocation& loc) {
    v1::Envelope env = MakeEnvelope("amparo-gateway", clock_);
    env.mutable_registry_change()->set_sequence(seq);
    env.mutable_registry_change()->set_kind(v1::RegistryChange::KIND_UPSERT);
    *env.mutable_registry_change()->mutable_location() = loc;
    ASSERT_TRUE(Handle(env).ok());
  }

  void Delete(uint64_t seq, uint64_t n) {
    v1::Envelope env = MakeEnvelope("amparo-gateway", clock_);
    env.mutable_registry_change()->set_sequence(seq);
    env.mutable_registry_change()->set_kind(v1::RegistryChange::KIND_DELETE);
    env.mutable_registry_change()->mutable_location()->set_registrant_id(Id(n));
    env.mutable_registry_change()->mutable_location()->set_state("PHL");
    ASSERT_TRUE(Handle(env).ok());
  }

  v1::Envelope Chunk(const std::string& id, uint64_t seq, uint32_t index, bool final, uint32_t count,
                     std::vector<v1::RegistrantLocation> locs) {
    v1::Envelope env = MakeEnvelope("amparo-gateway", clock_);
    v1::SnapshotChunk* c = env.mutable_snapshot_chunk();
    c->set_snapshot_id(id);
    c->set_sequence(seq);
    c->set_chunk_index(index);
    c->set_final(final);
    if (final) c->set_chunk_count(count);
    for (auto& l : locs) *c->add_registrants() = l;
    return env;
  }

  void Mark(uint64_t seq) {
    v1::Envelope env = MakeEnvelope("amparo-gateway", clock_);
    env.mutable_registry_sequence_mark()->set_sequence(seq);
    env.mutable_registry_sequence_mark()->set_snapshot_id("probe");
    ASSERT_TRUE(Handle(env).ok());
  }

  RegistrySyncState State() { return *engine_->sync().State(*db_); }

  std::vector<v1::SnapshotRequest> Requests() {
    std::vector<v1::SnapshotRequest> out;
    auto pending = PendingOutbound(*db_, kGatewayPeer);
    EXPECT_TRUE(pending.ok());
    for (const auto& env : *pending) out.push_back(env.snapshot_request());
    return out;
  }

  // Live registrants in the table: id -> (lat, household, flags, admin1, sequence).
  std::map<std::string, std::tuple<double, int64_t, int64_t, std::string, int64_t>> Table() {
    std::map<std::string, std::tuple<double, int64_t, int64_t, std::string, int64_t>> out;
    auto q = *db_->Prepare(
        "SELECT registrant_id, lat, household_size, vulnerability_flags, admin1, sequence FROM registrants "
        "WHERE deleted = 0");
    while (*q.Step()) {
      out[q.ColumnText(0)] = {q.ColumnDouble(1), q.ColumnInt(2), q.ColumnInt(3), q.ColumnText(4), q.ColumnInt(5)};
    }
    return out;
  }

  testing::TempDir dir_;
  FakeClock clock_;
  RegistrySyncOptions sync_options_;
  std::optional<Db> db_;
  std::unique_ptr<RulesEngine> engine_;
};

TEST_F(RegistrySyncTest, InOrderChangesMoveTheHighWaterMark) {
  Upsert(1, Loc(1, 10));
  Upsert(2, Loc(2, 11));
  Delete(3, 1);
  RegistrySyncState s = State();
  EXPECT_EQ(s.applied_sequence, 3u);
  EXPECT_EQ(s.known_sequence, 3u);
  EXPECT_FALSE(s.has_gap());
  EXPECT_EQ(s.ahead_ranges, 0);
}

TEST_F(RegistrySyncTest, OutOfOrderChangesAreAppliedAndTheHoleClosesWhenItArrives) {
  Upsert(1, Loc(1, 10));
  Upsert(3, Loc(3, 12));
  Upsert(5, Loc(5, 14));
  Upsert(4, Loc(4, 13));
  RegistrySyncState s = State();
  EXPECT_EQ(s.applied_sequence, 1u);
  EXPECT_EQ(s.known_sequence, 5u);
  EXPECT_TRUE(s.has_gap());
  EXPECT_EQ(s.gap_since_ms, clock_.NowMs());
  EXPECT_EQ(s.ahead_ranges, 1);  // 3..5 joined
  EXPECT_TRUE(engine_->index().Contains(Id(5)));

  Upsert(2, Loc(2, 11));
  s = State();
  EXPECT_EQ(s.applied_sequence, 5u);
  EXPECT_FALSE(s.has_gap());
  EXPECT_EQ(s.gap_since_ms, 0);
  EXPECT_EQ(s.ahead_ranges, 0);
  EXPECT_EQ(engine_->index().Size(), 5u);
}

TEST_F(RegistrySyncTest, ARepeatedSequenceIsStaleEvenForAnotherRegistrant) {
  Upsert(1, Loc(1, 10));
  Upsert(3, Loc(3, 12));
  Upsert(3, Loc(7, 12));  // the same sequence again: already covered
  Upsert(1, Loc(8, 12));
  EXPECT_FALSE(engine_->index().Contains(Id(7)));
  EXPECT_FALSE(engine_->index().Contains(Id(8)));
  EXPECT_EQ(engine_->stats().stale_changes, 2u);
}

TEST_F(RegistrySyncTest, EmptyStartRequestsASnapshotAtOnce) {
  auto request = engine_->sync().Start(*db_);
  ASSERT_TRUE(request.ok());
  ASSERT_TRUE(request->has_value());
  EXPECT_FALSE((*request)->probe_only());
  EXPECT_EQ((*request)->reason(), v1::SnapshotRequest::REASON_EMPTY_START);
  auto sent = Requests();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].snapshot_id(), (*request)->snapshot_id());
  EXPECT_EQ(State().pending_snapshot_id, (*request)->snapshot_id());
}

TEST_F(RegistrySyncTest, StartWithStateProbesAndAMarkAheadOpensAGapThatTriggersASnapshot) {
  Upsert(1, Loc(1, 10));
  auto start = engine_->sync().Start(*db_);
  ASSERT_TRUE(start.ok());
  ASSERT_TRUE(start->has_value());
  EXPECT_TRUE((*start)->probe_only());
  EXPECT_EQ((*start)->reason(), v1::SnapshotRequest::REASON_PROBE);
  EXPECT_EQ((*start)->applied_sequence(), 1u);

  Mark(4);  // the registry is at 4: changes 2..4 were lost (old backup)
  EXPECT_TRUE(State().has_gap());
  clock_.Advance(999);
  auto tick = engine_->sync().Tick(*db_, true);
  ASSERT_TRUE(tick.ok());
  EXPECT_FALSE(tick->has_value());  // not yet: a resend might still fill it
  clock_.Advance(1);
  tick = engine_->sync().Tick(*db_, false);
  ASSERT_TRUE(tick.ok());
  EXPECT_FALSE(tick->has_value());  // the inbox still has work: wait for it
  tick = engine_->sync().Tick(*db_, true);
  ASSERT_TRUE(tick.ok());
  ASSERT_TRUE(tick->has_value());
  EXPECT_EQ((*tick)->reason(), v1::SnapshotRequest::REASON_GAP);
  EXPECT_FALSE((*tick)->probe_only());
  // Awaiting it: no second request until the snapshot timeout.
  clock_.Advance(59'999);
  tick = engine_->sync().Tick(*db_, true);
  ASSERT_TRUE(tick.ok());
  EXPECT_FALSE(tick->has_value());
  clock_.Advance(1);
  tick = engine_->sync().Tick(*db_, true);
  ASSERT_TRUE(tick.ok());
  ASSERT_TRUE(tick->has_value());
  EXPECT_EQ((*tick)->reason(), v1::SnapshotRequest::REASON_RETRY);
  EXPECT_EQ(Requests().size(), 3u);
}

TEST_F(RegistrySyncTest, MarkAtTheHighWaterMarkIsNoGapAndProbesRepeat) {
  Upsert(1, Loc(1, 10));
  ASSERT_TRUE(engine_->sync().Start(*db_).ok());
  Mark(1);
  EXPECT_FALSE(State().has_gap());
  clock_.Advance(29'999);
  EXPECT_FALSE(engine_->sync().Tick(*db_, true)->has_value());
  clock_.Advance(1);
  auto probe = engine_->sync().Tick(*db_, true);
  ASSERT_TRUE(probe.ok());
  ASSERT_TRUE(probe->has_value());
  EXPECT_TRUE((*probe)->probe_only());
}

TEST_F(RegistrySyncTest, TooManyOutOfOrderRangesRequestASnapshotAtOnce) {
  ASSERT_TRUE(engine_->sync().Start(*db_).ok());  // empty start: pending
  // Finish that one with an empty snapshot at 0 so nothing is awaited.
  std::string id = State().pending_snapshot_id;
  ASSERT_TRUE(Handle(Chunk(id, 0, 0, true, 1, {})).ok());
  for (uint64_t seq : {3, 5, 7, 9}) Upsert(seq, Loc(seq, 10));
  EXPECT_EQ(State().ahead_ranges, 4);
  auto tick = engine_->sync().Tick(*db_, false);
  ASSERT_TRUE(tick.ok());
  ASSERT_TRUE(tick->has_value());
  EXPECT_EQ((*tick)->reason(), v1::SnapshotRequest::REASON_TOO_FAR_AHEAD);
}

TEST_F(RegistrySyncTest, SnapshotReplacesTheTableKeepsNewerChangesAndDropsOlderOnes) {
  auto start = engine_->sync().Start(*db_);
  ASSERT_TRUE(start.ok() && start->has_value());
  const std::string id = (*start)->snapshot_id();
  // Before the snapshot completes: an old change (seq 2 <= 10), a newer one
  // for a registrant the snapshot has (12), a newer deletion (13).
  Upsert(2, Loc(99, 50));      // deleted in the registry before 10: must go
  Upsert(12, Loc(2, 42, 7));   // newer than the snapshot's row for 2
  Delete(13, 3);               // newer deletion of 3
  // Chunks arrive out of order; a chunk of another snapshot is ignored.
  ASSERT_TRUE(Handle(Chunk("someone-else", 10, 0, true, 1, {Loc(77, 1)})).ok());
  ASSERT_TRUE(Handle(Chunk(id, 10, 1, true, 2, {Loc(3, 30), Loc(4, 31, 2, 8, "JP-13")})).ok());
  EXPECT_EQ(engine_->stats().snapshots_applied, 0u);  // chunk 0 missing
  ASSERT_TRUE(Handle(Chunk(id, 10, 0, false, 0, {Loc(1, 20, 3), Loc(2, 21)})).ok());
  EXPECT_EQ(engine_->stats().snapshots_applied, 1u);

  auto table = Table();
  ASSERT_EQ(table.size(), 3u);
  EXPECT_EQ(table.at(Id(1)), std::make_tuple(20.0, int64_t{3}, int64_t{0}, std::string(), int64_t{10}));
  EXPECT_EQ(table.at(Id(2)), std::make_tuple(42.0, int64_t{7}, int64_t{0}, std::string(), int64_t{12}));
  EXPECT_EQ(table.at(Id(4)), std::make_tuple(31.0, int64_t{2}, int64_t{8}, std::string("JP-13"), int64_t{10}));
  EXPECT_EQ(engine_->index().Size(), 3u);
  EXPECT_FALSE(engine_->index().Contains(Id(99)));
  EXPECT_FALSE(engine_->index().Contains(Id(3)));
  EXPECT_FALSE(engine_->index().Contains(Id(77)));

  RegistrySyncState s = State();
  EXPECT_EQ(s.applied_sequence, 10u);
  EXPECT_EQ(s.known_sequence, 13u);
  EXPECT_TRUE(s.pending_snapshot_id.empty());
  EXPECT_EQ(s.snapshots_applied, 1u);
  EXPECT_EQ(s.ahead_ranges, 1);  // 12..13

  // A late change from before the snapshot is stale; 11 closes the hole.
  Upsert(5, Loc(1, 60));
  EXPECT_EQ(std::get<0>(Table().at(Id(1))), 20.0);
  Upsert(11, Loc(5, 61));
  s = State();
  EXPECT_EQ(s.applied_sequence, 13u);
  EXPECT_FALSE(s.has_gap());
  EXPECT_TRUE(engine_->index().Contains(Id(5)));

  // A repeated chunk after completion is ignored (no snapshot awaited).
  ASSERT_TRUE(Handle(Chunk(id, 10, 0, false, 0, {Loc(1, 0)})).ok());
  EXPECT_EQ(std::get<0>(Table().at(Id(1))), 20.0);
}

TEST_F(RegistrySyncTest, ARegistryRestoredFromAnOlderBackupIsAdoptedWhole) {
  auto start = engine_->sync().Start(*db_);
  ASSERT_TRUE(start.ok() && start->has_value());
  ASSERT_TRUE(Handle(Chunk((*start)->snapshot_id(), 0, 0, true, 1, {})).ok());
  for (uint64_t seq = 1; seq <= 10; ++seq) Upsert(seq, Loc(seq, 10));
  ASSERT_EQ(State().applied_sequence, 10u);

  // The gateway's database came back from a backup taken at sequence 4:
  // registrants 5..10 no longer exist there, and it will number its next
  // change 5 again.
  Mark(4);
  EXPECT_TRUE(State().registry_behind);
  auto tick = engine_->sync().Tick(*db_, true);
  ASSERT_TRUE(tick.ok());
  ASSERT_TRUE(tick->has_value());
  EXPECT_EQ((*tick)->reason(), v1::SnapshotRequest::REASON_REGISTRY_BEHIND);
  EXPECT_FALSE((*tick)->probe_only());
  // The restored registry's snapshot at 4 (registrant 2 moved since).
  ASSERT_TRUE(
      Handle(Chunk((*tick)->snapshot_id(), 4, 0, true, 1, {Loc(1, 10), Loc(2, 15), Loc(3, 10), Loc(4, 10)})).ok());
  auto table = Table();
  ASSERT_EQ(table.size(), 4u);  // 5..10 are gone, although their sequences were higher
  EXPECT_EQ(std::get<0>(table.at(Id(2))), 15.0);
  EXPECT_EQ(engine_->index().Size(), 4u);
  RegistrySyncState s = State();
  EXPECT_FALSE(s.registry_behind);
  EXPECT_EQ(s.applied_sequence, 4u);
  EXPECT_EQ(s.known_sequence, 4u);
  EXPECT_FALSE(s.has_gap());
  // The restored registry's next change, numbered 5 again, applies.
  Upsert(5, Loc(42, 11));
  EXPECT_TRUE(engine_->index().Contains(Id(42)));
  EXPECT_EQ(State().applied_sequence, 5u);
}

TEST_F(RegistrySyncTest, AppliedSnapshotSurvivesARestartOfTheEngine) {
  auto start = engine_->sync().Start(*db_);
  ASSERT_TRUE(start.ok() && start->has_value());
  ASSERT_TRUE(Handle(Chunk((*start)->snapshot_id(), 5, 0, true, 1, {Loc(1, 20, 2, 4, "JP-01")})).ok());
  Reopen();
  EXPECT_EQ(engine_->index().Size(), 1u);
  EXPECT_TRUE(engine_->index().Contains(Id(1)));
  EXPECT_EQ(State().applied_sequence, 5u);
  // Not empty any more: a restart probes.
  auto again = engine_->sync().Start(*db_);
  ASSERT_TRUE(again.ok() && again->has_value());
  EXPECT_TRUE((*again)->probe_only());
}

TEST_F(RegistrySyncTest, ChunkWithoutIdAndChangeWithSequenceZeroAreRejected) {
  Status st = Handle(Chunk("", 1, 0, true, 1, {}));
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(st.field(), "snapshot_id");
  v1::Envelope env = MakeEnvelope("amparo-gateway", clock_);
  env.mutable_registry_change()->set_sequence(0);
  env.mutable_registry_change()->set_kind(v1::RegistryChange::KIND_UPSERT);
  *env.mutable_registry_change()->mutable_location() = Loc(1, 1);
  st = Handle(env);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(st.field(), "sequence");
  EXPECT_FALSE(engine_->index().Contains(Id(1)));
}

}  // namespace
}  // namespace amparo::rules
