#include "services/notify/notify_daemon.h"

#include <filesystem>

#include "common/log.h"
#include "services/notify/router.h"
#include "services/notify/webhook_channel.h"

namespace amparo::notify {
namespace {

constexpr auto kDispatchInterval = std::chrono::milliseconds(50);
// HTTP progress is made only when the channel is polled, so poll it more
// often than deliveries are picked: each poll costs nothing when idle.
constexpr auto kChannelInterval = std::chrono::milliseconds(10);

}  // namespace

NotifyDaemon::NotifyDaemon(const Config& config, const Clock& clock, NotifyDeps deps)
    : config_(config), clock_(clock), channel_(std::move(deps.channel)), jitter_(std::move(deps.jitter)) {
  retry_.max_attempts = config.notify.max_attempts;
  retry_.backoff_initial_ms = config.notify.backoff_initial_ms;
  retry_.backoff_max_ms = config.notify.backoff_max_ms;
  if (!jitter_) jitter_ = DefaultJitterSource();
}

NotifyDaemon::~NotifyDaemon() = default;

Result<std::unique_ptr<NotifyDaemon>> NotifyDaemon::Create(const Config& config, LinkContext& ctx,
                                                           const Clock& clock, NotifyDeps deps) {
  std::unique_ptr<NotifyDaemon> daemon(new NotifyDaemon(config, clock, std::move(deps)));
  std::error_code ec;
  std::filesystem::create_directories(config.data_dir, ec);
  if (ec) return Unavailable("cannot create data_dir " + config.data_dir.string() + ": " + ec.message());
  auto db = Db::Open(config.DbPath("notify"));
  if (!db.ok()) return db.status();
  daemon->db_ = std::make_unique<Db>(std::move(db).value());
  AMPARO_RETURN_IF_ERROR(MigrateNotifyDb(*daemon->db_));
  AMPARO_RETURN_IF_ERROR(InitLinkTables(*daemon->db_));

  if (!daemon->channel_) {
    WebhookChannelOptions options;
    options.max_in_flight = config.notify.max_in_flight;
    options.timeout_ms = config.notify.http_timeout_ms;
    auto channel = WebhookChannel::Create(options, clock);
    if (!channel.ok()) return channel.status();
    daemon->channel_ = std::move(channel).value();
  }
  auto inbox = MakeReceiver(ctx, *daemon->db_, config, "notify", config.notify.inbox, clock);
  if (!inbox.ok()) return inbox.status();
  daemon->inbox_ = std::move(inbox).value();
  auto gateway = MakeSender(ctx, *daemon->db_, config, "notify", kGatewayPeer, config.gateway.inbox, clock);
  if (!gateway.ok()) return gateway.status();
  daemon->gateway_ = std::move(gateway).value();

  NotifyDaemon* self = daemon.get();
  self->loop_.OnReadable(self->inbox_->socket(), [self] {
    if (Status st = self->inbox_->Pump(); !st.ok())
      log::Error("inbox pump failed", {{"error", st.ToString()}});
    (void)self->ProcessInbox();
  });
  self->loop_.OnReadable(self->gateway_->socket(), [self] {
    if (Status st = self->gateway_->Pump(); !st.ok())
      log::Error("gateway link failed", {{"error", st.ToString()}});
  });
  self->loop_.Every(kChannelInterval, [self] { self->PollChannel(); });
  self->loop_.Every(kDispatchInterval, [self] {
    // Retryable handler failures (a busy database) are retried here.
    (void)self->ProcessInbox();
    (void)self->DispatchDue();
    if (Status st = self->gateway_->Pump(); !st.ok())
      log::Error("gateway link failed", {{"error", st.ToString()}});
  });
  return daemon;
}

void NotifyDaemon::RunOnce(std::chrono::milliseconds max_wait) { loop_.RunOnce(max_wait); }

void NotifyDaemon::Run(const std::atomic<bool>& stop) { loop_.Run(stop); }

Result<int> NotifyDaemon::ProcessInbox() {
  auto processed = inbox_->ProcessPending(
      [this](const v1::Envelope& envelope, Db& db) { return RouteEnvelope(envelope, db, clock_); },
      config_.link.batch);
  if (!processed.ok()) log::Error("inbox processing failed", {{"error", processed.status().ToString()}});
  return processed;
}

Result<int> NotifyDaemon::DispatchDue() {
  const int free_slots = config_.notify.max_in_flight - channel_->InFlight();
  if (free_slots <= 0) return 0;
  NotifyStore store(*db_);
  // Deliveries in flight are still due in the table: ask for enough rows to
  // fill the free slots after skipping them.
  auto due = store.DueDeliveries(clock_.NowMs(), free_slots + static_cast<int>(in_flight_.size()));
  if (!due.ok()) {
    log::Error("reading due deliveries failed", {{"error", due.status().ToString()}});
    return due.status();
  }
  int started = 0;
  for (DueDelivery& item : *due) {
    if (started >= free_slots) break;
    const std::string& id = item.delivery.delivery_id;
    if (in_flight_.count(id)) continue;
    OutboundMessage message{id, std::move(item.url), std::move(item.secret), std::move(item.delivery.body)};
    Status sent = channel_->Send(message, [this](const std::string& delivery_id, const SendResult& result) {
      Record(delivery_id, result);
    });
    if (sent.code() == StatusCode::kResourceExhausted) break;
    if (!sent.ok()) {
      // The channel refused the message itself (e.g. a secret that does not
      // decode): no attempt will ever succeed.
      Record(id, SendResult::Permanent(sent.ToString()));
      continue;
    }
    in_flight_.insert(id);
    ++started;
  }
  return started;
}

void NotifyDaemon::PollChannel() { channel_->Poll(); }

void NotifyDaemon::Record(const std::string& delivery_id, const SendResult& result) {
  in_flight_.erase(delivery_id);
  Status st = RecordInTransaction(delivery_id, result);
  if (!st.ok()) {
    // The delivery stays open and due, so it is attempted again with the same
    // webhook-id: at least once, never lost.
    log::Error("recording a delivery attempt failed",
               {{"delivery_id", delivery_id},
                {"outcome", std::string(SendOutcomeName(result.outcome))},
                {"error", st.ToString()}});
  }
}

Status NotifyDaemon::RecordInTransaction(const std::string& delivery_id, const SendResult& result) {
  auto tx = Transaction::Begin(*db_);
  if (!tx.ok()) return tx.status();
  NotifyStore store(*db_);
  auto found = store.GetDelivery(delivery_id);
  if (!found.ok()) return found.status();
  // Gone or already final (its subscription was deleted meanwhile): the
  // outcome no longer matters.
  if (!*found || IsFinal((*found)->state)) return Status::Ok();
  Delivery delivery = std::move(**found);

  const int64_t now_ms = clock_.NowMs();
  RetryDecision decision = DecideAfterAttempt(result, delivery.attempts, now_ms, retry_, jitter_);
  auto updated = store.UpdateOpenDelivery(delivery_id, decision.state, decision.attempts,
                                          decision.next_attempt_ms, decision.last_error, now_ms);
  if (!updated.ok()) return updated.status();
  delivery.state = decision.state;
  delivery.attempts = decision.attempts;
  delivery.next_attempt_ms = decision.next_attempt_ms;
  delivery.last_error = decision.last_error;
  delivery.updated_ms = now_ms;
  if (IsFinal(delivery.state)) {
    AMPARO_RETURN_IF_ERROR(EnqueueOutbound(*db_, kGatewayPeer, DeliveryStatusEnvelope(delivery, clock_)));
  }
  AMPARO_RETURN_IF_ERROR(tx->Commit());

  ++stats_.attempts;
  switch (delivery.state) {
    case DeliveryState::kDelivered:
      ++stats_.delivered;
      log::Info("delivered", {{"delivery_id", delivery_id},
                              {"subscription_id", delivery.subscription_id},
                              {"attempts", std::to_string(delivery.attempts)}});
      break;
    case DeliveryState::kRetrying:
      ++stats_.retries;
      log::Warn("delivery attempt failed, will retry",
                {{"delivery_id", delivery_id},
                 {"attempts", std::to_string(delivery.attempts)},
                 {"retry_in_ms", std::to_string(delivery.next_attempt_ms - now_ms)},
                 {"error", delivery.last_error}});
      break;
    case DeliveryState::kDead:
      ++stats_.dead;
      log::Error("delivery dead-lettered", {{"delivery_id", delivery_id},
                                            {"subscription_id", delivery.subscription_id},
                                            {"attempts", std::to_string(delivery.attempts)},
                                            {"error", delivery.last_error}});
      break;
    case DeliveryState::kPending:
      break;
  }
  return Status::Ok();
}

}  // namespace amparo::notify
