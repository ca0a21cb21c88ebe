#include "services/rules/decision_replay.h"

#include <google/protobuf/util/message_differencer.h>

#include <memory>
#include <vector>

#include "amparo/v1/alert.pb.h"
#include "amparo/v1/envelope.pb.h"
#include "common/clock.h"
#include "common/db.h"
#include "common/registrant_id.h"
#include "services/rules/alert_policy.h"
#include "services/rules/id_lists.h"
#include "services/rules/rules_engine.h"

namespace amparo::rules {
namespace {

struct Notification {
  std::string decision_id;
  v1::ConsularAlert alert;
};

Result<std::vector<Notification>> ReadNotifications(Db& db) {
  // ids_digest is NULL in logs recorded before id_lists; such logs may
  // predate the column too.
  auto has_digest =
      db.Prepare("SELECT count(*) FROM pragma_table_info('decisions') WHERE name = 'ids_digest'");
  if (!has_digest.ok()) return has_digest.status();
  auto counted = has_digest->Step();
  if (!counted.ok()) return counted.status();
  const bool digests = has_digest->ColumnInt(0) > 0;
  auto q = db.Prepare(digests ? "SELECT decision_id, alert, ids_digest FROM decisions ORDER BY seq"
                              : "SELECT decision_id, alert, NULL FROM decisions ORDER BY seq");
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
    if (!q->ColumnIsNull(2)) AMPARO_RETURN_IF_ERROR(AttachIds(db, q->ColumnBlob(2), n.alert));
    // A log recorded before ids were coded replays to the coded form.
    CodeAlertRegistrantIds(&n.alert);
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
  struct Row {
    int64_t seq = 0;
    int64_t at_ms = 0;
    std::string kind;
    std::string body;
  };
  auto inputs = recorded->Prepare("SELECT seq, at_ms, kind, body FROM input_log ORDER BY seq");
  if (!inputs.ok()) return inputs.status();
  auto next_row = [&]() -> Result<std::optional<Row>> {
    auto row = inputs->Step();
    if (!row.ok()) return row.status();
    if (!*row) return std::optional<Row>();
    return std::optional<Row>(
        Row{inputs->ColumnInt(0), inputs->ColumnInt(1), inputs->ColumnText(2), inputs->ColumnBlob(3)});
  };
  // Every event row is followed by the exposure the index gave for it: read
  // one row ahead.
  auto lookahead = next_row();
  if (!lookahead.ok()) return lookahead.status();
  (*engine)->UseRecordedExposure({});
  while (lookahead->has_value()) {
    Row row = std::move(**lookahead);
    lookahead = next_row();
    if (!lookahead.ok()) return lookahead.status();
    ++report.inputs;
    clock.Set(row.at_ms);
    const std::string where = "input_log seq " + std::to_string(row.seq);
    if (row.kind == "policy") {
      auto builtin = AlertPolicy::Default();
      if (row.body == builtin->text()) {
        (*engine)->SetPolicy(builtin);
      } else {
        auto policy = AlertPolicy::Parse(row.body, where + " (policy)");
        if (!policy.ok()) return policy.status();
        (*engine)->SetPolicy(*policy);
      }
      continue;
    }
    if (row.kind == "exposure") continue;  // consumed with its event
    v1::Envelope envelope;
    if (row.kind == "envelope") {
      if (!envelope.ParseFromString(row.body)) return Status(StatusCode::kInternal, where + " does not parse");
      if (envelope.has_crisis_event() && lookahead->has_value() && (*lookahead)->kind == "exposure") {
        auto exposure = RulesEngine::ExposureFromJson((*lookahead)->body, *recorded);
        if (!exposure.ok()) return Status(exposure.status().code(), where + ": " + exposure.status().message());
        (*engine)->UseRecordedExposure(std::move(*exposure));
      }
    } else if (row.kind != "tick" && row.kind != "reevaluate") {
      return Status(StatusCode::kInternal, where + ": unknown kind " + row.kind);
    }
    // One transaction per input, as amparo-rules runs them; a failure rolls
    // back when `tx` goes out of scope.
    auto apply = [&]() -> Status {
      auto tx = Transaction::Begin(*scratch);
      if (!tx.ok()) return tx.status();
      if (row.kind == "tick") {
        auto ticked = (*engine)->Tick(*scratch);
        if (!ticked.ok()) return ticked.status();
      } else if (row.kind == "reevaluate") {
        AMPARO_RETURN_IF_ERROR((*engine)->ApplyLoggedReevaluation(row.body, *recorded, *scratch));
      } else {
        AMPARO_RETURN_IF_ERROR((*engine)->Handle(envelope, *scratch));
      }
      return tx->Commit();
    };
    if (Status st = apply(); !st.ok()) {
      // Recorded inputs all succeeded once (a failure rolls its row back).
      if (report.first_difference.empty()) {
        report.first_difference = "input " + std::to_string(row.seq) + " (" + row.kind + ") failed: " + st.ToString();
      }
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
