// amparo-gateway as an embeddable object: the HTTP server on its own thread
// (with its own Db connection) and the links on the thread that calls
// RunOnce()/Run() (with another Db connection on the same WAL file).
//
// Links: a LinkReceiver on config.gateway.inbox takes consular_alert and
// delivery_status from amparo-notify; three LinkSenders carry what the HTTP
// thread enqueued in link_outbox: registry changes to "rules"
// (config.rules.inbox), subscriptions to "notify" (config.notify.inbox) and
// operator-entered events (operator_events.h) to "ingest" (config.ingest.inbox).
// What arrives is stored and processed by AlertInbox, one commit per batch;
// a stored alert revision is pushed to live console clients of its state
// after its batch commits (its frame is built only when the state has one).
//
// Registry protection: the registry key comes from config.keys_dir
// (created when missing, registry_keys.h); start-up fails when a row is
// sealed with a key that is not there. The retention job
// (PurgeExpiredRegistrants) runs on the link thread at start and every
// config.gateway.retention_check_s. The gazetteer (config.gateway.gazetteer,
// default Gazetteer::DefaultPath()) resolves `place` inputs; a missing
// default file only disables them (logged), a configured one must load.
//
// Thread safety: Create(), RunOnce() and Run() belong to one thread (the
// link thread); http_port() and metrics() may be called from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/config.h"
#include "common/daemon.h"
#include "common/db.h"
#include "common/gazetteer.h"
#include "common/link.h"
#include "common/status.h"
#include "services/gateway/gateway_api.h"
#include "services/gateway/http_server.h"
#include "services/gateway/registry_keys.h"

namespace amparo::gateway {

// The gateway's side of the link from amparo-notify (consular_alert,
// delivery_status) and amparo-rules (snapshot_request): stores and
// processes what arrived in ONE transaction per batch
// (LinkReceiver::PumpAndProcess: a savepoint per message, acknowledged after
// the commit), so a batch costs one durable commit, not one per message.
//
// Live console: for every alert revision stored, the frame (LiveAlertFrame
// of the row as that message left it: its revision, the deliveries and
// silence known at that point; its JSON rendered from the message in hand,
// not read back from the row) is built inside the transaction and handed
// to `broadcast` only after the batch committed, in message order. A
// message whose work is rolled back (dead-lettered, retried later, or a
// failed batch) has no frame sent; GatewayMetrics counts an alert as
// received when its frame is due, i.e. once committed, whether or not a
// frame is sent.
//
// Frames nobody would receive are not built: `has_live_clients(state)` is
// asked when the message is handled, and no frame is built (nor the row
// read back) while the state has no live client. A client that connects
// while the batch is in progress may have loaded the alert list before the
// commit, so after the commit the inbox asks again for each skipped alert:
// when the state now has a client, the committed row is read and sent at
// the alert's last place in the batch (an earlier message of the same
// alert is superseded by it, not repeated).
//
// Thread safety: belongs to the thread that owns `receiver` and its Db;
// `has_live_clients` is called on that thread and must be thread-safe
// towards whoever registers clients (HttpServer::HasLiveClients is).
class AlertInbox {
 public:
  using BroadcastFn = std::function<void(const std::string& state, std::string frame)>;
  using LiveClientsFn = std::function<bool(const std::string& state)>;

  // `receiver`, `clock` and `metrics` must outlive the AlertInbox.
  AlertInbox(LinkReceiver& receiver, const Clock& clock, GatewayMetrics& metrics, BroadcastFn broadcast,
             LiveClientsFn has_live_clients);

  // Runs up to `max_batches` batches of up to `batch_size` messages (stops
  // after a batch that did nothing), each committed before its frames are
  // broadcast. Returns how many messages were processed or dead-lettered.
  // Errors: the first batch that failed (nothing of it is kept,
  // acknowledged or broadcast; the sender resends); batches before it stay
  // committed and broadcast.
  Result<int> Process(int batch_size, int max_batches);

  // Handles one envelope inside the receiver's open transaction on `db`:
  // consular_alert -> UpsertAlert (frame queued when stored),
  // delivery_status -> UpsertDelivery, snapshot_request -> answered into the
  // outbox. Any other payload: kInvalidArgument (dead-lettered).
  Status Handle(const v1::Envelope& envelope, Db& db);

  // Live frames built so far (in the transaction or after the commit), for
  // tests that prove no frame is built while nobody watches.
  uint64_t frames_built() const { return frames_built_; }

 private:
  struct Broadcast {
    std::string state;
    std::string alert_id;
    // Built in the transaction; "" when the state had no live client then
    // (deferred) or the stored row could not be read back.
    std::string frame;
    bool deferred = false;
  };

  // The frame of the alert's row as `db` shows it now; "" (logged) when the
  // row cannot be read.
  std::string BuildFrame(Db& db, const std::string& state, const std::string& alert_id);
  // The same for `alert`, which the handler has just stored: its JSON comes
  // from the message, the rest of the frame from `db` (StoredAlertOfMessage).
  std::string BuildFrame(Db& db, const v1::ConsularAlert& alert);
  // Hands the committed batch's frames to broadcast_, in message order.
  void BroadcastCommitted();

  LinkReceiver& receiver_;
  const Clock& clock_;
  GatewayMetrics& metrics_;
  BroadcastFn broadcast_;
  LiveClientsFn has_live_clients_;
  std::vector<Broadcast> pending_;  // of the batch in progress
  Db* batch_db_ = nullptr;          // the receiver's Db, as the handler was given it
  uint64_t frames_built_ = 0;
};

class GatewayDaemon {
 public:
  // Creates config.data_dir, opens and migrates config.DbPath("gateway"),
  // binds the inbox, starts the senders and the HTTP server (writing the
  // port to config.gateway.port_file when set). `ctx` and `clock` must
  // outlive the daemon. Errors: whatever failed, e.g. kUnavailable when the
  // listen port is taken.
  static Result<std::unique_ptr<GatewayDaemon>> Create(const Config& config, LinkContext& ctx,
                                                       const Clock& clock);
  ~GatewayDaemon();  // stops the HTTP server first
  GatewayDaemon(const GatewayDaemon&) = delete;
  GatewayDaemon& operator=(const GatewayDaemon&) = delete;

  // One turn of the link loop: waits up to `max_wait` for link traffic, then
  // stores, processes and acknowledges what arrived and pumps the senders.
  void RunOnce(std::chrono::milliseconds max_wait);
  // RunOnce() until `stop` is set.
  void Run(const std::atomic<bool>& stop);

  uint16_t http_port() const { return server_->port(); }
  GatewayMetrics& metrics() { return metrics_; }

 private:
  GatewayDaemon(const Config& config, const Clock& clock) : config_(config), clock_(clock) {}
  Status Init(LinkContext& ctx);
  // The inbox socket is readable: processes it, or, within
  // gateway.inbox_commit_interval_ms of the last batch, once that interval
  // is over (group commit: one commit for what arrives meanwhile).
  void OnInboxReadable();
  void ProcessInbox();
  void PumpSenders();

  Config config_;
  const Clock& clock_;
  GatewayMetrics metrics_;
  void RunRetention();

  std::optional<RegistryKeys> keys_;
  std::shared_ptr<const Gazetteer> gazetteer_;
  std::optional<Db> http_db_;  // used only by the HTTP thread
  std::optional<Db> link_db_;  // used only by the link thread
  std::unique_ptr<GatewayApi> api_;
  std::optional<Db> bulk_db_;             // used only by the HTTP server's bulk worker
  std::unique_ptr<GatewayApi> bulk_api_;  // imports and exports, off the HTTP thread
  std::unique_ptr<LinkReceiver> inbox_;
  std::unique_ptr<AlertInbox> alert_inbox_;  // over inbox_
  std::unique_ptr<LinkSender> to_rules_;
  std::unique_ptr<LinkSender> to_notify_;
  std::unique_ptr<LinkSender> to_ingest_;  // operator-entered events
  PollLoop loop_;
  std::chrono::steady_clock::time_point last_inbox_batch_{};  // OnInboxReadable()
  std::unique_ptr<HttpServer> server_;  // last: stopped and destroyed first
};

}  // namespace amparo::gateway
