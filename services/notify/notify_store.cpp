#include "services/notify/notify_store.h"

#include <utility>

#include "common/crypto.h"
#include "services/notify/router.h"

namespace amparo::notify {
namespace {

// Append only: never edit a migration that has shipped (common/db.h).
const std::vector<std::string>& Migrations() {
  static const std::vector<std::string> kMigrations = {
      R"sql(
        CREATE TABLE subscriptions(
          subscription_id TEXT PRIMARY KEY,
          state TEXT NOT NULL,
          url TEXT NOT NULL,
          secret TEXT NOT NULL,
          description TEXT NOT NULL,
          deleted INTEGER NOT NULL,
          updated_ms INTEGER NOT NULL);
        CREATE INDEX subscriptions_live_by_state ON subscriptions(state) WHERE deleted = 0;
        -- No rows for a subscription = every host country.
        CREATE TABLE subscription_hosts(
          subscription_id TEXT NOT NULL,
          host_country TEXT NOT NULL,
          PRIMARY KEY(subscription_id, host_country)) WITHOUT ROWID;
        CREATE TABLE alerts(
          alert_id TEXT PRIMARY KEY,
          revision INTEGER NOT NULL,
          alert BLOB NOT NULL,
          updated_ms INTEGER NOT NULL);
        CREATE TABLE deliveries(
          delivery_id TEXT PRIMARY KEY,
          alert_id TEXT NOT NULL,
          alert_revision INTEGER NOT NULL,
          subscription_id TEXT NOT NULL,
          event_type TEXT NOT NULL,
          body TEXT NOT NULL,
          state TEXT NOT NULL CHECK(state IN ('pending', 'delivered', 'retrying', 'dead')),
          attempts INTEGER NOT NULL,
          next_attempt_ms INTEGER NOT NULL,
          last_error TEXT NOT NULL,
          created_ms INTEGER NOT NULL,
          updated_ms INTEGER NOT NULL);
        CREATE INDEX deliveries_due ON deliveries(next_attempt_ms) WHERE state IN ('pending', 'retrying');
        CREATE INDEX deliveries_by_subscription ON deliveries(subscription_id, state);
      )sql",
      // Issue 5: repeats of a revision (ConsularAlert.notification).
      R"sql(
        ALTER TABLE alerts ADD COLUMN notification INTEGER NOT NULL DEFAULT 0;
      )sql",
      // Issue 5: webhook bodies (up to ~36 KB with 1,000 registrant ids) in a
      // table of their own, written once. In the deliveries row every state
      // change (pending -> delivered, each retry) rewrote the body with it.
      // Rows from before keep their body in deliveries.body ('' for new rows).
      R"sql(
        CREATE TABLE delivery_bodies(
          delivery_id TEXT PRIMARY KEY,
          body TEXT NOT NULL);
      )sql",
      // Issue 5: notify keeps only what decides freshness. The whole alert
      // (~9 KB with 1,000 registrant ids) was stored again per revision and
      // read by nothing: the webhook bodies are in delivery_bodies and the
      // gateway gets the alert through the outbox.
      R"sql(
        ALTER TABLE alerts DROP COLUMN alert;
      )sql",
      // Issue 5: a new delivery keeps the alert it carries (protobuf, ids
      // packed: ~8.6 KB) instead of its body (JSON, ids in hex: ~19 KB);
      // every read renders the body from it (BuildWebhookBody with the
      // delivery's created_ms), the same bytes each time. body is then ''.
      // Rows from before keep their body text and a NULL alert.
      R"sql(
        ALTER TABLE delivery_bodies ADD COLUMN alert BLOB;
      )sql",
      // Issue 5: the index serves one question, the open deliveries of a
      // subscription being deleted (KillOpenDeliveries). Over every
      // delivery and its state, each pending -> delivered moved an entry and
      // the index grew with the history (~10% of what notify wrote in
      // bench-pipeline); over the open ones only, a delivered webhook
      // removes its entry and the index stays as small as the queue.
      R"sql(
        DROP INDEX deliveries_by_subscription;
        CREATE INDEX deliveries_open_by_subscription ON deliveries(subscription_id)
          WHERE state IN ('pending', 'retrying');
      )sql",
  };
  return kMigrations;
}

DeliveryState ParseState(std::string_view name) {
  if (name == "delivered") return DeliveryState::kDelivered;
  if (name == "retrying") return DeliveryState::kRetrying;
  if (name == "dead") return DeliveryState::kDead;
  return DeliveryState::kPending;
}

constexpr std::string_view kDeliveryColumns =
    "d.delivery_id, d.alert_id, d.alert_revision, d.subscription_id, d.event_type, COALESCE(b.body, d.body), "
    "d.state, d.attempts, d.next_attempt_ms, d.last_error, d.created_ms, d.updated_ms, b.alert";
// FROM clause for kDeliveryColumns.
constexpr std::string_view kDeliveriesWithBodies =
    " FROM deliveries d LEFT JOIN delivery_bodies b ON b.delivery_id = d.delivery_id";
// kDeliveryColumns with '' for the body: SQLite reads every result column of
// a row it returns, so a body not wanted must not be selected.
constexpr std::string_view kDeliveryColumnsWithoutBody =
    "d.delivery_id, d.alert_id, d.alert_revision, d.subscription_id, d.event_type, '', "
    "d.state, d.attempts, d.next_attempt_ms, d.last_error, d.created_ms, d.updated_ms, NULL";

// The body as sent, from a row holding the stored text in column
// `text_col` and the stored alert (NULL for rows from before) in
// `alert_col`: the text, or the body rendered from the alert (the same bytes
// every time for the same alert and created_ms).
Result<std::string> BodyOf(const Statement& row, int text_col, int alert_col, std::string_view delivery_id,
                           int64_t created_ms) {
  if (row.ColumnIsNull(alert_col)) return row.ColumnText(text_col);
  v1::ConsularAlert alert;
  if (!alert.ParseFromString(row.ColumnBlob(alert_col))) {
    return Status(StatusCode::kDataLoss,
                  "the alert stored for delivery " + std::string(delivery_id) + " does not parse");
  }
  return BuildWebhookBody(alert, created_ms);
}

// One row of kDeliveryColumns (or kDeliveryColumnsWithoutBody).
Result<Delivery> ReadDelivery(const Statement& row) {
  Delivery d;
  d.delivery_id = row.ColumnText(0);
  d.alert_id = row.ColumnText(1);
  d.alert_revision = static_cast<uint32_t>(row.ColumnInt(2));
  d.subscription_id = row.ColumnText(3);
  d.event_type = row.ColumnText(4);
  d.state = ParseState(row.ColumnText(6));
  d.attempts = static_cast<int>(row.ColumnInt(7));
  d.next_attempt_ms = row.ColumnInt(8);
  d.last_error = row.ColumnText(9);
  d.created_ms = row.ColumnInt(10);
  d.updated_ms = row.ColumnInt(11);
  auto body = BodyOf(row, 5, 12, d.delivery_id, d.created_ms);
  if (!body.ok()) return body.status();
  d.body = std::move(body).value();
  return d;
}

Result<std::vector<Delivery>> ReadDeliveries(Statement& query) {
  std::vector<Delivery> out;
  while (true) {
    auto row = query.Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    auto delivery = ReadDelivery(query);
    if (!delivery.ok()) return delivery.status();
    out.push_back(std::move(delivery).value());
  }
  query.Reset();
  return out;
}

}  // namespace

std::string_view DeliveryStateName(DeliveryState state) {
  switch (state) {
    case DeliveryState::kPending:
      return "pending";
    case DeliveryState::kDelivered:
      return "delivered";
    case DeliveryState::kRetrying:
      return "retrying";
    case DeliveryState::kDead:
      return "dead";
  }
  return "pending";
}

bool IsFinal(DeliveryState state) {
  return state == DeliveryState::kDelivered || state == DeliveryState::kDead;
}

v1::DeliveryStatus::State ToProto(DeliveryState state) {
  switch (state) {
    case DeliveryState::kPending:
      return v1::DeliveryStatus::STATE_PENDING;
    case DeliveryState::kDelivered:
      return v1::DeliveryStatus::STATE_DELIVERED;
    case DeliveryState::kRetrying:
      return v1::DeliveryStatus::STATE_RETRYING;
    case DeliveryState::kDead:
      return v1::DeliveryStatus::STATE_DEAD;
  }
  return v1::DeliveryStatus::STATE_UNSPECIFIED;
}

std::string DeliveryIdFor(std::string_view alert_id, uint32_t revision, std::string_view subscription_id,
                          uint32_t notification) {
  std::string key;
  key.append(alert_id).append("#").append(std::to_string(revision)).append("#").append(subscription_id);
  if (notification > 0) key.append("#").append(std::to_string(notification));
  return "msg_" + Sha256Hex(key).substr(0, 32);
}

// A new notify database gets 8 KiB pages. 16 KiB pages
// paid off while alerts carried ids as hex strings (18-36 KB rows); with
// packed ids (~9 KB) the larger pages mostly multiplied what each small
// commit writes (every dirty page twice: WAL and checkpoint): 274 -> 112 MB
// for 5 s at 1,000 events/s in bench-pipeline, same CPU in bulk
// (docs/PERFORMANCE.md, "Pipeline"). Once the inbox rows and
// alert_sources stopped wasting pages, 8 KiB did better than 4 and 16 in
// bench-pipeline's throughput (13,432-14,134 against 11,884-12,812 and
// 12,731-14,114 events/s, with fewer MB written than 16). Existing
// databases keep theirs.
constexpr int kNotifyPageSize = 8192;

Status MigrateNotifyDb(Db& db) {
  auto sized = db.SetPageSizeIfEmpty(kNotifyPageSize);
  if (!sized.ok()) return sized.status();
  return db.Migrate(Migrations());
}

Status NotifyStore::UpsertSubscription(const v1::Subscription& s, int64_t now_ms) {
  if (s.deleted()) {
    // A deletion may carry only the id: keep what we knew, stop routing.
    auto mark = db_.Prepare(
        "INSERT INTO subscriptions(subscription_id, state, url, secret, description, deleted, updated_ms) "
        "VALUES(?, ?, '', '', '', 1, ?) "
        "ON CONFLICT(subscription_id) DO UPDATE SET deleted = 1, updated_ms = excluded.updated_ms");
    if (!mark.ok()) return mark.status();
    mark->Bind(1, s.subscription_id()).Bind(2, s.state()).Bind(3, now_ms);
    return mark->Run();
  }
  auto upsert = db_.Prepare(
      "INSERT INTO subscriptions(subscription_id, state, url, secret, description, deleted, updated_ms) "
      "VALUES(?, ?, ?, ?, ?, 0, ?) "
      "ON CONFLICT(subscription_id) DO UPDATE SET state = excluded.state, url = excluded.url, "
      "secret = excluded.secret, description = excluded.description, deleted = 0, "
      "updated_ms = excluded.updated_ms");
  if (!upsert.ok()) return upsert.status();
  upsert->Bind(1, s.subscription_id())
      .Bind(2, s.state())
      .Bind(3, s.url())
      .Bind(4, s.secret())
      .Bind(5, s.description())
      .Bind(6, now_ms);
  AMPARO_RETURN_IF_ERROR(upsert->Run());
  auto clear = db_.Prepare("DELETE FROM subscription_hosts WHERE subscription_id = ?");
  if (!clear.ok()) return clear.status();
  clear->Bind(1, s.subscription_id());
  AMPARO_RETURN_IF_ERROR(clear->Run());
  auto add =
      db_.Prepare("INSERT OR IGNORE INTO subscription_hosts(subscription_id, host_country) VALUES(?, ?)");
  if (!add.ok()) return add.status();
  for (const std::string& host : s.host_countries()) {
    add->Bind(1, s.subscription_id()).Bind(2, host);
    AMPARO_RETURN_IF_ERROR(add->Run());
  }
  return Status::Ok();
}

Result<std::vector<Delivery>> NotifyStore::KillOpenDeliveries(std::string_view subscription_id,
                                                              std::string_view error, int64_t now_ms) {
  auto kill = db_.Prepare(
      "UPDATE deliveries SET state = 'dead', last_error = ?, updated_ms = ? "
      "WHERE subscription_id = ? AND state IN ('pending', 'retrying') RETURNING delivery_id");
  if (!kill.ok()) return kill.status();
  kill->Bind(1, error).Bind(2, now_ms).Bind(3, subscription_id);
  std::vector<std::string> ids;
  while (true) {
    auto row = kill->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    ids.push_back(kill->ColumnText(0));
  }
  kill->Reset();
  std::vector<Delivery> killed;
  for (const std::string& id : ids) {
    auto delivery = GetDelivery(id, Body::kSkip);  // for its DeliveryStatus: no body
    if (!delivery.ok()) return delivery.status();
    if (*delivery) killed.push_back(std::move(**delivery));
  }
  return killed;
}

Result<std::vector<std::string>> NotifyStore::MatchingSubscriptions(std::string_view state,
                                                                    std::string_view host_country) {
  auto query = db_.Prepare(
      "SELECT s.subscription_id FROM subscriptions s WHERE s.state = ? AND s.deleted = 0 AND ("
      "  NOT EXISTS (SELECT 1 FROM subscription_hosts h WHERE h.subscription_id = s.subscription_id) OR "
      "  EXISTS (SELECT 1 FROM subscription_hosts h "
      "          WHERE h.subscription_id = s.subscription_id AND h.host_country = ?)) "
      "ORDER BY s.subscription_id");
  if (!query.ok()) return query.status();
  query->Bind(1, state).Bind(2, host_country);
  std::vector<std::string> ids;
  while (true) {
    auto row = query->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    ids.push_back(query->ColumnText(0));
  }
  return ids;
}

Result<AlertFreshness> NotifyStore::StoreAlert(const v1::ConsularAlert& alert, int64_t now_ms) {
  auto current = db_.Prepare("SELECT revision, notification FROM alerts WHERE alert_id = ?");
  if (!current.ok()) return current.status();
  current->Bind(1, alert.alert_id());
  auto row = current->Step();
  if (!row.ok()) return row.status();
  if (*row) {
    const std::pair<int64_t, int64_t> stored{current->ColumnInt(0), current->ColumnInt(1)};
    const std::pair<int64_t, int64_t> received{alert.revision(), alert.notification()};
    if (stored == received) return AlertFreshness::kSameRevision;
    if (stored > received) return AlertFreshness::kStale;
  }
  current->Reset();
  auto store = db_.Prepare(
      "INSERT INTO alerts(alert_id, revision, updated_ms, notification) VALUES(?, ?, ?, ?) "
      "ON CONFLICT(alert_id) DO UPDATE SET revision = excluded.revision, updated_ms = excluded.updated_ms, "
      "notification = excluded.notification");
  if (!store.ok()) return store.status();
  store->Bind(1, alert.alert_id())
      .Bind(2, static_cast<int64_t>(alert.revision()))
      .Bind(3, now_ms)
      .Bind(4, static_cast<int64_t>(alert.notification()));
  AMPARO_RETURN_IF_ERROR(store->Run());
  return AlertFreshness::kNew;
}

Result<std::optional<AlertVersion>> NotifyStore::GetAlertVersion(std::string_view alert_id) {
  auto query = db_.Prepare("SELECT revision, notification FROM alerts WHERE alert_id = ?");
  if (!query.ok()) return query.status();
  query->Bind(1, alert_id);
  auto row = query->Step();
  if (!row.ok()) return row.status();
  if (!*row) return std::optional<AlertVersion>();
  return std::optional<AlertVersion>(
      AlertVersion{static_cast<uint32_t>(query->ColumnInt(0)), static_cast<uint32_t>(query->ColumnInt(1))});
}

Result<bool> NotifyStore::InsertDelivery(const Delivery& d, std::string_view alert) {
  auto insert = db_.Prepare(
      "INSERT OR IGNORE INTO deliveries(delivery_id, alert_id, alert_revision, subscription_id, event_type, "
      "body, "
      "state, attempts, next_attempt_ms, last_error, created_ms, updated_ms) "
      "VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
  if (!insert.ok()) return insert.status();
  insert->Bind(1, d.delivery_id)
      .Bind(2, d.alert_id)
      .Bind(3, static_cast<int64_t>(d.alert_revision))
      .Bind(4, d.subscription_id)
      .Bind(5, d.event_type)
      .Bind(6, "")
      .Bind(7, DeliveryStateName(d.state))
      .Bind(8, d.attempts)
      .Bind(9, d.next_attempt_ms)
      .Bind(10, d.last_error)
      .Bind(11, d.created_ms)
      .Bind(12, d.updated_ms);
  AMPARO_RETURN_IF_ERROR(insert->Run());
  if (db_.Changes() != 1) return false;  // scheduled before: the first body stays
  auto body = db_.Prepare("INSERT INTO delivery_bodies(delivery_id, body, alert) VALUES(?, ?, ?)");
  if (!body.ok()) return body.status();
  body->Bind(1, d.delivery_id);
  if (alert.empty()) {
    body->BindRef(2, d.body).BindNull(3);
  } else {
    body->Bind(2, "").BindBlobRef(3, alert);
  }
  AMPARO_RETURN_IF_ERROR(body->Run());
  return true;
}

Result<std::optional<Delivery>> NotifyStore::GetDelivery(std::string_view delivery_id, Body body) {
  auto query = body == Body::kRead
                   ? db_.Prepare("SELECT " + std::string(kDeliveryColumns) +
                                 std::string(kDeliveriesWithBodies) + " WHERE d.delivery_id = ?")
                   : db_.Prepare("SELECT " + std::string(kDeliveryColumnsWithoutBody) +
                                 " FROM deliveries d WHERE d.delivery_id = ?");
  if (!query.ok()) return query.status();
  query->Bind(1, delivery_id);
  auto row = query->Step();
  if (!row.ok()) return row.status();
  if (!*row) return std::optional<Delivery>();
  auto delivery = ReadDelivery(*query);
  if (!delivery.ok()) return delivery.status();
  return std::optional<Delivery>(std::move(delivery).value());
}

Result<std::vector<DueDelivery>> NotifyStore::DueDeliveries(int64_t now_ms, int limit,
                                                            const std::set<std::string>& in_flight) {
  auto query = db_.Prepare(
      "SELECT " + std::string(kDeliveryColumnsWithoutBody) +
      ", s.url, s.secret FROM deliveries d JOIN subscriptions s ON s.subscription_id = d.subscription_id "
      "WHERE d.state IN ('pending', 'retrying') AND d.next_attempt_ms <= ? AND s.deleted = 0 "
      "ORDER BY d.next_attempt_ms, d.created_ms, d.delivery_id LIMIT ?");
  if (!query.ok()) return query.status();
  query->Bind(1, now_ms).Bind(2, limit);
  std::vector<DueDelivery> due;
  while (true) {
    auto row = query->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    if (in_flight.count(query->ColumnText(0)) > 0) continue;
    auto delivery = ReadDelivery(*query);
    if (!delivery.ok()) return delivery.status();
    due.push_back({std::move(delivery).value(), query->ColumnText(13), query->ColumnText(14)});
  }
  query->Reset();
  // Bodies of the rows to send only.
  auto body = db_.Prepare("SELECT COALESCE(b.body, d.body), b.alert" + std::string(kDeliveriesWithBodies) +
                          " WHERE d.delivery_id = ?");
  if (!body.ok()) return body.status();
  for (DueDelivery& item : due) {
    body->Bind(1, item.delivery.delivery_id);
    auto row = body->Step();
    if (!row.ok()) return row.status();
    if (*row) {
      auto text = BodyOf(*body, 0, 1, item.delivery.delivery_id, item.delivery.created_ms);
      if (!text.ok()) return text.status();
      item.delivery.body = std::move(text).value();
    }
    body->Reset();
  }
  return due;
}

Result<bool> NotifyStore::UpdateOpenDelivery(std::string_view delivery_id, DeliveryState state, int attempts,
                                             int64_t next_attempt_ms, std::string_view last_error,
                                             int64_t now_ms) {
  auto update = db_.Prepare(
      "UPDATE deliveries SET state = ?, attempts = ?, next_attempt_ms = ?, last_error = ?, updated_ms = ? "
      "WHERE delivery_id = ? AND state IN ('pending', 'retrying')");
  if (!update.ok()) return update.status();
  update->Bind(1, DeliveryStateName(state))
      .Bind(2, attempts)
      .Bind(3, next_attempt_ms)
      .Bind(4, last_error)
      .Bind(5, now_ms)
      .Bind(6, delivery_id);
  AMPARO_RETURN_IF_ERROR(update->Run());
  return db_.Changes() == 1;
}

Result<std::vector<Delivery>> NotifyStore::ListDeliveries() {
  auto query = db_.Prepare("SELECT " + std::string(kDeliveryColumns) + std::string(kDeliveriesWithBodies) +
                           " ORDER BY d.alert_id, d.alert_revision, d.subscription_id");
  if (!query.ok()) return query.status();
  return ReadDeliveries(*query);
}

Result<int64_t> NotifyStore::CountDeliveries(DeliveryState state) {
  auto query = db_.Prepare("SELECT count(*) FROM deliveries WHERE state = ?");
  if (!query.ok()) return query.status();
  query->Bind(1, DeliveryStateName(state));
  auto row = query->Step();
  if (!row.ok()) return row.status();
  return query->ColumnInt(0);
}

}  // namespace amparo::notify
