#include "services/notify/notify_daemon.h"

#include <algorithm>
#include <filesystem>

#include "common/log.h"
#include "services/notify/router.h"
#include "services/notify/webhook_channel.h"

namespace amparo::notify {
namespace {

// Fallbacks: work arrives through the inbox and finished requests, which are
// acted on at once; these timers pick up retries that came due and anything a
// busy database made wait.
constexpr auto kDispatchInterval = std::chrono::milliseconds(50);
constexpr auto kChannelInterval = std::chrono::milliseconds(10);
// While requests are in flight, curl makes progress only when the channel is
// polled: the loop wakes this often for it (an idle daemon does not).
constexpr auto kBusyPollInterval = std::chrono::milliseconds(1);
// Inbox batches routed per wake-up before the loop turns to the channel.
constexpr int kMaxInboxBatches = 8;

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
  auto db = Db::Open(config.DbPath("notify"), DaemonDbOptions());
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
  // The gateway's acknowledgements are deleted by the routing and outcome
  // commits (or, when there are none, after LinkSender::kAckDeleteAfterMs).
  daemon->gateway_->FoldAckDeletes();

  NotifyDaemon* self = daemon.get();
  self->loop_.OnReadable(self->inbox_->socket(), [self] { (void)self->ProcessInbox(); });
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

void NotifyDaemon::RunOnce(std::chrono::milliseconds max_wait) {
  if (channel_->InFlight() == 0) {
    loop_.RunOnce(max_wait);
    return;
  }
  // Requests in flight: wait on the channel's own sockets (at most
  // kBusyPollInterval, so the links and timers are not kept waiting longer),
  // drive it, then serve the links and timers without waiting. A channel
  // that cannot wait that way is polled every kBusyPollInterval instead.
  const auto wait = std::min(max_wait, std::chrono::milliseconds(kBusyPollInterval));
  const bool waited = channel_->WaitForProgress(wait);
  PollChannel();
  loop_.RunOnce(waited ? std::chrono::milliseconds(0) : wait);
  if (channel_->InFlight() > 0 || !finished_.empty()) PollChannel();
}

void NotifyDaemon::Run(const std::atomic<bool>& stop) {
  while (!stop) RunOnce(std::chrono::milliseconds(200));
  RecordFinished();  // what finished within the last interval
}

Result<int> NotifyDaemon::ProcessInbox() {
  const int batch = config_.link.batch;
  int total = 0;
  for (int i = 0; i < kMaxInboxBatches; ++i) {
    // Stored and routed in one commit (one fsync on an alert's way through),
    // acknowledged after it.
    size_t acks_deleted = 0;
    auto processed = inbox_->PumpAndProcess(
        [this](const v1::Envelope& envelope, Db& db) { return RouteEnvelope(envelope, db, clock_); }, batch,
        [this, &acks_deleted] { return gateway_->DeleteAcknowledged(&acks_deleted); });
    if (processed.ok()) gateway_->AcknowledgedDeletesCommitted(acks_deleted);
    if (!processed.ok()) {
      log::Error("inbox processing failed", {{"error", processed.status().ToString()}});
      if (total == 0) return processed;
      break;
    }
    total += *processed;
    if (*processed == 0) break;
    // Routing committed: send what it made due now, not at the next tick
    // (nor after the wake-up's last batch).
    (void)DispatchDue();
    if (Status st = gateway_->Pump(); !st.ok()) log::Error("gateway link failed", {{"error", st.ToString()}});
  }
  return total;
}

Result<int> NotifyDaemon::DispatchDue() {
  if (dispatching_) return 0;
  const int free_slots = config_.notify.max_in_flight - channel_->InFlight();
  if (free_slots <= 0) return 0;
  NotifyStore store(*db_);
  // Deliveries in flight are still due in the table: ask for enough rows to
  // fill the free slots after skipping them.
  auto due =
      store.DueDeliveries(clock_.NowMs(), free_slots + static_cast<int>(in_flight_.size()), in_flight_);
  if (!due.ok()) {
    log::Error("reading due deliveries failed", {{"error", due.status().ToString()}});
    return due.status();
  }
  dispatching_ = true;
  int started = 0;
  for (DueDelivery& item : *due) {
    if (started >= free_slots) break;
    const std::string& id = item.delivery.delivery_id;
    OutboundMessage message{id, std::move(item.url), std::move(item.secret), std::move(item.delivery.body)};
    Status sent = channel_->Send(message, [this](const std::string& delivery_id, const SendResult& result) {
      finished_.push_back({delivery_id, result});
    });
    if (sent.code() == StatusCode::kResourceExhausted) break;
    in_flight_.insert(id);
    if (!sent.ok()) {
      // The channel refused the message itself (e.g. a secret that does not
      // decode): no attempt will ever succeed.
      finished_.push_back({id, SendResult::Permanent(sent.ToString())});
      continue;
    }
    ++started;
  }
  // Start the requests now (connect, send) instead of at the next poll.
  if (started > 0) channel_->Poll();
  dispatching_ = false;
  RecordFinishedWhenDue();
  return started;
}

void NotifyDaemon::RecordFinishedWhenDue() {
  if (finished_.empty()) return;
  const auto now = std::chrono::steady_clock::now();
  // Within the interval: recorded with what finishes next, by a later poll
  // or the channel timer's. The deliveries stay in flight (in_flight_)
  // meanwhile; their slots in the channel are free.
  if (now < last_record_ + std::chrono::milliseconds(config_.notify.outcome_commit_interval_ms)) return;
  last_record_ = now;
  RecordFinished();
}

void NotifyDaemon::PollChannel() {
  channel_->Poll();
  if (finished_.empty()) return;
  RecordFinishedWhenDue();
  // Slots were freed: refill them at once.
  (void)DispatchDue();
  if (Status st = gateway_->Pump(); !st.ok()) log::Error("gateway link failed", {{"error", st.ToString()}});
}

void NotifyDaemon::RecordFinished() {
  if (finished_.empty()) return;
  std::vector<Finished> batch = std::move(finished_);
  finished_.clear();
  for (const Finished& f : batch) in_flight_.erase(f.delivery_id);
  std::vector<Delivery> recorded;
  auto record = [&](size_t begin, size_t end) -> Status {
    recorded.clear();
    // Without an fsync of its own (the next routing commit carries it): an
    // outcome lost in a power cut leaves the delivery open, so it is sent
    // again with the same webhook-id, which is at-least-once delivery's
    // crash path; a crash of the process alone loses nothing.
    UnsyncedCommits unsynced(*db_);
    auto tx = Transaction::Begin(*db_);
    if (!tx.ok()) return tx.status();
    for (size_t i = begin; i < end; ++i) AMPARO_RETURN_IF_ERROR(RecordAttempt(batch[i], &recorded));
    // The final states go to the gateway as one message.
    std::vector<Delivery> finals;
    for (const Delivery& d : recorded) {
      if (IsFinal(d.state)) finals.push_back(d);
    }
    AMPARO_RETURN_IF_ERROR(EnqueueDeliveryStatuses(*db_, finals, clock_));
    size_t acks_deleted = 0;
    AMPARO_RETURN_IF_ERROR(gateway_->DeleteAcknowledged(&acks_deleted));
    AMPARO_RETURN_IF_ERROR(tx->Commit());
    gateway_->AcknowledgedDeletesCommitted(acks_deleted);
    return Status::Ok();
  };
  // One commit for everything one poll finished.
  if (Status st = record(0, batch.size()); st.ok()) {
    for (const Delivery& d : recorded) ReportRecorded(d);
    return;
  }
  for (size_t i = 0; i < batch.size(); ++i) {
    Status st = record(i, i + 1);
    if (st.ok()) {
      for (const Delivery& d : recorded) ReportRecorded(d);
      continue;
    }
    // The delivery stays open and due, so it is attempted again with the same
    // webhook-id: at least once, never lost.
    log::Error("recording a delivery attempt failed",
               {{"delivery_id", batch[i].delivery_id},
                {"outcome", std::string(SendOutcomeName(batch[i].result.outcome))},
                {"error", st.ToString()}});
  }
}

Status NotifyDaemon::RecordAttempt(const Finished& attempt, std::vector<Delivery>* after_commit) {
  NotifyStore store(*db_);
  auto found = store.GetDelivery(attempt.delivery_id, NotifyStore::Body::kSkip);
  if (!found.ok()) return found.status();
  // Gone or already final (its subscription was deleted meanwhile): the
  // outcome no longer matters.
  if (!*found || IsFinal((*found)->state)) return Status::Ok();
  Delivery delivery = std::move(**found);

  const int64_t now_ms = clock_.NowMs();
  RetryDecision decision = DecideAfterAttempt(attempt.result, delivery.attempts, now_ms, retry_, jitter_);
  auto updated = store.UpdateOpenDelivery(attempt.delivery_id, decision.state, decision.attempts,
                                          decision.next_attempt_ms, decision.last_error, now_ms);
  if (!updated.ok()) return updated.status();
  delivery.state = decision.state;
  delivery.attempts = decision.attempts;
  delivery.next_attempt_ms = decision.next_attempt_ms;
  delivery.last_error = decision.last_error;
  delivery.updated_ms = now_ms;
  after_commit->push_back(std::move(delivery));
  return Status::Ok();
}

void NotifyDaemon::ReportRecorded(const Delivery& delivery) {
  ++stats_.attempts;
  switch (delivery.state) {
    case DeliveryState::kDelivered:
      ++stats_.delivered;
      log::Info("delivered", {{"delivery_id", delivery.delivery_id},
                              {"subscription_id", delivery.subscription_id},
                              {"attempts", std::to_string(delivery.attempts)}});
      break;
    case DeliveryState::kRetrying:
      ++stats_.retries;
      log::Warn("delivery attempt failed, will retry",
                {{"delivery_id", delivery.delivery_id},
                 {"attempts", std::to_string(delivery.attempts)},
                 {"retry_in_ms", std::to_string(delivery.next_attempt_ms - delivery.updated_ms)},
                 {"error", delivery.last_error}});
      break;
    case DeliveryState::kDead:
      ++stats_.dead;
      log::Error("delivery dead-lettered", {{"delivery_id", delivery.delivery_id},
                                            {"subscription_id", delivery.subscription_id},
                                            {"attempts", std::to_string(delivery.attempts)},
                                            {"error", delivery.last_error}});
      break;
    case DeliveryState::kPending:
      break;
  }
}

}  // namespace amparo::notify
