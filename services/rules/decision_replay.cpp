#include "services/rules/decision_replay.h"

#include <google/protobuf/util/message_differencer.h>

#include <memory>
#include <vector>

#include "amparo/v1/alert.pb.h"
#include "amparo/v1/envelope.pb.h"
#include "common/clock.h"
#include "common/db.h"
#include "services/rules/alert_policy.h"
#include "services/rules/rules_engine.h"

namespace amparo::rules {
namespace {

struct Notification {
  std::string decision_id;
  v1::ConsularAlert alert;
};

Result<std::vector<Notification>> ReadNotifications(Db& db) {
  auto q = db.Prepare("SELECT decision_id, alert FROM decisions ORDER BY seq");
  if (!q.ok()) return q.status();
  std::vector<Notification> out;
  while (true) {
    auto row = q->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    Notification n;
    n.decision_id = q->ColumnText(0);
    if (!n.alert.ParseFromString(q->ColumnBlob(1))) {
      return Status(StatusCode::kInternal, "decision " + n.decision_id + ": alert does not parse");
    }
    out.push_back(std::move(n));
  }
  return out;
}

std::string Where(size_t i, const v1::ConsularAlert& a) {
  return "decision " + std::to_string(i + 1) + " (alert " + a.alert_id() + " revision " +
         std::to_string(a.revision()) + " notification " + std::to_string(a.notification()) + ")";
}

}  // namespace

Result<ReplayReport> ReplayDecisionLog(const std::filesystem::path& recorded_db, const RulesOptions& options,
                                       const std::filesystem::path& scratch_dir) {
  std::error_code ec;
  if (!std::filesystem::exists(recorded_db, ec)) {
    return Status(StatusCode::kNotFound, recorded_db.string() + ": no such rules database");
  }
  auto recorded = Db::Open(recorded_db);
  if (!recorded.ok()) return recorded.status();
  auto has_log = recorded->Prepare("SELECT count(*) FROM sqlite_master WHERE name IN ('input_log', 'decisions')");
  if (!has_log.ok()) return has_log.status();
  auto counted = has_log->Step();
  if (!counted.ok()) return counted.status();
  if (has_log->ColumnInt(0) != 2) {
    return InvalidArgument(recorded_db.string() + " has no decision log (not an amparo-rules database?)", "db");
  }

  std::filesystem::create_directories(scratch_dir, ec);
  const auto scratch_path = scratch_dir / "replay-rules.db";
  for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(scratch_path.string() + suffix, ec);
  auto scratch = Db::Open(scratch_path);
  if (!scratch.ok()) return scratch.status();
  AMPARO_RETURN_IF_ERROR(RulesEngine::Migrate(*scratch));
  FakeClock clock(0);
  auto engine = RulesEngine::Create(*scratch, options, clock);
  if (!engine.ok()) return engine.status();

  ReplayReport report;
  auto inputs = recorded->Prepare("SELECT seq, at_ms, kind, body FROM input_log ORDER BY seq");
  if (!inputs.ok()) return inputs.status();
  while (true) {
    auto row = inputs->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    ++report.inputs;
    const int64_t seq = inputs->ColumnInt(0);
    clock.Set(inputs->ColumnInt(1));
    const std::string kind = inputs->ColumnText(2);
    const std::string body = inputs->ColumnBlob(3);
    if (kind == "policy") {
      auto builtin = AlertPolicy::Default();
      if (body == builtin->text()) {
        (*engine)->SetPolicy(builtin);
      } else {
        auto policy = AlertPolicy::Parse(body, "input_log policy (seq " + std::to_string(seq) + ")");
        if (!policy.ok()) return policy.status();
        (*engine)->SetPolicy(*policy);
      }
      continue;
    }
    // One transaction per input, as amparo-rules runs them; a failure
    // rolls back when `tx` goes out of scope.
    auto apply = [&]() -> Status {
      auto tx = Transaction::Begin(*scratch);
      if (!tx.ok()) return tx.status();
      if (kind == "tick") {
        auto ticked = (*engine)->Tick(*scratch);
        if (!ticked.ok()) return ticked.status();
      } else if (kind == "envelope") {
        v1::Envelope envelope;
        if (!envelope.ParseFromString(body)) return Status(StatusCode::kInternal, "the envelope does not parse");
        if (envelope.has_snapshot_chunk()) {
          // The recorded run had asked for this snapshot (a request that is
          // not itself an input).
          AMPARO_RETURN_IF_ERROR(
              (*engine)->sync().AwaitSnapshotForReplay(*scratch, envelope.snapshot_chunk().snapshot_id()));
        }
        AMPARO_RETURN_IF_ERROR((*engine)->Handle(envelope, *scratch));
      } else {
        return Status(StatusCode::kInternal, "unknown kind " + kind);
      }
      return tx->Commit();
    };
    if (Status st = apply(); !st.ok()) {
      // Recorded inputs all succeeded once (a failure rolls its row back).
      if (report.first_difference.empty()) {
        report.first_difference = "input " + std::to_string(seq) + " (" + kind + ") failed: " + st.ToString();
      }
      AMPARO_RETURN_IF_ERROR((*engine)->ReconcileIndex(*scratch));
      continue;
    }
    (*engine)->ConfirmIndexChanges();
  }

  auto expected = ReadNotifications(*recorded);
  if (!expected.ok()) return expected.status();
  auto actual = ReadNotifications(*scratch);
  if (!actual.ok()) return actual.status();
  report.recorded = expected->size();
  report.replayed = actual->size();
  for (size_t i = 0; i < std::min(expected->size(), actual->size()) && report.first_difference.empty(); ++i) {
    const Notification& want = (*expected)[i];
    const Notification& got = (*actual)[i];
    std::string diff;
    google::protobuf::util::MessageDifferencer differ;
    differ.ReportDifferencesToString(&diff);
    if (want.decision_id != got.decision_id || !differ.Compare(want.alert, got.alert)) {
      report.first_difference = Where(i, want.alert) + ": " +
                                (want.decision_id != got.decision_id
                                     ? "replay made " + Where(i, got.alert) + " instead"
                                     : diff);
    }
  }
  if (report.first_difference.empty() && report.recorded != report.replayed) {
    report.first_difference = "recorded " + std::to_string(report.recorded) + " notifications, the replay made " +
                              std::to_string(report.replayed);
  }
  return report;
}

}  // namespace amparo::rules
