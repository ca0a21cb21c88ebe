#include "services/gateway/operator_actions.h"

#include <boost/json.hpp>

#include <algorithm>
#include <initializer_list>

#include "amparo/v1/envelope.pb.h"
#include "common/alert_json.h"
#include "common/audit.h"
#include "common/crypto.h"
#include "common/json_text.h"
#include "common/link.h"
#include "services/gateway/civil_date.h"
#include "services/gateway/json_fields.h"

namespace amparo::gateway {
namespace {

namespace json = boost::json;

constexpr std::string_view kProducer = "amparo-gateway";
constexpr std::string_view kRulesPeer = "rules";


// Code points of valid UTF-8 (Boost.JSON has validated the text).
size_t Utf8Length(std::string_view s) {
  return static_cast<size_t>(std::count_if(
      s.begin(), s.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }));
}

// A present, non-null string member; nullopt when absent or null.
Result<std::optional<std::string>> OptionalString(const json::object& o, std::string_view field) {
  auto it = o.find(field);
  if (it == o.end() || it->value().is_null()) return std::optional<std::string>();
  if (!it->value().is_string()) return InvalidArgument("must be a string", std::string(field));
  return std::optional<std::string>(std::string(it->value().get_string()));
}

Result<std::string> Reason(const json::object& o) {
  auto reason = OptionalString(o, "reason");
  if (!reason.ok()) return reason.status();
  if (!*reason) return InvalidArgument("is required: say why", "reason");
  std::string text = std::move(**reason);
  if (text.find_first_not_of(" \t\r\n") == std::string::npos) {
    return InvalidArgument("must not be empty", "reason");
  }
  if (Utf8Length(text) > kMaxReasonChars) {
    return InvalidArgument("must be at most " + std::to_string(kMaxReasonChars) + " characters", "reason");
  }
  return text;
}

Result<int64_t> Timestamp(const std::string& text, std::string_view field) {
  auto ms = ParseRfc3339(text);
  if (!ms) return InvalidArgument("must be an RFC 3339 time, e.g. 2026-01-31T18:00:00Z", std::string(field));
  return *ms;
}

v1::HazardKind HazardKindOf(std::string_view name) {
  for (int k = v1::HazardKind_MIN; k <= v1::HazardKind_MAX; ++k) {
    if (!v1::HazardKind_IsValid(k) || k == v1::HAZARD_KIND_UNSPECIFIED) continue;
    if (HazardName(static_cast<v1::HazardKind>(k)) == name) return static_cast<v1::HazardKind>(k);
  }
  return v1::HAZARD_KIND_UNSPECIFIED;
}

json::value TimeOrNull(int64_t ms) { return ms ? json::value(FormatRfc3339(ms)) : json::value(nullptr); }
json::value TextOrNull(const std::string& s) { return s.empty() ? json::value(nullptr) : json::value(s); }

Status Audit(Db& db, const Access& access, std::string_view state, std::string_view action,
             std::string_view subject, const json::object& detail, const Clock& clock) {
  AuditRecord record;
  record.actor = access.actor;
  record.state = std::string(state);
  record.action = std::string(action);
  record.subject = std::string(subject);
  record.purpose = access.purpose;
  record.detail = JsonText(detail);
  auto seq = AppendAudit(db, record, clock);
  return seq.ok() ? Status::Ok() : seq.status();
}

Status EnqueueSilence(Db& db, const SilenceRecord& s, bool expired, const Clock& clock) {
  v1::Envelope env = MakeEnvelope(kProducer, clock);
  v1::Silence* m = env.mutable_silence();
  m->set_silence_id(s.id);
  m->set_state(s.state);
  m->set_incident_id(s.incident_id);
  m->set_host_country(s.host_country);
  m->set_hazard(HazardKindOf(s.hazard));
  m->set_starts_ms(s.starts_ms);
  m->set_ends_ms(s.ends_ms);
  m->set_created_by(s.created_by);
  m->set_reason(s.reason);
  m->set_expired(expired);
  return EnqueueOutbound(db, std::string(kRulesPeer), env);
}

constexpr const char* kSilenceColumns =
    "silence_id, state, incident_id, host_country, hazard, starts_ms, ends_ms, reason, created_by, "
    "created_ms, lifted_ms, lifted_by";

SilenceRecord ReadSilence(const Statement& q) {
  SilenceRecord s;
  s.id = q.ColumnText(0);
  s.state = q.ColumnText(1);
  s.incident_id = q.ColumnText(2);
  s.host_country = q.ColumnText(3);
  s.hazard = q.ColumnText(4);
  s.starts_ms = q.ColumnInt(5);
  s.ends_ms = q.ColumnInt(6);
  s.reason = q.ColumnText(7);
  s.created_by = q.ColumnText(8);
  s.created_ms = q.ColumnInt(9);
  s.lifted_ms = q.ColumnInt(10);
  s.lifted_by = q.ColumnText(11);
  return s;
}

Result<SilenceRecord> SelectSilence(Db& db, std::string_view state, std::string_view id) {
  auto q = db.Prepare(std::string("SELECT ") + kSilenceColumns +
                      " FROM silences WHERE state = ? AND silence_id = ?");
  if (!q.ok()) return q.status();
  q->Bind(1, state).Bind(2, id);
  auto row = q->Step();
  if (!row.ok()) return row.status();
  if (!*row) return NotFound("no such silence");
  return ReadSilence(*q);
}

// The same message as GetAlert() gives, so a decision on another state's
// alert reads exactly like one on a missing alert.
Status RequireAlert(Db& db, std::string_view state, std::string_view alert_id) {
  auto q = db.Prepare("SELECT 1 FROM alerts WHERE state = ? AND alert_id = ?");
  if (!q.ok()) return q.status();
  q->Bind(1, state).Bind(2, alert_id);
  auto row = q->Step();
  if (!row.ok()) return row.status();
  return *row ? Status::Ok() : NotFound("no such alert");
}

v1::OperatorDecision::Action ActionOf(std::string_view action) {
  if (action == "confirm_phase") return v1::OperatorDecision::ACTION_CONFIRM_PHASE;
  if (action == "reject_phase") return v1::OperatorDecision::ACTION_REJECT_PHASE;
  if (action == "close") return v1::OperatorDecision::ACTION_CLOSE;
  return v1::OperatorDecision::ACTION_UNSPECIFIED;
}

}  // namespace

std::string_view SilenceStatus(const SilenceRecord& s, int64_t now_ms) {
  if (s.lifted_ms != 0 || now_ms >= s.ends_ms) return "expired";
  if (now_ms < s.starts_ms) return "pending";
  return "active";
}

Result<SilenceRecord> SilenceFromJson(const json::object& o, std::string_view state,
                                      std::string_view created_by, const Clock& clock) {
  AMPARO_RETURN_IF_ERROR(
      RejectUnknownFields(o, {"incident_id", "host_country", "hazard", "starts", "ends", "reason"}));
  const int64_t now_ms = clock.NowMs();
  SilenceRecord s;
  s.state = std::string(state);
  s.created_by = std::string(created_by);

  auto incident = OptionalString(o, "incident_id");
  if (!incident.ok()) return incident.status();
  if (*incident) {
    if (incident->value().empty() || incident->value().size() > 256)
      return InvalidArgument("must be 1..256 bytes (leave it out to match any incident)", "incident_id");
    s.incident_id = **incident;
  }
  auto host = OptionalString(o, "host_country");
  if (!host.ok()) return host.status();
  if (*host) {
    if (!IsIso3(**host)) return InvalidArgument("must be an ISO 3166-1 alpha-3 code", "host_country");
    s.host_country = **host;
  }
  auto hazard = OptionalString(o, "hazard");
  if (!hazard.ok()) return hazard.status();
  if (*hazard) {
    if (HazardKindOf(**hazard) == v1::HAZARD_KIND_UNSPECIFIED) {
      return InvalidArgument("unknown hazard (e.g. earthquake, tropical_cyclone, flood, conflict)", "hazard");
    }
    s.hazard = **hazard;
  }

  auto starts = OptionalString(o, "starts");
  if (!starts.ok()) return starts.status();
  s.starts_ms = now_ms;
  if (*starts) {
    auto ms = Timestamp(**starts, "starts");
    if (!ms.ok()) return ms.status();
    s.starts_ms = *ms;
  }
  auto ends = OptionalString(o, "ends");
  if (!ends.ok()) return ends.status();
  if (!*ends) return InvalidArgument("is required: a silence must expire", "ends");
  auto ends_ms = Timestamp(**ends, "ends");
  if (!ends_ms.ok()) return ends_ms.status();
  s.ends_ms = *ends_ms;
  if (s.ends_ms <= now_ms) return InvalidArgument("must be in the future", "ends");
  if (s.ends_ms <= s.starts_ms) return InvalidArgument("must be after starts", "ends");
  if (s.ends_ms > now_ms + kMaxSilenceAheadMs)
    return InvalidArgument("must be at most 30 days ahead", "ends");

  auto reason = Reason(o);
  if (!reason.ok()) return reason.status();
  s.reason = std::move(reason).value();
  return s;
}

json::object SilenceToJson(const SilenceRecord& s, int64_t now_ms) {
  json::object o;
  o["silence_id"] = s.id;
  o["state"] = s.state;
  o["incident_id"] = TextOrNull(s.incident_id);
  o["host_country"] = TextOrNull(s.host_country);
  o["hazard"] = TextOrNull(s.hazard);
  o["starts_at"] = FormatRfc3339(s.starts_ms);
  o["ends_at"] = FormatRfc3339(s.ends_ms);
  o["reason"] = s.reason;
  o["created_by"] = s.created_by;
  o["created_at"] = FormatRfc3339(s.created_ms);
  o["status"] = SilenceStatus(s, now_ms);
  o["expired"] = s.lifted_ms != 0;
  o["lifted_at"] = TimeOrNull(s.lifted_ms);
  o["lifted_by"] = s.lifted_by;
  return o;
}

Result<SilenceRecord> CreateSilence(Db& db, SilenceRecord s, const Access& access, const Clock& clock) {
  s.id = NewId();
  s.created_ms = clock.NowMs();
  if (s.created_by.empty()) s.created_by = access.actor;
  auto tx = Transaction::Begin(db);
  if (!tx.ok()) return tx.status();
  auto ins = db.Prepare(std::string("INSERT INTO silences(") + kSilenceColumns +
                        ") VALUES(?,?,?,?,?,?,?,?,?,?,0,'')");
  if (!ins.ok()) return ins.status();
  ins->Bind(1, s.id)
      .Bind(2, s.state)
      .Bind(3, s.incident_id)
      .Bind(4, s.host_country)
      .Bind(5, s.hazard)
      .Bind(6, s.starts_ms)
      .Bind(7, s.ends_ms)
      .Bind(8, s.reason)
      .Bind(9, s.created_by)
      .Bind(10, s.created_ms);
  AMPARO_RETURN_IF_ERROR(ins->Run());
  AMPARO_RETURN_IF_ERROR(EnqueueSilence(db, s, /*expired=*/false, clock));
  AMPARO_RETURN_IF_ERROR(Audit(db, access, s.state, "silence.create", s.id,
                               {{"reason", s.reason},
                                {"incident_id", s.incident_id},
                                {"host_country", s.host_country},
                                {"hazard", s.hazard},
                                {"starts_at", FormatRfc3339(s.starts_ms)},
                                {"ends_at", FormatRfc3339(s.ends_ms)}},
                               clock));
  AMPARO_RETURN_IF_ERROR(tx->Commit());
  return s;
}

Result<std::vector<SilenceRecord>> ListSilences(Db& db, std::string_view state, int limit,
                                                const Access& access, const Clock& clock) {
  if (limit < 1 || limit > 1000) return InvalidArgument("must be between 1 and 1000", "limit");
  auto tx = Transaction::Begin(db);
  if (!tx.ok()) return tx.status();
  auto q = db.Prepare(std::string("SELECT ") + kSilenceColumns +
                      " FROM silences WHERE state = ? ORDER BY created_ms DESC, rowid DESC LIMIT ?");
  if (!q.ok()) return q.status();
  q->Bind(1, state).Bind(2, limit);
  std::vector<SilenceRecord> out;
  while (true) {
    auto row = q->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    out.push_back(ReadSilence(*q));
  }
  AMPARO_RETURN_IF_ERROR(
      Audit(db, access, state, "silence.list", "*", {{"silences", static_cast<int64_t>(out.size())}}, clock));
  AMPARO_RETURN_IF_ERROR(tx->Commit());
  return out;
}

Result<SilenceRecord> GetSilence(Db& db, std::string_view state, std::string_view id, const Access& access,
                                 const Clock& clock) {
  auto tx = Transaction::Begin(db);
  if (!tx.ok()) return tx.status();
  auto s = SelectSilence(db, state, id);
  if (!s.ok()) return s.status();
  AMPARO_RETURN_IF_ERROR(Audit(db, access, state, "silence.read", id, {}, clock));
  AMPARO_RETURN_IF_ERROR(tx->Commit());
  return s;
}

Result<SilenceRecord> LiftSilence(Db& db, std::string_view state, std::string_view id,
                                  std::string_view reason, const Access& access, const Clock& clock) {
  if (Utf8Length(reason) > kMaxReasonChars) {
    return InvalidArgument("must be at most " + std::to_string(kMaxReasonChars) + " characters", "reason");
  }
  const int64_t now_ms = clock.NowMs();
  auto tx = Transaction::Begin(db);
  if (!tx.ok()) return tx.status();
  auto s = SelectSilence(db, state, id);
  if (!s.ok()) return s.status();
  if (SilenceStatus(*s, now_ms) == "expired") {
    return Status(StatusCode::kFailedPrecondition, "the silence has already expired");
  }
  auto upd =
      db.Prepare("UPDATE silences SET lifted_ms = ?, lifted_by = ? WHERE state = ? AND silence_id = ?");
  if (!upd.ok()) return upd.status();
  upd->Bind(1, now_ms).Bind(2, access.actor).Bind(3, state).Bind(4, id);
  AMPARO_RETURN_IF_ERROR(upd->Run());
  s->lifted_ms = now_ms;
  s->lifted_by = access.actor;
  AMPARO_RETURN_IF_ERROR(EnqueueSilence(db, *s, /*expired=*/true, clock));
  AMPARO_RETURN_IF_ERROR(Audit(db, access, state, "silence.lift", id,
                               {{"reason", std::string(reason)}, {"silence_reason", s->reason}}, clock));
  AMPARO_RETURN_IF_ERROR(tx->Commit());
  return s;
}

Result<DecisionRecord> DecisionFromJson(const json::object& o) {
  AMPARO_RETURN_IF_ERROR(RejectUnknownFields(o, {"action", "phase", "reason"}));
  DecisionRecord d;
  auto action = OptionalString(o, "action");
  if (!action.ok()) return action.status();
  if (!*action) return InvalidArgument("is required: confirm_phase, reject_phase or close", "action");
  if (ActionOf(**action) == v1::OperatorDecision::ACTION_UNSPECIFIED) {
    return InvalidArgument("must be confirm_phase, reject_phase or close", "action");
  }
  d.action = **action;
  if (auto it = o.find("phase"); it != o.end() && !it->value().is_null()) {
    if (d.action == "close") return InvalidArgument("is not taken by close", "phase");
    const json::value& v = it->value();
    if (!v.is_int64() && !v.is_uint64()) return InvalidArgument("must be a whole number 1..4", "phase");
    const int64_t phase =
        v.is_int64() ? v.get_int64() : static_cast<int64_t>(std::min<uint64_t>(v.get_uint64(), 99));
    if (phase < 1 || phase > 4) return InvalidArgument("must be a whole number 1..4", "phase");
    d.phase = static_cast<int>(phase);
  } else if (d.action == "confirm_phase") {
    return InvalidArgument("is required for confirm_phase", "phase");
  }
  auto reason = Reason(o);
  if (!reason.ok()) return reason.status();
  d.reason = std::move(reason).value();
  return d;
}

json::object DecisionToJson(const DecisionRecord& d) {
  json::object o;
  o["decision_id"] = d.id;
  o["alert_id"] = d.alert_id;
  o["action"] = d.action;
  o["phase"] = d.phase ? json::value(d.phase) : json::value(nullptr);
  o["reason"] = d.reason;
  o["by"] = d.decided_by;
  o["at"] = FormatRfc3339(d.decided_ms);
  return o;
}

Result<DecisionRecord> RecordDecision(Db& db, std::string_view state, std::string_view alert_id,
                                      DecisionRecord d, const Access& access, const Clock& clock) {
  d.id = NewId();
  d.alert_id = std::string(alert_id);
  d.state = std::string(state);
  d.decided_by = access.actor;
  d.decided_ms = clock.NowMs();
  auto tx = Transaction::Begin(db);
  if (!tx.ok()) return tx.status();
  AMPARO_RETURN_IF_ERROR(RequireAlert(db, state, alert_id));
  auto ins = db.Prepare(
      "INSERT INTO alert_decisions(decision_id, alert_id, state, action, phase, reason, decided_by, "
      "decided_ms) VALUES(?,?,?,?,?,?,?,?)");
  if (!ins.ok()) return ins.status();
  ins->Bind(1, d.id)
      .Bind(2, d.alert_id)
      .Bind(3, d.state)
      .Bind(4, d.action)
      .Bind(5, d.phase)
      .Bind(6, d.reason)
      .Bind(7, d.decided_by)
      .Bind(8, d.decided_ms);
  AMPARO_RETURN_IF_ERROR(ins->Run());
  v1::Envelope env = MakeEnvelope(kProducer, clock);
  v1::OperatorDecision* m = env.mutable_operator_decision();
  m->set_decision_id(d.id);
  m->set_alert_id(d.alert_id);
  m->set_state(d.state);
  m->set_action(ActionOf(d.action));
  m->set_phase(static_cast<v1::CrisisPhase>(d.phase));
  m->set_by(d.decided_by);
  m->set_at_ms(d.decided_ms);
  m->set_reason(d.reason);
  AMPARO_RETURN_IF_ERROR(EnqueueOutbound(db, std::string(kRulesPeer), env));
  AMPARO_RETURN_IF_ERROR(
      Audit(db, access, state, "alert.decision", alert_id,
            {{"decision_id", d.id}, {"action", d.action}, {"phase", d.phase}, {"reason", d.reason}}, clock));
  AMPARO_RETURN_IF_ERROR(tx->Commit());
  return d;
}

Result<std::vector<DecisionRecord>> ListDecisions(Db& db, std::string_view state, std::string_view alert_id,
                                                  const Access& access, const Clock& clock) {
  auto tx = Transaction::Begin(db);
  if (!tx.ok()) return tx.status();
  AMPARO_RETURN_IF_ERROR(RequireAlert(db, state, alert_id));
  auto q = db.Prepare(
      "SELECT decision_id, alert_id, state, action, phase, reason, decided_by, decided_ms "
      "FROM alert_decisions WHERE state = ? AND alert_id = ? ORDER BY decided_ms DESC, rowid DESC LIMIT "
      "1000");
  if (!q.ok()) return q.status();
  q->Bind(1, state).Bind(2, alert_id);
  std::vector<DecisionRecord> out;
  while (true) {
    auto row = q->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    DecisionRecord d;
    d.id = q->ColumnText(0);
    d.alert_id = q->ColumnText(1);
    d.state = q->ColumnText(2);
    d.action = q->ColumnText(3);
    d.phase = static_cast<int>(q->ColumnInt(4));
    d.reason = q->ColumnText(5);
    d.decided_by = q->ColumnText(6);
    d.decided_ms = q->ColumnInt(7);
    out.push_back(std::move(d));
  }
  AMPARO_RETURN_IF_ERROR(Audit(db, access, state, "alert.decision.list", alert_id,
                               {{"decisions", static_cast<int64_t>(out.size())}}, clock));
  AMPARO_RETURN_IF_ERROR(tx->Commit());
  return out;
}

}  // namespace amparo::gateway
