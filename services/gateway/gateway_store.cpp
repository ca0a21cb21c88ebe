#include "services/gateway/gateway_store.h"

#include <boost/json.hpp>

#include "amparo/v1/envelope.pb.h"
#include "common/alert_json.h"
#include "common/crypto.h"
#include "common/link.h"

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
  };
  return kMigrations;
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

uint32_t FlagsOf(const std::vector<std::string>& names) {
  uint32_t flags = 0;
  for (const auto& n : names) {
    auto bit = VulnerabilityBit(n);
    if (bit.ok()) flags |= *bit;
  }
  return flags;
}

constexpr const char* kRegistrantColumns =
    "id, state, external_ref, host_country, lat, lon, household_size, languages, vulnerabilities, "
    "created_ms, updated_ms";

Registrant ReadRegistrant(const Statement& s) {
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
  return r;
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

constexpr const char* kAlertColumns = "alert_id, incident_id, state, revision, json, updated_ms";

StoredAlert ReadAlert(const Statement& s) {
  StoredAlert a;
  a.alert_id = s.ColumnText(0);
  a.incident_id = s.ColumnText(1);
  a.state = s.ColumnText(2);
  a.revision = static_cast<int>(s.ColumnInt(3));
  a.json = s.ColumnText(4);
  a.updated_ms = s.ColumnInt(5);
  return a;
}

// Runs `q` (already bound) and reads every row as an alert with its deliveries.
Result<std::vector<StoredAlert>> ReadAlerts(Db& db, Statement& q) {
  std::vector<StoredAlert> out;
  while (true) {
    auto row = q.Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    out.push_back(ReadAlert(q));
  }
  for (auto& a : out) AMPARO_RETURN_IF_ERROR(LoadDeliveries(db, &a));
  return out;
}

}  // namespace

Status MigrateGatewayDb(Db& db) {
  AMPARO_RETURN_IF_ERROR(InitLinkTables(db));
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

Result<Registrant> InsertRegistrant(Db& db, Registrant r, const Clock& clock) {
  r.id = NewId();
  r.created_ms = r.updated_ms = clock.NowMs();
  auto tx = Transaction::Begin(db);
  if (!tx.ok()) return tx.status();

  auto dup = db.Prepare("SELECT 1 FROM registrants WHERE state = ? AND external_ref = ?");
  if (!dup.ok()) return dup.status();
  dup->Bind(1, r.state).Bind(2, r.external_ref);
  auto exists = dup->Step();
  if (!exists.ok()) return exists.status();
  if (*exists) {
    return Status(StatusCode::kAlreadyExists, "a registrant with this external_ref exists", "external_ref");
  }

  auto ins = db.Prepare(std::string("INSERT INTO registrants(") + kRegistrantColumns +
                        ") VALUES(?,?,?,?,?,?,?,?,?,?,?)");
  if (!ins.ok()) return ins.status();
  ins->Bind(1, r.id)
      .Bind(2, r.state)
      .Bind(3, r.external_ref)
      .Bind(4, r.host_country)
      .Bind(5, r.lat)
      .Bind(6, r.lon)
      .Bind(7, r.household_size)
      .Bind(8, ToJsonArray(r.languages))
      .Bind(9, ToJsonArray(r.vulnerabilities))
      .Bind(10, r.created_ms)
      .Bind(11, r.updated_ms);
  AMPARO_RETURN_IF_ERROR(ins->Run());

  auto seq = BumpRegistrySequence(db);
  if (!seq.ok()) return seq.status();
  v1::Envelope env = MakeEnvelope(kProducer, clock);
  v1::RegistryChange* change = env.mutable_registry_change();
  change->set_sequence(static_cast<uint64_t>(*seq));
  change->set_kind(v1::RegistryChange::KIND_UPSERT);
  v1::RegistrantLocation* loc = change->mutable_location();
  loc->set_registrant_id(r.id);
  loc->set_state(r.state);
  loc->set_host_country(r.host_country);
  loc->set_lat(r.lat);
  loc->set_lon(r.lon);
  loc->set_household_size(static_cast<uint32_t>(r.household_size));
  loc->set_vulnerability_flags(FlagsOf(r.vulnerabilities));
  AMPARO_RETURN_IF_ERROR(EnqueueOutbound(db, "rules", env));
  AMPARO_RETURN_IF_ERROR(tx->Commit());
  return r;
}

Result<Registrant> GetRegistrant(Db& db, std::string_view state, std::string_view id) {
  auto q = db.Prepare(std::string("SELECT ") + kRegistrantColumns +
                      " FROM registrants WHERE state = ? AND id = ?");
  if (!q.ok()) return q.status();
  q->Bind(1, state).Bind(2, id);
  auto row = q->Step();
  if (!row.ok()) return row.status();
  if (!*row) return NotFound("no such registrant");
  return ReadRegistrant(*q);
}

Result<RegistrantPage> ListRegistrants(Db& db, std::string_view state, std::string_view host_country,
                                       std::string_view cursor, int limit) {
  if (limit < 1 || limit > 1000) return InvalidArgument("must be between 1 and 1000", "limit");
  // One row more than asked tells whether another page exists.
  auto q = db.Prepare(std::string("SELECT ") + kRegistrantColumns +
                      " FROM registrants WHERE state = ?1 AND (?2 = '' OR host_country = ?2) AND id > ?3 "
                      "ORDER BY id LIMIT ?4");
  if (!q.ok()) return q.status();
  q->Bind(1, state).Bind(2, host_country).Bind(3, cursor).Bind(4, limit + 1);
  RegistrantPage page;
  while (true) {
    auto row = q->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    if (static_cast<int>(page.items.size()) == limit) {
      page.next_cursor = page.items.back().id;
      break;
    }
    page.items.push_back(ReadRegistrant(*q));
  }
  return page;
}

Status DeleteRegistrant(Db& db, std::string_view state, std::string_view id, const Clock& clock) {
  auto tx = Transaction::Begin(db);
  if (!tx.ok()) return tx.status();
  auto del = db.Prepare("DELETE FROM registrants WHERE state = ? AND id = ?");
  if (!del.ok()) return del.status();
  del->Bind(1, state).Bind(2, id);
  AMPARO_RETURN_IF_ERROR(del->Run());
  if (db.Changes() == 0) return NotFound("no such registrant");
  auto seq = BumpRegistrySequence(db);
  if (!seq.ok()) return seq.status();
  v1::Envelope env = MakeEnvelope(kProducer, clock);
  v1::RegistryChange* change = env.mutable_registry_change();
  change->set_sequence(static_cast<uint64_t>(*seq));
  change->set_kind(v1::RegistryChange::KIND_DELETE);
  change->mutable_location()->set_registrant_id(std::string(id));
  change->mutable_location()->set_state(std::string(state));
  AMPARO_RETURN_IF_ERROR(EnqueueOutbound(db, "rules", env));
  return tx->Commit();
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
  auto stmt = db.Prepare(
      "INSERT INTO alerts(alert_id, state, incident_id, revision, json, updated_ms) VALUES(?,?,?,?,?,?) "
      "ON CONFLICT(alert_id) DO UPDATE SET state = excluded.state, incident_id = excluded.incident_id, "
      "revision = excluded.revision, json = excluded.json, updated_ms = excluded.updated_ms "
      "WHERE excluded.revision > alerts.revision");
  if (!stmt.ok()) return stmt.status();
  stmt->Bind(1, alert.alert_id())
      .Bind(2, alert.state())
      .Bind(3, alert.incident_id())
      .Bind(4, static_cast<int64_t>(alert.revision()))
      .Bind(5, AlertToJson(alert))
      .Bind(6, clock.NowMs());
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
