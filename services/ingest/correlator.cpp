#include "services/ingest/correlator.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <set>

#include "common/geo.h"

namespace amparo::ingest {
namespace {

struct Box {
  double min_lat, min_lon, max_lat, max_lon;
  void Add(const Box& other) {
    min_lat = std::min(min_lat, other.min_lat);
    min_lon = std::min(min_lon, other.min_lon);
    max_lat = std::max(max_lat, other.max_lat);
    max_lon = std::max(max_lon, other.max_lon);
  }
  bool Overlaps(const Box& other) const {
    return min_lat <= other.max_lat && other.min_lat <= max_lat && min_lon <= other.max_lon &&
           other.min_lon <= max_lon;
  }
};

// The 1-degree cells of a place (see CorrelatorCellMigration): the same
// arithmetic as the migration's SQL, CAST truncating the non-negative sums.
int LatCell(double lat) { return static_cast<int>(lat + 90); }
int LonCell(double lon) { return static_cast<int>(lon + 180) % 360; }

// More cells than this (a long reach, or near a pole where a degree of
// longitude is short) and the proximity rule reads the whole time window.
constexpr size_t kMaxCells = 64;

struct Cells {
  std::vector<int> lat, lon;
};

// The cells holding every place within `reach_km` of `place`, or nothing
// when there would be more than kMaxCells.
std::optional<Cells> CellsWithinReach(geo::LatLon place, double reach_km) {
  // The box holds the whole cap (geo.h); the slack covers rounding.
  constexpr double kSlackDeg = 1e-6;
  const geo::Box box = geo::BoundingBox(place, reach_km);
  if (box.max_lon - box.min_lon >= 360 - 2 * kSlackDeg) return std::nullopt;
  std::set<int> lat_cells, lon_cells;
  for (int c = LatCell(std::max(-90.0, box.min_lat - kSlackDeg));
       c <= LatCell(std::min(90.0, box.max_lat + kSlackDeg)); ++c) {
    lat_cells.insert(c);
  }
  // Longitudes may leave -180..180 here (geo::BoundingBox): cells wrap.
  const double lon_from = box.min_lon - kSlackDeg, lon_to = box.max_lon + kSlackDeg;
  for (double lon = std::floor(lon_from); lon <= lon_to; lon += 1) {
    const double wrapped = lon < -180 ? lon + 360 : (lon >= 180 ? lon - 360 : lon);
    lon_cells.insert(LonCell(wrapped));
  }
  if (lat_cells.size() * lon_cells.size() > kMaxCells) return std::nullopt;
  return Cells{{lat_cells.begin(), lat_cells.end()}, {lon_cells.begin(), lon_cells.end()}};
}

// "(?7,?8,?9)": `n` numbered parameters from `first`. Statements differ only
// by the counts, so the connection's statement cache keeps them compiled.
std::string Placeholders(int first, size_t n) {
  std::string out = "(";
  for (size_t i = 0; i < n; ++i) out += (i ? ",?" : "?") + std::to_string(first + static_cast<int>(i));
  return out + ")";
}

// What the proximity rule compares, read once from an event.
struct Footprint {
  std::optional<geo::LatLon> place;
  std::optional<Box> box;
  int64_t onset_ms = 0;
  std::optional<double> magnitude;
};

Footprint FootprintOf(const v1::CrisisEvent& event) {
  Footprint out;
  out.onset_ms = event.onset_ms() != 0 ? event.onset_ms() : event.sent_ms();
  if (event.metrics().has_magnitude()) out.magnitude = event.metrics().magnitude();
  auto add_box = [&out](const Box& box) {
    if (out.box) {
      out.box->Add(box);
    } else {
      out.box = box;
    }
  };
  if (event.has_origin()) {
    out.place = geo::LatLon{event.origin().lat(), event.origin().lon()};
    add_box({out.place->lat, out.place->lon, out.place->lat, out.place->lon});
  }
  for (const v1::Area& area : event.areas()) {
    for (const v1::Polygon& polygon : area.polygons()) {
      if (polygon.vertices().empty()) continue;
      Box box{90, 180, -90, -180};
      double lat_sum = 0, lon_sum = 0;
      for (const v1::LatLon& v : polygon.vertices()) {
        box.Add({v.lat(), v.lon(), v.lat(), v.lon()});
        lat_sum += v.lat();
        lon_sum += v.lon();
      }
      add_box(box);
      // The vertex mean stands in for the epicentre of a GDACS circle-like
      // polygon; good to a few km, far inside the 100 km rule.
      const double n = polygon.vertices_size();
      if (!out.place) out.place = geo::LatLon{lat_sum / n, lon_sum / n};
    }
    for (const v1::Circle& circle : area.circles()) {
      geo::LatLon center{circle.center().lat(), circle.center().lon()};
      geo::Box b = geo::BoundingBox(center, circle.radius_km());
      add_box({b.min_lat, b.min_lon, b.max_lat, b.max_lon});
      if (!out.place) out.place = center;
    }
  }
  if (out.place && !geo::IsValid(*out.place)) out.place.reset();
  return out;
}

bool IsAreaHazard(v1::HazardKind hazard) {
  switch (hazard) {
    case v1::HAZARD_KIND_TROPICAL_CYCLONE:
    case v1::HAZARD_KIND_FLOOD:
    case v1::HAZARD_KIND_VOLCANO:
    case v1::HAZARD_KIND_WILDFIRE:
    case v1::HAZARD_KIND_DROUGHT:
    case v1::HAZARD_KIND_SEVERE_WEATHER:
      return true;
    default:
      return false;
  }
}

// Keys under which an event can be found by later reports (rule 1).
std::vector<std::string> KeysOf(const v1::CrisisEvent& event) {
  std::set<std::string> keys;
  keys.insert(event.event_id());
  if (!event.source_id().empty()) keys.insert(event.source() + ":" + event.source_id());
  for (const std::string& alias : event.id_aliases()) {
    if (alias.empty()) continue;
    // GLIDE numbers are global; every other alias is the source's own id.
    keys.insert(alias.rfind("glide:", 0) == 0 ? alias : event.source() + ":" + alias);
  }
  for (const v1::EventReference& ref : event.references()) {
    if (!ref.source_id().empty()) keys.insert(ref.source() + ":" + ref.source_id());
  }
  return {keys.begin(), keys.end()};
}

}  // namespace

std::string_view MatchRuleName(MatchRule rule) {
  switch (rule) {
    case MatchRule::kExplicitId:
      return "id";
    case MatchRule::kProximity:
      return "proximity";
    default:
      return "new";
  }
}

std::string CorrelatorMigration() {
  return R"sql(
      -- One row per incident (per status: exercises are incidents of their own).
      -- place/onset/magnitude are the first event's; the box grows with members.
      CREATE TABLE ingest_incidents(
        incident_id TEXT NOT NULL,
        status INTEGER NOT NULL,
        hazard INTEGER NOT NULL,
        onset_ms INTEGER NOT NULL,
        lat REAL, lon REAL, magnitude REAL,
        min_lat REAL, min_lon REAL, max_lat REAL, max_lon REAL,
        revision INTEGER NOT NULL,
        cancelled INTEGER NOT NULL DEFAULT 0,
        updated_ms INTEGER NOT NULL,
        PRIMARY KEY(incident_id, status)) WITHOUT ROWID;
      CREATE INDEX ingest_incidents_by_time ON ingest_incidents(status, hazard, onset_ms);
      -- Every key (event id, source id, alias, GLIDE, reference) -> its incident.
      CREATE TABLE ingest_incident_keys(
        key TEXT NOT NULL,
        status INTEGER NOT NULL,
        incident_id TEXT NOT NULL,
        PRIMARY KEY(key, status)) WITHOUT ROWID;
      -- Source events merged into an incident.
      CREATE TABLE ingest_incident_members(
        incident_id TEXT NOT NULL,
        status INTEGER NOT NULL,
        event_id TEXT NOT NULL,
        source TEXT NOT NULL,
        cancelled INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY(incident_id, status, event_id)) WITHOUT ROWID;
      -- The revision history: one row per event revision sent for the incident.
      CREATE TABLE ingest_incident_revisions(
        incident_id TEXT NOT NULL,
        status INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        event_id TEXT NOT NULL,
        event_revision INTEGER NOT NULL,
        msg_type INTEGER NOT NULL,
        rule TEXT NOT NULL,
        recorded_ms INTEGER NOT NULL,
        PRIMARY KEY(incident_id, status, seq)) WITHOUT ROWID;
  )sql";
}

std::string CorrelatorCellMigration() {
  return R"sql(
      ALTER TABLE ingest_incidents ADD COLUMN lat_cell INTEGER;
      ALTER TABLE ingest_incidents ADD COLUMN lon_cell INTEGER;
      UPDATE ingest_incidents SET lat_cell = CAST(lat + 90 AS INTEGER),
        lon_cell = CAST(lon + 180 AS INTEGER) % 360 WHERE lat IS NOT NULL AND lon IS NOT NULL;
      CREATE INDEX ingest_incidents_by_cell ON ingest_incidents(status, hazard, lat_cell, lon_cell, onset_ms);
  )sql";
}

Result<IncidentMatch> Correlator::Correlate(v1::CrisisEvent* event, int64_t now_ms) {
  const int status = static_cast<int>(event->status());
  const bool cancel = event->msg_type() == v1::MESSAGE_TYPE_CANCEL;
  const std::vector<std::string> keys = KeysOf(*event);
  const Footprint footprint = FootprintOf(*event);
  IncidentMatch match;

  // Rule 1: explicit ids.
  auto find_key = db_.Prepare("SELECT incident_id FROM ingest_incident_keys WHERE key = ? AND status = ?");
  if (!find_key.ok()) return find_key.status();
  for (const std::string& key : keys) {
    find_key->Reset();
    find_key->Bind(1, key).Bind(2, status);
    auto row = find_key->Step();
    if (!row.ok()) return row.status();
    if (*row) {
      match.incident_id = find_key->ColumnText(0);
      match.rule = MatchRule::kExplicitId;
      break;
    }
  }

  // Rule 2: proximity. Never for restricted events (operator-entered, seen
  // by one state only) and never onto an incident that has one: a public
  // report must not be keyed under one state's private incident, nor the
  // other way round.
  const bool earthquake = event->hazard() == v1::HAZARD_KIND_EARTHQUAKE;
  const bool restricted = event->restricted_to_states_size() > 0;
  bool proximity = match.incident_id.empty() && !cancel && !restricted &&
                   (earthquake || IsAreaHazard(event->hazard())) && footprint.onset_ms != 0 &&
                   (earthquake ? footprint.place.has_value() : footprint.box.has_value());
  const int64_t window = earthquake ? rules_.earthquake_window_ms : rules_.area_window_ms;
  std::optional<Cells> cells;
  if (proximity && earthquake) {
    cells = CellsWithinReach(*footprint.place, rules_.earthquake_max_distance_km);
    if (cells) {
      // Most cells within reach hold no incident of the window: probing each
      // of them in the index was most of the cost of this rule. Only cells
      // without any incident are dropped, so the rows read are the same.
      auto occupied = KeepOccupiedCells(status, footprint.onset_ms - window, footprint.onset_ms + window,
                                        &cells->lat, &cells->lon);
      if (!occupied.ok()) return occupied.status();
      proximity = *occupied;
    }
  }
  if (proximity) {
    // Earthquakes: only the incidents in the cells within reach (index
    // ingest_incidents_by_cell); ordered as the window scan would meet them,
    // so the first of equally near candidates is the same either way.
    // (INDEXED BY: without statistics SQLite prefers the time index.)
    std::string index = "INDEXED BY ingest_incidents_by_time ", where_cells;
    if (cells) {
      index = "INDEXED BY ingest_incidents_by_cell ";
      where_cells = "AND i.lat_cell IN " + Placeholders(7, cells->lat.size()) + " AND i.lon_cell IN " +
                    Placeholders(7 + static_cast<int>(cells->lat.size()), cells->lon.size()) + " ";
    }
    auto candidates = db_.Prepare(
        "SELECT i.incident_id, i.onset_ms, i.lat, i.lon, i.magnitude, i.min_lat, i.min_lon, i.max_lat, "
        "i.max_lon FROM ingest_incidents i " +
        index + "WHERE i.status = ?1 AND i.hazard = ?2 " + where_cells +
        "AND i.cancelled = 0 "
        "AND i.onset_ms BETWEEN ?3 AND ?4 AND NOT EXISTS (SELECT 1 FROM ingest_incident_members m "
        "WHERE m.incident_id = i.incident_id AND m.status = i.status AND (m.source = ?5 OR m.source = ?6)) "
        "ORDER BY i.onset_ms, i.incident_id");
    if (!candidates.ok()) return candidates.status();
    candidates->Bind(1, status)
        .Bind(2, static_cast<int>(event->hazard()))
        .Bind(3, footprint.onset_ms - window)
        .Bind(4, footprint.onset_ms + window)
        .Bind(5, event->source())
        .Bind(6, kRestrictedSource);
    if (cells) {
      int n = 7;
      for (int c : cells->lat) candidates->Bind(n++, c);
      for (int c : cells->lon) candidates->Bind(n++, c);
    }
    int64_t best_dt = window + 1;
    while (true) {
      auto row = candidates->Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      const int64_t dt = std::llabs(candidates->ColumnInt(1) - footprint.onset_ms);
      bool near = false;
      if (earthquake) {
        if (candidates->ColumnIsNull(2)) continue;
        geo::LatLon place{candidates->ColumnDouble(2), candidates->ColumnDouble(3)};
        near = geo::DistanceKm(place, *footprint.place) <= rules_.earthquake_max_distance_km;
        if (near && footprint.magnitude && !candidates->ColumnIsNull(4)) {
          near = std::abs(candidates->ColumnDouble(4) - *footprint.magnitude) <=
                 rules_.earthquake_max_magnitude_delta;
        }
      } else {
        if (candidates->ColumnIsNull(5)) continue;
        Box box{candidates->ColumnDouble(5), candidates->ColumnDouble(6), candidates->ColumnDouble(7),
                candidates->ColumnDouble(8)};
        near = box.Overlaps(*footprint.box);
      }
      if (near && dt < best_dt) {
        best_dt = dt;
        match.incident_id = candidates->ColumnText(0);
        match.rule = MatchRule::kProximity;
      }
    }
  }

  // A new incident's row is written complete (revision 1, cancelled when its
  // one member is a Cancel), so the bump and the member list below, which
  // would read back only this event, are skipped.
  bool fresh_incident = false;
  if (match.incident_id.empty()) {
    // Rule 3: a new incident, named after its first event.
    match.incident_id = event->event_id();
    match.rule = MatchRule::kNewIncident;
    auto insert = db_.Prepare(
        "INSERT INTO ingest_incidents(incident_id, status, hazard, onset_ms, lat, lon, magnitude, min_lat, "
        "min_lon, max_lat, max_lon, revision, cancelled, updated_ms, lat_cell, lon_cell) "
        "VALUES(?,?,?,?,?,?,?,?,?,?,?,1,?,?,?,?) ON CONFLICT DO NOTHING");
    if (!insert.ok()) return insert.status();
    insert->Bind(1, match.incident_id).Bind(2, status).Bind(3, static_cast<int>(event->hazard()));
    insert->Bind(4, footprint.onset_ms);
    if (footprint.place) {
      insert->Bind(5, footprint.place->lat).Bind(6, footprint.place->lon);
    } else {
      insert->BindNull(5).BindNull(6);
    }
    if (footprint.magnitude) {
      insert->Bind(7, *footprint.magnitude);
    } else {
      insert->BindNull(7);
    }
    if (footprint.box) {
      insert->Bind(8, footprint.box->min_lat).Bind(9, footprint.box->min_lon);
      insert->Bind(10, footprint.box->max_lat).Bind(11, footprint.box->max_lon);
    } else {
      insert->BindNull(8).BindNull(9).BindNull(10).BindNull(11);
    }
    insert->Bind(12, cancel ? 1 : 0).Bind(13, now_ms);
    if (footprint.place) {
      insert->Bind(14, LatCell(footprint.place->lat)).Bind(15, LonCell(footprint.place->lon));
    } else {
      insert->BindNull(14).BindNull(15);
    }
    AMPARO_RETURN_IF_ERROR(insert->Run());
    // An existing row of that id (kept as it was: ON CONFLICT DO NOTHING)
    // takes the general path below.
    fresh_incident = db_.Changes() == 1;
    if (fresh_incident && earthquake && footprint.place) {
      RememberCell(status, footprint.onset_ms, LatCell(footprint.place->lat), LonCell(footprint.place->lon));
    }
  } else if (footprint.box) {
    auto grow = db_.Prepare(
        "UPDATE ingest_incidents SET min_lat = min(coalesce(min_lat, ?1), ?1), min_lon = "
        "min(coalesce(min_lon, ?2), ?2), max_lat = max(coalesce(max_lat, ?3), ?3), max_lon = "
        "max(coalesce(max_lon, ?4), ?4) WHERE incident_id = ?5 AND status = ?6");
    if (!grow.ok()) return grow.status();
    grow->Bind(1, footprint.box->min_lat).Bind(2, footprint.box->min_lon);
    grow->Bind(3, footprint.box->max_lat).Bind(4, footprint.box->max_lon);
    grow->Bind(5, match.incident_id).Bind(6, status);
    AMPARO_RETURN_IF_ERROR(grow->Run());
  }

  // Membership and keys, so later reports find the incident by any id.
  auto add_member = db_.Prepare(
      "INSERT INTO ingest_incident_members(incident_id, status, event_id, source, cancelled) "
      "VALUES(?,?,?,?,?) "
      "ON CONFLICT(incident_id, status, event_id) DO UPDATE SET cancelled = excluded.cancelled");
  if (!add_member.ok()) return add_member.status();
  add_member->Bind(1, match.incident_id).Bind(2, status).Bind(3, event->event_id()).Bind(4, event->source());
  add_member->Bind(5, cancel ? 1 : 0);
  AMPARO_RETURN_IF_ERROR(add_member->Run());
  auto add_key = db_.Prepare(
      "INSERT INTO ingest_incident_keys(key, status, incident_id) VALUES(?,?,?) ON CONFLICT DO NOTHING");
  if (!add_key.ok()) return add_key.status();
  for (const std::string& key : keys) {
    add_key->Bind(1, key).Bind(2, status).Bind(3, match.incident_id);
    AMPARO_RETURN_IF_ERROR(add_key->Run());
  }

  if (fresh_incident) {
    match.incident_revision = 1;
    AMPARO_RETURN_IF_ERROR(RecordHistory(match, *event, status, now_ms));
    event->clear_incident_aliases();
    event->set_incident_id(match.incident_id);
    return match;
  }

  // The incident is cancelled once every member event is.
  auto bump = db_.Prepare(
      "UPDATE ingest_incidents SET revision = revision + 1, updated_ms = ?1, cancelled = NOT EXISTS (SELECT "
      "1 "
      "FROM ingest_incident_members m WHERE m.incident_id = ?2 AND m.status = ?3 AND m.cancelled = 0) "
      "WHERE incident_id = ?2 AND status = ?3 RETURNING revision");
  if (!bump.ok()) return bump.status();
  bump->Bind(1, now_ms).Bind(2, match.incident_id).Bind(3, status);
  auto bumped = bump->Step();
  if (!bumped.ok()) return bumped.status();
  if (!*bumped) return Internal("incident " + match.incident_id + " vanished during correlation");
  match.incident_revision = bump->ColumnInt(0);
  bump->Reset();

  AMPARO_RETURN_IF_ERROR(RecordHistory(match, *event, status, now_ms));

  auto members = db_.Prepare(
      "SELECT event_id FROM ingest_incident_members WHERE incident_id = ? AND status = ? AND event_id != ? "
      "ORDER BY event_id");
  if (!members.ok()) return members.status();
  members->Bind(1, match.incident_id).Bind(2, status).Bind(3, match.incident_id);
  event->clear_incident_aliases();
  while (true) {
    auto row = members->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    event->add_incident_aliases(members->ColumnText(0));
  }
  event->set_incident_id(match.incident_id);
  return match;
}

Status Correlator::RecordHistory(const IncidentMatch& match, const v1::CrisisEvent& event, int status,
                                 int64_t now_ms) {
  auto history = db_.Prepare(
      "INSERT INTO ingest_incident_revisions(incident_id, status, seq, event_id, event_revision, msg_type, "
      "rule, recorded_ms) VALUES(?,?,?,?,?,?,?,?)");
  if (!history.ok()) return history.status();
  history->Bind(1, match.incident_id).Bind(2, status).Bind(3, match.incident_revision);
  history->Bind(4, event.event_id()).Bind(5, event.revision()).Bind(6, static_cast<int>(event.msg_type()));
  history->Bind(7, MatchRuleName(match.rule)).Bind(8, now_ms);
  return history->Run();
}

size_t Correlator::CellRowHash::operator()(const CellRow& k) const {
  uint64_t h = static_cast<uint64_t>(k.stretch) * 0x9E3779B97F4A7C15ULL;
  h ^= static_cast<uint64_t>(static_cast<uint32_t>(k.lat_cell)) * 0xC2B2AE3D27D4EB4FULL;
  h ^= static_cast<uint64_t>(static_cast<uint32_t>(k.status)) * 0x165667B19E3779F9ULL;
  return static_cast<size_t>(h ^ (h >> 29));
}

int64_t Correlator::StretchOf(int64_t onset_ms) const {
  // A stretch as long as the window (at least a minute): a window touches
  // at most three stretches.
  const int64_t length = std::max<int64_t>(rules_.earthquake_window_ms, 60'000);
  int64_t stretch = onset_ms / length;
  if (onset_ms % length != 0 && onset_ms < 0) --stretch;  // rounded down
  return stretch;
}

void Correlator::RememberCell(int status, int64_t onset_ms, int lat_cell, int lon_cell) {
  if (cells_.size() >= kMaxCachedRows) cells_.clear();  // every stretch is read again when needed
  if (lat_cell < 0 || lon_cell < 0 || lon_cell >= 360) return;  // never asked for (LatCell, LonCell)
  cells_[{status, StretchOf(onset_ms), lat_cell}].set(lon_cell);
}

Result<bool> Correlator::KeepOccupiedCells(int status, int64_t from_ms, int64_t to_ms, std::vector<int>* lat,
                                           std::vector<int>* lon) {
  const int64_t first = StretchOf(from_ms), last = StretchOf(to_ms);
  if (last - first > 3) return true;  // a window longer than the stretches: probe every cell
  // Cleared before this call reads anything, so no stretch it reads is
  // forgotten before it is used.
  if (cells_.size() >= kMaxCachedRows) cells_.clear();
  const int64_t length = std::max<int64_t>(rules_.earthquake_window_ms, 60'000);
  for (int64_t stretch = first; stretch <= last; ++stretch) {
    if (cells_.contains({status, stretch, kStretchLoaded})) continue;
    auto q = db_.Prepare(
        "SELECT lat_cell, lon_cell FROM ingest_incidents INDEXED BY ingest_incidents_by_time WHERE status = ? "
        "AND hazard = ? AND onset_ms BETWEEN ? AND ? AND lat_cell IS NOT NULL AND lon_cell IS NOT NULL");
    if (!q.ok()) return q.status();
    q->Bind(1, status).Bind(2, static_cast<int>(v1::HAZARD_KIND_EARTHQUAKE));
    q->Bind(3, stretch * length).Bind(4, stretch * length + length - 1);
    while (true) {
      auto row = q->Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      const int64_t lat_cell = q->ColumnInt(0), lon_cell = q->ColumnInt(1);
      if (lat_cell < 0 || lat_cell > 180 || lon_cell < 0 || lon_cell >= 360) continue;  // never asked for
      cells_[{status, stretch, static_cast<int>(lat_cell)}].set(static_cast<size_t>(lon_cell));
    }
    cells_[{status, stretch, kStretchLoaded}];
  }
  std::bitset<360> lon_wanted, lon_kept;
  for (int lon_cell : *lon) lon_wanted.set(static_cast<size_t>(lon_cell));
  std::vector<int> lat_kept;
  for (int lat_cell : *lat) {
    std::bitset<360> hits;
    for (int64_t stretch = first; stretch <= last; ++stretch) {
      auto row = cells_.find({status, stretch, lat_cell});
      if (row != cells_.end()) hits |= row->second & lon_wanted;
    }
    if (hits.none()) continue;
    lat_kept.push_back(lat_cell);
    lon_kept |= hits;
  }
  if (lat_kept.empty()) return false;
  *lat = std::move(lat_kept);
  lon->erase(std::remove_if(lon->begin(), lon->end(),
                            [&](int lon_cell) { return !lon_kept.test(static_cast<size_t>(lon_cell)); }),
             lon->end());
  return true;
}

Result<std::vector<IncidentRevision>> Correlator::History(const std::string& incident_id,
                                                          v1::EventStatus status) {
  auto q = db_.Prepare(
      "SELECT seq, event_id, event_revision, msg_type, rule, recorded_ms FROM ingest_incident_revisions "
      "WHERE incident_id = ? AND status = ? ORDER BY seq");
  if (!q.ok()) return q.status();
  q->Bind(1, incident_id).Bind(2, static_cast<int>(status));
  std::vector<IncidentRevision> out;
  while (true) {
    auto row = q->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    IncidentRevision r;
    r.seq = q->ColumnInt(0);
    r.event_id = q->ColumnText(1);
    r.event_revision = q->ColumnInt(2);
    r.msg_type = static_cast<v1::MessageType>(q->ColumnInt(3));
    const std::string rule = q->ColumnText(4);
    r.rule = rule == "id"          ? MatchRule::kExplicitId
             : rule == "proximity" ? MatchRule::kProximity
                                   : MatchRule::kNewIncident;
    r.recorded_ms = q->ColumnInt(5);
    out.push_back(std::move(r));
  }
  return out;
}

}  // namespace amparo::ingest
