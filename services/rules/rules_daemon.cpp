#include "services/rules/rules_daemon.h"

#include <filesystem>
#include <system_error>

#include "common/log.h"

namespace amparo::rules {
namespace {

using namespace std::chrono_literals;

// Batches processed per wake-up before the loop returns to its sockets, so a
// large backlog (after a restart) cannot starve acknowledgements and sends.
constexpr int kMaxBatchesPerWakeup = 8;
constexpr auto kTick = 100ms;
constexpr auto kTimerInterval = 1s;

std::string PolicyName(const Config& config) {
  return config.rules.policy_file.empty() ? std::string("builtin") : config.rules.policy_file.string();
}

}  // namespace

RegistrySyncOptions SyncOptionsFrom(const RulesOptions& options) {
  RegistrySyncOptions sync;
  sync.gap_timeout_ms = options.registry_gap_timeout_ms;
  sync.snapshot_timeout_ms = options.registry_snapshot_timeout_ms;
  sync.probe_interval_ms = options.registry_probe_interval_ms;
  sync.max_ahead_ranges = options.registry_max_ahead_ranges;
  return sync;
}

Result<std::unique_ptr<RulesDaemon>> RulesDaemon::Create(const Config& config, LinkContext& ctx,
                                                         const Clock& clock,
                                                         const RegistrySyncOptions& sync_options) {
  auto policy = LoadPolicy(config);
  if (!policy.ok()) return policy.status();
  std::error_code ec;
  std::filesystem::create_directories(config.data_dir, ec);
  if (ec) return Unavailable("cannot create data_dir " + config.data_dir.string() + ": " + ec.message());

  std::unique_ptr<RulesDaemon> d(new RulesDaemon(config, clock));
  d->policy_ = std::move(*policy);
  auto db = Db::Open(config.DbPath("rules"), DaemonDbOptions());
  if (!db.ok()) return db.status();
  d->db_ = std::make_unique<Db>(std::move(*db));
  AMPARO_RETURN_IF_ERROR(RulesEngine::Migrate(*d->db_));
  auto engine = RulesEngine::Create(*d->db_, config.rules, clock, sync_options);
  if (!engine.ok()) return engine.status();
  d->engine_ = std::move(*engine);
  d->engine_->SetPolicy(d->policy_);

  auto receiver = MakeReceiver(ctx, *d->db_, config, "rules", config.rules.inbox, clock);
  if (!receiver.ok()) return receiver.status();
  d->receiver_ = std::move(*receiver);
  auto sender = MakeSender(ctx, *d->db_, config, "rules", kNotifyPeer, config.notify.inbox, clock);
  if (!sender.ok()) return sender.status();
  d->sender_ = std::move(*sender);
  // notify's acknowledgements are deleted by the processing commits (or, when
  // there are none, after LinkSender::kAckDeleteAfterMs, by the tick's Pump).
  d->sender_->FoldAckDeletes();
  auto to_gateway = MakeSender(ctx, *d->db_, config, "rules", kGatewayPeer, config.gateway.inbox, clock);
  if (!to_gateway.ok()) return to_gateway.status();
  d->to_gateway_ = std::move(*to_gateway);
  // An empty database asks for a snapshot at once; any other probes the
  // registry's sequence, which reveals changes lost while we were away.
  if (auto started = d->engine_->sync().Start(*d->db_); !started.ok()) return started.status();

  RulesDaemon* self = d.get();
  d->loop_.OnReadable(d->receiver_->socket(), [self] { self->ProcessInbox(); });
  d->loop_.OnReadable(d->sender_->socket(), [self] {
    if (Status st = self->sender_->Pump(); !st.ok()) log::Warn("notify link", {{"error", st.ToString()}});
  });
  d->loop_.OnReadable(d->to_gateway_->socket(), [self] {
    if (Status st = self->to_gateway_->Pump(); !st.ok()) log::Warn("gateway link", {{"error", st.ToString()}});
  });
  // The tick resends unacknowledged alerts and retries messages a handler
  // asked to retry later.
  d->loop_.Every(kTick, [self] {
    if (ConsumeReloadRequest()) (void)self->ReloadPolicy();  // outcome logged there
    self->ProcessInbox();
    if (Status st = self->sender_->Pump(); !st.ok()) log::Warn("notify link", {{"error", st.ToString()}});
    self->SyncRegistry();
  });
  // Alert timers (repeats, expiry, silences that ended) have minute
  // granularity in practice: once a second is plenty.
  d->loop_.Every(kTimerInterval, [self] { self->RunAlertTimers(); });
  log::Info("rules index loaded", {{"registrants", std::to_string(d->engine_->index().Size())}});
  log::Info("policy loaded", {{"file", PolicyName(config)}, {"fingerprint", d->policy_->fingerprint()}});
  return d;
}

Result<std::shared_ptr<const AlertPolicy>> RulesDaemon::LoadPolicy(const Config& config) {
  if (config.rules.policy_file.empty()) return AlertPolicy::Default();
  return AlertPolicy::Load(config.rules.policy_file);
}

Status RulesDaemon::ReloadPolicy() {
  auto policy = LoadPolicy(config_);
  if (!policy.ok()) {
    log::Error("policy reload failed, the policy in force stays",
               {{"file", PolicyName(config_)},
                {"error", policy.status().ToString()},
                {"fingerprint", policy_->fingerprint()}});
    return policy.status();
  }
  policy_ = std::move(*policy);
  engine_->SetPolicy(policy_);
  log::Info("policy reloaded", {{"file", PolicyName(config_)}, {"fingerprint", policy_->fingerprint()}});
  return Status::Ok();
}

RulesDaemon::~RulesDaemon() = default;

void RulesDaemon::RunAlertTimers() {
  auto tx = Transaction::Begin(*db_);
  if (!tx.ok()) {
    log::Warn("alert timers", {{"error", tx.status().ToString()}});
    return;
  }
  auto sent = engine_->Tick(*db_);
  Status st = sent.ok() ? tx->Commit() : sent.status();
  if (!st.ok()) {
    log::Error("alert timers failed", {{"error", st.ToString()}});
    return;  // rolled back: the next run tries again
  }
  if (*sent > 0) {
    if (Status pumped = sender_->Pump(); !pumped.ok()) log::Warn("notify link", {{"error", pumped.ToString()}});
  }
}

void RulesDaemon::SyncRegistry() {
  auto backlog = receiver_->Backlog();
  if (!backlog.ok()) {
    log::Warn("inbox backlog", {{"error", backlog.status().ToString()}});
    return;
  }
  if (auto request = engine_->sync().Tick(*db_, *backlog == 0); !request.ok()) {
    log::Warn("registry sync", {{"error", request.status().ToString()}});
  }
  if (Status st = to_gateway_->Pump(); !st.ok()) log::Warn("gateway link", {{"error", st.ToString()}});
}

void RulesDaemon::Run(const std::atomic<bool>& stop) { loop_.Run(stop); }

void RulesDaemon::PollOnce(std::chrono::milliseconds max_wait) { loop_.RunOnce(max_wait); }

void RulesDaemon::ProcessInbox() {
  const int batch = config_.link.batch;
  for (int i = 0; i < kMaxBatchesPerWakeup; ++i) {
    // What arrived is stored and processed in one commit (one fsync on an
    // event's way through rules, not two), acknowledged after it.
    size_t acks_deleted = 0;
    auto processed = receiver_->PumpAndProcess(
        [this](const v1::Envelope& envelope, Db& db) { return engine_->Handle(envelope, db); }, batch,
        [this, &acks_deleted] { return sender_->DeleteAcknowledged(&acks_deleted); });
    if (processed.ok()) sender_->AcknowledgedDeletesCommitted(acks_deleted);
    if (!processed.ok()) {
      // The last transaction may have rolled back after its handler changed
      // the index: put the index back in step with the database.
      log::Error("processing the inbox failed", {{"error", processed.status().ToString()}});
      if (Status st = engine_->ReconcileIndex(*db_); !st.ok()) {
        log::Error("index reconcile failed", {{"error", st.ToString()}});
      }
      return;
    }
    engine_->ConfirmIndexChanges();
    if (*processed == 0) break;
    // This batch's alerts leave now, not after the wake-up's last batch.
    if (Status st = sender_->Pump(); !st.ok()) log::Warn("notify link", {{"error", st.ToString()}});
  }
}

}  // namespace amparo::rules
