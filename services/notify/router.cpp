#include "services/notify/router.h"

#include <boost/json.hpp>

#include "common/alert_json.h"
#include "common/crypto.h"
#include "common/json_text.h"
#include "common/link.h"
#include "common/log.h"

namespace amparo::notify {
namespace {

Status RouteAlert(const v1::ConsularAlert& alert, Db& db, const Clock& clock) {
  AMPARO_RETURN_IF_ERROR(ValidateAlert(alert));
  NotifyStore store(db);
  const int64_t now_ms = clock.NowMs();
  auto freshness = store.StoreAlert(alert, now_ms);
  if (!freshness.ok()) return freshness.status();
  if (*freshness == AlertFreshness::kStale) {
    log::Warn("stale alert revision ignored", {{"alert_id", alert.alert_id()},
                                               {"revision", std::to_string(alert.revision())},
                                               {"notification", std::to_string(alert.notification())}});
    return Status::Ok();
  }
  if (*freshness == AlertFreshness::kNew) {
    // The gateway shows alerts to operators, silenced ones included; it
    // learns each revision and each repeat once.
    v1::Envelope forward = MakeEnvelope(kProducer, clock);
    *forward.mutable_consular_alert() = alert;
    AMPARO_RETURN_IF_ERROR(EnqueueOutbound(db, kGatewayPeer, forward));
  }
  if (alert.silenced()) {
    // An operator's silence: recorded and shown, never pushed to channels.
    log::Info("silenced alert not delivered", {{"alert_id", alert.alert_id()},
                                               {"revision", std::to_string(alert.revision())},
                                               {"notification", std::to_string(alert.notification())},
                                               {"silence_id", alert.silence_id()}});
    return Status::Ok();
  }
  auto subscriptions = store.MatchingSubscriptions(alert.state(), alert.host_country());
  if (!subscriptions.ok()) return subscriptions.status();

  Delivery delivery;
  delivery.alert_id = alert.alert_id();
  delivery.alert_revision = alert.revision();
  delivery.event_type = AlertEventType(alert);
  delivery.state = DeliveryState::kPending;
  delivery.next_attempt_ms = now_ms;
  delivery.created_ms = now_ms;
  delivery.updated_ms = now_ms;
  // The alert is stored, not its JSON body: reads render the body from it
  // (NotifyStore::InsertDelivery), so none is built here.
  const std::string alert_bytes = subscriptions->empty() ? std::string() : alert.SerializeAsString();
  int scheduled = 0;
  for (const std::string& subscription_id : *subscriptions) {
    delivery.subscription_id = subscription_id;
    delivery.delivery_id =
        DeliveryIdFor(alert.alert_id(), alert.revision(), subscription_id, alert.notification());
    auto inserted = store.InsertDelivery(delivery, alert_bytes);
    if (!inserted.ok()) return inserted.status();
    scheduled += *inserted ? 1 : 0;
  }

  log::Info("alert routed", {{"alert_id", alert.alert_id()},
                             {"revision", std::to_string(alert.revision())},
                             {"notification", std::to_string(alert.notification())},
                             {"deliveries", std::to_string(scheduled)}});
  return Status::Ok();
}

Status RouteSubscription(const v1::Subscription& subscription, Db& db, const Clock& clock) {
  AMPARO_RETURN_IF_ERROR(ValidateSubscription(subscription));
  NotifyStore store(db);
  const int64_t now_ms = clock.NowMs();
  AMPARO_RETURN_IF_ERROR(store.UpsertSubscription(subscription, now_ms));
  if (!subscription.deleted()) return Status::Ok();
  auto killed = store.KillOpenDeliveries(subscription.subscription_id(), "subscription deleted", now_ms);
  if (!killed.ok()) return killed.status();
  AMPARO_RETURN_IF_ERROR(EnqueueDeliveryStatuses(db, *killed, clock));
  log::Info("subscription deleted", {{"subscription_id", subscription.subscription_id()},
                                     {"deliveries_stopped", std::to_string(killed->size())}});
  return Status::Ok();
}

}  // namespace

std::string BuildWebhookBody(const v1::ConsularAlert& alert, int64_t now_ms) {
  // The alert's JSON goes in as text. Parsed back into a DOM and printed
  // again (as before) it came out byte for byte the same, at the cost of a
  // parse and a print of up to ~36 KB (1,000 registrant ids) per alert.
  boost::json::object head;
  head["type"] = AlertEventType(alert);
  head["timestamp"] = FormatRfc3339(now_ms);
  std::string body = JsonText(head);  // {"type":...,"timestamp":...}
  body.pop_back();
  body += ",\"data\":";
  body += AlertToJson(alert);
  body += '}';
  return body;
}

Status ValidateSubscription(const v1::Subscription& s) {
  if (s.subscription_id().empty()) return InvalidArgument("must not be empty", "subscription_id");
  if (s.deleted()) return Status::Ok();
  if (s.state().empty()) return InvalidArgument("must not be empty", "state");
  if (s.url().rfind("http://", 0) != 0 && s.url().rfind("https://", 0) != 0) {
    return InvalidArgument("must be an http:// or https:// URL", "url");
  }
  constexpr std::string_view kPrefix = "whsec_";
  std::string_view secret = s.secret();
  if (secret.substr(0, kPrefix.size()) != kPrefix)
    return InvalidArgument("must start with \"whsec_\"", "secret");
  auto key = Base64Decode(secret.substr(kPrefix.size()));
  if (!key.ok() || key->empty()) return InvalidArgument("must be \"whsec_\" followed by base64", "secret");
  return Status::Ok();
}

Status ValidateAlert(const v1::ConsularAlert& alert) {
  if (alert.alert_id().empty()) return InvalidArgument("must not be empty", "alert_id");
  if (alert.state().empty()) return InvalidArgument("must not be empty", "state");
  if (alert.revision() == 0) return InvalidArgument("must be at least 1", "revision");
  return Status::Ok();
}

namespace {

void FillDeliveryStatus(const Delivery& delivery, v1::DeliveryStatus* status) {
  status->set_delivery_id(delivery.delivery_id);
  status->set_alert_id(delivery.alert_id);
  status->set_alert_revision(delivery.alert_revision);
  status->set_subscription_id(delivery.subscription_id);
  status->set_state(ToProto(delivery.state));
  status->set_attempts(static_cast<uint32_t>(delivery.attempts));
  status->set_last_error(delivery.last_error);
  status->set_updated_ms(delivery.updated_ms);
}

}  // namespace

v1::Envelope DeliveryStatusEnvelope(const Delivery& delivery, const Clock& clock) {
  v1::Envelope envelope = MakeEnvelope(kProducer, clock);
  FillDeliveryStatus(delivery, envelope.mutable_delivery_status());
  return envelope;
}

Status EnqueueDeliveryStatuses(Db& db, const std::vector<Delivery>& deliveries, const Clock& clock) {
  if (deliveries.empty()) return Status::Ok();
  if (deliveries.size() == 1) {
    return EnqueueOutbound(db, kGatewayPeer, DeliveryStatusEnvelope(deliveries[0], clock));
  }
  v1::Envelope envelope = MakeEnvelope(kProducer, clock);
  auto* batch = envelope.mutable_delivery_statuses();
  for (const Delivery& delivery : deliveries) FillDeliveryStatus(delivery, batch->add_statuses());
  return EnqueueOutbound(db, kGatewayPeer, envelope);
}

Status RouteEnvelope(const v1::Envelope& envelope, Db& db, const Clock& clock) {
  switch (envelope.payload_case()) {
    case v1::Envelope::kConsularAlert:
      return RouteAlert(envelope.consular_alert(), db, clock);
    case v1::Envelope::kSubscription:
      return RouteSubscription(envelope.subscription(), db, clock);
    default:
      return InvalidArgument("amparo-notify does not take this payload (case " +
                                 std::to_string(envelope.payload_case()) + ") from " + envelope.producer(),
                             "payload");
  }
}

}  // namespace amparo::notify
