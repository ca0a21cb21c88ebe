#include "services/gateway/gateway_store.h"

#include <boost/json.hpp>

#include <sodium.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <map>

#include "amparo/v1/envelope.pb.h"
#include "common/alert_json.h"
#include "common/audit.h"
#include "common/crypto.h"
#include "common/json_text.h"
#include "common/link.h"
#include "services/gateway/civil_date.h"
#include "services/gateway/operator_events.h"

namespace amparo::gateway {
namespace {

namespace json = boost::json;

constexpr std::string_view kProducer = "amparo-gateway";
constexpr std::string_view kTokenPrefix = "amp_";

// Never edit a shipped migration: append.
const std::vector<std::string>& Migrations() {
  static const std::vector<std::string> kMigrations = {
      R"sql(
        CREATE TABLE tokens(
          id TEXT PRIMARY KEY,
          token_sha256 TEXT NOT NULL UNIQUE,
          state TEXT NOT NULL,
          role TEXT NOT NULL CHECK(role IN ('registrar','operator','admin')),
          created_ms INTEGER NOT NULL,
          revoked_ms INTEGER);

        CREATE TABLE registrants(
          id TEXT PRIMARY KEY,
          state TEXT NOT NULL,
          external_ref TEXT NOT NULL,
          host_country TEXT NOT NULL,
          lat REAL NOT NULL CHECK(lat BETWEEN -90 AND 90),
          lon REAL NOT NULL CHECK(lon BETWEEN -180 AND 180),
          household_size INTEGER NOT NULL CHECK(household_size >= 1),
          languages TEXT NOT NULL DEFAULT '[]',
          vulnerabilities TEXT NOT NULL DEFAULT '[]',
          created_ms INTEGER NOT NULL,
          updated_ms INTEGER NOT NULL,
          UNIQUE(state, external_ref));
        CREATE INDEX registrants_by_state ON registrants(state, id);
        CREATE INDEX registrants_by_host ON registrants(state, host_country, id);

        CREATE TABLE registry_sequence(
          id INTEGER PRIMARY KEY CHECK(id = 1),
          value INTEGER NOT NULL);
        INSERT INTO registry_sequence(id, value) VALUES(1, 0);

        CREATE TABLE subscriptions(
          id TEXT PRIMARY KEY,
          state TEXT NOT NULL,
          url TEXT NOT NULL,
          secret TEXT NOT NULL,
          host_countries TEXT NOT NULL DEFAULT '[]',
          description TEXT NOT NULL DEFAULT '',
          created_ms INTEGER NOT NULL,
          deleted INTEGER NOT NULL DEFAULT 0);
        CREATE INDEX subscriptions_by_state ON subscriptions(state, created_ms);

        CREATE TABLE alerts(
          alert_id TEXT PRIMARY KEY,
          state TEXT NOT NULL,
          incident_id TEXT NOT NULL,
          revision INTEGER NOT NULL,
          json TEXT NOT NULL,
          updated_ms INTEGER NOT NULL);
        CREATE INDEX alerts_by_state ON alerts(state, updated_ms);
        CREATE INDEX alerts_by_incident ON alerts(state, incident_id);

        CREATE TABLE deliveries(
          delivery_id TEXT PRIMARY KEY,
          alert_id TEXT NOT NULL,
          state TEXT NOT NULL,
          status TEXT NOT NULL,
          attempts INTEGER NOT NULL,
          last_error TEXT NOT NULL DEFAULT '',
          updated_ms INTEGER NOT NULL);
        CREATE INDEX deliveries_by_alert ON deliveries(alert_id);
      )sql",
      // Issue 3: the full registry record. Personal data lives only in
      // `sealed` (registry_keys.h); rows from before keep an empty one.
      R"sql(
        ALTER TABLE registrants ADD COLUMN sealed BLOB;
        ALTER TABLE registrants ADD COLUMN sealed_key_id TEXT NOT NULL DEFAULT '';
        ALTER TABLE registrants ADD COLUMN location_precision_m INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE registrants ADD COLUMN place_name TEXT NOT NULL DEFAULT '';
        ALTER TABLE registrants ADD COLUMN admin1 TEXT NOT NULL DEFAULT '';
        ALTER TABLE registrants ADD COLUMN household_members TEXT NOT NULL DEFAULT '';
        ALTER TABLE registrants ADD COLUMN travel_document_expiry TEXT NOT NULL DEFAULT '';
        ALTER TABLE registrants ADD COLUMN consent TEXT NOT NULL DEFAULT '{}';
        ALTER TABLE registrants ADD COLUMN retention_until TEXT NOT NULL DEFAULT '9999-12-31';
        UPDATE registrants SET retention_until = date(created_ms / 1000, 'unixepoch', '+730 days');
        CREATE INDEX registrants_by_admin1 ON registrants(state, admin1, id);
        CREATE INDEX registrants_by_retention ON registrants(retention_until);
        CREATE INDEX registrants_by_key ON registrants(sealed_key_id);
      )sql",
      // Issue 5: operators' silences and decisions (operator_actions.h);
      // alerts keep their latest notification number (repeats of a
      // revision update the row, never add one) and the silence in force.
      R"sql(
        CREATE TABLE silences(
          silence_id TEXT PRIMARY KEY,
          state TEXT NOT NULL,
          incident_id TEXT NOT NULL DEFAULT '',
          host_country TEXT NOT NULL DEFAULT '',
          hazard TEXT NOT NULL DEFAULT '',
          starts_ms INTEGER NOT NULL,
          ends_ms INTEGER NOT NULL CHECK(ends_ms > starts_ms),
          reason TEXT NOT NULL CHECK(reason <> ''),
          created_by TEXT NOT NULL,
          created_ms INTEGER NOT NULL,
          lifted_ms INTEGER NOT NULL DEFAULT 0,
          lifted_by TEXT NOT NULL DEFAULT '');
        CREATE INDEX silences_by_state ON silences(state, created_ms);
        CREATE TABLE alert_decisions(
          decision_id TEXT PRIMARY KEY,
          alert_id TEXT NOT NULL,
          state TEXT NOT NULL,
          action TEXT NOT NULL CHECK(action IN ('confirm_phase', 'reject_phase', 'close')),
          phase INTEGER NOT NULL DEFAULT 0 CHECK(phase BETWEEN 0 AND 4),
          reason TEXT NOT NULL CHECK(reason <> ''),
          decided_by TEXT NOT NULL,
          decided_ms INTEGER NOT NULL);
        CREATE INDEX alert_decisions_by_alert ON alert_decisions(state, alert_id, decided_ms);
        ALTER TABLE alerts ADD COLUMN notification INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE alerts ADD COLUMN silence_id TEXT NOT NULL DEFAULT '';
      )sql",
      // Issue 4: operator-entered events (operator_events.h).
      OperatorEventsMigration(),
      // Issue 3, bulk import speed: the registrants table clustered on
      // (state, id) WITHOUT ROWID. Every read is scoped by state, so the
      // rowid tree, the id index and registrants_by_state (three B-trees
      // written per row) become one. registrants_by_key goes too (key
      // rotation walks the table in primary-key order instead), and so do
      // registrants_by_host and registrants_by_admin1: no query used them
      // (the list's optional filters, "?2 = '' OR host_country = ?2", run
      // on the primary key; EXPLAIN QUERY PLAN shows it). Three B-trees per
      // row instead of eight. Ids are 128-bit random: unique per state is
      // unique.
      R"sql(
        CREATE TABLE registrants_by_state_id(
          state TEXT NOT NULL,
          id TEXT NOT NULL,
          external_ref TEXT NOT NULL,
          host_country TEXT NOT NULL,
          lat REAL NOT NULL CHECK(lat BETWEEN -90 AND 90),
          lon REAL NOT NULL CHECK(lon BETWEEN -180 AND 180),
          household_size INTEGER NOT NULL CHECK(household_size >= 1),
          languages TEXT NOT NULL DEFAULT '[]',
          vulnerabilities TEXT NOT NULL DEFAULT '[]',
          created_ms INTEGER NOT NULL,
          updated_ms INTEGER NOT NULL,
          sealed BLOB,
          sealed_key_id TEXT NOT NULL DEFAULT '',
          location_precision_m INTEGER NOT NULL DEFAULT 0,
          place_name TEXT NOT NULL DEFAULT '',
          admin1 TEXT NOT NULL DEFAULT '',
          household_members TEXT NOT NULL DEFAULT '',
          travel_document_expiry TEXT NOT NULL DEFAULT '',
          consent TEXT NOT NULL DEFAULT '{}',
          retention_until TEXT NOT NULL DEFAULT '9999-12-31',
          PRIMARY KEY(state, id),
          UNIQUE(state, external_ref)) WITHOUT ROWID;
        INSERT INTO registrants_by_state_id(state, id, external_ref, host_country, lat, lon, household_size,
            languages, vulnerabilities, created_ms, updated_ms, sealed, sealed_key_id, location_precision_m,
            place_name, admin1, household_members, travel_document_expiry, consent, retention_until)
          SELECT state, id, external_ref, host_country, lat, lon, household_size, languages, vulnerabilities,
            created_ms, updated_ms, sealed, sealed_key_id, location_precision_m, place_name, admin1,
            household_members, travel_document_expiry, consent, retention_until FROM registrants;
        DROP TABLE registrants;
        ALTER TABLE registrants_by_state_id RENAME TO registrants;
        CREATE INDEX registrants_by_retention ON registrants(retention_until);
      )sql",
      // Retention cohorts replace the retention_until index: every row
      // written with a retention date D is covered by a cohort (D, state,
      // an id range holding it). A bulk import adds a few cohorts per
      // transaction (its ids are consecutive) where the index took an entry
      // per row (a fourth B-tree write per imported row, ~13% of the
      // import's writer). The purge walks the cohorts that are due and
      // checks each row's own date (an update that changes a row's date
      // adds a cohort for the new one). `after_id`: the purge's progress in
      // a large cohort. Existing rows get one cohort per (date, state).
      R"sql(
        CREATE TABLE retention_cohorts(
          retention_until TEXT NOT NULL,
          state TEXT NOT NULL,
          first_id TEXT NOT NULL,
          last_id TEXT NOT NULL,
          after_id TEXT NOT NULL DEFAULT '',
          PRIMARY KEY(retention_until, state, first_id, last_id)) WITHOUT ROWID;
        INSERT INTO retention_cohorts(retention_until, state, first_id, last_id)
          SELECT retention_until, state, min(id), max(id) FROM registrants GROUP BY retention_until, state;
        DROP INDEX registrants_by_retention;
      )sql",
      // Issue 5, pipeline cost: an alert row holds its ConsularAlert as
      // protobuf bytes (registrant ids packed, 16 bytes each) in `alert`,
      // ~8.6 KB a row where its JSON text took ~18.8 KB; `json` is then ''
      // and the JSON is rendered when the alert is read. Rows written before
      // keep their JSON text and a NULL `alert`.
      R"sql(
        ALTER TABLE alerts ADD COLUMN alert BLOB;
      )sql",
  };
  return kMigrations;
}

// Records that rows of `state` with ids first_id..last_id were written with
// retention date `until` (see the retention_cohorts migration).
Status AddRetentionCohort(Db& db, std::string_view until, std::string_view state, std::string_view first_id,
                          std::string_view last_id) {
  auto q = db.Prepare(
      "INSERT OR IGNORE INTO retention_cohorts(retention_until, state, first_id, last_id) VALUES(?,?,?,?)");
  if (!q.ok()) return q.status();
  q->Bind(1, until).Bind(2, state).Bind(3, first_id).Bind(4, last_id);
  return q->Run();
}

std::string ToJsonArray(const std::vector<std::string>& values) {
  json::array a;
  for (const auto& v : values) a.emplace_back(v);
  return json::serialize(a);
}

// Arrays we wrote ourselves; anything unparseable is data loss, reported
// as an empty list rather than failing a whole page.
std::vector<std::string> FromJsonArray(const std::string& text) {
  std::vector<std::string> out;
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec || !v.is_array()) return out;
  for (const auto& item : v.as_array()) {
    if (item.is_string()) out.emplace_back(item.as_string());
  }
  return out;
}

Result<int64_t> BumpRegistrySequence(Db& db) {
  AMPARO_RETURN_IF_ERROR(db.Exec("UPDATE registry_sequence SET value = value + 1 WHERE id = 1"));
  return RegistrySequence(db);
}

constexpr const char* kSubscriptionColumns =
    "id, state, url, secret, host_countries, description, created_ms";

SubscriptionRecord ReadSubscription(const Statement& s) {
  SubscriptionRecord r;
  r.id = s.ColumnText(0);
  r.state = s.ColumnText(1);
  r.url = s.ColumnText(2);
  r.secret = s.ColumnText(3);
  r.host_countries = FromJsonArray(s.ColumnText(4));
  r.description = s.ColumnText(5);
  r.created_ms = s.ColumnInt(6);
  return r;
}

void FillSubscriptionMessage(const SubscriptionRecord& r, bool deleted, v1::Subscription* m) {
  m->set_subscription_id(r.id);
  m->set_state(r.state);
  for (const auto& h : r.host_countries) m->add_host_countries(h);
  m->set_url(r.url);
  m->set_secret(r.secret);
  m->set_deleted(deleted);
  m->set_description(r.description);
}

std::string_view DeliveryStateName(int state) {
  switch (state) {
    case v1::DeliveryStatus::STATE_PENDING:
      return "pending";
    case v1::DeliveryStatus::STATE_DELIVERED:
      return "delivered";
    case v1::DeliveryStatus::STATE_RETRYING:
      return "retrying";
    case v1::DeliveryStatus::STATE_DEAD:
      return "dead";
    default:
      return "unspecified";
  }
}

// "<incident_id>/<STATE>/<HOST>": the incident id may itself hold '/', so
// the state is the second segment from the end.
std::string StateOfAlertId(std::string_view alert_id) {
  size_t last = alert_id.rfind('/');
  if (last == std::string_view::npos || last == 0) return {};
  size_t before = alert_id.rfind('/', last - 1);
  if (before == std::string_view::npos) return {};
  return std::string(alert_id.substr(before + 1, last - before - 1));
}

Status LoadDeliveries(Db& db, StoredAlert* alert) {
  auto q = db.Prepare(
      "SELECT delivery_id, status, attempts FROM deliveries WHERE alert_id = ? AND state = ? "
      "ORDER BY delivery_id");
  if (!q.ok()) return q.status();
  q->Bind(1, alert->alert_id).Bind(2, alert->state);
  while (true) {
    auto row = q->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    alert->deliveries.push_back({q->ColumnText(0), q->ColumnText(1), static_cast<int>(q->ColumnInt(2))});
  }
  return Status::Ok();
}

// The silence the alert's latest revision names, from the same state only.
Status LoadSilence(Db& db, StoredAlert* alert) {
  auto q = db.Prepare(
      "SELECT s.silence_id, s.reason, s.ends_ms, s.lifted_ms FROM alerts a "
      "JOIN silences s ON s.silence_id = a.silence_id AND s.state = a.state "
      "WHERE a.alert_id = ? AND a.state = ?");
  if (!q.ok()) return q.status();
  q->Bind(1, alert->alert_id).Bind(2, alert->state);
  auto row = q->Step();
  if (!row.ok()) return row.status();
  if (*row) {
    alert->silence_id = q->ColumnText(0);
    alert->silence_reason = q->ColumnText(1);
    alert->silence_ends_ms = q->ColumnInt(2);
    alert->silence_lifted_ms = q->ColumnInt(3);
  }
  return Status::Ok();
}

constexpr const char* kAlertColumns = "alert_id, incident_id, state, revision, json, updated_ms, alert";

// One row of kAlertColumns. The JSON comes from the `alert` blob when it is
// set (rendered here, as UpsertAlert no longer stores it) and from `json`
// for rows written before the blob. kDataLoss, naming the alert, when the
// blob does not parse or holds another alert.
Status ReadAlert(const Statement& s, StoredAlert* a) {
  a->alert_id = s.ColumnText(0);
  a->incident_id = s.ColumnText(1);
  a->state = s.ColumnText(2);
  a->revision = static_cast<int>(s.ColumnInt(3));
  a->updated_ms = s.ColumnInt(5);
  if (s.ColumnIsNull(6)) {
    a->json = s.ColumnText(4);
    return Status::Ok();
  }
  v1::ConsularAlert alert;
  if (!alert.ParseFromString(s.ColumnBlob(6))) {
    return Status(StatusCode::kDataLoss, "stored alert " + a->alert_id + " does not parse");
  }
  if (alert.alert_id() != a->alert_id) {
    return Status(StatusCode::kDataLoss,
                  "stored alert " + a->alert_id + " holds alert '" + alert.alert_id() + "'");
  }
  a->json = AlertToJson(alert);
  return Status::Ok();
}

// Runs `q` (already bound) and reads every row as an alert with its deliveries.
Result<std::vector<StoredAlert>> ReadAlerts(Db& db, Statement& q) {
  std::vector<StoredAlert> out;
  while (true) {
    auto row = q.Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    AMPARO_RETURN_IF_ERROR(ReadAlert(q, &out.emplace_back()));
  }
  for (auto& a : out) {
    AMPARO_RETURN_IF_ERROR(LoadDeliveries(db, &a));
    AMPARO_RETURN_IF_ERROR(LoadSilence(db, &a));
  }
  return out;
}

}  // namespace

// A new gateway database gets 16 KiB pages: a registrant row is ~500 bytes,
// and a bulk import's writer spent a quarter less CPU per row than with the
// 4 KiB default (docs/PERFORMANCE.md, "Import"). Existing databases keep
// theirs.
constexpr int kGatewayPageSize = 16384;

Status MigrateGatewayDb(Db& db) {
  auto sized = db.SetPageSizeIfEmpty(kGatewayPageSize);
  if (!sized.ok()) return sized.status();
  AMPARO_RETURN_IF_ERROR(InitLinkTables(db));
  AMPARO_RETURN_IF_ERROR(MigrateAudit(db));
  return db.Migrate(Migrations());
}

// ------------------------------------------------------------------ tokens

Result<Role> ParseRole(std::string_view text) {
  if (text == "registrar") return Role::kRegistrar;
  if (text == "operator") return Role::kOperator;
  if (text == "admin") return Role::kAdmin;
  return InvalidArgument("must be registrar, operator or admin (got '" + std::string(text) + "')", "role");
}

std::string_view RoleName(Role role) {
  switch (role) {
    case Role::kRegistrar:
      return "registrar";
    case Role::kOperator:
      return "operator";
    case Role::kAdmin:
      return "admin";
  }
  return "unknown";
}

bool IsIso3(std::string_view text) {
  if (text.size() != 3) return false;
  for (char c : text) {
    if (c < 'A' || c > 'Z') return false;
  }
  return true;
}

Result<std::string> CreateToken(Db& db, std::string_view state_iso3, Role role, const Clock& clock) {
  if (!IsIso3(state_iso3)) {
    return InvalidArgument("must be an ISO 3166-1 alpha-3 code in uppercase, e.g. PHL", "state");
  }
  std::string plaintext = std::string(kTokenPrefix) + Base64UrlEncode(RandomBytes(32));
  auto stmt = db.Prepare("INSERT INTO tokens(id, token_sha256, state, role, created_ms) VALUES(?,?,?,?,?)");
  if (!stmt.ok()) return stmt.status();
  stmt->Bind(1, NewId())
      .Bind(2, Sha256Hex(plaintext))
      .Bind(3, state_iso3)
      .Bind(4, RoleName(role))
      .Bind(5, clock.NowMs());
  AMPARO_RETURN_IF_ERROR(stmt->Run());
  return plaintext;
}

Result<Token> Authenticate(Db& db, std::string_view bearer) {
  const Status unauthenticated(StatusCode::kUnauthenticated, "unknown or revoked token");
  // Cheap shape check first: no database round trip for garbage.
  if (bearer.size() < kTokenPrefix.size() + 16 || bearer.size() > 256 ||
      bearer.substr(0, kTokenPrefix.size()) != kTokenPrefix) {
    return unauthenticated;
  }
  // Looking up by hash means the comparison never touches the secret itself.
  auto q = db.Prepare("SELECT id, state, role FROM tokens WHERE token_sha256 = ? AND revoked_ms IS NULL");
  if (!q.ok()) return q.status();
  q->Bind(1, Sha256Hex(bearer));
  auto row = q->Step();
  if (!row.ok()) return row.status();
  if (!*row) return unauthenticated;
  auto role = ParseRole(q->ColumnText(2));
  if (!role.ok()) return Status(StatusCode::kDataLoss, "token has unknown role " + q->ColumnText(2));
  return Token{q->ColumnText(0), q->ColumnText(1), *role};
}

Result<std::vector<TokenInfo>> ListTokens(Db& db, std::string_view state) {
  auto q = db.Prepare(
      "SELECT id, state, role, created_ms, coalesce(revoked_ms, 0) FROM tokens WHERE ?1 = '' OR state = ?1 "
      "ORDER BY created_ms, id");
  if (!q.ok()) return q.status();
  q->Bind(1, state);
  std::vector<TokenInfo> out;
  while (true) {
    auto row = q->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    auto role = ParseRole(q->ColumnText(2));
    if (!role.ok()) return Status(StatusCode::kDataLoss, "token has unknown role " + q->ColumnText(2));
    out.push_back({q->ColumnText(0), q->ColumnText(1), *role, q->ColumnInt(3), q->ColumnInt(4)});
  }
  return out;
}

Status RevokeToken(Db& db, std::string_view token_id, const Clock& clock) {
  auto stmt = db.Prepare("UPDATE tokens SET revoked_ms = ? WHERE id = ? AND revoked_ms IS NULL");
  if (!stmt.ok()) return stmt.status();
  stmt->Bind(1, clock.NowMs()).Bind(2, token_id);
  AMPARO_RETURN_IF_ERROR(stmt->Run());
  if (db.Changes() == 0) return NotFound("no such token");
  return Status::Ok();
}

// ---------------------------------------------------------------- registry

Result<uint32_t> VulnerabilityBit(std::string_view name) {
  uint32_t bit = 1;
  for (std::string_view known : kVulnerabilityNames) {
    if (known == name) return bit;
    bit <<= 1;
  }
  return InvalidArgument("unknown vulnerability '" + std::string(name) + "'", "vulnerabilities");
}

namespace {

uint32_t FlagsOf(const std::vector<std::string>& names) {
  uint32_t flags = 0;
  for (const auto& n : names) {
    auto bit = VulnerabilityBit(n);
    if (bit.ok()) flags |= *bit;
  }
  return flags;
}

// "18-59:PHL;5-17:PHL": the same text as the CSV column household.members.
std::string MembersText(const std::vector<HouseholdMember>& members) {
  std::string out;
  for (const auto& m : members) {
    if (!out.empty()) out += ';';
    out += m.age_band + ":" + m.nationality;
  }
  return out;
}

std::vector<HouseholdMember> MembersFromText(std::string_view text) {
  std::vector<HouseholdMember> out;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find(';', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view item = text.substr(start, end - start);
    size_t colon = item.find(':');
    if (colon != std::string_view::npos) {
      out.push_back({std::string(item.substr(0, colon)), std::string(item.substr(colon + 1))});
    }
    start = end + 1;
  }
  return out;
}

// The consent column: a JSON object with one-letter keys (c: crisis
// contact, a: share aggregates with partners, i: share with international
// organisations, r: recorded_ms, v: notice version). Rows written before
// 2026-11 spell the keys out ("crisis_contact", ...); both read the same.
// The short keys save ~90 of a registrant row's ~470 bytes, which a bulk
// import writes a million times.
std::string ConsentText(const Consent& c) {
  return json::serialize(json::object{{"c", c.crisis_contact},
                                      {"a", c.share_aggregate_with_partners},
                                      {"i", c.share_with_international_orgs},
                                      {"r", c.recorded_ms},
                                      {"v", c.notice_version}});
}

Consent ConsentFromText(const std::string& text) {
  Consent c;
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec || !v.is_object()) return c;
  const json::object& o = v.as_object();
  // `key` (short) or `long_key` (before 2026-11).
  auto find = [&](const char* key, const char* long_key) -> const json::value* {
    if (const json::value* found = o.if_contains(key)) return found;
    return o.if_contains(long_key);
  };
  auto flag = [&](const char* key, const char* long_key) {
    const json::value* f = find(key, long_key);
    return f != nullptr && f->is_bool() && f->as_bool();
  };
  c.crisis_contact = flag("c", "crisis_contact");
  c.share_aggregate_with_partners = flag("a", "share_aggregate_with_partners");
  c.share_with_international_orgs = flag("i", "share_with_international_orgs");
  if (const json::value* r = find("r", "recorded_ms"); r != nullptr && r->is_int64()) c.recorded_ms = r->as_int64();
  if (const json::value* n = find("v", "notice_version"); n != nullptr && n->is_string()) {
    c.notice_version = std::string(n->as_string());
  }
  return c;
}

// The associated data of a row's sealed value: moving it to another row
// (or state) makes it fail to open.
std::string SealBinding(const Registrant& r) { return r.id + "/" + r.state; }

std::string SealPersonal(const Registrant& r, const RegistryKeys& keys) {
  json::object o;
  o["n"] = r.full_name;
  o["e"] = r.contact.email;
  o["p"] = r.contact.phone;
  o["cn"] = r.emergency_contact.name;
  o["cp"] = r.emergency_contact.phone;
  o["ce"] = r.emergency_contact.email;
  return keys.Seal(json::serialize(o), SealBinding(r));
}

Status OpenPersonal(const std::string& sealed, const RegistryKeys& keys, Registrant* r) {
  if (sealed.empty()) return Status::Ok();  // a row from before issue 3: nothing personal stored
  auto plain = keys.Open(sealed, SealBinding(*r));
  if (!plain.ok()) return plain.status();
  boost::system::error_code ec;
  json::value v = json::parse(*plain, ec);
  if (ec || !v.is_object()) return Status(StatusCode::kDataLoss, "sealed registrant data does not parse");
  const json::object& o = v.as_object();
  auto get = [&](const char* key) {
    return o.contains(key) && o.at(key).is_string() ? std::string(o.at(key).as_string()) : std::string();
  };
  r->full_name = get("n");
  r->contact.email = get("e");
  r->contact.phone = get("p");
  r->emergency_contact.name = get("cn");
  r->emergency_contact.phone = get("cp");
  r->emergency_contact.email = get("ce");
  return Status::Ok();
}

constexpr const char* kRegistrantColumns =
    "id, state, external_ref, host_country, lat, lon, household_size, languages, vulnerabilities, "
    "created_ms, updated_ms, sealed, sealed_key_id, location_precision_m, place_name, admin1, "
    "household_members, travel_document_expiry, consent, retention_until";
constexpr const char* kRegistrantPlaceholders = "?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?";

// Binds every column in kRegistrantColumns order, sealing the personal data.
void BindRegistrant(Statement& s, const Registrant& r, const RegistryKeys& keys) {
  s.Bind(1, r.id)
      .Bind(2, r.state)
      .Bind(3, r.external_ref)
      .Bind(4, r.host_country)
      .Bind(5, r.lat)
      .Bind(6, r.lon)
      .Bind(7, r.household_size)
      .Bind(8, ToJsonArray(r.languages))
      .Bind(9, ToJsonArray(r.vulnerabilities))
      .Bind(10, r.created_ms)
      .Bind(11, r.updated_ms)
      .BindBlob(12, SealPersonal(r, keys))
      .Bind(13, keys.current_id())
      .Bind(14, r.location_precision_m)
      .Bind(15, r.place_name)
      .Bind(16, r.admin1)
      .Bind(17, MembersText(r.household_members))
      .Bind(18, r.travel_document_expiry)
      .Bind(19, ConsentText(r.consent))
      .Bind(20, r.retention_until);
}

// `keys` null: personal fields stay empty (the operators' view).
Result<Registrant> ReadRegistrant(const Statement& s, const RegistryKeys* keys) {
  Registrant r;
  r.id = s.ColumnText(0);
  r.state = s.ColumnText(1);
  r.external_ref = s.ColumnText(2);
  r.host_country = s.ColumnText(3);
  r.lat = s.ColumnDouble(4);
  r.lon = s.ColumnDouble(5);
  r.household_size = static_cast<int>(s.ColumnInt(6));
  r.languages = FromJsonArray(s.ColumnText(7));
  r.vulnerabilities = FromJsonArray(s.ColumnText(8));
  r.created_ms = s.ColumnInt(9);
  r.updated_ms = s.ColumnInt(10);
  r.location_precision_m = static_cast<int>(s.ColumnInt(13));
  r.place_name = s.ColumnText(14);
  r.admin1 = s.ColumnText(15);
  r.household_members = MembersFromText(s.ColumnText(16));
  r.travel_document_expiry = s.ColumnText(17);
  r.consent = ConsentFromText(s.ColumnText(18));
  r.retention_until = s.ColumnText(19);
  if (keys != nullptr) AMPARO_RETURN_IF_ERROR(OpenPersonal(s.ColumnBlob(11), *keys, &r));
  return r;
}

// The matching-relevant fields of `r`, as rules receives them (no contact data).
void FillLocation(const Registrant& r, v1::RegistrantLocation* loc) {
  loc->set_registrant_id(r.id);
  loc->set_state(r.state);
  loc->set_host_country(r.host_country);
  loc->set_admin1(r.admin1);
  loc->set_lat(r.lat);
  loc->set_lon(r.lon);
  loc->set_household_size(static_cast<uint32_t>(r.household_size));
  loc->set_vulnerability_flags(FlagsOf(r.vulnerabilities));
}

Status EnqueueUpsert(Db& db, const Registrant& r, const Clock& clock) {
  auto seq = BumpRegistrySequence(db);
  if (!seq.ok()) return seq.status();
  v1::Envelope env = MakeEnvelope(kProducer, clock);
  v1::RegistryChange* change = env.mutable_registry_change();
  change->set_sequence(static_cast<uint64_t>(*seq));
  change->set_kind(v1::RegistryChange::KIND_UPSERT);
  FillLocation(r, change->mutable_location());
  return EnqueueOutbound(db, "rules", env);
}

Status EnqueueDelete(Db& db, std::string_view state, std::string_view id, const Clock& clock) {
  auto seq = BumpRegistrySequence(db);
  if (!seq.ok()) return seq.status();
  v1::Envelope env = MakeEnvelope(kProducer, clock);
  v1::RegistryChange* change = env.mutable_registry_change();
  change->set_sequence(static_cast<uint64_t>(*seq));
  change->set_kind(v1::RegistryChange::KIND_DELETE);
  change->mutable_location()->set_registrant_id(std::string(id));
  change->mutable_location()->set_state(std::string(state));
  return EnqueueOutbound(db, "rules", env);
}

Status Audit(Db& db, const Access& access, std::string_view state, std::string_view action,
             std::string_view subject, std::string detail, const Clock& clock) {
  AuditRecord record;
  record.actor = access.actor;
  record.state = std::string(state);
  record.action = std::string(action);
  record.subject = std::string(subject);
  record.purpose = access.purpose;
  record.detail = std::move(detail);
  auto seq = AppendAudit(db, record, clock);
  return seq.ok() ? Status::Ok() : seq.status();
}

bool MatchingFieldsDiffer(const Registrant& a, const Registrant& b) {
  return a.host_country != b.host_country || a.admin1 != b.admin1 || a.lat != b.lat || a.lon != b.lon ||
         a.household_size != b.household_size || FlagsOf(a.vulnerabilities) != FlagsOf(b.vulnerabilities);
}

Result<Registrant> SelectRegistrant(Db& db, std::string_view state, std::string_view id,
                                    const RegistryKeys* keys) {
  auto q = db.Prepare(std::string("SELECT ") + kRegistrantColumns +
                      " FROM registrants WHERE state = ? AND id = ?");
  if (!q.ok()) return q.status();
  q->Bind(1, state).Bind(2, id);
  auto row = q->Step();
  if (!row.ok()) return row.status();
  if (!*row) return NotFound("no such registrant");
  return ReadRegistrant(*q, keys);
}

}  // namespace

namespace {

// CSPRNG output for ids and nonces without a getrandom() call per draw (three
// per row cost more than the row's encryption): ChaCha20 keystream under a
// fresh 256-bit key from the OS for every 16 KiB.
class RandomPool {
 public:
  void Take(char* out, size_t n) {
    while (n > 0) {
      if (pos_ == pool_.size()) Refill();
      size_t k = std::min(n, pool_.size() - pos_);
      std::memcpy(out, pool_.data() + pos_, k);
      pos_ += k;
      out += k;
      n -= k;
    }
  }
  uint64_t Take64() {
    uint64_t v;
    Take(reinterpret_cast<char*>(&v), sizeof v);
    return v;
  }

 private:
  void Refill() {
    unsigned char seed[randombytes_SEEDBYTES];
    randombytes_buf(seed, sizeof seed);
    randombytes_buf_deterministic(pool_.data(), pool_.size(), seed);
    sodium_memzero(seed, sizeof seed);
    pos_ = 0;
  }
  std::array<unsigned char, 16384> pool_;
  size_t pos_ = pool_.size();
};

constexpr char kHexDigits[] = "0123456789abcdef";

void AppendHex(std::string& out, uint64_t value, int digits) {
  for (int shift = 4 * (digits - 1); shift >= 0; shift -= 4) out += kHexDigits[(value >> shift) & 15];
}

// 32 hex digits, like NewId(): a random 80-bit prefix per sequence and a
// 48-bit counter from a random start. Rows inserted together get adjacent
// ids, so the id-keyed indexes (primary key, by state, host and admin1) and
// the receiver's message-id index take a batch as a few runs of appends
// instead of one random B-tree page per row (at 1M registrants the random
// pattern rewrites most index pages on every batch). Ids are identifiers,
// not secrets: every read is scoped by the caller's state.
class IdSequence {
 public:
  explicit IdSequence(RandomPool& random) {
    prefix_.reserve(32);
    AppendHex(prefix_, random.Take64(), 16);
    AppendHex(prefix_, random.Take64(), 4);
    next_ = random.Take64();
  }
  void Next(std::string* out) {
    out->assign(prefix_);
    AppendHex(*out, next_++ & 0xFFFF'FFFF'FFFFull, 12);
  }

 private:
  std::string prefix_;
  uint64_t next_;
};

// JSON string literal as boost::json::serialize writes it.
void AppendJsonString(std::string& out, std::string_view s) {
  out += '"';
  for (char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          out += "\\u00";
          out += kHexDigits[(c >> 4) & 15];
          out += kHexDigits[c & 15];
        } else {
          out += c;
        }
    }
  }
  out += '"';
}

// The same text as ToJsonArray(), into a reused buffer.
void WriteJsonArray(const std::vector<std::string>& values, std::string* out) {
  out->assign("[");
  for (size_t i = 0; i < values.size(); ++i) {
    if (i) *out += ',';
    AppendJsonString(*out, values[i]);
  }
  *out += ']';
}

// The same text as ConsentText().
void WriteConsent(const Consent& c, std::string* out) {
  out->assign("{\"c\":");
  *out += c.crisis_contact ? "true" : "false";
  *out += ",\"a\":";
  *out += c.share_aggregate_with_partners ? "true" : "false";
  *out += ",\"i\":";
  *out += c.share_with_international_orgs ? "true" : "false";
  *out += ",\"r\":";
  *out += std::to_string(c.recorded_ms);
  *out += ",\"v\":";
  AppendJsonString(*out, c.notice_version);
  *out += '}';
}

// The same text as MembersText().
void WriteMembers(const std::vector<HouseholdMember>& members, std::string* out) {
  out->clear();
  for (const auto& m : members) {
    if (!out->empty()) *out += ';';
    *out += m.age_band;
    *out += ':';
    *out += m.nationality;
  }
}

// The plaintext SealPersonal() seals (OpenPersonal() reads it).
void WritePersonal(const Registrant& r, std::string* out) {
  out->assign("{\"n\":");
  AppendJsonString(*out, r.full_name);
  *out += ",\"e\":";
  AppendJsonString(*out, r.contact.email);
  *out += ",\"p\":";
  AppendJsonString(*out, r.contact.phone);
  *out += ",\"cn\":";
  AppendJsonString(*out, r.emergency_contact.name);
  *out += ",\"cp\":";
  AppendJsonString(*out, r.emergency_contact.phone);
  *out += ",\"ce\":";
  AppendJsonString(*out, r.emergency_contact.email);
  *out += '}';
}

}  // namespace

struct RegistrantSealer::Impl {
  Impl(const RegistryKeys& k, const Clock& c) : keys(&k), clock(&c) {
    nonce.resize(RegistryKeys::kSealNonceBytes);
  }
  const RegistryKeys* keys;
  const Clock* clock;
  RandomPool random;
  IdSequence ids{random};
  std::string personal, binding, nonce;
};

RegistrantSealer::RegistrantSealer(const RegistryKeys& keys, const Clock& clock)
    : impl_(std::make_unique<Impl>(keys, clock)) {}
RegistrantSealer::RegistrantSealer(RegistrantSealer&&) noexcept = default;
RegistrantSealer::~RegistrantSealer() = default;

void RegistrantSealer::Seal(Registrant registrant, SealedRegistrant* out) {
  Impl& m = *impl_;
  out->registrant = std::move(registrant);
  Registrant& r = out->registrant;
  m.ids.Next(&r.id);
  r.created_ms = r.updated_ms = m.clock->NowMs();
  WriteJsonArray(r.languages, &out->languages);
  WriteJsonArray(r.vulnerabilities, &out->vulnerabilities);
  WriteMembers(r.household_members, &out->household_members);
  WriteConsent(r.consent, &out->consent);
  WritePersonal(r, &m.personal);
  m.binding.assign(r.id).append("/").append(r.state);  // SealBinding()
  m.random.Take(m.nonce.data(), m.nonce.size());
  m.keys->SealInto(m.personal, m.binding, m.nonce, &out->sealed);
  // The plaintext buffer is reused; do not leave the last row's personal
  // data lying in it longer than needed.
  sodium_memzero(m.personal.data(), m.personal.size());
  out->key_id = m.keys->current_id();
}

void WipePersonal(Registrant* r) {
  for (std::string* s : {&r->full_name, &r->contact.email, &r->contact.phone, &r->emergency_contact.name,
                         &r->emergency_contact.phone, &r->emergency_contact.email}) {
    sodium_memzero(s->data(), s->size());
    std::string().swap(*s);
  }
}

// Changes go to rules kChangesPerMessage at a time, in one registry_changes
// envelope (registry.proto RegistryChangeBatch): one outbox row, one message
// id and one set of index entries per message instead of per registrant,
// and rules stores and acknowledges one message. A lone change (the API's
// single insert) goes as a plain registry_change. ~75 bytes a change: a
// full message is ~19 KB.
constexpr int kChangesPerMessage = 256;

// Everything a row needs is prepared or allocated once per inserter: the
// statement, the envelope (its change objects are reused from message to
// message) and the sequence counter (written back once).
struct RegistrantInserter::Impl {
  Impl(Db& d, const RegistryKeys& k, const Clock& c, Statement i, int64_t seq)
      : db(&d), clock(&c), sealer(k, c), insert(std::move(i)), first_sequence(seq), sequence(seq) {}
  // Enqueues the changes collected so far, in order.
  Status FlushChanges() {
    v1::RegistryChangeBatch* batch = envelope.mutable_registry_changes();
    if (batch->changes().empty()) return Status::Ok();
    message_ids.Next(envelope.mutable_message_id());
    envelope.set_sent_ms(clock->NowMs());
    Status st;
    if (batch->changes_size() == 1) {
      v1::Envelope single = envelope;  // the header (schema version, producer, id, time)
      *single.mutable_registry_change() = batch->changes(0);  // replaces the batch (oneof)
      st = EnqueueOutbound(*db, "rules", single);
    } else {
      st = EnqueueOutbound(*db, "rules", envelope);
    }
    // Clear() keeps the change objects (and their strings' capacity) for
    // the next message's add_changes().
    batch->mutable_changes()->Clear();
    return st;
  }
  Db* db;
  const Clock* clock;
  RegistrantSealer sealer;  // for Insert(Registrant&)
  SealedRegistrant scratch;
  Statement insert;
  const int64_t first_sequence;
  int64_t sequence;  // the last number given out
  RandomPool random;
  IdSequence message_ids{random};
  v1::Envelope envelope;  // a registry_changes message being filled
  // The retention cohorts of the rows inserted, written by Finish():
  // (date, state) -> id range. An import's rows share a handful of dates.
  std::map<std::pair<std::string, std::string>, std::pair<std::string, std::string>> cohorts;
  void Cover(const Registrant& r) {
    auto [it, added] = cohorts.try_emplace({r.retention_until, r.state}, r.id, r.id);
    if (added) return;
    if (r.id < it->second.first) it->second.first = r.id;
    if (r.id > it->second.second) it->second.second = r.id;
  }
};

RegistrantInserter::RegistrantInserter(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
RegistrantInserter::RegistrantInserter(RegistrantInserter&&) noexcept = default;
RegistrantInserter::~RegistrantInserter() = default;

Result<RegistrantInserter> RegistrantInserter::Prepare(Db& db, const RegistryKeys& keys, const Clock& clock) {
  auto ins = db.Prepare(std::string("INSERT INTO registrants(") + kRegistrantColumns + ") VALUES(" +
                        kRegistrantPlaceholders + ")");
  if (!ins.ok()) return ins.status();
  // Read once and written back by Finish(): an UPDATE ... RETURNING per
  // row cost a statement execution and a B-tree write per row.
  auto sequence = RegistrySequence(db);
  if (!sequence.ok()) return sequence.status();
  auto impl = std::make_unique<Impl>(db, keys, clock, std::move(ins).value(), *sequence);
  impl->envelope = MakeEnvelope(kProducer, clock);
  impl->envelope.mutable_registry_changes();
  return RegistrantInserter(std::move(impl));
}

Status RegistrantInserter::Insert(Registrant& r) {
  Impl& m = *impl_;
  m.sealer.Seal(std::move(r), &m.scratch);
  Status st = Insert(m.scratch);
  r = std::move(m.scratch.registrant);
  return st;
}

Status RegistrantInserter::Insert(SealedRegistrant& row) {
  Impl& m = *impl_;
  const Registrant& r = row.registrant;
  // BindRef: every value lives in `row` until Run() (which clears the
  // bindings), so SQLite need not copy ~500 bytes per row.
  m.insert.BindRef(1, r.id)
      .BindRef(2, r.state)
      .BindRef(3, r.external_ref)
      .BindRef(4, r.host_country)
      .Bind(5, r.lat)
      .Bind(6, r.lon)
      .Bind(7, r.household_size)
      .BindRef(8, row.languages)
      .BindRef(9, row.vulnerabilities)
      .Bind(10, r.created_ms)
      .Bind(11, r.updated_ms)
      .BindBlobRef(12, row.sealed)
      .BindRef(13, row.key_id)
      .Bind(14, r.location_precision_m)
      .BindRef(15, r.place_name)
      .BindRef(16, r.admin1)
      .BindRef(17, row.household_members)
      .BindRef(18, r.travel_document_expiry)
      .BindRef(19, row.consent)
      .BindRef(20, r.retention_until);
  if (Status st = m.insert.Run(); !st.ok()) {
    // The only constraint a validated row can break is UNIQUE(state, external_ref).
    if (st.code() == StatusCode::kAlreadyExists) {
      return Status(StatusCode::kAlreadyExists, "a registrant with this external_ref exists", "external_ref");
    }
    return st;
  }
  m.Cover(r);
  // EnqueueUpsert(), batched: the change joins the message being filled.
  v1::RegistryChange* change = m.envelope.mutable_registry_changes()->add_changes();
  change->set_sequence(static_cast<uint64_t>(++m.sequence));
  change->set_kind(v1::RegistryChange::KIND_UPSERT);
  FillLocation(r, change->mutable_location());
  if (m.envelope.registry_changes().changes_size() == kChangesPerMessage) return m.FlushChanges();
  return Status::Ok();
}

Status RegistrantInserter::Finish() {
  Impl& m = *impl_;
  AMPARO_RETURN_IF_ERROR(m.FlushChanges());
  for (const auto& [key, range] : m.cohorts) {
    AMPARO_RETURN_IF_ERROR(AddRetentionCohort(*m.db, key.first, key.second, range.first, range.second));
  }
  m.cohorts.clear();
  if (m.sequence == m.first_sequence) return Status::Ok();
  auto update = m.db->Prepare("UPDATE registry_sequence SET value = ? WHERE id = 1");
  if (!update.ok()) return update.status();
  update->Bind(1, m.sequence);
  AMPARO_RETURN_IF_ERROR(update->Run());
  if (m.db->Changes() != 1) return Status(StatusCode::kDataLoss, "registry_sequence row is missing");
  return Status::Ok();
}

Result<Registrant> InsertRegistrant(Db& db, Registrant r, const RegistryKeys& keys, const Access& access,
                                    const Clock& clock) {
  auto tx = Transaction::Begin(db);
  if (!tx.ok()) return tx.status();
  auto inserter = RegistrantInserter::Prepare(db, keys, clock);
  if (!inserter.ok()) return inserter.status();
  AMPARO_RETURN_IF_ERROR(inserter->Insert(r));
  AMPARO_RETURN_IF_ERROR(inserter->Finish());
  AMPARO_RETURN_IF_ERROR(Audit(db, access, r.state, "registrant.create", r.id, "", clock));
  AMPARO_RETURN_IF_ERROR(tx->Commit());
  return r;
}

Result<Registrant> GetRegistrant(Db& db, std::string_view state, std::string_view id,
                                 const RegistryKeys* keys, const Access& access, const Clock& clock) {
  auto tx = Transaction::Begin(db);
  if (!tx.ok()) return tx.status();
  auto r = SelectRegistrant(db, state, id, keys);
  if (!r.ok()) return r.status();
  AMPARO_RETURN_IF_ERROR(Audit(db, access, state, "registrant.read", id,
                               keys != nullptr ? "with personal data" : "without personal data", clock));
  AMPARO_RETURN_IF_ERROR(tx->Commit());
  return r;
}

Result<RegistrantPage> ListRegistrants(Db& db, std::string_view state, const RegistrantFilter& filter,
                                       std::string_view cursor, int limit, const RegistryKeys* keys,
                                       const Access& access, const Clock& clock) {
  if (limit < 1 || limit > 1000) return InvalidArgument("must be between 1 and 1000", "limit");
  int64_t flag = 0;
  if (!filter.vulnerability.empty()) {
    auto bit = VulnerabilityBit(filter.vulnerability);
    if (!bit.ok()) return InvalidArgument("unknown vulnerability '" + filter.vulnerability + "'", "flag");
    flag = *bit;
  }
  auto tx = Transaction::Begin(db);
  if (!tx.ok()) return tx.status();
  // One row more than asked tells whether another page exists.
  auto q = db.Prepare(std::string("SELECT ") + kRegistrantColumns +
                      " FROM registrants WHERE state = ?1 AND (?2 = '' OR host_country = ?2) "
                      "AND (?3 = '' OR admin1 = ?3) "
                      "AND (?4 = '' OR EXISTS (SELECT 1 FROM json_each(registrants.vulnerabilities) "
                      "WHERE json_each.value = ?4)) AND id > ?5 ORDER BY id LIMIT ?6");
  if (!q.ok()) return q.status();
  // std::string, never a default string_view: a null data pointer would
  // bind SQL NULL, and "?2 = ''" would then match nothing.
  q->Bind(1, std::string(state))
      .Bind(2, filter.host_country)
      .Bind(3, filter.admin1)
      .Bind(4, flag != 0 ? filter.vulnerability : std::string())
      .Bind(5, std::string(cursor))
      .Bind(6, limit + 1);
  RegistrantPage page;
  while (true) {
    auto row = q->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    if (static_cast<int>(page.items.size()) == limit) {
      page.next_cursor = page.items.back().id;
      break;
    }
    auto r = ReadRegistrant(*q, keys);
    if (!r.ok()) return r.status();
    page.items.push_back(std::move(r).value());
  }
  if (!page.items.empty()) {
    AMPARO_RETURN_IF_ERROR(Audit(db, access, state, "registrant.list", "*",
                                 std::to_string(page.items.size()) + " rows" +
                                     (keys != nullptr ? " with personal data" : " without personal data"),
                                 clock));
  }
  AMPARO_RETURN_IF_ERROR(tx->Commit());
  return page;
}

Result<Registrant> UpdateRegistrant(Db& db, std::string_view state, std::string_view id,
                                    const RegistrantUpdate& apply, const RegistryKeys& keys,
                                    const Access& access, const Clock& clock) {
  auto tx = Transaction::Begin(db);
  if (!tx.ok()) return tx.status();
  auto current = SelectRegistrant(db, state, id, &keys);
  if (!current.ok()) return current.status();
  auto next = apply(*current);
  if (!next.ok()) return next.status();
  Registrant r = std::move(next).value();
  r.id = current->id;
  r.state = current->state;
  r.created_ms = current->created_ms;
  r.updated_ms = clock.NowMs();
  auto upd = db.Prepare(std::string("REPLACE INTO registrants(") + kRegistrantColumns + ") VALUES(" +
                        kRegistrantPlaceholders + ")");
  if (!upd.ok()) return upd.status();
  BindRegistrant(*upd, r, keys);
  // REPLACE would silently drop another row holding the new external_ref:
  // check first.
  if (r.external_ref != current->external_ref) {
    auto dup = db.Prepare("SELECT 1 FROM registrants WHERE state = ? AND external_ref = ?");
    if (!dup.ok()) return dup.status();
    dup->Bind(1, r.state).Bind(2, r.external_ref);
    auto exists = dup->Step();
    if (!exists.ok()) return exists.status();
    if (*exists) {
      return Status(StatusCode::kAlreadyExists, "a registrant with this external_ref exists", "external_ref");
    }
  }
  AMPARO_RETURN_IF_ERROR(upd->Run());
  if (r.retention_until != current->retention_until) {
    AMPARO_RETURN_IF_ERROR(AddRetentionCohort(db, r.retention_until, r.state, r.id, r.id));
  }
  if (MatchingFieldsDiffer(*current, r)) AMPARO_RETURN_IF_ERROR(EnqueueUpsert(db, r, clock));
  AMPARO_RETURN_IF_ERROR(Audit(db, access, state, "registrant.update", id, "", clock));
  AMPARO_RETURN_IF_ERROR(tx->Commit());
  return r;
}

Status DeleteRegistrant(Db& db, std::string_view state, std::string_view id, const Access& access,
                        const Clock& clock) {
  auto tx = Transaction::Begin(db);
  if (!tx.ok()) return tx.status();
  auto del = db.Prepare("DELETE FROM registrants WHERE state = ? AND id = ?");
  if (!del.ok()) return del.status();
  del->Bind(1, state).Bind(2, id);
  AMPARO_RETURN_IF_ERROR(del->Run());
  if (db.Changes() == 0) return NotFound("no such registrant");
  AMPARO_RETURN_IF_ERROR(EnqueueDelete(db, state, id, clock));
  AMPARO_RETURN_IF_ERROR(Audit(db, access, state, "registrant.delete", id, "", clock));
  return tx->Commit();
}

Result<int64_t> ForEachRegistrant(Db& db, std::string_view state, const RegistryKeys& keys,
                                  const Access& access, std::string_view detail, const Clock& clock,
                                  const std::function<Status(const Registrant&)>& visit) {
  auto tx = Transaction::Begin(db);
  if (!tx.ok()) return tx.status();
  auto q = db.Prepare(std::string("SELECT ") + kRegistrantColumns +
                      " FROM registrants WHERE state = ? ORDER BY id");
  if (!q.ok()) return q.status();
  q->Bind(1, state);
  int64_t rows = 0;
  while (true) {
    auto row = q->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    auto r = ReadRegistrant(*q, &keys);
    if (!r.ok()) return r.status();
    AMPARO_RETURN_IF_ERROR(visit(*r));
    ++rows;
  }
  AMPARO_RETURN_IF_ERROR(Audit(db, access, state, "registrant.export", "*",
                               std::to_string(rows) + " rows " + std::string(detail), clock));
  AMPARO_RETURN_IF_ERROR(tx->Commit());
  return rows;
}

Result<int64_t> PurgeExpiredRegistrants(Db& db, const Clock& clock, int batch) {
  const std::string today = FormatIsoDate(DayOfMs(clock.NowMs()));
  const Access retention{"system:retention", "retention"};
  int64_t purged = 0;
  // One transaction per step: up to `batch` rows of the earliest cohort
  // that is due; then the cohort is dropped (all its rows looked at) or
  // remembers how far the purge got.
  while (true) {
    auto tx = Transaction::Begin(db);
    if (!tx.ok()) return tx.status();
    auto cohort = db.Prepare(
        "SELECT retention_until, state, first_id, last_id, after_id FROM retention_cohorts "
        "WHERE retention_until < ? ORDER BY retention_until LIMIT 1");
    if (!cohort.ok()) return cohort.status();
    cohort->Bind(1, today);
    auto found = cohort->Step();
    if (!found.ok()) return found.status();
    if (!*found) break;
    const std::string until = cohort->ColumnText(0), state = cohort->ColumnText(1), first = cohort->ColumnText(2),
                      last = cohort->ColumnText(3), after = cohort->ColumnText(4);
    cohort->Reset();

    auto q = db.Prepare(
        "SELECT id, retention_until FROM registrants WHERE state = ? AND id >= ? AND id > ? AND id <= ? "
        "ORDER BY id LIMIT ?");
    if (!q.ok()) return q.status();
    q->Bind(1, state).Bind(2, first).Bind(3, after).Bind(4, last).Bind(5, batch);
    std::vector<std::array<std::string, 2>> due;  // id, its retention_until
    std::string last_seen;
    int seen = 0;
    while (true) {
      auto row = q->Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      ++seen;
      last_seen = q->ColumnText(0);
      std::string row_until = q->ColumnText(1);
      if (row_until < today) due.push_back({last_seen, std::move(row_until)});
    }
    q->Reset();
    auto del = db.Prepare("DELETE FROM registrants WHERE state = ? AND id = ?");
    if (!del.ok()) return del.status();
    for (const auto& [id, row_until] : due) {
      del->Bind(1, state).Bind(2, id);
      AMPARO_RETURN_IF_ERROR(del->Run());
      AMPARO_RETURN_IF_ERROR(EnqueueDelete(db, state, id, clock));
      AMPARO_RETURN_IF_ERROR(
          Audit(db, retention, state, "registrant.purge", id, "retention_until " + row_until, clock));
    }
    const bool finished = seen < batch;
    auto step = db.Prepare(finished ? "DELETE FROM retention_cohorts WHERE retention_until = ?1 AND state = ?2 "
                                      "AND first_id = ?3 AND last_id = ?4"
                                    : "UPDATE retention_cohorts SET after_id = ?5 WHERE retention_until = ?1 "
                                      "AND state = ?2 AND first_id = ?3 AND last_id = ?4");
    if (!step.ok()) return step.status();
    step->Bind(1, until).Bind(2, state).Bind(3, first).Bind(4, last);
    if (!finished) step->Bind(5, last_seen);
    AMPARO_RETURN_IF_ERROR(step->Run());
    AMPARO_RETURN_IF_ERROR(tx->Commit());
    purged += static_cast<int64_t>(due.size());
  }
  return purged;
}

Result<int64_t> ReencryptRegistry(Db& db, const RegistryKeys& keys) {
  constexpr int kBatch = 1000;
  int64_t done = 0;
  // Keyset walk in primary-key order: each transaction resumes after the
  // last row it looked at, so the whole table is read once.
  std::string after_state, after_id;
  while (true) {
    auto tx = Transaction::Begin(db);
    if (!tx.ok()) return tx.status();
    auto q = db.Prepare(std::string("SELECT ") + kRegistrantColumns +
                        " FROM registrants WHERE (state, id) > (?1, ?2) ORDER BY state, id LIMIT ?3");
    if (!q.ok()) return q.status();
    q->Bind(1, after_state).Bind(2, after_id).Bind(3, kBatch);
    std::vector<Registrant> rows;
    int scanned = 0;
    while (true) {
      auto row = q->Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      ++scanned;
      after_state = q->ColumnText(1);
      after_id = q->ColumnText(0);
      if (q->ColumnIsNull(11) || q->ColumnText(12) == keys.current_id()) continue;
      auto r = ReadRegistrant(*q, &keys);
      if (!r.ok()) return r.status();
      rows.push_back(std::move(r).value());
    }
    if (scanned == 0) break;
    auto upd = db.Prepare("UPDATE registrants SET sealed = ?, sealed_key_id = ? WHERE state = ? AND id = ?");
    if (!upd.ok()) return upd.status();
    for (const auto& r : rows) {
      upd->BindBlob(1, SealPersonal(r, keys)).Bind(2, keys.current_id()).Bind(3, r.state).Bind(4, r.id);
      AMPARO_RETURN_IF_ERROR(upd->Run());
    }
    AMPARO_RETURN_IF_ERROR(tx->Commit());
    done += static_cast<int64_t>(rows.size());
  }
  return done;
}

Result<std::vector<std::pair<std::string, int64_t>>> RegistryKeyUsage(Db& db) {
  auto q = db.Prepare(
      "SELECT sealed_key_id, count(*) FROM registrants WHERE sealed IS NOT NULL GROUP BY sealed_key_id "
      "ORDER BY sealed_key_id");
  if (!q.ok()) return q.status();
  std::vector<std::pair<std::string, int64_t>> out;
  while (true) {
    auto row = q->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    out.emplace_back(q->ColumnText(0), q->ColumnInt(1));
  }
  return out;
}

Result<int64_t> CountRegistrants(Db& db) {
  auto q = db.Prepare("SELECT count(*) FROM registrants");
  if (!q.ok()) return q.status();
  auto row = q->Step();
  if (!row.ok()) return row.status();
  return q->ColumnInt(0);
}

Result<int64_t> RegistrySequence(Db& db) {
  auto q = db.Prepare("SELECT value FROM registry_sequence WHERE id = 1");
  if (!q.ok()) return q.status();
  auto row = q->Step();
  if (!row.ok()) return row.status();
  if (!*row) return Status(StatusCode::kDataLoss, "registry_sequence row is missing");
  return q->ColumnInt(0);
}

// ----------------------------------------------------------- subscriptions

Result<SubscriptionRecord> CreateSubscription(Db& db, SubscriptionRecord s, const Clock& clock) {
  s.id = NewId();
  s.secret = "whsec_" + Base64Encode(RandomBytes(24));
  s.created_ms = clock.NowMs();
  auto tx = Transaction::Begin(db);
  if (!tx.ok()) return tx.status();
  auto ins = db.Prepare(std::string("INSERT INTO subscriptions(") + kSubscriptionColumns +
                        ") VALUES(?,?,?,?,?,?,?)");
  if (!ins.ok()) return ins.status();
  ins->Bind(1, s.id)
      .Bind(2, s.state)
      .Bind(3, s.url)
      .Bind(4, s.secret)
      .Bind(5, ToJsonArray(s.host_countries))
      .Bind(6, s.description)
      .Bind(7, s.created_ms);
  AMPARO_RETURN_IF_ERROR(ins->Run());
  v1::Envelope env = MakeEnvelope(kProducer, clock);
  FillSubscriptionMessage(s, /*deleted=*/false, env.mutable_subscription());
  AMPARO_RETURN_IF_ERROR(EnqueueOutbound(db, "notify", env));
  AMPARO_RETURN_IF_ERROR(tx->Commit());
  return s;
}

Result<std::vector<SubscriptionRecord>> ListSubscriptions(Db& db, std::string_view state) {
  auto q = db.Prepare(std::string("SELECT ") + kSubscriptionColumns +
                      " FROM subscriptions WHERE state = ? AND deleted = 0 ORDER BY created_ms, id");
  if (!q.ok()) return q.status();
  q->Bind(1, state);
  std::vector<SubscriptionRecord> out;
  while (true) {
    auto row = q->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    out.push_back(ReadSubscription(*q));
  }
  return out;
}

Result<SubscriptionRecord> GetSubscription(Db& db, std::string_view state, std::string_view id) {
  auto q = db.Prepare(std::string("SELECT ") + kSubscriptionColumns +
                      " FROM subscriptions WHERE state = ? AND id = ? AND deleted = 0");
  if (!q.ok()) return q.status();
  q->Bind(1, state).Bind(2, id);
  auto row = q->Step();
  if (!row.ok()) return row.status();
  if (!*row) return NotFound("no such subscription");
  return ReadSubscription(*q);
}

Status DeleteSubscription(Db& db, std::string_view state, std::string_view id, const Clock& clock) {
  auto tx = Transaction::Begin(db);
  if (!tx.ok()) return tx.status();
  auto existing = GetSubscription(db, state, id);
  if (!existing.ok()) return existing.status();
  auto upd = db.Prepare("UPDATE subscriptions SET deleted = 1 WHERE state = ? AND id = ?");
  if (!upd.ok()) return upd.status();
  upd->Bind(1, state).Bind(2, id);
  AMPARO_RETURN_IF_ERROR(upd->Run());
  v1::Envelope env = MakeEnvelope(kProducer, clock);
  FillSubscriptionMessage(*existing, /*deleted=*/true, env.mutable_subscription());
  // notify only needs to know which subscription stops; the secret stays home.
  env.mutable_subscription()->clear_secret();
  AMPARO_RETURN_IF_ERROR(EnqueueOutbound(db, "notify", env));
  return tx->Commit();
}

// ------------------------------------------------------ alerts, deliveries

Result<bool> UpsertAlert(Db& db, const v1::ConsularAlert& alert, const Clock& clock) {
  if (alert.alert_id().empty()) return InvalidArgument("consular_alert without alert_id", "alert_id");
  if (!IsIso3(alert.state())) return InvalidArgument("consular_alert with malformed state", "state");
  // A repeat (same revision, higher notification) replaces the row too, so
  // the alert shows its latest notification number and silence.
  auto stmt = db.Prepare(
      "INSERT INTO alerts(alert_id, state, incident_id, revision, json, updated_ms, notification, "
      "silence_id, alert) VALUES(?,?,?,?,'',?,?,?,?) "
      "ON CONFLICT(alert_id) DO UPDATE SET state = excluded.state, incident_id = excluded.incident_id, "
      "revision = excluded.revision, json = excluded.json, updated_ms = excluded.updated_ms, "
      "notification = excluded.notification, silence_id = excluded.silence_id, alert = excluded.alert "
      "WHERE (excluded.revision, excluded.notification) > (alerts.revision, alerts.notification)");
  if (!stmt.ok()) return stmt.status();
  stmt->Bind(1, alert.alert_id())
      .Bind(2, alert.state())
      .Bind(3, alert.incident_id())
      .Bind(4, static_cast<int64_t>(alert.revision()))
      .Bind(5, clock.NowMs())
      .Bind(6, static_cast<int64_t>(alert.notification()))
      .Bind(7, alert.silenced() ? alert.silence_id() : std::string())
      .BindBlob(8, alert.SerializeAsString());
  AMPARO_RETURN_IF_ERROR(stmt->Run());
  return db.Changes() > 0;
}

Status UpsertDelivery(Db& db, const v1::DeliveryStatus& d) {
  if (d.delivery_id().empty()) return InvalidArgument("delivery_status without delivery_id", "delivery_id");
  std::string state = StateOfAlertId(d.alert_id());
  if (!IsIso3(state)) return InvalidArgument("delivery_status with malformed alert_id", "alert_id");
  auto stmt = db.Prepare(
      "INSERT INTO deliveries(delivery_id, alert_id, state, status, attempts, last_error, updated_ms) "
      "VALUES(?,?,?,?,?,?,?) ON CONFLICT(delivery_id) DO UPDATE SET status = excluded.status, "
      "attempts = excluded.attempts, last_error = excluded.last_error, updated_ms = excluded.updated_ms "
      "WHERE (excluded.updated_ms, excluded.attempts) > (deliveries.updated_ms, deliveries.attempts)");
  if (!stmt.ok()) return stmt.status();
  stmt->Bind(1, d.delivery_id())
      .Bind(2, d.alert_id())
      .Bind(3, state)
      .Bind(4, DeliveryStateName(d.state()))
      .Bind(5, static_cast<int64_t>(d.attempts()))
      .Bind(6, d.last_error())
      .Bind(7, d.updated_ms());
  return stmt->Run();
}

Result<std::vector<StoredAlert>> ListAlerts(Db& db, std::string_view state, int limit) {
  if (limit < 1 || limit > 1000) return InvalidArgument("must be between 1 and 1000", "limit");
  auto q = db.Prepare(std::string("SELECT ") + kAlertColumns +
                      " FROM alerts WHERE state = ? ORDER BY updated_ms DESC, rowid DESC LIMIT ?");
  if (!q.ok()) return q.status();
  q->Bind(1, state).Bind(2, limit);
  return ReadAlerts(db, *q);
}

Result<StoredAlert> GetAlert(Db& db, std::string_view state, std::string_view alert_id) {
  auto q =
      db.Prepare(std::string("SELECT ") + kAlertColumns + " FROM alerts WHERE state = ? AND alert_id = ?");
  if (!q.ok()) return q.status();
  q->Bind(1, state).Bind(2, alert_id);
  auto alerts = ReadAlerts(db, *q);
  if (!alerts.ok()) return alerts.status();
  if (alerts->empty()) return NotFound("no such alert");
  return std::move(alerts->front());
}

Result<StoredAlert> StoredAlertOfMessage(Db& db, const v1::ConsularAlert& alert) {
  StoredAlert a;
  a.alert_id = alert.alert_id();
  a.state = alert.state();
  // Only the row's small columns: its blob is `alert` itself.
  auto q = db.Prepare(
      "SELECT incident_id, revision, updated_ms, notification FROM alerts WHERE state = ? AND alert_id = ?");
  if (!q.ok()) return q.status();
  q->Bind(1, a.state).Bind(2, a.alert_id);
  auto row = q->Step();
  if (!row.ok()) return row.status();
  if (!*row) return NotFound("no such alert");
  a.incident_id = q->ColumnText(0);
  a.revision = static_cast<int>(q->ColumnInt(1));
  a.updated_ms = q->ColumnInt(2);
  if (a.incident_id != alert.incident_id() || a.revision != static_cast<int>(alert.revision()) ||
      q->ColumnInt(3) != static_cast<int64_t>(alert.notification())) {
    return Status(StatusCode::kFailedPrecondition,
                  "alert " + a.alert_id + " is stored at another (revision, notification) than the message");
  }
  q->Reset();
  a.json = AlertToJson(alert);
  AMPARO_RETURN_IF_ERROR(LoadDeliveries(db, &a));
  AMPARO_RETURN_IF_ERROR(LoadSilence(db, &a));
  return a;
}

Result<std::vector<Incident>> ListIncidents(Db& db, std::string_view state, int limit) {
  if (limit < 1 || limit > 1000) return InvalidArgument("must be between 1 and 1000", "limit");
  auto ids = db.Prepare(
      "SELECT incident_id FROM alerts WHERE state = ? GROUP BY incident_id "
      "ORDER BY max(updated_ms) DESC, max(rowid) DESC LIMIT ?");
  if (!ids.ok()) return ids.status();
  ids->Bind(1, state).Bind(2, limit);
  std::vector<Incident> out;
  while (true) {
    auto row = ids->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    out.push_back({ids->ColumnText(0), {}});
  }
  auto q =
      db.Prepare(std::string("SELECT ") + kAlertColumns +
                 " FROM alerts WHERE state = ? AND incident_id = ? ORDER BY updated_ms DESC, rowid DESC");
  if (!q.ok()) return q.status();
  for (auto& incident : out) {
    q->Reset();
    q->Bind(1, state).Bind(2, incident.incident_id);
    auto alerts = ReadAlerts(db, *q);
    if (!alerts.ok()) return alerts.status();
    incident.alerts = std::move(alerts).value();
  }
  return out;
}

}  // namespace amparo::gateway
