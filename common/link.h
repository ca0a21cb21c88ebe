// The durable hand-off between daemons (DESIGN.md guarantee 1).
//
// A sender writes each Envelope into its own database (link_outbox) in the
// same transaction as the work that produced it, then LinkSender pushes it
// over a ZeroMQ DEALER socket and deletes it only when the receiver has
// acknowledged it. The receiver (ROUTER) stores each message in its
// database (link_inbox, unique on message_id, so repeats are dropped),
// commits, and only then acknowledges. Unacknowledged messages are resent
// after `resend_after_ms` and after a reconnect, so a crash of either side
// at any moment loses nothing; the receiver's idempotency means a resend is
// never processed twice.
//
// Bounds: at most `window` unacknowledged messages per link are in flight;
// the rest wait in the outbox table (disk, unbounded). ZeroMQ HWMs are set
// to `high_water_mark`; a send that would block is simply retried later.
//
// Thread safety: every class here belongs to the thread that polls it.
#pragma once

#include <zmq.hpp>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <atomic>
#include <vector>

#include "amparo/v1/envelope.pb.h"
#include "common/clock.h"
#include "common/config.h"
#include "common/db.h"
#include "common/status.h"

namespace amparo {

inline constexpr uint32_t kSchemaVersion = 1;

// A CURVE key pair in Z85 text (40 characters each).
struct CurveKeyPair {
  std::string public_key;
  std::string secret_key;
};

CurveKeyPair GenerateCurveKeyPair();
// Writes <dir>/<name>.key (public + secret, mode 0600) and <dir>/<name>.pub.
Status WriteCurveKeyPair(const std::filesystem::path& dir, std::string_view name, const CurveKeyPair& keys);
Result<CurveKeyPair> ReadCurveKeyPair(const std::filesystem::path& dir, std::string_view name);
// Every <dir>/*.pub: the clients a CURVE server accepts.
Result<std::set<std::string>> ReadAllowedKeys(const std::filesystem::path& dir);

// Whether CURVE applies to `endpoint` under `mode`.
bool UsesCurve(CurveMode mode, std::string_view endpoint);

// Owns the ZeroMQ context and, when any link uses CURVE, the ZAP handler
// that accepts only client keys in the allow-list. Destroy it last.
class LinkContext {
 public:
  LinkContext();
  ~LinkContext();
  LinkContext(const LinkContext&) = delete;
  LinkContext& operator=(const LinkContext&) = delete;

  // Starts the ZAP handler (idempotent). Must run before a CURVE server binds.
  void StartZap(std::set<std::string> allowed_public_keys);
  zmq::context_t& zmq() { return ctx_; }
  // Number of CURVE handshakes the ZAP handler refused.
  int refused() const { return refused_.load(); }

 private:
  zmq::context_t ctx_;
  std::thread zap_thread_;
  std::atomic<bool> stop_{false};
  std::atomic<int> refused_{0};
};

// A new envelope with a fresh message id, the schema version and `producer`.
v1::Envelope MakeEnvelope(std::string_view producer, const Clock& clock);

// Creates the link tables if missing. Called by LinkSender/LinkReceiver and
// by anything that enqueues before those exist.
Status InitLinkTables(Db& db);
// Adds `envelope` to the outbox for `peer`; call inside the caller's
// transaction so the message is stored together with the work it reports.
Status EnqueueOutbound(Db& db, std::string_view peer, const v1::Envelope& envelope);

// The envelopes still waiting in the outbox for `peer` (not yet
// acknowledged), oldest first, at most `limit`. For `amparo status` and tests.
Result<std::vector<v1::Envelope>> PendingOutbound(Db& db, std::string_view peer, int limit = 100000);

struct LinkStats {
  uint64_t sent = 0;
  uint64_t resent = 0;
  uint64_t acked = 0;
  uint64_t received = 0;
  uint64_t duplicates = 0;   // received again, already stored
  uint64_t rejected = 0;     // unparseable or unknown schema version
  uint64_t processed = 0;
  uint64_t failed = 0;       // handler gave a non-retryable error (kept as dead letter)
};

class LinkSender {
 public:
  // `peer` names the outbox queue; `endpoint` is the peer's inbox.
  // `client_keys`/`server_public_key` are used when CURVE applies.
  LinkSender(LinkContext& ctx, Db& db, std::string peer, std::string endpoint, const LinkOptions& options,
             const Clock& clock, std::optional<CurveKeyPair> client_keys = std::nullopt,
             std::string server_public_key = {});

  Status Start();
  // Non-blocking: reads acks, resends what timed out, sends what the window
  // allows. Call whenever the socket is readable and periodically.
  Status Pump();
  zmq::socket_t& socket() { return socket_; }
  // Messages in the outbox (sent or not) for this peer.
  Result<int64_t> Depth();
  size_t in_flight() const { return in_flight_.size(); }
  const LinkStats& stats() const { return stats_; }
  const std::string& peer() const { return peer_; }

  // From now on the owner deletes the acknowledged rows inside its own
  // transactions (DeleteAcknowledged(), then AcknowledgedDeletesCommitted()
  // once that transaction committed); Pump() deletes them in a transaction
  // of its own only when they waited kAckDeleteAfterMs (the owner had none).
  // Acknowledgements come a few at a time, and a transaction per wake-up
  // wrote the outbox and index pages again each time: in bench-pipeline
  // those commits were ~7% of amparo-rules' CPU, as much as ~14% of
  // amparo-ingest's.
  void FoldAckDeletes() { fold_ack_deletes_ = true; }
  static constexpr int64_t kAckDeleteAfterMs = 100;
  // Inside the caller's transaction: deletes the rows acknowledged so far;
  // *deleted says how many (0 when it fails).
  Status DeleteAcknowledged(size_t* deleted);
  // After that transaction committed, with what DeleteAcknowledged()
  // returned in it. (When it did not commit, the next DeleteAcknowledged()
  // deletes them again.)
  void AcknowledgedDeletesCommitted(size_t deleted);

 private:
  Status ReadAcks();
  Status SendNew();
  bool SendFrames(const std::string& message_id, const std::string& body);

  Db& db_;
  std::string peer_;
  std::string endpoint_;
  LinkOptions options_;
  const Clock& clock_;
  zmq::socket_t socket_;
  std::optional<CurveKeyPair> client_keys_;
  std::string server_public_key_;
  struct InFlight {
    int64_t seq;
    int64_t sent_ms;
  };
  std::map<std::string, InFlight> in_flight_;  // message_id -> when sent
  int64_t last_seq_ = 0;                       // highest outbox seq sent once
  bool fold_ack_deletes_ = false;
  std::vector<std::string> acked_;  // acknowledged, still in the outbox, oldest first
  int64_t first_acked_ms_ = 0;      // when the oldest of acked_ came
  LinkStats stats_;
};

class LinkReceiver {
 public:
  // Processes one stored message inside an open transaction on `db`. Return
  // a retryable status to try again later (in order); any other error
  // dead-letters the message (kept in link_inbox with the error) and goes on.
  using Handler = std::function<Status(const v1::Envelope&, Db&)>;
  // More work for the batch's transaction, run just before its commit (a
  // LinkSender's DeleteAcknowledged()); its failure fails the batch.
  using BeforeCommit = std::function<Status()>;

  LinkReceiver(LinkContext& ctx, Db& db, std::string endpoint, const LinkOptions& options, const Clock& clock,
               std::optional<CurveKeyPair> server_keys = std::nullopt);

  Status Bind();
  // Non-blocking: stores every available message (one transaction per
  // batch) and acknowledges them.
  Status Pump();
  // Processes up to `max` stored, unprocessed messages in arrival order, in
  // ONE transaction (group commit: one fsync per batch) with a savepoint per
  // message: a handler error rolls back that message's work only; a
  // retryable one ends the batch there (the messages before it commit). The
  // handler must not begin or commit transactions itself. When the commit
  // fails, nothing of the batch is kept (the caller reconciles any memory
  // state, as amparo-rules does with its index). Returns how many were
  // processed or dead-lettered.
  Result<int> ProcessPending(const Handler& handler, int max, const BeforeCommit& before_commit = nullptr);
  // Pump() and ProcessPending() in ONE transaction: stores up to
  // `link.batch` messages that arrived, processes up to `max` stored ones
  // (oldest first, as ProcessPending: what was stored before comes first),
  // commits once and only then acknowledges what it stored. A message on its
  // way through costs one commit (one fsync) here instead of two. Handler
  // errors behave as in ProcessPending; when anything else fails (or the
  // commit does), nothing of the call is kept or acknowledged: the sender
  // resends, and the caller reconciles any memory state as after a failed
  // ProcessPending. Returns how many were processed or dead-lettered (0 when
  // nothing arrived and nothing was pending).
  Result<int> PumpAndProcess(const Handler& handler, int max, const BeforeCommit& before_commit = nullptr);
  zmq::socket_t& socket() { return socket_; }
  const LinkStats& stats() const { return stats_; }
  // Unprocessed messages in the inbox.
  Result<int64_t> Backlog();

 private:
  struct Incoming {
    std::string identity, message_id, body;
  };
  struct PendingRow {
    int64_t seq;
    std::string id, body;
  };
  // Reads up to options_.batch frame sets without blocking.
  std::vector<Incoming> ReceiveBatch();
  // Why `in` cannot be processed (empty when it can); parses it into *env.
  static std::string CheckIncoming(const Incoming& in, v1::Envelope* env);
  // Inserts `batch` into link_inbox inside the caller's transaction: pending,
  // or a dead letter when it does not check.
  Status StoreBatch(const std::vector<Incoming>& batch);
  // Inserts one message as StoreBatch does (pending, a dead letter, or
  // nothing for a duplicate) and counts it.
  Status StoreOne(Statement& insert, const Incoming& in);
  // With nothing older pending: runs `handler` on up to `max` of `batch` as
  // they come (savepoint per message, as ProcessRows) and inserts each row
  // once in its final state; the rest is stored pending. Inside the caller's
  // transaction. Returns how many were processed or dead-lettered.
  Result<int> StoreAndProcess(const std::vector<Incoming>& batch, const Handler& handler, int max,
                              int* processed, int* failed);
  // Whether any stored message is still unprocessed.
  Result<bool> HasPending();
  // Acknowledges `batch` (call after its commit).
  void Acknowledge(const std::vector<Incoming>& batch);
  Result<std::vector<PendingRow>> LoadPending(int max);
  enum class Outcome { kProcessed, kRetry, kDeadLetter };
  // Runs `handler` on one message in a savepoint, undone when it fails; a
  // failure that is not retryable marks row `seq` a dead letter (its
  // envelope `body` and the error).
  Result<Outcome> RunHandler(const Handler& handler, const v1::Envelope& env, int64_t seq,
                             const std::string& body);
  // Sets row `seq`'s processed_ms (NULL: pending), envelope (NULL when
  // null) and error (NULL when empty).
  Status Mark(int64_t seq, std::optional<int64_t> processed_ms, const std::string* envelope,
              const std::string& error);
  // Runs `handler` on `rows` inside the caller's transaction (savepoint per
  // message); counts into *processed / *failed. Returns how many were done.
  Result<int> ProcessRows(const std::vector<PendingRow>& rows, const Handler& handler, int* processed,
                          int* failed);

  Db& db_;
  std::string endpoint_;
  LinkOptions options_;
  const Clock& clock_;
  zmq::socket_t socket_;
  std::optional<CurveKeyPair> server_keys_;
  LinkStats stats_;
};

}  // namespace amparo

namespace amparo {

// Builds the links of daemon `self` from the deployment config: CURVE keys
// come from config.keys_dir (<self>.key, <peer>.pub) when the endpoint
// needs CURVE; a receiver then also starts the ZAP allow-list (every *.pub
// in keys_dir). Start()/Bind() have been called on what is returned.
Result<std::unique_ptr<LinkSender>> MakeSender(LinkContext& ctx, Db& db, const Config& config, std::string_view self,
                                               std::string_view peer, const std::string& endpoint,
                                               const Clock& clock);
Result<std::unique_ptr<LinkReceiver>> MakeReceiver(LinkContext& ctx, Db& db, const Config& config,
                                                   std::string_view self, const std::string& endpoint,
                                                   const Clock& clock);

}  // namespace amparo
