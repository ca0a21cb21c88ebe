// amparo-notify as an embeddable object: the notification path
//
//   route -> dedup -> send -> retry -> record
//
// built in one place. Alerts and subscriptions arrive on the notify inbox
// (LinkReceiver) and are routed into the delivery outbox (router.h) in the
// link's transaction. As soon as routing committed, the due deliveries are
// handed to the channel (up to its free slots) and the channel is driven;
// while requests are in flight the loop polls the channel every millisecond,
// and the attempts finished by one poll are recorded in one transaction (the
// retry decision, retry_policy.h, plus, when a delivery became delivered or
// dead, a DeliveryStatus for the gateway, LinkSender to config.gateway.inbox),
// after which the freed slots are refilled at once. Timers (every 10 ms and
// 50 ms) remain as the fallback: retries that come due, a busy database.
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
#include <vector>

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

  // The stages, callable directly (the loop calls them when its sockets
  // are readable and on its timers).
  // Stores what arrived on the inbox (acknowledging it), routes it and, when
  // anything was routed, dispatches the due deliveries at once; returns the
  // messages processed.
  Result<int> ProcessInbox();
  // Hands due deliveries to the channel up to its free slots and drives the
  // channel once so the requests start; returns how many were started.
  Result<int> DispatchDue();
  // Drives the channel; the attempts that finished are recorded (one
  // transaction; with those of the next polls while
  // notify.outcome_commit_interval_ms has not passed since the last record),
  // and freed slots are refilled at once.
  void PollChannel();

  Db& db() { return *db_; }
  const NotifyStats& stats() const { return stats_; }
  int in_flight() const { return static_cast<int>(in_flight_.size()); }

 private:
  NotifyDaemon(const Config& config, const Clock& clock, NotifyDeps deps);
  struct Finished {
    std::string delivery_id;
    SendResult result;
  };
  // The record stage for the attempts finished since the last call: one
  // transaction for all of them; if it fails, one per attempt, so one bad
  // row cannot hold up the others.
  void RecordFinished();
  // RecordFinished() unless the last record was less than
  // notify.outcome_commit_interval_ms ago.
  void RecordFinishedWhenDue();
  // Records one attempt inside the caller's transaction; `after_commit`
  // gets what to count and log once the transaction committed.
  Status RecordAttempt(const Finished& attempt, std::vector<Delivery>* after_commit);
  void ReportRecorded(const Delivery& delivery);

  Config config_;
  const Clock& clock_;
  RetryOptions retry_;
  std::unique_ptr<Db> db_;
  std::unique_ptr<LinkReceiver> inbox_;
  std::unique_ptr<LinkSender> gateway_;
  std::unique_ptr<Channel> channel_;
  JitterSource jitter_;
  std::set<std::string> in_flight_;  // delivery ids handed to the channel and not yet recorded
  std::vector<Finished> finished_;   // reported by the channel, not recorded yet
  bool dispatching_ = false;         // DispatchDue() is on the stack (no re-entry from PollChannel)
  NotifyStats stats_;
  PollLoop loop_;
  std::chrono::steady_clock::time_point last_record_{};  // PollChannel()
};

}  // namespace amparo::notify
