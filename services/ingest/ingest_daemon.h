// amparo-ingest as an embeddable object: the spool scanner, the HTTP feed
// pollers and the durable link to amparo-rules, driven by one PollLoop.
//
//   files dropped / fetched -> <spool_dir>/ -> SpoolProcessor (parse, dedupe,
//   ONE transaction: ingest_events + link_outbox) -> LinkSender -> rules inbox
//
//   operator-entered events: amparo-gateway -> LinkReceiver on ingest.inbox
//   -> SpoolProcessor::RecordEvent (the same dedupe, correlation and outbox,
//   in the receiver's transaction) -> LinkSender -> rules inbox
//
// The inbox accepts only crisis_events with source "operator", event_id
// "operator:<source_id>", a non-empty restricted_to_states of ISO3 codes,
// msg_type ALERT/UPDATE/CANCEL and revision >= 1: anything else is
// dead-lettered (kept in link_inbox with the reason) and logged, since an
// unrestricted event from the link would alert every state.
//
// Create() opens config.DbPath("ingest") (creating data_dir and the spool
// folders), applies the migrations, binds the receiver on config.ingest.inbox,
// connects the sender to config.rules.inbox
// and starts one thread per [[ingest.poll]] source, plus the HTTP push
// listener (push_server.h) on its own thread when ingest.push_listen is set. The loop then pumps the
// sender when its socket is readable and every 100 ms, and scans the spool
// as soon as a file lands in it (spool_watcher.h, inotify; again at once
// while a scan left files behind) and every ingest.scan_interval_ms.
//
// Thread safety: everything except the poller threads runs on the thread
// that calls Run()/RunOnce(); counters() must be called from that thread.
// Ownership: `ctx` and `clock` must outlive the daemon.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <vector>

#include "common/clock.h"
#include "common/config.h"
#include "common/daemon.h"
#include "common/db.h"
#include "common/link.h"
#include "common/status.h"
#include "services/ingest/poller.h"
#include "services/ingest/push_server.h"
#include "services/ingest/spool.h"
#include "services/ingest/spool_watcher.h"

namespace amparo::ingest {

struct IngestCounters {
  SpoolCounters spool;         // files accepted/rejected, events sent, features rejected
  uint64_t polls_fetched = 0;  // summed over every poller
  uint64_t polls_not_modified = 0;
  uint64_t polls_failed = 0;
  LinkStats link;  // the sender to rules (sent, resent, acked)
  PushStats push;  // HTTP push of CAP (zero when ingest.push_listen is empty)
  LinkStats inbox;  // the receiver of operator events (received, processed, failed)
  uint64_t operator_events_sent = 0;       // new revisions committed to the outbox for rules
  uint64_t operator_events_unchanged = 0;  // already sent at this or a newer revision
  uint64_t operator_events_rejected = 0;   // dead-lettered (not operator, not restricted, ...)
};

// The proximity bounds of the config ([ingest] correlation_*).
CorrelationRules CorrelationRulesFrom(const IngestOptions& options);

class IngestDaemon {
 public:
  // Errors: UNAVAILABLE when the data or spool directories cannot be
  // created or the database cannot be opened; whatever MakeSender and
  // MakeReceiver return (e.g. missing CURVE keys for a tcp:// endpoint, the
  // inbox address in use).
  static Result<std::unique_ptr<IngestDaemon>> Create(const Config& config, LinkContext& ctx,
                                                      const Clock& clock);
  ~IngestDaemon();
  IngestDaemon(const IngestDaemon&) = delete;
  IngestDaemon& operator=(const IngestDaemon&) = delete;

  // Runs the loop until `stop` is set.
  void Run(const std::atomic<bool>& stop);
  // One round: waits up to `max_wait` for the link socket, then runs the
  // timers that are due (tests drive the daemon with this).
  void RunOnce(std::chrono::milliseconds max_wait);

  IngestCounters counters() const;
  // Logs counters() as one line.
  void LogCounters() const;

  const std::filesystem::path& spool_dir() const { return spool_.options().spool_dir; }
  // The HTTP push listener's port, 0 when ingest.push_listen is empty.
  uint16_t push_port() const { return push_ ? push_->port() : 0; }
  LinkSender& sender() { return *sender_; }
  Db& db() { return db_; }

 private:
  IngestDaemon(Db db, SpoolOptions spool_options, const Clock& clock);
  void ScanSpool();
  void PumpLink();
  // Stores what arrived on the inbox and hands each operator event to the
  // spool's RecordEvent, one message per transaction.
  void ProcessInbox();
  Status HandleInbound(const v1::Envelope& envelope);

  Db db_;  // declared first: the sender and spool hold references to it
  const Clock& clock_;
  std::unique_ptr<LinkSender> sender_;
  std::unique_ptr<LinkReceiver> inbox_;  // operator events from amparo-gateway
  int inbox_batch_ = 256;                // messages processed per loop turn (link.batch)
  enum class Inbound { kNone, kSent, kUnchanged, kRejected };
  Inbound last_inbound_ = Inbound::kNone;  // outcome of the message being processed
  uint64_t operator_events_sent_ = 0;
  uint64_t operator_events_unchanged_ = 0;
  uint64_t operator_events_rejected_ = 0;
  SpoolProcessor spool_;
  size_t acks_deleted_ = 0;  // by the spool file transaction under way
  std::vector<std::unique_ptr<FeedPoller>> pollers_;
  std::unique_ptr<PushServer> push_;  // null unless ingest.push_listen is set
  std::unique_ptr<SpoolWatcher> watcher_;  // null when inotify is unavailable (timer only)
  bool spool_backlog_ = false;             // the last scan took its maximum: scan again at once
  PollLoop loop_;
};

}  // namespace amparo::ingest
