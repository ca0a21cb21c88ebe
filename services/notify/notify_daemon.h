// amparo-notify as an embeddable object: the notification path
//
//   route -> dedup -> send -> retry -> record
//
// built in one place. Alerts and subscriptions arrive on the notify inbox
// (LinkReceiver) and are routed into the delivery outbox (router.h) in the
// link's transaction. Every ~50 ms the due deliveries are handed to the
// channel, up to its free slots; the channel is polled every ~10 ms and each
// finished attempt is recorded in one transaction: the retry decision
// (retry_policy.h) plus, when the delivery became delivered or dead, a
// DeliveryStatus for the gateway (LinkSender to config.gateway.inbox).
//
// Delivery is at least once: a crash after a recipient answered 2xx but
// before the result committed leaves the delivery open, and after a restart
// it is sent again with the SAME webhook-id (the recipient's idempotency key,
// DESIGN.md guarantee 2). Without a crash nothing is sent twice: a delivery
// is handed to the channel only while no attempt for it is in flight.
//
// Thread safety: one thread owns the daemon and calls everything on it.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <set>
#include <string>

#include "common/clock.h"
#include "common/config.h"
#include "common/daemon.h"
#include "common/db.h"
#include "common/link.h"
#include "common/status.h"
#include "services/notify/channel.h"
#include "services/notify/notify_store.h"
#include "services/notify/retry_policy.h"

namespace amparo::notify {

// Effects a test (or another embedding) may replace. Empty members get the
// production default.
struct NotifyDeps {
  std::unique_ptr<Channel> channel;  // default: a WebhookChannel from config.notify
  JitterSource jitter;               // default: DefaultJitterSource()
};

struct NotifyStats {
  uint64_t attempts = 0;  // attempts whose result was recorded
  uint64_t delivered = 0;
  uint64_t retries = 0;  // attempts that ended retrying
  uint64_t dead = 0;     // deliveries dead-lettered after an attempt
};

class NotifyDaemon {
 public:
  // Creates config.data_dir if missing, opens and migrates
  // config.DbPath("notify"), binds the inbox (config.notify.inbox) and
  // connects to the gateway (config.gateway.inbox). `ctx` and `clock` must
  // outlive the daemon. Errors: the failing step's status (e.g. the inbox
  // endpoint cannot be bound, kUnavailable/kInternal from SQLite).
  static Result<std::unique_ptr<NotifyDaemon>> Create(const Config& config, LinkContext& ctx,
                                                      const Clock& clock, NotifyDeps deps = {});
  ~NotifyDaemon();
  NotifyDaemon(const NotifyDaemon&) = delete;
  NotifyDaemon& operator=(const NotifyDaemon&) = delete;

  // One turn of the poll loop: waits up to `max_wait` for link traffic, then
  // runs whatever is due. Run() turns it until `stop` is set.
  void RunOnce(std::chrono::milliseconds max_wait);
  void Run(const std::atomic<bool>& stop);

  // The stages, callable directly (the loop calls them on its timers).
  // Stores and routes what arrived on the inbox; returns messages processed.
  Result<int> ProcessInbox();
  // Hands due deliveries to the channel up to its free slots; returns how
  // many were started.
  Result<int> DispatchDue();
  // Drives the channel; finished attempts are recorded before it returns.
  void PollChannel();

  Db& db() { return *db_; }
  const NotifyStats& stats() const { return stats_; }
  int in_flight() const { return static_cast<int>(in_flight_.size()); }

 private:
  NotifyDaemon(const Config& config, const Clock& clock, NotifyDeps deps);
  // The record stage for one finished attempt.
  void Record(const std::string& delivery_id, const SendResult& result);
  Status RecordInTransaction(const std::string& delivery_id, const SendResult& result);

  Config config_;
  const Clock& clock_;
  RetryOptions retry_;
  std::unique_ptr<Db> db_;
  std::unique_ptr<LinkReceiver> inbox_;
  std::unique_ptr<LinkSender> gateway_;
  std::unique_ptr<Channel> channel_;
  JitterSource jitter_;
  std::set<std::string> in_flight_;  // delivery ids handed to the channel and not yet recorded
  NotifyStats stats_;
  PollLoop loop_;
};

}  // namespace amparo::notify
