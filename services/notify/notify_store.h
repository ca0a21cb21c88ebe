// amparo-notify's durable state in its own SQLite file
// (config.DbPath("notify")): the missions' subscriptions, the latest revision
// of every alert, and the delivery outbox, one row per (alert revision,
// subscription) that records where that delivery stands.
//
// A delivery row is created in the same transaction that stores the alert
// received over the link, so an alert acknowledged to amparo-rules always has
// its deliveries scheduled (DESIGN.md guarantee 1). Rows in state delivered
// or dead are final and kept (dead rows are the dead letters).
//
// Methods do not open transactions: the caller wraps a unit of work in
// Transaction::Begin(db) (the link handler's transaction, or the daemon's
// record-a-result transaction). Errors are the Db's (kUnavailable when busy,
// kInternal otherwise).
//
// Thread safety: as the Db it wraps (one thread).
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "amparo/v1/alert.pb.h"
#include "common/db.h"
#include "common/status.h"

namespace amparo::notify {

enum class DeliveryState { kPending, kDelivered, kRetrying, kDead };

std::string_view DeliveryStateName(DeliveryState state);  // "pending", "delivered", "retrying", "dead"
bool IsFinal(DeliveryState state);                        // delivered or dead
v1::DeliveryStatus::State ToProto(DeliveryState state);

struct Delivery {
  std::string delivery_id;  // "msg_" + 32 hex; the webhook-id
  std::string alert_id;
  uint32_t alert_revision = 0;
  std::string subscription_id;
  std::string event_type;  // "alert.raised" | "alert.updated" | "alert.cancelled"
  std::string body;        // the exact bytes every attempt sends
  DeliveryState state = DeliveryState::kPending;
  int attempts = 0;             // attempts completed (a result was recorded)
  int64_t next_attempt_ms = 0;  // due from this time (pending/retrying)
  std::string last_error;
  int64_t created_ms = 0;
  int64_t updated_ms = 0;
};

// A due delivery joined with where and how to send it (the subscription's
// current url and secret: a rotated secret applies to the next attempt).
struct DueDelivery {
  Delivery delivery;
  std::string url;
  std::string secret;
};

// How a received alert compares with the one stored, by (revision,
// notification): a repeat of a revision (notification 1, 2, ...) is newer
// than its first notification.
enum class AlertFreshness {
  kNew,           // first time this alert_id, a higher revision or a later repeat: stored
  kSameRevision,  // this revision and notification were stored before (a re-sent alert)
  kStale,         // older than stored: not stored
};

// The newest (revision, notification) of an alert notify has seen.
struct AlertVersion {
  uint32_t revision = 0;
  uint32_t notification = 0;
};

// The delivery id of (alert revision, notification, subscription): "msg_" +
// the first 32 hex digits of SHA-256("<alert_id>#<revision>#<subscription_id>")
// for the first notification (notification 0, so ids from before repeats
// existed do not change) and of "<alert_id>#<revision>#<subscription_id>#<n>"
// for repeat n: each repeat is a new delivery with its own webhook-id. A pure
// function, so a re-received alert or a restart yields the same id.
std::string DeliveryIdFor(std::string_view alert_id, uint32_t revision, std::string_view subscription_id,
                          uint32_t notification = 0);

// Creates or upgrades the schema (idempotent).
Status MigrateNotifyDb(Db& db);

class NotifyStore {
 public:
  // `db` must outlive the store and have been migrated.
  explicit NotifyStore(Db& db) : db_(db) {}

  // Inserts or replaces a subscription. A deleted one keeps its last url,
  // secret and filter but routes nothing.
  Status UpsertSubscription(const v1::Subscription& subscription, int64_t now_ms);
  // Marks every pending/retrying delivery of `subscription_id` dead with
  // `error` and returns them as they are now.
  Result<std::vector<Delivery>> KillOpenDeliveries(std::string_view subscription_id, std::string_view error,
                                                   int64_t now_ms);
  // Non-deleted subscriptions of `state` whose host filter is empty or
  // contains `host_country`, ordered by id.
  Result<std::vector<std::string>> MatchingSubscriptions(std::string_view state,
                                                         std::string_view host_country);

  // Records `alert`'s (revision, notification) if newer than the stored
  // one. Only the version is kept: the bodies sent are in delivery_bodies.
  Result<AlertFreshness> StoreAlert(const v1::ConsularAlert& alert, int64_t now_ms);
  Result<std::optional<AlertVersion>> GetAlertVersion(std::string_view alert_id);

  // Inserts `delivery` unless its delivery_id exists. True when inserted.
  // With `alert` (a serialized ConsularAlert) no body is stored and
  // delivery.body is ignored: every read renders the body as
  // BuildWebhookBody(alert, delivery.created_ms) (router.h), the same bytes
  // each time. The alert is half the bytes of its JSON (registrant ids
  // packed, not hex). A stored alert that does not parse reads as kDataLoss.
  Result<bool> InsertDelivery(const Delivery& delivery, std::string_view alert = {});
  // Whether a read gives the delivery's body (up to ~36 KB) or leaves
  // Delivery::body empty, for callers that only need its state.
  enum class Body { kRead, kSkip };
  Result<std::optional<Delivery>> GetDelivery(std::string_view delivery_id, Body body = Body::kRead);
  // Pending/retrying deliveries of live subscriptions with
  // next_attempt_ms <= now_ms, earliest first, among the first `limit` such
  // rows, less those in `in_flight` (neither returned nor their bodies read).
  Result<std::vector<DueDelivery>> DueDeliveries(int64_t now_ms, int limit,
                                                 const std::set<std::string>& in_flight = {});
  // Updates a delivery that is not final yet; false (and no change) when it
  // is missing or already final, e.g. killed while a request was in flight.
  Result<bool> UpdateOpenDelivery(std::string_view delivery_id, DeliveryState state, int attempts,
                                  int64_t next_attempt_ms, std::string_view last_error, int64_t now_ms);
  // Every delivery, ordered by (alert_id, alert_revision, subscription_id).
  Result<std::vector<Delivery>> ListDeliveries();
  Result<int64_t> CountDeliveries(DeliveryState state);

 private:
  Db& db_;
};

}  // namespace amparo::notify
