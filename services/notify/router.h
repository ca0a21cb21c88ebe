// The "route" and "dedup" stages of amparo-notify: what happens to each
// message amparo-notify receives over its link, inside the link receiver's
// transaction (common/link.h), so the work and the acknowledgement commit
// together.
//
//   consular_alert  stored (latest (revision, notification) per alert_id);
//                   one delivery per live subscription of alert.state()
//                   whose host filter is empty or holds alert.host_country();
//                   delivery ids are DeliveryIdFor(alert, revision,
//                   subscription, notification), inserted only if new, so a
//                   re-received alert schedules nothing twice (dedup) while
//                   a repeat (notification > 0) is a new delivery with its
//                   own webhook-id. A new revision or repeat is also
//                   forwarded to the gateway. A silenced alert (an
//                   operator's silence matched) is stored, forwarded and
//                   logged but schedules no delivery. Anything older than
//                   the stored one is stale: ignored (logged), since
//                   recipients must never see an alert go back in time.
//   subscription    upserted; deleted = true kills its open deliveries
//                   (dead, "subscription deleted") and reports them.
//
// Every delivery that becomes final here is reported to the gateway as a
// DeliveryStatus in the same transaction.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "amparo/v1/envelope.pb.h"
#include "common/clock.h"
#include "common/db.h"
#include "common/status.h"
#include "services/notify/notify_store.h"

namespace amparo::notify {

inline constexpr char kProducer[] = "amparo-notify";
inline constexpr char kGatewayPeer[] = "gateway";

// The Standard Webhooks body of `alert`:
//   {"type": AlertEventType(alert), "timestamp": RFC 3339 of now_ms, "data": AlertToJson(alert)}
std::string BuildWebhookBody(const v1::ConsularAlert& alert, int64_t now_ms);

// kInvalidArgument naming the field when a live subscription lacks an id or
// state, has a url that is not http(s), or a secret that is not "whsec_" +
// base64. A deletion needs only subscription_id.
Status ValidateSubscription(const v1::Subscription& subscription);
// kInvalidArgument naming the field when alert_id or state is empty or
// revision is 0.
Status ValidateAlert(const v1::ConsularAlert& alert);

// The DeliveryStatus envelope reporting `delivery` to the gateway.
v1::Envelope DeliveryStatusEnvelope(const Delivery& delivery, const Clock& clock);
// Enqueues the states of `deliveries` for the gateway inside the caller's
// transaction: one message for all of them (DeliveryStatusBatch), or the
// plain DeliveryStatusEnvelope when there is one; nothing when none.
Status EnqueueDeliveryStatuses(Db& db, const std::vector<Delivery>& deliveries, const Clock& clock);

// The link handler (LinkReceiver::Handler) for amparo-notify's inbox. Runs
// inside the caller's transaction on `db` (migrated, with link tables).
// Invalid or unexpected payloads give kInvalidArgument (dead-lettered by the
// link); database errors pass through (kUnavailable is retried in order).
Status RouteEnvelope(const v1::Envelope& envelope, Db& db, const Clock& clock);

}  // namespace amparo::notify
