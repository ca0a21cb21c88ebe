#include "services/rules/rules_engine.h"

#include <algorithm>
#include <cctype>
#include <set>
#include <tuple>
#include <cstdio>
#include <map>
#include <optional>
#include <vector>

#include <boost/json/array.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include "common/crypto.h"
#include "common/json_text.h"
#include "common/link.h"
#include "common/log.h"
#include "common/registrant_id.h"
#include "services/rules/footprint.h"
#include "services/rules/id_lists.h"

namespace amparo::rules {

// Everything the engine keeps about one alert between revisions.
struct AlertRow {
  bool exists = false;
  uint32_t revision = 0;
  bool cancelled = false;
  bool closed = false;
  bool expired = false;
  int confirmed_phase = 0;  // 0: no operator decision on the phase yet
  int64_t notified_ms = 0;
  int64_t repeat_interval_ms = 0;
  v1::ConsularAlert last;  // the latest notification sent, without its ids until AttachLastIds()
  std::string last_ids;    // id_lists digest of last's ids ("" when inline or none)
};

namespace {

// Never edit a shipped migration: append a new one.
const std::vector<std::string>& Migrations() {
  static const std::vector<std::string> kMigrations = {
      R"sql(
      -- The matching fields of each registrant, as last applied from the
      -- registry stream. A deletion keeps its row (deleted = 1) so that an
      -- older change replayed later cannot bring the registrant back.
      CREATE TABLE registrants (
        registrant_id TEXT PRIMARY KEY,
        state TEXT NOT NULL,
        host_country TEXT NOT NULL,
        admin1 TEXT NOT NULL,
        lat REAL NOT NULL,
        lon REAL NOT NULL,
        household_size INTEGER NOT NULL,
        vulnerability_flags INTEGER NOT NULL,
        sequence INTEGER NOT NULL,
        deleted INTEGER NOT NULL DEFAULT 0
      ) WITHOUT ROWID;

      -- The newest revision evaluated per (event, status).
      CREATE TABLE events (
        event_id TEXT NOT NULL,
        status INTEGER NOT NULL,
        revision INTEGER NOT NULL,
        msg_type INTEGER NOT NULL,
        footprint_model TEXT NOT NULL,
        footprint_description TEXT NOT NULL,
        updated_ms INTEGER NOT NULL,
        PRIMARY KEY (event_id, status)
      ) WITHOUT ROWID;

      -- The latest revision of every alert raised.
      CREATE TABLE alerts (
        alert_id TEXT PRIMARY KEY,
        incident_id TEXT NOT NULL,
        state TEXT NOT NULL,
        host_country TEXT NOT NULL,
        revision INTEGER NOT NULL,
        level INTEGER NOT NULL,
        registrants INTEGER NOT NULL,
        household_members INTEGER NOT NULL,
        vulnerable INTEGER NOT NULL,
        cancelled INTEGER NOT NULL,
        updated_ms INTEGER NOT NULL
      ) WITHOUT ROWID;
      CREATE INDEX alerts_by_incident ON alerts (incident_id);
      )sql",
      RegistrySync::Migration(),
      R"sql(
      -- Alert policy, lifecycle and operator actions (issue 5).
      ALTER TABLE alerts ADD COLUMN closed INTEGER NOT NULL DEFAULT 0;
      ALTER TABLE alerts ADD COLUMN expired INTEGER NOT NULL DEFAULT 0;
      ALTER TABLE alerts ADD COLUMN confirmed_phase INTEGER NOT NULL DEFAULT 0;
      ALTER TABLE alerts ADD COLUMN notified_ms INTEGER NOT NULL DEFAULT 0;
      ALTER TABLE alerts ADD COLUMN repeat_interval_ms INTEGER NOT NULL DEFAULT 0;
      ALTER TABLE alerts ADD COLUMN message BLOB;  -- the latest ConsularAlert sent

      -- What each source event of an incident says about one alert's group:
      -- the alert follows the highest of them (inhibition), and a cancel
      -- from one source removes only that source's say.
      CREATE TABLE alert_sources (
        alert_id TEXT NOT NULL,
        event_id TEXT NOT NULL,
        incident_id TEXT NOT NULL,
        cancelled INTEGER NOT NULL,
        expires_ms INTEGER NOT NULL,
        repeat_interval_ms INTEGER NOT NULL,
        candidate BLOB NOT NULL,      -- ConsularAlert as this event alone would raise it
        inputs TEXT NOT NULL,         -- the policy inputs and result, JSON
        PRIMARY KEY (alert_id, event_id)
      ) WITHOUT ROWID;
      CREATE INDEX alert_sources_by_event ON alert_sources (incident_id, event_id);

      CREATE TABLE silences (
        silence_id TEXT PRIMARY KEY,
        state TEXT NOT NULL,
        incident_id TEXT NOT NULL,
        host_country TEXT NOT NULL,
        hazard INTEGER NOT NULL,
        starts_ms INTEGER NOT NULL,
        ends_ms INTEGER NOT NULL,
        expired INTEGER NOT NULL,
        created_by TEXT NOT NULL,
        reason TEXT NOT NULL
      ) WITHOUT ROWID;

      CREATE TABLE operator_decisions (
        decision_id TEXT PRIMARY KEY,
        alert_id TEXT NOT NULL,
        action INTEGER NOT NULL,
        phase INTEGER NOT NULL,
        by_token TEXT NOT NULL,
        at_ms INTEGER NOT NULL,
        reason TEXT NOT NULL
      ) WITHOUT ROWID;

      -- Every input the engine handled, in order, with the time it used:
      -- the recorded event log `amparo replay --deterministic` re-runs.
      CREATE TABLE input_log (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        at_ms INTEGER NOT NULL,
        kind TEXT NOT NULL,           -- envelope | tick | policy
        body BLOB NOT NULL            -- Envelope bytes | empty | policy text
      );
      -- Every alert notification with the rule, its inputs and the result.
      CREATE TABLE decisions (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        decision_id TEXT NOT NULL UNIQUE,
        input_seq INTEGER NOT NULL,
        alert_id TEXT NOT NULL,
        revision INTEGER NOT NULL,
        notification INTEGER NOT NULL,
        rule TEXT NOT NULL,
        inputs TEXT NOT NULL,
        policy TEXT NOT NULL,
        alert BLOB NOT NULL
      );
      CREATE INDEX decisions_by_alert ON decisions (alert_id, revision);
      )sql",
      RegistrySync::RegistryBehindMigration(),
      R"sql(
      -- The latest revision of each event, to re-match it when the registry
      -- changes while it is active (RulesEngine::Tick).
      ALTER TABLE events ADD COLUMN event BLOB;
      ALTER TABLE events ADD COLUMN expires_ms INTEGER NOT NULL DEFAULT 0;
      CREATE INDEX events_by_update ON events (updated_ms);
      )sql",
      R"sql(
      -- Whether the latest notification went out silenced, so that Tick()
      -- reads only the alerts it may have to act on (NULL: written before
      -- this column, read as "maybe").
      ALTER TABLE alerts ADD COLUMN silenced INTEGER;
      )sql",
      R"sql(
      -- Tick() asks, for every open alert, whether a live source of it
      -- exists and whether one has no expiry or a later one. With this index
      -- each question reads a few index entries instead of alert_sources
      -- rows and their candidate alerts: 25-31 -> 3 ms per tick with 4,600
      -- open alerts, a stall of rules once a second.
      CREATE INDEX alert_sources_live ON alert_sources (alert_id, cancelled, expires_ms);
      )sql",
      R"sql(
      -- An alert's registrant ids (16 bytes each, up to max_ids_per_alert:
      -- most of its bytes) were stored three times, in the candidate, the
      -- decision record and alerts.message. Now each distinct list is stored
      -- once, under its SHA-256, and those rows hold the alert without it
      -- (StoreIds / AttachIds). NULL digest: the ids, if any, are inline
      -- (rows written before).
      CREATE TABLE id_lists (
        digest BLOB PRIMARY KEY,
        ids BLOB NOT NULL
      );
      ALTER TABLE alert_sources ADD COLUMN ids_digest BLOB;
      ALTER TABLE decisions ADD COLUMN ids_digest BLOB;
      -- The latest notification is its decision row (decisions.seq);
      -- alerts.message stays NULL for rows written from now on.
      ALTER TABLE alerts ADD COLUMN last_decision INTEGER;
      )sql",
      R"sql(
      -- alert_sources rows (~1.4 KB: the candidate and its policy inputs)
      -- are larger than a WITHOUT ROWID leaf keeps inline on 4 KiB pages
      -- (~1 KB), so each spilled ~400 bytes into an overflow page of its own
      -- (bench-pipeline: 3,186 overflow pages holding 950 bytes each, 14 MB
      -- for 4.5 MB of rows). A rowid table keeps them inline.
      CREATE TABLE alert_sources_inline (
        alert_id TEXT NOT NULL,
        event_id TEXT NOT NULL,
        incident_id TEXT NOT NULL,
        cancelled INTEGER NOT NULL,
        expires_ms INTEGER NOT NULL,
        repeat_interval_ms INTEGER NOT NULL,
        candidate BLOB NOT NULL,      -- ConsularAlert as this event alone would raise it
        inputs TEXT NOT NULL,         -- the policy inputs and result, JSON
        ids_digest BLOB,              -- id_lists.digest of its registrant ids
        UNIQUE (alert_id, event_id)
      );
      INSERT INTO alert_sources_inline
        SELECT alert_id, event_id, incident_id, cancelled, expires_ms, repeat_interval_ms, candidate, inputs,
               ids_digest
        FROM alert_sources ORDER BY alert_id, event_id;
      DROP TABLE alert_sources;
      ALTER TABLE alert_sources_inline RENAME TO alert_sources;
      CREATE INDEX alert_sources_by_event ON alert_sources (incident_id, event_id);
      CREATE INDEX alert_sources_live ON alert_sources (alert_id, cancelled, expires_ms);
      )sql",
      R"sql(
      -- Lists written from now on are front-coded (common/registrant_id.h),
      -- ~7x smaller for the gateway's sequence ids, and keyed by the SHA-256
      -- of those bytes; rows written before keep their packed ids (16 bytes
      -- each) under the digest of those.
      ALTER TABLE id_lists ADD COLUMN coded INTEGER NOT NULL DEFAULT 0;
      )sql",
      R"sql(
      -- decision_id is a digest of (alert_id, revision, notification): its
      -- UNIQUE index put each decision on a random leaf (6.5% of rules' WAL
      -- frames in bench-pipeline; in a database with a history, a page per
      -- decision at every commit and checkpoint), and nothing looks a
      -- decision up by it. One unique index on the three columns it digests
      -- keeps the same guarantee and replaces decisions_by_alert.
      CREATE TABLE decisions_keyed (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        decision_id TEXT NOT NULL,
        input_seq INTEGER NOT NULL,
        alert_id TEXT NOT NULL,
        revision INTEGER NOT NULL,
        notification INTEGER NOT NULL,
        rule TEXT NOT NULL,
        inputs TEXT NOT NULL,
        policy TEXT NOT NULL,
        alert BLOB NOT NULL,
        ids_digest BLOB
      );
      INSERT INTO decisions_keyed
        SELECT seq, decision_id, input_seq, alert_id, revision, notification, rule, inputs, policy, alert,
               ids_digest
        FROM decisions ORDER BY seq;
      DROP TABLE decisions;
      ALTER TABLE decisions_keyed RENAME TO decisions;
      CREATE UNIQUE INDEX decisions_by_alert ON decisions (alert_id, revision, notification);
      )sql",
  };
  return kMigrations;
}

std::optional<std::string> EventStatusName(v1::EventStatus status) {
  switch (status) {
    case v1::EVENT_STATUS_ACTUAL:
      return "Actual";
    case v1::EVENT_STATUS_EXERCISE:
      return "Exercise";
    case v1::EVENT_STATUS_TEST:
      return "Test";
    default:
      return std::nullopt;  // Draft, System, unspecified: not actionable
  }
}

std::string IncidentId(const v1::CrisisEvent& event) {
  // ingest's correlator puts every report of one crisis under one incident_id;
  // events from producers that do not correlate are their own incident.
  const std::string& base = event.incident_id().empty() ? event.event_id() : event.incident_id();
  switch (event.status()) {
    case v1::EVENT_STATUS_EXERCISE:
      return base + "~exercise";
    case v1::EVENT_STATUS_TEST:
      return base + "~test";
    default:
      return base;
  }
}

std::string HazardName(v1::HazardKind hazard) {
  switch (hazard) {
    case v1::HAZARD_KIND_EARTHQUAKE:
      return "Earthquake";
    case v1::HAZARD_KIND_TSUNAMI:
      return "Tsunami";
    case v1::HAZARD_KIND_TROPICAL_CYCLONE:
      return "Tropical cyclone";
    case v1::HAZARD_KIND_FLOOD:
      return "Flood";
    case v1::HAZARD_KIND_VOLCANO:
      return "Volcano";
    case v1::HAZARD_KIND_WILDFIRE:
      return "Wildfire";
    case v1::HAZARD_KIND_DROUGHT:
      return "Drought";
    case v1::HAZARD_KIND_SEVERE_WEATHER:
      return "Severe weather";
    case v1::HAZARD_KIND_CONFLICT:
      return "Armed conflict";
    case v1::HAZARD_KIND_CIVIL_UNREST:
      return "Civil unrest";
    default:
      return "Crisis";
  }
}

std::string Headline(const v1::CrisisEvent& event) {
  return event.texts_size() > 0 ? event.texts(0).headline() : std::string();
}

// "M5.6 earthquake, 158km E of Nago, Japan"
std::string DescribeEvent(const v1::CrisisEvent& event) {
  std::string what;
  if (event.hazard() == v1::HAZARD_KIND_EARTHQUAKE && event.metrics().has_magnitude()) {
    char buf[32];
    std::snprintf(buf, sizeof(buf), "M%.1f earthquake", event.metrics().magnitude());
    what = buf;
  } else if (event.place().empty() && !Headline(event).empty()) {
    return Headline(event);
  } else {
    what = HazardName(event.hazard());
  }
  if (!event.place().empty()) what += ", " + event.place();
  return what;
}

// "3 registered nationals (7 people, 1 vulnerable)"
std::string DescribeCounts(const ExposureCounts& c) {
  return std::to_string(c.registrants) +
         (c.registrants == 1 ? " registered national (" : " registered nationals (") +
         std::to_string(c.household_members) + (c.household_members == 1 ? " person, " : " people, ") +
         std::to_string(c.vulnerable) + " vulnerable)";
}

// What RecordEvent did with an event revision.
enum class Recorded {
  kFirst,  // the first revision of (event_id, status) seen
  kNewer,  // a newer revision than the one stored
  kStale,  // not newer than the one stored: nothing written
};

// Stores `event` as the newest revision evaluated for (event_id, status)
// unless one at least as new is stored. A first report (most events) is one
// insert; a newer revision an insert that finds the row, then an update.
Result<Recorded> RecordEvent(Db& db, const v1::CrisisEvent& event, const v1::Area* footprint,
                             int64_t now_ms) {
  const std::string bytes = event.SerializeAsString();
  auto bind = [&](Statement& q) {
    q.Bind(1, event.event_id())
        .Bind(2, static_cast<int>(event.status()))
        .Bind(3, event.revision())
        .Bind(4, static_cast<int>(event.msg_type()))
        .Bind(5, footprint ? footprint->footprint_model() : std::string())
        .Bind(6, footprint ? footprint->description() : std::string())
        .Bind(7, now_ms)
        .BindBlobRef(8, bytes)
        .Bind(9, event.expires_ms());
  };
  auto insert = db.Prepare(
      "INSERT INTO events (event_id, status, revision, msg_type, footprint_model, footprint_description, "
      "updated_ms, event, expires_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) "
      "ON CONFLICT (event_id, status) DO NOTHING");
  if (!insert.ok()) return insert.status();
  bind(*insert);
  AMPARO_RETURN_IF_ERROR(insert->Run());
  if (db.Changes() > 0) return Recorded::kFirst;
  auto update = db.Prepare(
      "UPDATE events SET revision = ?3, msg_type = ?4, footprint_model = ?5, footprint_description = ?6, "
      "updated_ms = ?7, event = ?8, expires_ms = ?9 WHERE event_id = ?1 AND status = ?2 AND revision < ?3");
  if (!update.ok()) return update.status();
  bind(*update);
  AMPARO_RETURN_IF_ERROR(update->Run());
  return db.Changes() > 0 ? Recorded::kNewer : Recorded::kStale;
}

// The lower-case name of vulnerability flag bit `bit` ("unaccompanied_child"),
// "" for bits without a name.
std::string FlagName(int bit) {
  const int value = 1 << bit;
  if (!v1::VulnerabilityFlag_IsValid(value)) return {};
  std::string name = v1::VulnerabilityFlag_Name(static_cast<v1::VulnerabilityFlag>(value));
  constexpr std::string_view kPrefix = "VULNERABILITY_FLAG_";
  if (name.rfind(kPrefix, 0) == 0) name.erase(0, kPrefix.size());
  std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
  return name;
}

int PhaseNumber(v1::CrisisPhase phase) { return static_cast<int>(phase); }

// The phase in force: the operator's once they decided, otherwise the
// proposal capped at 2 (phases 3 and 4 need an operator).
v1::CrisisPhase PhaseInForce(int confirmed_phase, v1::CrisisPhase proposed) {
  if (confirmed_phase > 0) return static_cast<v1::CrisisPhase>(confirmed_phase);
  return static_cast<v1::CrisisPhase>(std::min(PhaseNumber(proposed), 2));
}

Result<AlertRow> LoadAlertRow(Db& db, const std::string& alert_id) {
  // The latest notification: its decision row, or alerts.message for rows
  // written before decisions held it alone.
  auto q = db.Prepare(
      "SELECT a.revision, a.cancelled, a.closed, a.expired, a.confirmed_phase, a.notified_ms, "
      "a.repeat_interval_ms, coalesce(a.message, d.alert), d.ids_digest "
      "FROM alerts a LEFT JOIN decisions d ON d.seq = a.last_decision WHERE a.alert_id = ?");
  if (!q.ok()) return q.status();
  q->Bind(1, alert_id);
  auto row = q->Step();
  if (!row.ok()) return row.status();
  AlertRow a;
  if (!*row) return a;
  a.exists = true;
  a.revision = static_cast<uint32_t>(q->ColumnInt(0));
  a.cancelled = q->ColumnInt(1) != 0;
  a.closed = q->ColumnInt(2) != 0;
  a.expired = q->ColumnInt(3) != 0;
  a.confirmed_phase = static_cast<int>(q->ColumnInt(4));
  a.notified_ms = q->ColumnInt(5);
  a.repeat_interval_ms = q->ColumnInt(6);
  if (!q->ColumnIsNull(7) && !a.last.ParseFromString(q->ColumnBlob(7))) {
    return Status(StatusCode::kInternal, "the latest notification of " + alert_id + " does not parse");
  }
  if (!q->ColumnIsNull(8)) a.last_ids = q->ColumnBlob(8);
  return a;
}

// Gives row.last its ids: for the paths that send it again (a repeat, an
// expiry, an operator's decision); a re-evaluation takes its ids from the
// winning candidate and needs none of these.
Status AttachLastIds(Db& db, AlertRow& row) {
  AMPARO_RETURN_IF_ERROR(AttachIds(db, row.last_ids, row.last));
  row.last_ids.clear();
  return Status::Ok();
}

// One source event's say on one alert (table alert_sources).
struct Contribution {
  std::string event_id;
  bool cancelled = false;
  int64_t expires_ms = 0;
  int64_t repeat_interval_ms = 0;
  v1::ConsularAlert candidate;  // as loaded: without its ids when ids_digest is set
  std::string ids_digest;       // id_lists key of the candidate's ids ("" when inline or none)
  std::string inputs;
};

// Ordered by event_id, so the choice among equals is deterministic.
Result<std::vector<Contribution>> LoadContributions(Db& db, const std::string& alert_id) {
  auto q = db.Prepare(
      "SELECT event_id, cancelled, expires_ms, repeat_interval_ms, candidate, inputs, ids_digest "
      "FROM alert_sources WHERE alert_id = ? ORDER BY event_id");
  if (!q.ok()) return q.status();
  q->Bind(1, alert_id);
  std::vector<Contribution> out;
  while (true) {
    auto row = q->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    Contribution c;
    c.event_id = q->ColumnText(0);
    c.cancelled = q->ColumnInt(1) != 0;
    c.expires_ms = q->ColumnInt(2);
    c.repeat_interval_ms = q->ColumnInt(3);
    if (!c.candidate.ParseFromString(q->ColumnBlob(4))) {
      return Status(StatusCode::kInternal, "alert_sources.candidate of " + alert_id + " does not parse");
    }
    c.inputs = q->ColumnText(5);
    if (!q->ColumnIsNull(6)) c.ids_digest = q->ColumnBlob(6);
    out.push_back(std::move(c));
  }
  return out;
}

Status WriteContribution(Db& db, const std::string& incident_id, Contribution& c) {
  std::string candidate;
  auto digest = StoreIds(db, c.candidate, &candidate);
  if (!digest.ok()) return digest.status();
  auto q = db.Prepare(
      "INSERT OR REPLACE INTO alert_sources (alert_id, event_id, incident_id, cancelled, expires_ms, "
      "repeat_interval_ms, candidate, inputs, ids_digest) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)");
  if (!q.ok()) return q.status();
  q->Bind(1, c.candidate.alert_id())
      .Bind(2, c.event_id)
      .Bind(3, incident_id)
      .Bind(4, c.cancelled ? 1 : 0)
      .Bind(5, c.expires_ms)
      .Bind(6, c.repeat_interval_ms)
      .BindBlobRef(7, candidate)
      .Bind(8, c.inputs);
  if (digest->empty()) {
    q->BindNull(9);
  } else {
    q->BindBlobRef(9, *digest);
  }
  return q->Run();
}

// Which candidate an alert follows: the highest level, then phase, then
// the most people; the first event_id among equals.
bool Outranks(const v1::ConsularAlert& a, const v1::ConsularAlert& b) {
  auto key = [](const v1::ConsularAlert& x) {
    return std::tuple(static_cast<int>(x.level()), PhaseNumber(x.proposed_phase()), x.exposure().registrants(),
                      x.exposure().household_members());
  };
  return key(a) > key(b);
}

// Lifecycle of `next` after `previous` (revision > 1).
v1::AlertLifecycle LifecycleAfter(const v1::ConsularAlert& previous, const v1::ConsularAlert& next) {
  if (next.cancelled()) return v1::ALERT_LIFECYCLE_CANCELLED;
  auto rank = [](const v1::ConsularAlert& x) {
    return std::pair(static_cast<int>(x.level()), PhaseNumber(x.phase()));
  };
  if (previous.cancelled() || rank(next) > rank(previous)) return v1::ALERT_LIFECYCLE_ESCALATED;
  if (rank(next) < rank(previous)) return v1::ALERT_LIFECYCLE_DOWNGRADED;
  return v1::ALERT_LIFECYCLE_UPDATED;
}

bool SameSubstance(const v1::ConsularAlert& a, const v1::ConsularAlert& b) {
  return a.exposure().registrants() == b.exposure().registrants() &&
         a.exposure().household_members() == b.exposure().household_members() &&
         a.exposure().vulnerable() == b.exposure().vulnerable() && a.level() == b.level() &&
         a.proposed_phase() == b.proposed_phase() && a.phase() == b.phase() && a.cancelled() == b.cancelled();
}

std::string SourceLevelText(const std::optional<std::string>& v) { return v ? *v : std::string(); }

PolicyInputs InputsFor(const v1::CrisisEvent& event, const std::string& state, const std::string& host,
                       const GroupExposure* group) {
  PolicyInputs in;
  in.state = state;
  in.host_country = host;
  in.hazard = event.hazard();
  const auto& m = event.metrics();
  if (m.has_gdacs_alert()) in.gdacs_alert = m.gdacs_alert();
  if (m.has_pager_alert()) in.pager_alert = m.pager_alert();
  in.severity = event.severity();
  in.urgency = event.urgency();
  in.certainty = event.certainty();
  if (m.has_fatalities()) in.fatalities = m.fatalities();
  if (group != nullptr) {
    in.registrants = group->counts.registrants;
    in.household_members = group->counts.household_members;
    in.vulnerable = group->counts.vulnerable;
    in.with_flag = group->with_flag;
  }
  return in;
}

// The decision's inputs and result as one JSON object (decisions.inputs).
std::string InputsJson(const v1::CrisisEvent& event, const PolicyInputs& in, const PolicyDecision& d,
                       const v1::Area* footprint) {
  boost::json::object o;
  o["event_id"] = event.event_id();
  o["event_revision"] = event.revision();
  o["msg_type"] = v1::MessageType_Name(event.msg_type());
  o["hazard"] = v1::HazardKind_Name(in.hazard);
  o["gdacs_alert"] = SourceLevelText(in.gdacs_alert);
  o["pager_alert"] = SourceLevelText(in.pager_alert);
  o["severity"] = v1::Severity_Name(in.severity);
  o["urgency"] = v1::Urgency_Name(in.urgency);
  o["certainty"] = v1::Certainty_Name(in.certainty);
  if (in.fatalities) o["fatalities"] = *in.fatalities;
  o["registrants"] = in.registrants;
  o["household_members"] = in.household_members;
  o["vulnerable"] = in.vulnerable;
  boost::json::object flags;
  for (int b = 0; b < 32; ++b) {
    if (in.with_flag[b] > 0) flags[FlagName(b).empty() ? "bit" + std::to_string(b) : FlagName(b)] = in.with_flag[b];
  }
  o["with_flag"] = std::move(flags);
  o["footprint_model"] = footprint ? footprint->footprint_model() : std::string();
  o["rule"] = d.rule;
  o["level"] = v1::AlertLevel_Name(d.level);
  o["proposed_phase"] = PhaseNumber(d.proposed_phase);
  o["explanation"] = d.explanation;
  return JsonText(o);
}

}  // namespace

// A new rules database gets 8 KiB pages. 16 KiB pages
// paid off while alerts carried ids as hex strings (18-36 KB rows); with
// packed ids (~9 KB) the larger pages mostly multiplied what each small
// commit writes (every dirty page twice: WAL and checkpoint): 406 -> 185 MB
// for 5 s at 1,000 events/s in bench-pipeline, same CPU in bulk
// (docs/PERFORMANCE.md, "Pipeline"). Once the inbox rows and
// alert_sources stopped wasting pages, 8 KiB did better than 4 and 16 in
// bench-pipeline's throughput (13,432-14,134 against 11,884-12,812 and
// 12,731-14,114 events/s, with fewer MB written than 16). Existing
// databases keep theirs.
constexpr int kRulesPageSize = 8192;

const char* const RulesEngine::kTickAlertsSql =
    "SELECT alert_id FROM alerts a WHERE cancelled = 0 AND closed = 0 AND expired = 0 AND ("
    "silenced IS NULL OR silenced != 0 "
    "OR (repeat_interval_ms > 0 AND ?1 - notified_ms >= repeat_interval_ms) "
    "OR (EXISTS (SELECT 1 FROM alert_sources s WHERE s.alert_id = a.alert_id AND s.cancelled = 0) "
    "AND NOT EXISTS (SELECT 1 FROM alert_sources s WHERE s.alert_id = a.alert_id AND s.cancelled = 0 "
    "AND (s.expires_ms = 0 OR s.expires_ms > ?1)))) ORDER BY alert_id";

Status RulesEngine::Migrate(Db& db) {
  auto sized = db.SetPageSizeIfEmpty(kRulesPageSize);
  if (!sized.ok()) return sized.status();
  AMPARO_RETURN_IF_ERROR(db.Migrate(Migrations()));
  return InitLinkTables(db);
}

Result<std::unique_ptr<RulesEngine>> RulesEngine::Create(Db& db, const RulesOptions& options,
                                                         const Clock& clock,
                                                         const RegistrySyncOptions& sync_options) {
  std::unique_ptr<RulesEngine> engine(new RulesEngine(options, clock, sync_options));
  AMPARO_RETURN_IF_ERROR(engine->LoadIndex(db));
  return engine;
}

Status RulesEngine::LoadIndex(Db& db) {
  auto q = db.Prepare(
      "SELECT registrant_id, state, host_country, lat, lon, household_size, vulnerability_flags, admin1 "
      "FROM registrants WHERE deleted = 0");
  if (!q.ok()) return q.status();
  ExposureIndex index;
  index.BeginBulkLoad();
  v1::RegistrantLocation loc;
  while (true) {
    auto row = q->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    loc.set_registrant_id(q->ColumnText(0));
    loc.set_state(q->ColumnText(1));
    loc.set_host_country(q->ColumnText(2));
    loc.set_lat(q->ColumnDouble(3));
    loc.set_lon(q->ColumnDouble(4));
    loc.set_household_size(static_cast<uint32_t>(q->ColumnInt(5)));
    loc.set_vulnerability_flags(static_cast<uint32_t>(q->ColumnInt(6)));
    loc.set_admin1(q->ColumnText(7));
    // Rows were validated before they were written; one that fails now is
    // corrupt. Refusing to start would stop alerts for everybody else.
    if (Status st = index.Upsert(loc); !st.ok()) {
      log::Error("registrant row skipped",
                 {{"registrant_id", loc.registrant_id()}, {"error", st.ToString()}});
    }
  }
  index.EndBulkLoad();
  index_ = std::move(index);
  touched_.clear();
  return Status::Ok();
}

void RulesEngine::SetPolicy(std::shared_ptr<const AlertPolicy> policy) {
  if (!policy) return;
  policy_ = std::move(policy);
  policy_logged_ = false;
}

Result<std::string> RulesEngine::ExposureToJson(const Exposure& exposure, Db& lists) {
  // Written directly rather than through boost::json: an exposure carries up
  // to max_ids_per_alert ids per group, and building a DOM of them for every
  // exposing event was a tenth of amparo-rules' CPU. The text is the one the
  // DOM printed (same keys, same order); ExposureFromJson reads either.
  std::string out;
  out.reserve(2 + exposure.size() * 240);
  out += '[';
  bool first_group = true;
  for (const auto& [key, group] : exposure) {
    if (!first_group) out += ',';
    first_group = false;
    out += "{\"state\":";
    AppendJsonString(out, key.first);
    out += ",\"host\":";
    AppendJsonString(out, key.second);
    out += ",\"registrants\":" + std::to_string(group.counts.registrants);
    out += ",\"household_members\":" + std::to_string(group.counts.household_members);
    out += ",\"vulnerable\":" + std::to_string(group.counts.vulnerable);
    out += ",\"with_flag\":{";
    bool first_flag = true;
    for (int b = 0; b < 32; ++b) {
      if (group.with_flag[b] == 0) continue;
      if (!first_flag) out += ',';
      first_flag = false;
      out += '"' + std::to_string(b) + "\":" + std::to_string(group.with_flag[b]);
    }
    auto digest = StoreIdList(lists, CodeRegistrantIds(group.packed_ids));
    if (!digest.ok()) return digest.status();
    out += "},\"ids_sha256\":\"";
    out += HexEncode(*digest);
    out += "\"}";
  }
  out += ']';
  return out;
}

Result<Exposure> RulesEngine::ExposureFromJson(std::string_view text, Db& lists) {
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(text, ec);
  if (ec || !v.is_array()) return InvalidArgument("not a JSON array of groups", "exposure");
  Exposure out;
  try {
    for (const auto& item : v.as_array()) {
      const auto& g = item.as_object();
      GroupExposure group;
      group.counts.registrants = static_cast<uint32_t>(g.at("registrants").to_number<int64_t>());
      group.counts.household_members = static_cast<uint32_t>(g.at("household_members").to_number<int64_t>());
      group.counts.vulnerable = static_cast<uint32_t>(g.at("vulnerable").to_number<int64_t>());
      for (const auto& [bit, count] : g.at("with_flag").as_object()) {
        const int b = std::stoi(std::string(bit));
        if (b < 0 || b >= 32) return InvalidArgument("flag bit out of range", "exposure.with_flag");
        group.with_flag[b] = static_cast<uint32_t>(count.to_number<int64_t>());
      }
      if (const auto* named = g.if_contains("ids_sha256")) {
        std::string digest;
        if (!named->as_string().empty()) {
          if (!ParseIdListDigest(named->as_string(), &digest)) {
            return InvalidArgument("not a SHA-256 in lowercase hex", "exposure.ids_sha256");
          }
          auto ids = LoadPackedIdList(lists, digest);
          if (!ids.ok()) return ids.status();
          group.packed_ids = std::move(ids).value();
        }
      } else if (const auto* packed = g.if_contains("ids_b64")) {
        auto bytes = Base64Decode(packed->as_string());
        if (!bytes.ok() || bytes->size() % kPackedRegistrantIdBytes != 0) {
          return InvalidArgument("not packed registrant ids in base64", "exposure.ids_b64");
        }
        group.packed_ids = std::move(bytes).value();
      } else {
        for (const auto& id : g.at("ids").as_array()) {
          if (!group.AddId(id.as_string())) return InvalidArgument("not a registrant id", "exposure.ids");
        }
      }
      out.emplace(ExposureKey{std::string(g.at("state").as_string()), std::string(g.at("host").as_string())},
                  std::move(group));
    }
  } catch (const std::exception& e) {
    return InvalidArgument(std::string("malformed group: ") + e.what(), "exposure");
  }
  return out;
}

void RulesEngine::UseRecordedExposure(Exposure exposure) {
  replaying_ = true;
  recorded_exposure_ = std::move(exposure);
}

Status RulesEngine::LogInput(Db& db, std::string_view kind, std::string_view body) {
  if (!policy_logged_) {
    // The policy in force is part of the log: replay re-parses this text.
    policy_logged_ = true;
    auto p = db.Prepare("INSERT INTO input_log (at_ms, kind, body) VALUES (?, 'policy', ?)");
    if (!p.ok()) return p.status();
    p->Bind(1, now_ms_).BindBlob(2, policy_->text());
    AMPARO_RETURN_IF_ERROR(p->Run());
  }
  auto q = db.Prepare("INSERT INTO input_log (at_ms, kind, body) VALUES (?, ?, ?)");
  if (!q.ok()) return q.status();
  q->Bind(1, now_ms_).Bind(2, kind).BindBlob(3, body);
  AMPARO_RETURN_IF_ERROR(q->Run());
  input_seq_ = db.LastInsertRowId();
  return Status::Ok();
}

Status RulesEngine::Handle(const v1::Envelope& envelope, Db& db) {
  now_ms_ = clock_.NowMs();
  input_seq_ = 0;
  // Only inputs that decide alerts are logged. Registry changes are not:
  // they hold people's locations and vulnerability flags, which must go when
  // the registry purges them. Each event's exposure (counts and ids) is
  // logged instead, right after the event (HandleCrisisEvent).
  const auto payload = envelope.payload_case();
  if (payload == v1::Envelope::kCrisisEvent || payload == v1::Envelope::kSilence ||
      payload == v1::Envelope::kOperatorDecision) {
    const bool policy_was_logged = policy_logged_;
    Status st = LogInput(db, "envelope", envelope.SerializeAsString());
    if (st.ok()) st = Dispatch(envelope, db);
    // A failed input is rolled back (its savepoint), the policy row with it.
    if (!st.ok()) policy_logged_ = policy_was_logged;
    return st;
  }
  return Dispatch(envelope, db);
}

Status RulesEngine::Dispatch(const v1::Envelope& envelope, Db& db) {
  switch (envelope.payload_case()) {
    case v1::Envelope::kCrisisEvent:
      return HandleCrisisEvent(envelope.crisis_event(), db);
    case v1::Envelope::kRegistryChange:
      return HandleRegistryChange(envelope.registry_change(), db);
    case v1::Envelope::kRegistryChanges:
      return HandleRegistryChanges(envelope.registry_changes(), db);
    case v1::Envelope::kSnapshotChunk:
      return HandleSnapshotChunk(envelope.snapshot_chunk(), db);
    case v1::Envelope::kRegistrySequenceMark:
      return sync_.RecordMark(db, envelope.registry_sequence_mark());
    case v1::Envelope::kSilence:
      return HandleSilence(envelope.silence(), db);
    case v1::Envelope::kOperatorDecision:
      return HandleOperatorDecision(envelope.operator_decision(), db);
    default:
      return InvalidArgument(
          "amparo-rules accepts crisis_event, registry_change, registry_changes, snapshot_chunk, "
          "registry_sequence_mark, silence and operator_decision only",
          "payload");
  }
}

Result<std::optional<std::string>> RulesEngine::ActiveSilence(Db& db, const v1::ConsularAlert& alert) const {
  auto q = db.Prepare(
      "SELECT silence_id FROM silences WHERE state = ? AND expired = 0 AND starts_ms <= ? AND ends_ms > ? "
      "AND (incident_id = '' OR incident_id = ?) AND (host_country = '' OR host_country = ?) "
      "AND (hazard = 0 OR hazard = ?) ORDER BY silence_id LIMIT 1");
  if (!q.ok()) return q.status();
  q->Bind(1, alert.state())
      .Bind(2, now_ms_)
      .Bind(3, now_ms_)
      .Bind(4, alert.incident_id())
      .Bind(5, alert.host_country())
      .Bind(6, static_cast<int>(alert.hazard()));
  auto row = q->Step();
  if (!row.ok()) return row.status();
  if (!*row) return std::optional<std::string>();
  return std::optional<std::string>(q->ColumnText(0));
}

Status RulesEngine::Emit(Db& db, AlertRow& row, v1::ConsularAlert alert, const std::string& rule_inputs,
                         bool repeat) {
  // "" (not {}): a zero-length blob, never NULL.
  if (input_seq_ == 0) AMPARO_RETURN_IF_ERROR(LogInput(db, "tick", std::string_view("")));
  alert.set_notification(repeat ? row.last.notification() + 1 : 0);
  if (!repeat) alert.set_raised_ms(now_ms_);
  auto silence = ActiveSilence(db, alert);
  if (!silence.ok()) return silence.status();
  alert.set_silenced(silence->has_value());
  alert.set_silence_id(silence->value_or(""));
  alert.set_decision_id(Sha256Hex(alert.alert_id() + "#" + std::to_string(alert.revision()) + "#" +
                                  std::to_string(alert.notification()))
                            .substr(0, 32));

  // The decision record holds the notification (without its ids, which
  // id_lists keeps once); the alert row points at it.
  std::string alert_bytes;
  auto digest = StoreIds(db, alert, &alert_bytes);
  if (!digest.ok()) return digest.status();
  auto decision = db.Prepare(
      "INSERT INTO decisions (decision_id, input_seq, alert_id, revision, notification, rule, inputs, "
      "policy, alert, ids_digest) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
  if (!decision.ok()) return decision.status();
  decision->Bind(1, alert.decision_id())
      .Bind(2, input_seq_)
      .Bind(3, alert.alert_id())
      .Bind(4, static_cast<int64_t>(alert.revision()))
      .Bind(5, static_cast<int64_t>(alert.notification()))
      .Bind(6, alert.policy_rule())
      .Bind(7, rule_inputs)
      .Bind(8, policy_->fingerprint())
      .BindBlobRef(9, alert_bytes);
  if (digest->empty()) {
    decision->BindNull(10);
  } else {
    decision->BindBlobRef(10, *digest);
  }
  AMPARO_RETURN_IF_ERROR(decision->Run());
  const int64_t decision_seq = db.LastInsertRowId();

  auto write = db.Prepare(
      "INSERT OR REPLACE INTO alerts (alert_id, incident_id, state, host_country, revision, level, "
      "registrants, household_members, vulnerable, cancelled, updated_ms, closed, expired, confirmed_phase, "
      "notified_ms, repeat_interval_ms, message, silenced, last_decision) "
      "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?)");
  if (!write.ok()) return write.status();
  const bool closed = alert.lifecycle() == v1::ALERT_LIFECYCLE_CLOSED;
  const bool expired = alert.lifecycle() == v1::ALERT_LIFECYCLE_EXPIRED;
  write->Bind(1, alert.alert_id())
      .Bind(2, alert.incident_id())
      .Bind(3, alert.state())
      .Bind(4, alert.host_country())
      .Bind(5, static_cast<int64_t>(alert.revision()))
      .Bind(6, static_cast<int>(alert.level()))
      .Bind(7, static_cast<int64_t>(alert.exposure().registrants()))
      .Bind(8, static_cast<int64_t>(alert.exposure().household_members()))
      .Bind(9, static_cast<int64_t>(alert.exposure().vulnerable()))
      .Bind(10, alert.cancelled() ? 1 : 0)
      .Bind(11, now_ms_)
      .Bind(12, closed ? 1 : 0)
      .Bind(13, expired ? 1 : 0)
      .Bind(14, row.confirmed_phase)
      .Bind(15, now_ms_)
      .Bind(16, row.repeat_interval_ms)
      .Bind(17, alert.silenced() ? 1 : 0)
      .Bind(18, decision_seq);
  AMPARO_RETURN_IF_ERROR(write->Run());

  v1::Envelope envelope = MakeEnvelope(kProducer, clock_);
  *envelope.mutable_consular_alert() = alert;
  AMPARO_RETURN_IF_ERROR(EnqueueOutbound(db, kNotifyPeer, envelope));
  ++stats_.alerts;
  if (repeat) ++stats_.repeats;
  if (alert.silenced()) ++stats_.silenced;
  log::Info(repeat ? "alert repeated" : "alert " + v1::AlertLifecycle_Name(alert.lifecycle()).substr(16),
            {{"alert_id", alert.alert_id()},
             {"revision", std::to_string(alert.revision())},
             {"notification", std::to_string(alert.notification())},
             {"alert_level", v1::AlertLevel_Name(alert.level())},
             {"phase", std::to_string(PhaseNumber(alert.phase()))},
             {"registrants", std::to_string(alert.exposure().registrants())},
             {"silenced", alert.silenced() ? alert.silence_id() : "no"},
             {"exercise", alert.exercise() ? "true" : "false"}});
  row.exists = true;
  row.revision = alert.revision();
  row.cancelled = alert.cancelled();
  row.closed = closed;
  row.expired = expired;
  row.notified_ms = now_ms_;
  row.last = std::move(alert);
  return Status::Ok();
}

Status RulesEngine::Reevaluate(Db& db, const std::string& alert_id) {
  auto row = LoadAlertRow(db, alert_id);
  if (!row.ok()) return row.status();
  if (row->closed) {
    log::Info("closed alert not revised", {{"alert_id", alert_id}});
    return Status::Ok();
  }
  auto contributions = LoadContributions(db, alert_id);
  if (!contributions.ok()) return contributions.status();
  const Contribution* best = nullptr;
  std::set<std::string> sources;
  for (const Contribution& c : *contributions) {
    if (c.cancelled) continue;
    for (const auto& s : c.candidate.sources()) sources.insert(s);
    if (best == nullptr || Outranks(c.candidate, best->candidate)) best = &c;
  }
  if (best == nullptr) {
    // Every source withdrew: an all-clear to everyone alerted before.
    if (!row->exists || row->cancelled) return Status::Ok();
    v1::ConsularAlert next = row->last;
    next.set_revision(row->revision + 1);
    next.set_level(v1::ALERT_LEVEL_INFO);
    next.clear_exposure();
    next.clear_registrant_ids();
    next.clear_registrant_ids_packed();
    next.clear_registrant_ids_coded();
    next.set_cancelled(true);
    next.set_reason("cancelled by source");
    next.set_proposed_phase(v1::CRISIS_PHASE_UNSPECIFIED);
    next.set_phase(v1::CRISIS_PHASE_UNSPECIFIED);
    next.set_lifecycle(v1::ALERT_LIFECYCLE_CANCELLED);
    next.clear_sources();
    return Emit(db, *row, std::move(next), R"({"cancelled_by_source":true})", false);
  }

  v1::ConsularAlert next = best->candidate;
  AMPARO_RETURN_IF_ERROR(AttachIds(db, best->ids_digest, next));
  next.clear_sources();
  for (const auto& s : sources) next.add_sources(s);
  next.set_phase(next.exposure().registrants() > 0 || row->confirmed_phase > 0
                     ? PhaseInForce(row->confirmed_phase, next.proposed_phase())
                     : v1::CRISIS_PHASE_UNSPECIFIED);
  if (row->exists && row->last.has_phase_confirmation()) {
    *next.mutable_phase_confirmation() = row->last.phase_confirmation();
  }
  if (!row->exists) {
    if (next.exposure().registrants() == 0) return Status::Ok();  // nobody was ever exposed
    next.set_revision(1);
    next.set_lifecycle(v1::ALERT_LIFECYCLE_NEW);
  } else {
    if (!row->cancelled && !row->expired && SameSubstance(row->last, next)) return Status::Ok();
    next.set_revision(row->revision + 1);
    next.set_lifecycle(LifecycleAfter(row->last, next));
  }
  row->repeat_interval_ms = best->repeat_interval_ms;
  return Emit(db, *row, std::move(next), best->inputs, false);
}

Status RulesEngine::HandleRegistryChange(const v1::RegistryChange& change, Db& db) {
  return ApplyRegistryChange(change, db, /*deferred=*/false);
}

Status RulesEngine::ApplyRegistryChange(const v1::RegistryChange& change, Db& db, bool deferred) {
  const v1::RegistrantLocation& loc = change.location();
  const bool upsert = change.kind() == v1::RegistryChange::KIND_UPSERT;
  if (!upsert && change.kind() != v1::RegistryChange::KIND_DELETE) {
    return InvalidArgument("must be UPSERT or DELETE", "kind");
  }
  if (upsert) {
    AMPARO_RETURN_IF_ERROR(ExposureIndex::Validate(loc));
  } else if (loc.registrant_id().empty() || loc.state().empty()) {
    return InvalidArgument("a deletion needs registrant_id and state", "location");
  }

  if (!deferred) {
    auto covered = sync_.Covers(db, change.sequence());
    if (!covered.ok()) return covered.status();
    if (*covered) {
      ++stats_.stale_changes;
      return Status::Ok();
    }
  }

  auto current = db.Prepare("SELECT sequence, state, deleted FROM registrants WHERE registrant_id = ?");
  if (!current.ok()) return current.status();
  current->Bind(1, loc.registrant_id());
  auto row = current->Step();
  if (!row.ok()) return row.status();
  if (*row) {
    if (static_cast<uint64_t>(current->ColumnInt(0)) >= change.sequence()) {
      ++stats_.stale_changes;
      // Superseded for this registrant, but received: the sequence counts.
      return deferred ? Status::Ok() : sync_.RecordChange(db, change.sequence());
    }
    // A state manages only its own nationals (DESIGN.md guarantee 4): a
    // change naming another state is a bug upstream, never applied.
    if (current->ColumnInt(2) == 0 && current->ColumnText(1) != loc.state()) {
      return InvalidArgument("registrant " + loc.registrant_id() + " belongs to another state", "state");
    }
  }
  current->Reset();

  auto write = db.Prepare(
      "INSERT OR REPLACE INTO registrants (registrant_id, state, host_country, admin1, lat, lon, "
      "household_size, "
      "vulnerability_flags, sequence, deleted) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
  if (!write.ok()) return write.status();
  write->Bind(1, loc.registrant_id())
      .Bind(2, loc.state())
      .Bind(3, upsert ? loc.host_country() : std::string())
      .Bind(4, upsert ? loc.admin1() : std::string())
      .Bind(5, upsert ? loc.lat() : 0.0)
      .Bind(6, upsert ? loc.lon() : 0.0)
      .Bind(7, static_cast<int64_t>(upsert ? loc.household_size() : 0))
      .Bind(8, static_cast<int64_t>(upsert ? loc.vulnerability_flags() : 0))
      .Bind(9, static_cast<int64_t>(change.sequence()))
      .Bind(10, upsert ? 0 : 1);
  AMPARO_RETURN_IF_ERROR(write->Run());
  if (!deferred) AMPARO_RETURN_IF_ERROR(sync_.RecordChange(db, change.sequence()));

  // The database write succeeded: now the index (see the header on commit failures).
  touched_.insert(loc.registrant_id());
  if (upsert) {
    AMPARO_RETURN_IF_ERROR(index_.Upsert(loc));
  } else {
    index_.Remove(loc.registrant_id());
  }
  ++stats_.registry_changes;
  registry_changed_ = true;
  return Status::Ok();
}

Status RulesEngine::HandleRegistryChanges(const v1::RegistryChangeBatch& batch, Db& db) {
  if (batch.changes().empty()) return InvalidArgument("a batch needs at least one change", "changes");
  // The common case, a bulk import arriving in order: the batch continues
  // the high-water mark with consecutive numbers and nothing is recorded
  // above it. Then no change can be covered already, and the mark moves
  // once for the run (RecordRun) instead of reading and writing the sync
  // state twice per change. The first change that fails ends the run;
  // it and the rest take the general path below, so the outcome is what
  // one message per change would have given.
  int i = 0;
  auto state = sync_.State(db);
  if (!state.ok()) return state.status();
  const uint64_t first = batch.changes(0).sequence();
  bool in_order = state->ahead_ranges == 0 && first == state->applied_sequence + 1;
  for (int k = 1; in_order && k < batch.changes_size(); ++k) {
    in_order = batch.changes(k).sequence() == first + static_cast<uint64_t>(k);
  }
  if (in_order) {
    for (; i < batch.changes_size(); ++i) {
      if (!ApplyRegistryChange(batch.changes(i), db, /*deferred=*/true).ok()) break;
    }
    if (i > 0) AMPARO_RETURN_IF_ERROR(sync_.RecordRun(db, first, first + static_cast<uint64_t>(i) - 1));
  }
  for (; i < batch.changes_size(); ++i) {
    const v1::RegistryChange& change = batch.changes(i);
    Status st = HandleRegistryChange(change, db);
    if (st.code() == StatusCode::kInvalidArgument) {
      ++stats_.invalid_changes;
      log::Warn("registry change skipped",
                {{"sequence", std::to_string(change.sequence())},
                 {"field", "changes[" + std::to_string(i) + "]." + st.field()},
                 {"reason", st.message()}});
      continue;
    }
    AMPARO_RETURN_IF_ERROR(st);
  }
  return Status::Ok();
}

Status RulesEngine::HandleSnapshotChunk(const v1::SnapshotChunk& chunk, Db& db) {
  auto applied = sync_.StageChunk(db, chunk);
  if (!applied.ok()) return applied.status();
  if (!*applied) return Status::Ok();
  // The table was replaced inside this transaction: rebuild the index from
  // it (this connection sees the uncommitted rows). A rollback later makes
  // ReconcileIndex() reload the whole index.
  index_rebuilt_ = true;
  AMPARO_RETURN_IF_ERROR(LoadIndex(db));
  index_rebuilt_ = true;  // LoadIndex() forgets touched ids, not this
  ++stats_.snapshots_applied;
  registry_changed_ = true;
  return Status::Ok();
}

void RulesEngine::ConfirmIndexChanges() {
  touched_.clear();
  index_rebuilt_ = false;
}

Status RulesEngine::ReconcileIndex(Db& db) {
  policy_logged_ = false;  // its input_log row may have rolled back too
  if (index_rebuilt_) {
    AMPARO_RETURN_IF_ERROR(LoadIndex(db));
    index_rebuilt_ = false;
    return Status::Ok();
  }
  auto q = db.Prepare(
      "SELECT state, host_country, lat, lon, household_size, vulnerability_flags, admin1 FROM registrants "
      "WHERE registrant_id = ? AND deleted = 0");
  if (!q.ok()) return q.status();
  for (auto it = touched_.begin(); it != touched_.end(); it = touched_.erase(it)) {
    q->Reset();
    q->Bind(1, *it);
    auto row = q->Step();
    if (!row.ok()) return row.status();
    if (!*row) {
      index_.Remove(*it);
      continue;
    }
    v1::RegistrantLocation loc;
    loc.set_registrant_id(*it);
    loc.set_state(q->ColumnText(0));
    loc.set_host_country(q->ColumnText(1));
    loc.set_lat(q->ColumnDouble(2));
    loc.set_lon(q->ColumnDouble(3));
    loc.set_household_size(static_cast<uint32_t>(q->ColumnInt(4)));
    loc.set_vulnerability_flags(static_cast<uint32_t>(q->ColumnInt(5)));
    loc.set_admin1(q->ColumnText(6));
    AMPARO_RETURN_IF_ERROR(index_.Upsert(loc));
  }
  return Status::Ok();
}

Status RulesEngine::HandleCrisisEvent(const v1::CrisisEvent& event, Db& db) {
  if (event.event_id().empty()) return InvalidArgument("required", "event_id");
  auto status_name = EventStatusName(event.status());
  if (!status_name) {
    log::Info("event not actionable, no alert",
              {{"event_id", event.event_id()}, {"status", v1::EventStatus_Name(event.status())}});
    return Status::Ok();
  }

  const bool cancel = event.msg_type() == v1::MESSAGE_TYPE_CANCEL;
  std::optional<v1::Area> footprint;
  if (!cancel) footprint = EventFootprint(event, options_.earthquake_min_mmi);
  // Written unless a revision at least as new is stored (then it is stale
  // and nothing else happens): one statement instead of a look-up first.
  auto recorded = RecordEvent(db, event, footprint ? &*footprint : nullptr, now_ms_);
  if (!recorded.ok()) return recorded.status();
  if (*recorded == Recorded::kStale) {
    ++stats_.stale_events;
    return Status::Ok();
  }
  ++stats_.events;
  const bool first_report = *recorded == Recorded::kFirst;
  if (cancel) return ApplyEvent(event, footprint, {}, db, first_report);

  Exposure exposure;
  if (replaying_) {
    // amparo replay --deterministic: what the index answered then.
    if (recorded_exposure_) exposure = std::move(*recorded_exposure_);
    recorded_exposure_.reset();
  } else {
    exposure = CurrentExposure(event, footprint);
    // An event that exposes nobody (most of them) gets no exposure row: the
    // replay reads a missing row as nobody exposed (decision_replay.h).
    if (!exposure.empty()) {
      const int64_t event_seq = input_seq_;
      auto logged = ExposureToJson(exposure, db);
      if (!logged.ok()) return logged.status();
      AMPARO_RETURN_IF_ERROR(LogInput(db, "exposure", *logged));
      input_seq_ = event_seq;  // decisions point at the event
    }
  }
  return ApplyEvent(event, footprint, std::move(exposure), db, first_report);
}

Exposure RulesEngine::CurrentExposure(const v1::CrisisEvent& event, const std::optional<v1::Area>& footprint) const {
  Exposure exposure;
  if (footprint) {
    exposure = index_.QueryArea(*footprint, static_cast<size_t>(std::max(options_.max_ids_per_alert, 0)));
  }
  if (event.restricted_to_states_size() > 0) {
    // Restricted events (operator-entered) reach only the named states.
    std::set<std::string> allowed(event.restricted_to_states().begin(), event.restricted_to_states().end());
    std::erase_if(exposure, [&](const auto& kv) { return allowed.count(kv.first.first) == 0; });
  }
  return exposure;
}

Status RulesEngine::ApplyEvent(const v1::CrisisEvent& event, const std::optional<v1::Area>& footprint,
                               Exposure exposure, Db& db, bool first_report) {
  const std::string incident_id = IncidentId(event);
  const bool cancel = event.msg_type() == v1::MESSAGE_TYPE_CANCEL;
  auto status_name = EventStatusName(event.status());
  if (!status_name) return Status::Ok();

  // The alerts this event has had a say on so far: none on its first report
  // (its say is written after its events row, and events rows stay), so
  // most events skip the look-up.
  std::map<std::string, bool> touched;  // alert_id -> had a say before
  if (!first_report) {
    auto q = db.Prepare("SELECT alert_id FROM alert_sources WHERE incident_id = ? AND event_id = ?");
    if (!q.ok()) return q.status();
    q->Bind(1, incident_id).Bind(2, event.event_id());
    while (true) {
      auto r = q->Step();
      if (!r.ok()) return r.status();
      if (!*r) break;
      touched[q->ColumnText(0)] = true;
    }
  }

  if (cancel) {
    // Only this source's say is withdrawn: an incident other sources still
    // report stays alerted (at their level).
    auto q = db.Prepare("UPDATE alert_sources SET cancelled = 1 WHERE incident_id = ? AND event_id = ?");
    if (!q.ok()) return q.status();
    q->Bind(1, incident_id).Bind(2, event.event_id());
    AMPARO_RETURN_IF_ERROR(q->Run());
    // Alerts raised before sources were tracked (older databases) have no
    // say recorded at all: the cancel withdraws them.
    auto legacy = db.Prepare(
        "SELECT a.alert_id FROM alerts a WHERE a.incident_id = ? AND a.cancelled = 0 AND a.closed = 0 AND NOT "
        "EXISTS (SELECT 1 FROM alert_sources s WHERE s.alert_id = a.alert_id)");
    if (!legacy.ok()) return legacy.status();
    legacy->Bind(1, incident_id);
    while (true) {
      auto r = legacy->Step();
      if (!r.ok()) return r.status();
      if (!*r) break;
      touched[legacy->ColumnText(0)] = true;
    }
    for (const auto& [alert_id, unused] : touched) AMPARO_RETURN_IF_ERROR(Reevaluate(db, alert_id));
    return Status::Ok();
  }

  // Nobody exposed and no say before (most events): nothing to write.
  if (exposure.empty() && touched.empty()) return Status::Ok();

  const std::string event_text = DescribeEvent(event);
  const std::string where =
      footprint ? DescribeFootprint(*footprint) : std::string();

  // The candidate alert this event alone gives one group.
  auto candidate = [&](const std::string& state, const std::string& host, const GroupExposure* group,
                       std::string reason) {
    PolicyInputs in = InputsFor(event, state, host, group);
    PolicyDecision decision = policy_->Evaluate(in);
    Contribution c;
    c.event_id = event.event_id();
    c.expires_ms = event.expires_ms();
    c.repeat_interval_ms = decision.repeat_interval_ms;
    c.inputs = InputsJson(event, in, decision, footprint ? &*footprint : nullptr);
    v1::ConsularAlert& a = c.candidate;
    a.set_alert_id(incident_id + "/" + state + "/" + host);
    a.set_incident_id(incident_id);
    a.set_state(state);
    a.set_host_country(host);
    a.set_level(decision.level);
    a.set_proposed_phase(decision.proposed_phase);
    a.set_policy_rule(decision.rule);
    if (group != nullptr) {
      a.mutable_exposure()->set_registrants(group->counts.registrants);
      a.mutable_exposure()->set_household_members(group->counts.household_members);
      a.mutable_exposure()->set_vulnerable(group->counts.vulnerable);
      for (int b = 0; b < 32; ++b) {
        if (group->with_flag[b] > 0 && !FlagName(b).empty()) {
          (*a.mutable_exposure()->mutable_by_flag())[FlagName(b)] = group->with_flag[b];
        }
      }
      AppendCodedRegistrantIds(group->packed_ids, a.mutable_registrant_ids_coded());
    }
    a.set_reason(std::move(reason));
    a.set_exercise(event.status() != v1::EVENT_STATUS_ACTUAL);
    a.set_hazard(event.hazard());
    a.set_headline(Headline(event));
    if (footprint) *a.mutable_footprint() = *footprint;
    a.set_event_sent_ms(event.sent_ms());
    a.set_event_status(*status_name);
    a.add_sources(event.source().empty() ? event.event_id().substr(0, event.event_id().find(':'))
                                         : event.source());
    return c;
  };

  for (const auto& [key, group] : exposure) {
    const auto& [state, host] = key;
    Contribution c = candidate(state, host, &group, event_text + ": " + DescribeCounts(group.counts) + " " + where);
    AMPARO_RETURN_IF_ERROR(WriteContribution(db, incident_id, c));
    touched[c.candidate.alert_id()] = touched.count(c.candidate.alert_id()) > 0;
  }
  // Groups this event exposed before and nobody now: its say becomes "none".
  for (const auto& [alert_id, had_say] : touched) {
    if (!had_say) continue;
    const size_t second = alert_id.rfind('/');
    const size_t first = alert_id.rfind('/', second - 1);
    const std::string state = alert_id.substr(first + 1, second - first - 1);
    const std::string host = alert_id.substr(second + 1);
    if (exposure.count({state, host}) > 0) continue;
    std::string reason = event_text + (footprint ? ": no registered nationals " + where + " any more"
                                                 : ": no registered nationals exposed any more (no footprint)");
    Contribution none = candidate(state, host, nullptr, std::move(reason));
    AMPARO_RETURN_IF_ERROR(WriteContribution(db, incident_id, none));
  }
  for (const auto& [alert_id, unused] : touched) AMPARO_RETURN_IF_ERROR(Reevaluate(db, alert_id));
  return Status::Ok();
}

Status RulesEngine::HandleSilence(const v1::Silence& silence, Db& db) {
  if (silence.silence_id().empty()) return InvalidArgument("required", "silence_id");
  if (silence.state().size() != 3) return InvalidArgument("must be an ISO3 code", "state");
  if (silence.ends_ms() <= silence.starts_ms()) return InvalidArgument("must be after starts_ms", "ends_ms");
  if (silence.reason().empty()) return InvalidArgument("required", "reason");
  auto owner = db.Prepare("SELECT state FROM silences WHERE silence_id = ?");
  if (!owner.ok()) return owner.status();
  owner->Bind(1, silence.silence_id());
  auto found = owner->Step();
  if (!found.ok()) return found.status();
  if (*found && owner->ColumnText(0) != silence.state()) {
    return InvalidArgument("silence " + silence.silence_id() + " belongs to another state", "state");
  }
  owner->Reset();
  // Lifting is final: a replayed older copy does not bring a silence back.
  auto q = db.Prepare(
      "INSERT INTO silences (silence_id, state, incident_id, host_country, hazard, starts_ms, ends_ms, expired, "
      "created_by, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (silence_id) DO UPDATE SET "
      "expired = max(expired, excluded.expired)");
  if (!q.ok()) return q.status();
  q->Bind(1, silence.silence_id())
      .Bind(2, silence.state())
      .Bind(3, silence.incident_id())
      .Bind(4, silence.host_country())
      .Bind(5, static_cast<int>(silence.hazard()))
      .Bind(6, silence.starts_ms())
      .Bind(7, silence.ends_ms())
      .Bind(8, silence.expired() ? 1 : 0)
      .Bind(9, silence.created_by())
      .Bind(10, silence.reason());
  AMPARO_RETURN_IF_ERROR(q->Run());
  log::Info(silence.expired() ? "silence lifted" : "silence recorded",
            {{"silence_id", silence.silence_id()}, {"state", silence.state()}, {"reason", silence.reason()}});
  return Status::Ok();
}

Status RulesEngine::HandleOperatorDecision(const v1::OperatorDecision& decision, Db& db) {
  if (decision.decision_id().empty()) return InvalidArgument("required", "decision_id");
  if (decision.alert_id().empty()) return InvalidArgument("required", "alert_id");
  if (decision.reason().empty()) return InvalidArgument("required", "reason");
  const auto action = decision.action();
  if (action != v1::OperatorDecision::ACTION_CONFIRM_PHASE && action != v1::OperatorDecision::ACTION_REJECT_PHASE &&
      action != v1::OperatorDecision::ACTION_CLOSE) {
    return InvalidArgument("must be confirm_phase, reject_phase or close", "action");
  }
  if (action == v1::OperatorDecision::ACTION_CONFIRM_PHASE &&
      (PhaseNumber(decision.phase()) < 1 || PhaseNumber(decision.phase()) > 4)) {
    return InvalidArgument("must be 1 to 4", "phase");
  }
  auto seen = db.Prepare("SELECT 1 FROM operator_decisions WHERE decision_id = ?");
  if (!seen.ok()) return seen.status();
  seen->Bind(1, decision.decision_id());
  auto again = seen->Step();
  if (!again.ok()) return again.status();
  if (*again) return Status::Ok();  // already applied
  seen->Reset();

  auto row = LoadAlertRow(db, decision.alert_id());
  if (!row.ok()) return row.status();
  // Another state's alert is "unknown" too: nothing about it is revealed.
  if (!row->exists || row->last.state() != decision.state()) {
    return InvalidArgument("unknown alert " + decision.alert_id(), "alert_id");
  }
  auto record = db.Prepare(
      "INSERT INTO operator_decisions (decision_id, alert_id, action, phase, by_token, at_ms, reason) VALUES "
      "(?, ?, ?, ?, ?, ?, ?)");
  if (!record.ok()) return record.status();
  record->Bind(1, decision.decision_id())
      .Bind(2, decision.alert_id())
      .Bind(3, static_cast<int>(action))
      .Bind(4, PhaseNumber(decision.phase()))
      .Bind(5, decision.by())
      .Bind(6, decision.at_ms())
      .Bind(7, decision.reason());
  AMPARO_RETURN_IF_ERROR(record->Run());
  if (row->closed || (action != v1::OperatorDecision::ACTION_CLOSE && (row->cancelled || row->expired))) {
    log::Info("decision recorded, alert not open",
              {{"alert_id", decision.alert_id()}, {"decision_id", decision.decision_id()}});
    return Status::Ok();
  }

  AMPARO_RETURN_IF_ERROR(AttachLastIds(db, *row));
  v1::ConsularAlert next = row->last;
  next.set_revision(row->revision + 1);
  v1::PhaseConfirmation& confirmation = *next.mutable_phase_confirmation();
  confirmation.set_by(decision.by());
  confirmation.set_at_ms(decision.at_ms());
  boost::json::object inputs;
  inputs["decision_id"] = decision.decision_id();
  inputs["action"] = v1::OperatorDecision::Action_Name(action);
  inputs["by"] = decision.by();
  inputs["reason"] = decision.reason();
  switch (action) {
    case v1::OperatorDecision::ACTION_CONFIRM_PHASE:
      row->confirmed_phase = PhaseNumber(decision.phase());
      next.set_phase(decision.phase());
      confirmation.set_phase(decision.phase());
      confirmation.set_reason(decision.reason());
      next.set_lifecycle(LifecycleAfter(row->last, next));
      inputs["phase"] = PhaseNumber(decision.phase());
      break;
    case v1::OperatorDecision::ACTION_REJECT_PHASE:
      // The phase in force stays, now as the operator's decision.
      row->confirmed_phase = PhaseNumber(row->last.phase());
      confirmation.set_phase(row->last.phase());
      confirmation.set_reason("proposal of phase " + std::to_string(PhaseNumber(row->last.proposed_phase())) +
                              " rejected: " + decision.reason());
      next.set_lifecycle(v1::ALERT_LIFECYCLE_UPDATED);
      break;
    default:  // ACTION_CLOSE
      confirmation.set_phase(row->last.phase());
      confirmation.set_reason("closed: " + decision.reason());
      next.set_lifecycle(v1::ALERT_LIFECYCLE_CLOSED);
      break;
  }
  next.set_policy_rule("operator:" + v1::OperatorDecision::Action_Name(action).substr(7));
  return Emit(db, *row, std::move(next), JsonText(inputs), false);
}

Status RulesEngine::ReevaluateActiveEvents(Db& db) {
  // Events still in force: not withdrawn, not past their expiry, and
  // reported within the window. Newest state of each, in a fixed order.
  auto q = db.Prepare(
      "SELECT event FROM events WHERE event IS NOT NULL AND msg_type != ? AND (expires_ms = 0 OR expires_ms > ?) "
      "AND updated_ms >= ? ORDER BY event_id, status");
  if (!q.ok()) return q.status();
  q->Bind(1, static_cast<int>(v1::MESSAGE_TYPE_CANCEL))
      .Bind(2, now_ms_)
      .Bind(3, now_ms_ - int64_t{options_.active_event_window_h} * 3'600'000);
  std::vector<v1::CrisisEvent> active;
  while (true) {
    auto row = q->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    v1::CrisisEvent event;
    if (!event.ParseFromString(q->ColumnBlob(0))) continue;  // written by this code: never happens
    active.push_back(std::move(event));
  }
  for (const v1::CrisisEvent& event : active) {
    std::optional<v1::Area> footprint = EventFootprint(event, options_.earthquake_min_mmi);
    Exposure exposure = CurrentExposure(event, footprint);
    // Logged as its own input: the replay re-applies this exposure.
    boost::json::object body;
    body["event_id"] = event.event_id();
    body["status"] = static_cast<int>(event.status());
    auto logged = ExposureToJson(exposure, db);
    if (!logged.ok()) return logged.status();
    body["exposure"] = boost::json::parse(*logged);
    AMPARO_RETURN_IF_ERROR(LogInput(db, "reevaluate", JsonText(body)));
    AMPARO_RETURN_IF_ERROR(ApplyEvent(event, footprint, std::move(exposure), db));
    ++stats_.reevaluations;
  }
  return Status::Ok();
}

Status RulesEngine::ApplyLoggedReevaluation(std::string_view body, Db& recorded, Db& db) {
  now_ms_ = clock_.NowMs();
  input_seq_ = 0;
  AMPARO_RETURN_IF_ERROR(LogInput(db, "reevaluate", body));
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(body, ec);
  if (ec || !v.is_object() || !v.as_object().contains("event_id") || !v.as_object().contains("exposure")) {
    return InvalidArgument("not a re-evaluation record", "reevaluate");
  }
  const auto& o = v.as_object();
  auto exposure = ExposureFromJson(JsonText(o.at("exposure")), recorded);
  if (!exposure.ok()) return exposure.status();
  // The logged body names id lists: this database gets them too, so its own
  // log reads back.
  for (const auto& [key, group] : *exposure) {
    auto stored = StoreIdList(db, CodeRegistrantIds(group.packed_ids));
    if (!stored.ok()) return stored.status();
  }
  auto q = db.Prepare("SELECT event FROM events WHERE event_id = ? AND status = ?");
  if (!q.ok()) return q.status();
  q->Bind(1, std::string(o.at("event_id").as_string())).Bind(2, o.at("status").to_number<int64_t>());
  auto row = q->Step();
  if (!row.ok()) return row.status();
  if (!*row) return InvalidArgument("unknown event " + std::string(o.at("event_id").as_string()), "reevaluate");
  v1::CrisisEvent event;
  if (!event.ParseFromString(q->ColumnBlob(0))) return InvalidArgument("stored event does not parse", "reevaluate");
  q->Reset();
  return ApplyEvent(event, EventFootprint(event, options_.earthquake_min_mmi), std::move(*exposure), db);
}

Result<int> RulesEngine::Tick(Db& db) {
  now_ms_ = clock_.NowMs();
  input_seq_ = 0;
  const uint64_t alerts_before = stats_.alerts;
  if (registry_changed_ && !replaying_) {
    // People registered, moved or removed while events are in force: their
    // alerts follow (a national registered inside an ongoing crisis area is
    // counted without waiting for the source's next update).
    AMPARO_RETURN_IF_ERROR(ReevaluateActiveEvents(db));
    registry_changed_ = false;
  }
  input_seq_ = 0;  // expiry and repeats below are logged as a "tick" when they notify
  // Only the open alerts that may expire, repeat or come out of a silence
  // now: the loop below acts on no other, and reading each alert's messages
  // (up to max_ids_per_alert ids apiece) every second for thousands of open
  // alerts cost more than the events themselves. The conditions are the
  // loop's own, in SQL (expiry: every source still reporting gave an expiry
  // and all passed).
  auto open = db.Prepare(kTickAlertsSql);
  if (!open.ok()) return open.status();
  open->Bind(1, now_ms_);
  std::vector<std::string> ids;
  while (true) {
    auto r = open->Step();
    if (!r.ok()) return r.status();
    if (!*r) break;
    ids.push_back(open->ColumnText(0));
  }
  for (const std::string& alert_id : ids) {
    auto row = LoadAlertRow(db, alert_id);
    if (!row.ok()) return row.status();
    auto contributions = LoadContributions(db, alert_id);
    if (!contributions.ok()) return contributions.status();
    // Expired: every source still reporting it gave an expiry, all passed.
    int64_t latest_expiry = 0;
    bool open_ended = false, any = false;
    for (const Contribution& c : *contributions) {
      if (c.cancelled) continue;
      any = true;
      if (c.expires_ms == 0) open_ended = true;
      latest_expiry = std::max(latest_expiry, c.expires_ms);
    }
    if (any && !open_ended && latest_expiry <= now_ms_) {
      AMPARO_RETURN_IF_ERROR(AttachLastIds(db, *row));
      v1::ConsularAlert next = row->last;
      next.set_revision(row->revision + 1);
      next.set_level(v1::ALERT_LEVEL_INFO);
      next.set_proposed_phase(v1::CRISIS_PHASE_UNSPECIFIED);
      next.set_phase(PhaseInForce(row->confirmed_phase, v1::CRISIS_PHASE_UNSPECIFIED));
      next.set_lifecycle(v1::ALERT_LIFECYCLE_EXPIRED);
      next.set_reason(row->last.reason() + " (expired: the source's validity ended at " +
                      FormatRfc3339(latest_expiry) + ")");
      AMPARO_RETURN_IF_ERROR(Emit(db, *row, std::move(next), R"({"expired":true})", false));
      ++stats_.expired;
      continue;
    }
    if (row->last.exposure().registrants() == 0) continue;  // an all-clear is not repeated
    auto silence = ActiveSilence(db, row->last);
    if (!silence.ok()) return silence.status();
    const bool silence_ended = row->last.silenced() && !silence->has_value();
    const bool repeat_due =
        row->repeat_interval_ms > 0 && now_ms_ - row->notified_ms >= row->repeat_interval_ms;
    if (!silence_ended && !repeat_due) continue;
    AMPARO_RETURN_IF_ERROR(AttachLastIds(db, *row));
    AMPARO_RETURN_IF_ERROR(Emit(db, *row, row->last,
                                silence_ended ? R"({"repeat":"silence ended"})" : R"({"repeat":"interval"})",
                                true));
  }
  return static_cast<int>(stats_.alerts - alerts_before);
}

}  // namespace amparo::rules
