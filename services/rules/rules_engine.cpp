#include "services/rules/rules_engine.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <optional>
#include <vector>

#include "common/link.h"
#include "common/log.h"
#include "services/rules/footprint.h"

namespace amparo::rules {
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
  };
  return kMigrations;
}

struct StoredAlert {
  std::string state;
  std::string host_country;
  uint32_t revision = 0;
  v1::AlertLevel level = v1::ALERT_LEVEL_UNSPECIFIED;
  ExposureCounts counts;
  bool cancelled = false;
};

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

// "within 15 km (strong shaking, MMI>=6)" or "inside the area given by the source (...)"
std::string DescribeFootprint(const v1::Area& footprint, double min_mmi) {
  if (footprint.footprint_model() == kFootprintModelAllen2012 && footprint.circles_size() == 1) {
    return "within " + FormatRadiusKm(footprint.circles(0).radius_km()) + " km (" +
           ShakingDescription(min_mmi) + " shaking, MMI>=" + FormatMmi(min_mmi) + ")";
  }
  std::string text = "inside the area given by the source";
  if (!footprint.description().empty()) text += " (" + footprint.description() + ")";
  return text;
}

// "3 registered nationals (7 people, 1 vulnerable)"
std::string DescribeCounts(const ExposureCounts& c) {
  return std::to_string(c.registrants) +
         (c.registrants == 1 ? " registered national (" : " registered nationals (") +
         std::to_string(c.household_members) + (c.household_members == 1 ? " person, " : " people, ") +
         std::to_string(c.vulnerable) + " vulnerable)";
}

v1::AlertLevel LevelFor(const ExposureCounts& counts, const v1::CrisisEvent& event) {
  if (counts.registrants == 0) return v1::ALERT_LEVEL_INFO;
  const std::string& pager = event.metrics().pager_alert();
  if (counts.vulnerable > 0 || pager == "orange" || pager == "red") return v1::ALERT_LEVEL_CRITICAL;
  return v1::ALERT_LEVEL_WARNING;
}

Result<std::map<std::string, StoredAlert>> LoadAlerts(Db& db, const std::string& incident_id) {
  auto q = db.Prepare(
      "SELECT alert_id, state, host_country, revision, level, registrants, household_members, vulnerable, "
      "cancelled FROM alerts WHERE incident_id = ?");
  if (!q.ok()) return q.status();
  q->Bind(1, incident_id);
  std::map<std::string, StoredAlert> alerts;
  while (true) {
    auto row = q->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    StoredAlert a;
    a.state = q->ColumnText(1);
    a.host_country = q->ColumnText(2);
    a.revision = static_cast<uint32_t>(q->ColumnInt(3));
    a.level = static_cast<v1::AlertLevel>(q->ColumnInt(4));
    a.counts = {static_cast<uint32_t>(q->ColumnInt(5)), static_cast<uint32_t>(q->ColumnInt(6)),
                static_cast<uint32_t>(q->ColumnInt(7))};
    a.cancelled = q->ColumnInt(8) != 0;
    alerts.emplace(q->ColumnText(0), std::move(a));
  }
  return alerts;
}

Status RecordEvent(Db& db, const v1::CrisisEvent& event, const v1::Area* footprint, int64_t now_ms) {
  auto q = db.Prepare(
      "INSERT INTO events (event_id, status, revision, msg_type, footprint_model, footprint_description, "
      "updated_ms) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (event_id, status) DO UPDATE SET "
      "revision = excluded.revision, msg_type = excluded.msg_type, footprint_model = "
      "excluded.footprint_model, "
      "footprint_description = excluded.footprint_description, updated_ms = excluded.updated_ms");
  if (!q.ok()) return q.status();
  q->Bind(1, event.event_id())
      .Bind(2, static_cast<int>(event.status()))
      .Bind(3, event.revision())
      .Bind(4, static_cast<int>(event.msg_type()))
      .Bind(5, footprint ? footprint->footprint_model() : std::string())
      .Bind(6, footprint ? footprint->description() : std::string())
      .Bind(7, now_ms);
  return q->Run();
}

}  // namespace

Status RulesEngine::Migrate(Db& db) {
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

Status RulesEngine::Handle(const v1::Envelope& envelope, Db& db) {
  switch (envelope.payload_case()) {
    case v1::Envelope::kCrisisEvent:
      return HandleCrisisEvent(envelope.crisis_event(), db);
    case v1::Envelope::kRegistryChange:
      return HandleRegistryChange(envelope.registry_change(), db);
    case v1::Envelope::kSnapshotChunk:
      return HandleSnapshotChunk(envelope.snapshot_chunk(), db);
    case v1::Envelope::kRegistrySequenceMark:
      return sync_.RecordMark(db, envelope.registry_sequence_mark());
    default:
      return InvalidArgument(
          "amparo-rules accepts crisis_event, registry_change, snapshot_chunk and registry_sequence_mark only",
          "payload");
  }
}

Status RulesEngine::HandleRegistryChange(const v1::RegistryChange& change, Db& db) {
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

  auto covered = sync_.Covers(db, change.sequence());
  if (!covered.ok()) return covered.status();
  if (*covered) {
    ++stats_.stale_changes;
    return Status::Ok();
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
      return sync_.RecordChange(db, change.sequence());
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
  AMPARO_RETURN_IF_ERROR(sync_.RecordChange(db, change.sequence()));

  // The database write succeeded: now the index (see the header on commit failures).
  touched_.insert(loc.registrant_id());
  if (upsert) {
    AMPARO_RETURN_IF_ERROR(index_.Upsert(loc));
  } else {
    index_.Remove(loc.registrant_id());
  }
  ++stats_.registry_changes;
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
  return Status::Ok();
}

void RulesEngine::ConfirmIndexChanges() {
  touched_.clear();
  index_rebuilt_ = false;
}

Status RulesEngine::ReconcileIndex(Db& db) {
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

  auto stored = db.Prepare("SELECT revision FROM events WHERE event_id = ? AND status = ?");
  if (!stored.ok()) return stored.status();
  stored->Bind(1, event.event_id()).Bind(2, static_cast<int>(event.status()));
  auto row = stored->Step();
  if (!row.ok()) return row.status();
  if (*row && stored->ColumnInt(0) >= event.revision()) {
    ++stats_.stale_events;
    return Status::Ok();
  }
  stored->Reset();
  ++stats_.events;

  const std::string incident_id = IncidentId(event);
  auto alerts = LoadAlerts(db, incident_id);
  if (!alerts.ok()) return alerts.status();
  const bool cancel = event.msg_type() == v1::MESSAGE_TYPE_CANCEL;
  std::optional<v1::Area> footprint;
  if (!cancel) footprint = EventFootprint(event, options_.earthquake_min_mmi);
  AMPARO_RETURN_IF_ERROR(RecordEvent(db, event, footprint ? &*footprint : nullptr, clock_.NowMs()));

  auto write_alert = db.Prepare(
      "INSERT OR REPLACE INTO alerts (alert_id, incident_id, state, host_country, revision, level, "
      "registrants, "
      "household_members, vulnerable, cancelled, updated_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
  if (!write_alert.ok()) return write_alert.status();

  // Stores and enqueues one revision; `ids` may be empty.
  auto raise = [&](const std::string& state, const std::string& host, uint32_t revision,
                   const ExposureCounts& counts, v1::AlertLevel level, bool cancelled, std::string reason,
                   const std::vector<std::string>& ids) -> Status {
    v1::Envelope envelope = MakeEnvelope(kProducer, clock_);
    v1::ConsularAlert& alert = *envelope.mutable_consular_alert();
    alert.set_alert_id(incident_id + "/" + state + "/" + host);
    alert.set_incident_id(incident_id);
    alert.set_revision(revision);
    alert.set_state(state);
    alert.set_host_country(host);
    alert.set_level(level);
    alert.mutable_exposure()->set_registrants(counts.registrants);
    alert.mutable_exposure()->set_household_members(counts.household_members);
    alert.mutable_exposure()->set_vulnerable(counts.vulnerable);
    alert.set_reason(std::move(reason));
    alert.set_exercise(event.status() != v1::EVENT_STATUS_ACTUAL);
    alert.set_cancelled(cancelled);
    alert.set_hazard(event.hazard());
    alert.set_headline(Headline(event));
    if (footprint) *alert.mutable_footprint() = *footprint;
    alert.set_raised_ms(clock_.NowMs());
    alert.set_event_sent_ms(event.sent_ms());
    for (const auto& id : ids) alert.add_registrant_ids(id);
    alert.set_event_status(*status_name);

    write_alert->Bind(1, alert.alert_id())
        .Bind(2, incident_id)
        .Bind(3, state)
        .Bind(4, host)
        .Bind(5, static_cast<int64_t>(revision))
        .Bind(6, static_cast<int>(level))
        .Bind(7, static_cast<int64_t>(counts.registrants))
        .Bind(8, static_cast<int64_t>(counts.household_members))
        .Bind(9, static_cast<int64_t>(counts.vulnerable))
        .Bind(10, cancelled ? 1 : 0)
        .Bind(11, clock_.NowMs());
    AMPARO_RETURN_IF_ERROR(write_alert->Run());
    AMPARO_RETURN_IF_ERROR(EnqueueOutbound(db, kNotifyPeer, envelope));
    ++stats_.alerts;
    log::Info(cancelled       ? "alert cancelled"
              : revision == 1 ? "alert raised"
                              : "alert updated",
              {{"alert_id", alert.alert_id()},
               {"revision", std::to_string(revision)},
               {"registrants", std::to_string(counts.registrants)},
               {"exercise", alert.exercise() ? "true" : "false"}});
    return Status::Ok();
  };

  if (cancel) {
    for (const auto& [alert_id, a] : *alerts) {
      if (a.cancelled) continue;
      AMPARO_RETURN_IF_ERROR(raise(a.state, a.host_country, a.revision + 1, {}, v1::ALERT_LEVEL_INFO, true,
                                   "cancelled by source", {}));
    }
    return Status::Ok();
  }

  Exposure exposure;
  if (footprint) {
    exposure = index_.QueryArea(*footprint, static_cast<size_t>(std::max(options_.max_ids_per_alert, 0)));
  }
  const std::string event_text = DescribeEvent(event);
  const std::string where =
      footprint ? DescribeFootprint(*footprint, options_.earthquake_min_mmi) : std::string();

  for (const auto& [key, group] : exposure) {
    const auto& [state, host] = key;
    v1::AlertLevel level = LevelFor(group.counts, event);
    auto it = alerts->find(incident_id + "/" + state + "/" + host);
    uint32_t revision = 1;
    if (it != alerts->end()) {
      const StoredAlert& old = it->second;
      if (!old.cancelled && old.counts == group.counts && old.level == level) continue;
      revision = old.revision + 1;
    }
    AMPARO_RETURN_IF_ERROR(raise(state, host, revision, group.counts, level, false,
                                 event_text + ": " + DescribeCounts(group.counts) + " " + where,
                                 group.registrant_ids));
  }
  // Groups exposed by an earlier revision and nobody now: an all-clear.
  for (const auto& [alert_id, old] : *alerts) {
    if (old.cancelled || old.counts.registrants == 0) continue;
    if (exposure.count({old.state, old.host_country}) > 0) continue;
    std::string reason =
        event_text + (footprint ? ": no registered nationals " + where + " any more"
                                : ": no registered nationals exposed any more (no footprint)");
    AMPARO_RETURN_IF_ERROR(
        raise(old.state, old.host_country, old.revision + 1, {}, v1::ALERT_LEVEL_INFO, false, reason, {}));
  }
  return Status::Ok();
}

}  // namespace amparo::rules
