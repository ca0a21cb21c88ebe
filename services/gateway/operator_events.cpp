#include "services/gateway/operator_events.h"

#include <boost/json.hpp>

#include <array>
#include <cmath>
#include <utility>

#include "amparo/v1/envelope.pb.h"
#include "common/audit.h"
#include "common/crypto.h"
#include "common/json_text.h"
#include "common/link.h"
#include "services/gateway/civil_date.h"
#include "services/gateway/registrant_json.h"

namespace amparo::gateway {
namespace {

namespace json = boost::json;

constexpr std::string_view kProducer = "amparo-gateway";
constexpr std::string_view kEventIdPrefix = "operator:";
constexpr std::string_view kIngestPeer = "ingest";

template <typename Enum>
struct NamedValue {
  std::string_view name;
  Enum value;
};

// API names are the proto enum names without their prefix, lower case.
constexpr std::array<NamedValue<v1::HazardKind>, 11> kHazards = {{
    {"earthquake", v1::HAZARD_KIND_EARTHQUAKE},
    {"tsunami", v1::HAZARD_KIND_TSUNAMI},
    {"tropical_cyclone", v1::HAZARD_KIND_TROPICAL_CYCLONE},
    {"flood", v1::HAZARD_KIND_FLOOD},
    {"volcano", v1::HAZARD_KIND_VOLCANO},
    {"wildfire", v1::HAZARD_KIND_WILDFIRE},
    {"drought", v1::HAZARD_KIND_DROUGHT},
    {"severe_weather", v1::HAZARD_KIND_SEVERE_WEATHER},
    {"conflict", v1::HAZARD_KIND_CONFLICT},
    {"civil_unrest", v1::HAZARD_KIND_CIVIL_UNREST},
    {"other", v1::HAZARD_KIND_OTHER},
}};
constexpr std::array<NamedValue<v1::Severity>, 5> kSeverities = {{
    {"extreme", v1::SEVERITY_EXTREME},
    {"severe", v1::SEVERITY_SEVERE},
    {"moderate", v1::SEVERITY_MODERATE},
    {"minor", v1::SEVERITY_MINOR},
    {"unknown", v1::SEVERITY_UNKNOWN},
}};
constexpr std::array<NamedValue<v1::Urgency>, 5> kUrgencies = {{
    {"immediate", v1::URGENCY_IMMEDIATE},
    {"expected", v1::URGENCY_EXPECTED},
    {"future", v1::URGENCY_FUTURE},
    {"past", v1::URGENCY_PAST},
    {"unknown", v1::URGENCY_UNKNOWN},
}};
constexpr std::array<NamedValue<v1::Certainty>, 5> kCertainties = {{
    {"observed", v1::CERTAINTY_OBSERVED},
    {"likely", v1::CERTAINTY_LIKELY},
    {"possible", v1::CERTAINTY_POSSIBLE},
    {"unlikely", v1::CERTAINTY_UNLIKELY},
    {"unknown", v1::CERTAINTY_UNKNOWN},
}};
constexpr std::array<NamedValue<v1::EventStatus>, 2> kStatuses = {{
    {"actual", v1::EVENT_STATUS_ACTUAL},
    {"exercise", v1::EVENT_STATUS_EXERCISE},
}};

template <typename Enum, size_t N>
std::string Choices(const std::array<NamedValue<Enum>, N>& table) {
  std::string out;
  for (const auto& entry : table) out += (out.empty() ? "" : ", ") + std::string(entry.name);
  return out;
}

// The spec holds only names that passed validation, so a miss cannot
// happen; the first entry is a harmless fallback.
template <typename Enum, size_t N>
Enum ValueOf(const std::array<NamedValue<Enum>, N>& table, std::string_view name) {
  for (const auto& entry : table) {
    if (entry.name == name) return entry.value;
  }
  return table.front().value;
}

template <typename Enum, size_t N>
std::string_view NameOf(const std::array<NamedValue<Enum>, N>& table, Enum value) {
  for (const auto& entry : table) {
    if (entry.value == value) return entry.name;
  }
  return "unknown";
}

// Characters, not bytes: Boost.JSON has already checked the UTF-8, so
// counting the bytes that do not continue a sequence counts code points.
size_t Utf8Length(std::string_view s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

Status CheckText(std::string_view text, std::string_view field, size_t max_chars, bool multi_line) {
  if (Utf8Length(text) > max_chars) {
    return InvalidArgument("must be at most " + std::to_string(max_chars) + " characters", std::string(field));
  }
  for (unsigned char c : text) {
    const bool allowed_control = multi_line && (c == '\n' || c == '\t' || c == '\r');
    if ((c < 0x20 && !allowed_control) || c == 0x7F) {
      return InvalidArgument(multi_line ? "must not contain control characters other than newlines and tabs"
                                        : "must be one line without control characters",
                             std::string(field));
    }
  }
  return Status::Ok();
}

Status RejectUnknown(const json::object& o, std::initializer_list<std::string_view> allowed,
                     const std::string& prefix) {
  for (const auto& kv : o) {
    bool known = false;
    for (auto a : allowed) known = known || kv.key() == a;
    if (!known) {
      std::string accepted;
      for (auto a : allowed) accepted += (accepted.empty() ? "" : ", ") + std::string(a);
      return InvalidArgument("unknown field (accepted: " + accepted + ")", prefix + std::string(kv.key()));
    }
  }
  return Status::Ok();
}

// The string at `o[key]`, `fallback` when absent or null; kInvalidArgument
// when present with another type or empty.
Result<std::string> StringField(const json::object& o, std::string_view key, const std::string& field,
                                std::optional<std::string> fallback) {
  auto it = o.find(key);
  if (it == o.end() || it->value().is_null()) {
    if (!fallback) return InvalidArgument("is required", field);
    return *fallback;
  }
  if (!it->value().is_string()) return InvalidArgument("must be a string", field);
  return std::string(it->value().get_string());
}

template <typename Enum, size_t N>
Result<std::string> EnumField(const json::object& o, std::string_view key,
                              const std::array<NamedValue<Enum>, N>& table, std::optional<std::string> fallback) {
  const std::string field(key);
  auto text = StringField(o, key, field, std::move(fallback));
  if (!text.ok()) return text.status();
  for (const auto& entry : table) {
    if (entry.name == *text) return text;
  }
  return InvalidArgument("must be one of " + Choices(table), field);
}

std::string FormatBound(double d) {
  return d == std::floor(d) ? std::to_string(static_cast<int64_t>(d)) : std::to_string(d);
}

Result<double> NumberIn(const json::value& v, const std::string& field, double min, double max) {
  if (!v.is_number()) return InvalidArgument("must be a number", field);
  const double d = v.is_double() ? v.get_double()
                   : v.is_int64() ? static_cast<double>(v.get_int64())
                                  : static_cast<double>(v.get_uint64());
  if (!std::isfinite(d) || d < min || d > max) {
    return InvalidArgument("must be within " + FormatBound(min) + ".." + FormatBound(max), field);
  }
  return d;
}

Result<json::object> ValidateCircle(const json::value& v, const std::string& field) {
  if (!v.is_object()) return InvalidArgument("must be an object {lat, lon, radius_km}", field);
  const json::object& o = v.get_object();
  AMPARO_RETURN_IF_ERROR(RejectUnknown(o, {"lat", "lon", "radius_km"}, field + "."));
  json::object out;
  struct Bound {
    const char* key;
    double min, max;
  };
  static constexpr Bound kBounds[] = {{"lat", -90, 90}, {"lon", -180, 180}, {"radius_km", 0, kMaxRadiusKm}};
  for (const Bound& bound : kBounds) {
    const std::string path = field + "." + bound.key;
    auto it = o.find(bound.key);
    if (it == o.end()) return InvalidArgument("is required", path);
    auto d = NumberIn(it->value(), path, bound.min, bound.max);
    if (!d.ok()) return d.status();
    out[bound.key] = *d;
  }
  if (out["radius_km"].get_double() <= 0) {
    return InvalidArgument("must be greater than 0 (at most " + FormatBound(kMaxRadiusKm) + ")",
                           field + ".radius_km");
  }
  return out;
}

// One polygon: a closed ring [[lat, lon], ...] of at least 4 points, first
// == last, enclosing an area.
Result<json::array> ValidateRing(const json::value& v, const std::string& field, size_t* vertices) {
  if (!v.is_array()) return InvalidArgument("must be an array of [lat, lon] points", field);
  const json::array& ring = v.get_array();
  if (ring.size() < 4) return InvalidArgument("must have at least 4 points (a closed ring)", field);
  *vertices += ring.size();
  if (*vertices > kMaxVertices) {
    return InvalidArgument("too many points (at most " + std::to_string(kMaxVertices) + " in all)", field);
  }
  json::array out;
  std::vector<std::pair<double, double>> points;
  for (size_t i = 0; i < ring.size(); ++i) {
    const std::string path = field + "[" + std::to_string(i) + "]";
    if (!ring[i].is_array() || ring[i].get_array().size() != 2) {
      return InvalidArgument("must be a point [lat, lon]", path);
    }
    auto lat = NumberIn(ring[i].get_array()[0], path + "[0]", -90, 90);
    if (!lat.ok()) return lat.status();
    auto lon = NumberIn(ring[i].get_array()[1], path + "[1]", -180, 180);
    if (!lon.ok()) return lon.status();
    points.emplace_back(*lat, *lon);
    out.push_back(json::array{*lat, *lon});
  }
  if (points.front() != points.back()) {
    return InvalidArgument("must be closed: the last point must equal the first", field);
  }
  double twice_area = 0;  // shoelace, in degrees: only its sign and zero matter
  for (size_t i = 0; i + 1 < points.size(); ++i) {
    twice_area += points[i].second * points[i + 1].first - points[i + 1].second * points[i].first;
  }
  if (twice_area == 0) return InvalidArgument("must enclose an area (its points are all on one line)", field);
  return out;
}

Result<json::object> ValidateArea(const json::object& body) {
  auto it = body.find("area");
  if (it == body.end() || it->value().is_null()) return InvalidArgument("is required", "area");
  if (!it->value().is_object()) return InvalidArgument("must be an object", "area");
  const json::object& area = it->value().get_object();
  AMPARO_RETURN_IF_ERROR(RejectUnknown(area, {"description", "circles", "polygons"}, "area."));
  json::object out;
  auto description = StringField(area, "description", "area.description", "");
  if (!description.ok()) return description.status();
  AMPARO_RETURN_IF_ERROR(CheckText(*description, "area.description", kMaxAreaDescriptionChars, false));
  out["description"] = *description;

  json::array circles, polygons;
  if (auto c = area.find("circles"); c != area.end() && !c->value().is_null()) {
    if (!c->value().is_array()) return InvalidArgument("must be an array", "area.circles");
    if (c->value().get_array().size() > kMaxShapes) {
      return InvalidArgument("must have at most " + std::to_string(kMaxShapes) + " items", "area.circles");
    }
    for (size_t i = 0; i < c->value().get_array().size(); ++i) {
      auto circle = ValidateCircle(c->value().get_array()[i], "area.circles[" + std::to_string(i) + "]");
      if (!circle.ok()) return circle.status();
      circles.push_back(std::move(circle).value());
    }
  }
  if (auto p = area.find("polygons"); p != area.end() && !p->value().is_null()) {
    if (!p->value().is_array()) return InvalidArgument("must be an array of rings", "area.polygons");
    if (p->value().get_array().size() + circles.size() > kMaxShapes) {
      return InvalidArgument("at most " + std::to_string(kMaxShapes) + " circles and polygons in all",
                             "area.polygons");
    }
    size_t vertices = 0;
    for (size_t i = 0; i < p->value().get_array().size(); ++i) {
      auto ring = ValidateRing(p->value().get_array()[i], "area.polygons[" + std::to_string(i) + "]", &vertices);
      if (!ring.ok()) return ring.status();
      polygons.push_back(std::move(ring).value());
    }
  }
  if (circles.empty() && polygons.empty()) {
    return InvalidArgument("needs at least one shape in circles or polygons", "area");
  }
  out["circles"] = std::move(circles);
  out["polygons"] = std::move(polygons);
  return out;
}

Result<json::object> Validate(const json::object& body, int64_t now_ms, bool check_expiry) {
  AMPARO_RETURN_IF_ERROR(RejectUnknown(body,
                                       {"hazard", "severity", "urgency", "certainty", "status", "headline",
                                        "description", "language", "expires", "area"},
                                       ""));
  json::object spec;
  auto hazard = EnumField(body, "hazard", kHazards, std::nullopt);
  if (!hazard.ok()) return hazard.status();
  spec["hazard"] = *hazard;
  auto severity = EnumField(body, "severity", kSeverities, std::nullopt);
  if (!severity.ok()) return severity.status();
  spec["severity"] = *severity;
  auto urgency = EnumField(body, "urgency", kUrgencies, "unknown");
  if (!urgency.ok()) return urgency.status();
  spec["urgency"] = *urgency;
  auto certainty = EnumField(body, "certainty", kCertainties, "unknown");
  if (!certainty.ok()) return certainty.status();
  spec["certainty"] = *certainty;
  auto status = EnumField(body, "status", kStatuses, "actual");
  if (!status.ok()) return status.status();
  spec["status"] = *status;

  auto headline = StringField(body, "headline", "headline", std::nullopt);
  if (!headline.ok()) return headline.status();
  if (headline->find_first_not_of(" \t") == std::string::npos) {
    return InvalidArgument("must not be empty", "headline");
  }
  AMPARO_RETURN_IF_ERROR(CheckText(*headline, "headline", kMaxHeadlineChars, false));
  spec["headline"] = *headline;
  auto description = StringField(body, "description", "description", "");
  if (!description.ok()) return description.status();
  AMPARO_RETURN_IF_ERROR(CheckText(*description, "description", kMaxDescriptionChars, true));
  spec["description"] = *description;
  auto language = StringField(body, "language", "language", "en");
  if (!language.ok()) return language.status();
  if (!IsLanguageTag(*language)) return InvalidArgument("must be a BCP-47 language tag such as \"en\"", "language");
  spec["language"] = *language;

  auto expires = StringField(body, "expires", "expires", "");
  if (!expires.ok()) return expires.status();
  if (expires->empty()) {
    spec["expires"] = nullptr;
  } else {
    std::optional<int64_t> ms = ParseRfc3339(*expires);
    if (!ms) return InvalidArgument("must be an RFC 3339 time such as 2026-05-01T12:00:00Z", "expires");
    if (check_expiry && *ms <= now_ms) return InvalidArgument("must be in the future", "expires");
    spec["expires"] = FormatRfc3339(*ms);
  }
  auto area = ValidateArea(body);
  if (!area.ok()) return area.status();
  spec["area"] = std::move(area).value();
  return spec;
}

std::string SpecString(const json::object& spec, std::string_view key) {
  auto it = spec.find(key);
  return it != spec.end() && it->value().is_string() ? std::string(it->value().get_string()) : std::string();
}

// "operator:<hex>" or "<hex>" -> "<hex>"; anything else -> "" (no such event).
std::string BareId(std::string_view id) {
  if (id.substr(0, kEventIdPrefix.size()) == kEventIdPrefix) id.remove_prefix(kEventIdPrefix.size());
  if (id.size() != 32) return "";
  for (char c : id) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return "";
  }
  return std::string(id);
}

constexpr const char* kColumns = "seq, id, state, revision, msg_type, spec, created_ms, updated_ms";

Result<OperatorEvent> ReadEvent(const Statement& q) {
  OperatorEvent e;
  e.id = q.ColumnText(1);
  e.state = q.ColumnText(2);
  e.revision = q.ColumnInt(3);
  e.msg_type = static_cast<v1::MessageType>(q.ColumnInt(4));
  boost::system::error_code ec;
  json::value spec = json::parse(q.ColumnText(5), ec);
  if (ec || !spec.is_object()) return Status(StatusCode::kDataLoss, "operator event " + e.id + ": bad spec");
  e.spec = std::move(spec.as_object());
  e.created_ms = q.ColumnInt(6);
  e.updated_ms = q.ColumnInt(7);
  return e;
}

// kNotFound for every id `state` does not own, malformed ones included, with
// one message: the answer never tells another state's event from none.
Result<OperatorEvent> SelectEvent(Db& db, std::string_view state, std::string_view id) {
  const std::string bare = BareId(id);
  if (bare.empty()) return NotFound("no such event");
  auto q = db.Prepare(std::string("SELECT ") + kColumns + " FROM operator_events WHERE state = ? AND id = ?");
  if (!q.ok()) return q.status();
  q->Bind(1, std::string(state)).Bind(2, bare);
  auto row = q->Step();
  if (!row.ok()) return row.status();
  if (!*row) return NotFound("no such event");
  return ReadEvent(*q);
}

Status AuditEvent(Db& db, const Access& access, std::string_view state, std::string_view action,
                  std::string_view subject, std::string detail, const Clock& clock) {
  AuditRecord record{access.actor, std::string(state), std::string(action), std::string(subject),
                     access.purpose, std::move(detail)};
  auto seq = AppendAudit(db, record, clock);
  return seq.ok() ? Status::Ok() : seq.status();
}

// Stores `event`'s current revision and enqueues its CrisisEvent for
// ingest; the caller holds the transaction.
Status StoreAndEnqueue(Db& db, const OperatorEvent& event, bool insert, const Clock& clock) {
  auto q = db.Prepare(insert ? "INSERT INTO operator_events(id, state, revision, msg_type, spec, created_ms, "
                               "updated_ms) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)"
                             : "UPDATE operator_events SET revision = ?3, msg_type = ?4, spec = ?5, "
                               "updated_ms = ?7 WHERE id = ?1 AND state = ?2");
  if (!q.ok()) return q.status();
  q->Bind(1, event.id)
      .Bind(2, event.state)
      .Bind(3, event.revision)
      .Bind(4, static_cast<int>(event.msg_type))
      .Bind(5, JsonText(event.spec))
      .Bind(6, event.created_ms)
      .Bind(7, event.updated_ms);
  AMPARO_RETURN_IF_ERROR(q->Run());
  if (db.Changes() != 1) return Internal("operator event " + event.id + " was not stored");
  v1::Envelope envelope = MakeEnvelope(kProducer, clock);
  *envelope.mutable_crisis_event() = OperatorCrisisEvent(event, event.updated_ms);
  return EnqueueOutbound(db, kIngestPeer, envelope);
}

}  // namespace

const std::string& OperatorEventsMigration() {
  static const std::string kMigration = R"sql(
        -- Issue 4: operator-entered events. `spec` is the validated request
        -- (canonical JSON) of the current revision; the CrisisEvent sent to
        -- ingest is rebuilt from it. seq orders the list newest first.
        CREATE TABLE operator_events(
          seq INTEGER PRIMARY KEY AUTOINCREMENT,
          id TEXT NOT NULL UNIQUE,
          state TEXT NOT NULL,
          revision INTEGER NOT NULL,
          msg_type INTEGER NOT NULL,
          spec TEXT NOT NULL,
          created_ms INTEGER NOT NULL,
          updated_ms INTEGER NOT NULL);
        CREATE INDEX operator_events_by_state ON operator_events(state, seq);
      )sql";
  return kMigration;
}

Result<json::object> ValidateOperatorEvent(const json::object& body, int64_t now_ms) {
  return Validate(body, now_ms, /*check_expiry=*/true);
}

v1::CrisisEvent OperatorCrisisEvent(const OperatorEvent& event, int64_t sent_ms) {
  const json::object& spec = event.spec;
  v1::CrisisEvent e;
  e.set_event_id(event.event_id());
  e.set_source("operator");
  e.set_source_id(event.id);
  e.set_revision(event.revision);
  e.set_status(ValueOf(kStatuses, SpecString(spec, "status")));
  e.set_msg_type(event.msg_type);
  if (event.msg_type != v1::MESSAGE_TYPE_ALERT) {
    v1::EventReference* ref = e.add_references();
    ref->set_source("operator");
    ref->set_source_id(event.id);
  }
  e.set_hazard(ValueOf(kHazards, SpecString(spec, "hazard")));
  e.set_source_hazard_code(SpecString(spec, "hazard"));
  e.set_severity(ValueOf(kSeverities, SpecString(spec, "severity")));
  e.set_urgency(ValueOf(kUrgencies, SpecString(spec, "urgency")));
  e.set_certainty(ValueOf(kCertainties, SpecString(spec, "certainty")));
  if (auto expires = ParseRfc3339(SpecString(spec, "expires"))) e.set_expires_ms(*expires);
  e.set_sent_ms(sent_ms);
  e.set_scope("Restricted");
  e.add_restricted_to_states(event.state);

  v1::Area* area = e.add_areas();
  area->set_footprint_model("source");
  if (auto a = spec.find("area"); a != spec.end() && a->value().is_object()) {
    const json::object& shapes = a->value().get_object();
    area->set_description(SpecString(shapes, "description"));
    if (auto c = shapes.find("circles"); c != shapes.end() && c->value().is_array()) {
      for (const auto& circle : c->value().get_array()) {
        v1::Circle* out = area->add_circles();
        out->mutable_center()->set_lat(circle.at("lat").to_number<double>());
        out->mutable_center()->set_lon(circle.at("lon").to_number<double>());
        out->set_radius_km(circle.at("radius_km").to_number<double>());
      }
    }
    if (auto p = shapes.find("polygons"); p != shapes.end() && p->value().is_array()) {
      for (const auto& ring : p->value().get_array()) {
        v1::Polygon* out = area->add_polygons();
        for (const auto& point : ring.get_array()) {
          v1::LatLon* vertex = out->add_vertices();
          vertex->set_lat(point.get_array()[0].to_number<double>());
          vertex->set_lon(point.get_array()[1].to_number<double>());
        }
      }
    }
  }
  e.set_place(area->description());
  v1::LocalizedText* text = e.add_texts();
  text->set_language(SpecString(spec, "language"));
  text->set_headline(SpecString(spec, "headline"));
  text->set_description(SpecString(spec, "description"));
  return e;
}

json::object OperatorEventToJson(const OperatorEvent& event) {
  json::object o;
  o["event_id"] = event.event_id();
  o["state"] = event.state;
  o["revision"] = event.revision;
  o["msg_type"] = event.msg_type == v1::MESSAGE_TYPE_ALERT    ? "alert"
                  : event.msg_type == v1::MESSAGE_TYPE_CANCEL ? "cancel"
                                                              : "update";
  o["cancelled"] = event.cancelled();
  for (const auto& kv : event.spec) o[kv.key()] = kv.value();
  o["created_at"] = FormatRfc3339(event.created_ms);
  o["updated_at"] = FormatRfc3339(event.updated_ms);
  return o;
}

Result<OperatorEvent> CreateOperatorEvent(Db& db, std::string_view state, json::object spec,
                                          const Access& access, const Clock& clock) {
  OperatorEvent event;
  event.id = NewId();
  event.state = std::string(state);
  event.revision = 1;
  event.msg_type = v1::MESSAGE_TYPE_ALERT;
  event.spec = std::move(spec);
  event.created_ms = event.updated_ms = clock.NowMs();
  auto tx = Transaction::Begin(db);
  if (!tx.ok()) return tx.status();
  AMPARO_RETURN_IF_ERROR(StoreAndEnqueue(db, event, /*insert=*/true, clock));
  AMPARO_RETURN_IF_ERROR(AuditEvent(db, access, state, "event.create", event.event_id(),
                                    "revision 1 " + SpecString(event.spec, "hazard"), clock));
  AMPARO_RETURN_IF_ERROR(tx->Commit());
  return event;
}

Result<OperatorEvent> GetOperatorEvent(Db& db, std::string_view state, std::string_view id,
                                       const Access& access, const Clock& clock) {
  auto tx = Transaction::Begin(db);
  if (!tx.ok()) return tx.status();
  auto event = SelectEvent(db, state, id);
  if (!event.ok()) return event.status();
  AMPARO_RETURN_IF_ERROR(AuditEvent(db, access, state, "event.read", event->event_id(), "", clock));
  AMPARO_RETURN_IF_ERROR(tx->Commit());
  return event;
}

Result<OperatorEventPage> ListOperatorEvents(Db& db, std::string_view state, std::string_view cursor,
                                             int limit, const Access& access, const Clock& clock) {
  if (limit < 1 || limit > 1000) return InvalidArgument("must be between 1 and 1000", "limit");
  int64_t before = INT64_MAX;
  if (!cursor.empty()) {
    // Our cursors are the decimal seq of the last item shown.
    if (cursor.size() > 18 || cursor.find_first_not_of("0123456789") != std::string_view::npos) {
      return InvalidArgument("not a cursor from a previous page", "cursor");
    }
    before = std::stoll(std::string(cursor));
  }
  auto tx = Transaction::Begin(db);
  if (!tx.ok()) return tx.status();
  // One row more than asked tells whether another page exists.
  auto q = db.Prepare(std::string("SELECT ") + kColumns +
                      " FROM operator_events WHERE state = ? AND seq < ? ORDER BY seq DESC LIMIT ?");
  if (!q.ok()) return q.status();
  q->Bind(1, std::string(state)).Bind(2, before).Bind(3, limit + 1);
  OperatorEventPage page;
  int64_t last_seq = 0;
  while (true) {
    auto row = q->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    if (static_cast<int>(page.items.size()) == limit) {
      page.next_cursor = std::to_string(last_seq);
      break;
    }
    auto event = ReadEvent(*q);
    if (!event.ok()) return event.status();
    last_seq = q->ColumnInt(0);
    page.items.push_back(std::move(event).value());
  }
  if (!page.items.empty()) {
    AMPARO_RETURN_IF_ERROR(
        AuditEvent(db, access, state, "event.list", "*", std::to_string(page.items.size()) + " rows", clock));
  }
  AMPARO_RETURN_IF_ERROR(tx->Commit());
  return page;
}

Result<OperatorEvent> UpdateOperatorEvent(Db& db, std::string_view state, std::string_view id,
                                          const json::object& patch, const Access& access, const Clock& clock) {
  auto tx = Transaction::Begin(db);
  if (!tx.ok()) return tx.status();
  auto event = SelectEvent(db, state, id);
  if (!event.ok()) return event.status();
  if (event->cancelled()) {
    return Status(StatusCode::kFailedPrecondition, "the event is cancelled; post a new one");
  }
  json::object merged = event->spec;
  for (const auto& kv : patch) {
    if (kv.value().is_null()) {
      merged.erase(kv.key());
    } else {
      merged[kv.key()] = kv.value();
    }
  }
  // Stored specs carry "expires": null and "description": ""; an unset
  // optional is simply absent for the validator.
  if (auto it = merged.find("expires"); it != merged.end() && it->value().is_null()) merged.erase(it);
  auto spec = Validate(merged, clock.NowMs(), /*check_expiry=*/patch.contains("expires"));
  if (!spec.ok()) return spec.status();
  if (SpecString(*spec, "status") != SpecString(event->spec, "status")) {
    // The status is part of the event's identity downstream (an exercise
    // never updates a real event): changing it is a new event.
    return InvalidArgument("cannot change; cancel the event and post a new one", "status");
  }
  event->spec = std::move(spec).value();
  event->revision += 1;
  event->msg_type = v1::MESSAGE_TYPE_UPDATE;
  event->updated_ms = clock.NowMs();
  AMPARO_RETURN_IF_ERROR(StoreAndEnqueue(db, *event, /*insert=*/false, clock));
  AMPARO_RETURN_IF_ERROR(AuditEvent(db, access, state, "event.update", event->event_id(),
                                    "revision " + std::to_string(event->revision), clock));
  AMPARO_RETURN_IF_ERROR(tx->Commit());
  return event;
}

Result<OperatorEvent> CancelOperatorEvent(Db& db, std::string_view state, std::string_view id,
                                          const Access& access, const Clock& clock) {
  auto tx = Transaction::Begin(db);
  if (!tx.ok()) return tx.status();
  auto event = SelectEvent(db, state, id);
  if (!event.ok()) return event.status();
  if (event->cancelled()) return Status(StatusCode::kFailedPrecondition, "the event is already cancelled");
  event->revision += 1;
  event->msg_type = v1::MESSAGE_TYPE_CANCEL;
  event->updated_ms = clock.NowMs();
  AMPARO_RETURN_IF_ERROR(StoreAndEnqueue(db, *event, /*insert=*/false, clock));
  AMPARO_RETURN_IF_ERROR(AuditEvent(db, access, state, "event.cancel", event->event_id(),
                                    "revision " + std::to_string(event->revision), clock));
  AMPARO_RETURN_IF_ERROR(tx->Commit());
  return event;
}

}  // namespace amparo::gateway
