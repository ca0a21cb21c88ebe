#include "common/link.h"

#include <sys/stat.h>

#include <cerrno>
#include <fstream>
#include <memory>
#include <sstream>
#include <vector>

#include "common/crypto.h"
#include "common/log.h"

namespace amparo {
namespace {

// libzmq fails a call with EINTR when a signal (SIGHUP reload, SIGTERM) lands
// during it, and cppzmq throws that. Retry: a signal must neither kill the
// daemon nor cut a multipart message in half.
zmq::recv_result_t Recv(zmq::socket_t& socket, zmq::message_t& message, zmq::recv_flags flags) {
  while (true) {
    try {
      return socket.recv(message, flags);
    } catch (const zmq::error_t& e) {
      if (e.num() != EINTR) throw;
    }
  }
}

zmq::send_result_t Send(zmq::socket_t& socket, zmq::const_buffer buffer, zmq::send_flags flags) {
  while (true) {
    try {
      return socket.send(buffer, flags);
    } catch (const zmq::error_t& e) {
      if (e.num() != EINTR) throw;
    }
  }
}


constexpr char kAck[] = "ACK";

void SetCommonOptions(zmq::socket_t& s, const LinkOptions& o) {
  s.set(zmq::sockopt::linger, 0);
  s.set(zmq::sockopt::sndhwm, o.high_water_mark);
  s.set(zmq::sockopt::rcvhwm, o.high_water_mark);
}

}  // namespace

CurveKeyPair GenerateCurveKeyPair() {
  char pub[41], sec[41];
  if (zmq_curve_keypair(pub, sec) != 0) std::abort();  // libzmq built without CURVE: cannot run safely
  return {pub, sec};
}

Status WriteCurveKeyPair(const std::filesystem::path& dir, std::string_view name, const CurveKeyPair& keys) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Internal("creating " + dir.string() + ": " + ec.message());
  auto key_path = dir / (std::string(name) + ".key");
  auto pub_path = dir / (std::string(name) + ".pub");
  {
    std::ofstream out(key_path, std::ios::trunc);
    out << "public=" << keys.public_key << "\nsecret=" << keys.secret_key << "\n";
    if (!out) return Internal("writing " + key_path.string());
  }
  ::chmod(key_path.c_str(), 0600);
  std::ofstream out(pub_path, std::ios::trunc);
  out << keys.public_key << "\n";
  if (!out) return Internal("writing " + pub_path.string());
  return Status::Ok();
}

Result<CurveKeyPair> ReadCurveKeyPair(const std::filesystem::path& dir, std::string_view name) {
  auto key_path = dir / (std::string(name) + ".key");
  std::ifstream in(key_path);
  if (!in) return NotFound("CURVE key file " + key_path.string() + " not found (run `amparo init`)");
  CurveKeyPair keys;
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("public=", 0) == 0) keys.public_key = line.substr(7);
    if (line.rfind("secret=", 0) == 0) keys.secret_key = line.substr(7);
  }
  if (keys.public_key.size() != 40 || keys.secret_key.size() != 40) {
    return InvalidArgument("malformed CURVE key file " + key_path.string());
  }
  return keys;
}

Result<std::set<std::string>> ReadAllowedKeys(const std::filesystem::path& dir) {
  std::set<std::string> keys;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    if (entry.path().extension() != ".pub") continue;
    std::ifstream in(entry.path());
    std::string key;
    in >> key;
    if (key.size() != 40) return InvalidArgument("malformed public key file " + entry.path().string());
    keys.insert(key);
  }
  if (ec) return NotFound("keys directory " + dir.string() + ": " + ec.message());
  return keys;
}

bool UsesCurve(CurveMode mode, std::string_view endpoint) {
  switch (mode) {
    case CurveMode::kOn: return endpoint.rfind("inproc://", 0) != 0;
    case CurveMode::kOff: return false;
    case CurveMode::kAuto: return endpoint.rfind("tcp://", 0) == 0;
  }
  return false;
}

LinkContext::LinkContext() = default;

LinkContext::~LinkContext() {
  stop_ = true;
  if (zap_thread_.joinable()) zap_thread_.join();
  ctx_.shutdown();
  ctx_.close();
}

void LinkContext::StartZap(std::set<std::string> allowed) {
  if (zap_thread_.joinable()) return;
  // Bind in this thread so the handler exists before any server socket binds.
  auto handler = std::make_shared<zmq::socket_t>(ctx_, zmq::socket_type::rep);
  handler->set(zmq::sockopt::linger, 0);
  handler->bind("inproc://zeromq.zap.01");
  zap_thread_ = std::thread([this, handler, allowed = std::move(allowed)] {
    // ZAP (RFC 27): request frames are version, request id, domain, address,
    // identity, mechanism, credentials...; reply version, id, status, text,
    // user id, metadata.
    while (!stop_) {
      zmq::pollitem_t item{handler->handle(), 0, ZMQ_POLLIN, 0};
      try {
        zmq::poll(&item, 1, std::chrono::milliseconds(100));
      } catch (const zmq::error_t& e) {
        if (e.num() != EINTR) throw;
        continue;
      }
      if (!(item.revents & ZMQ_POLLIN)) continue;
      std::vector<zmq::message_t> frames;
      while (true) {
        zmq::message_t m;
        if (!Recv(*handler, m, zmq::recv_flags::none)) break;
        bool more = m.more();
        frames.push_back(std::move(m));
        if (!more) break;
      }
      if (frames.size() < 6) continue;
      std::string version = frames[0].to_string();
      std::string request_id = frames[1].to_string();
      std::string mechanism = frames[5].to_string();
      bool ok = false;
      if (mechanism == "CURVE" && frames.size() >= 7 && frames[6].size() == 32) {
        char z85[41];
        zmq_z85_encode(z85, static_cast<const uint8_t*>(frames[6].data()), 32);
        ok = allowed.count(z85) > 0;
        if (!ok) {
          ++refused_;
          log::Warn("link: refused CURVE client with unknown key", {{"client_key", z85}});
        }
      }
      std::string status = ok ? "200" : "400";
      std::string text = ok ? "OK" : "unknown client key";
      Send(*handler, zmq::buffer(version), zmq::send_flags::sndmore);
      Send(*handler, zmq::buffer(request_id), zmq::send_flags::sndmore);
      Send(*handler, zmq::buffer(status), zmq::send_flags::sndmore);
      Send(*handler, zmq::buffer(text), zmq::send_flags::sndmore);
      Send(*handler, zmq::str_buffer(""), zmq::send_flags::sndmore);
      Send(*handler, zmq::str_buffer(""), zmq::send_flags::none);
    }
    handler->close();
  });
}

v1::Envelope MakeEnvelope(std::string_view producer, const Clock& clock) {
  v1::Envelope env;
  env.set_message_id(NewTimeOrderedId(clock.NowMs()));
  env.set_schema_version(kSchemaVersion);
  env.set_producer(std::string(producer));
  env.set_sent_ms(clock.NowMs());
  return env;
}

Status InitLinkTables(Db& db) {
  return db.Exec(R"sql(
    CREATE TABLE IF NOT EXISTS link_outbox(
      seq INTEGER PRIMARY KEY AUTOINCREMENT,
      peer TEXT NOT NULL,
      message_id TEXT NOT NULL UNIQUE,
      envelope BLOB NOT NULL,
      created_ms INTEGER NOT NULL);
    CREATE INDEX IF NOT EXISTS link_outbox_by_peer ON link_outbox(peer, seq);
    CREATE TABLE IF NOT EXISTS link_inbox(
      seq INTEGER PRIMARY KEY AUTOINCREMENT,
      message_id TEXT NOT NULL UNIQUE,
      envelope BLOB,
      received_ms INTEGER NOT NULL,
      processed_ms INTEGER,
      error TEXT);
    CREATE INDEX IF NOT EXISTS link_inbox_pending ON link_inbox(seq) WHERE processed_ms IS NULL;
  )sql");
}

Status EnqueueOutbound(Db& db, std::string_view peer, const v1::Envelope& envelope) {
  auto stmt = db.Prepare(
      "INSERT INTO link_outbox(peer, message_id, envelope, created_ms) VALUES(?,?,?,?) "
      "ON CONFLICT(message_id) DO NOTHING");
  if (!stmt.ok()) return stmt.status();
  std::string bytes;
  if (!envelope.SerializeToString(&bytes)) return Internal("serialising envelope");
  stmt->Bind(1, peer).Bind(2, envelope.message_id()).BindBlobRef(3, bytes).Bind(4, envelope.sent_ms());
  return stmt->Run();
}

Result<std::vector<v1::Envelope>> PendingOutbound(Db& db, std::string_view peer, int limit) {
  auto q = db.Prepare("SELECT message_id, envelope FROM link_outbox WHERE peer = ? ORDER BY seq LIMIT ?");
  if (!q.ok()) return q.status();
  q->Bind(1, peer).Bind(2, limit);
  std::vector<v1::Envelope> out;
  while (true) {
    auto row = q->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    v1::Envelope env;
    if (!env.ParseFromString(q->ColumnBlob(1))) {
      return Status(StatusCode::kDataLoss, "outbox message " + q->ColumnText(0) + " does not parse");
    }
    out.push_back(std::move(env));
  }
  return out;
}

// ---------------------------------------------------------------- sender

LinkSender::LinkSender(LinkContext& ctx, Db& db, std::string peer, std::string endpoint,
                       const LinkOptions& options, const Clock& clock, std::optional<CurveKeyPair> client_keys,
                       std::string server_public_key)
    : db_(db),
      peer_(std::move(peer)),
      endpoint_(std::move(endpoint)),
      options_(options),
      clock_(clock),
      socket_(ctx.zmq(), zmq::socket_type::dealer),
      client_keys_(std::move(client_keys)),
      server_public_key_(std::move(server_public_key)) {}

Status LinkSender::Start() {
  AMPARO_RETURN_IF_ERROR(InitLinkTables(db_));
  try {
    SetCommonOptions(socket_, options_);
    // Queue only on completed connections: while the peer is down, messages
    // wait in the outbox (durable) instead of in ZeroMQ memory.
    socket_.set(zmq::sockopt::immediate, 1);
    socket_.set(zmq::sockopt::reconnect_ivl, 100);
    socket_.set(zmq::sockopt::reconnect_ivl_max, 2000);
    if (UsesCurve(options_.curve, endpoint_)) {
      if (!client_keys_ || server_public_key_.empty()) {
        return {StatusCode::kFailedPrecondition, "link to " + peer_ + " needs CURVE keys (run `amparo init`)"};
      }
      socket_.set(zmq::sockopt::curve_serverkey, server_public_key_);
      socket_.set(zmq::sockopt::curve_publickey, client_keys_->public_key);
      socket_.set(zmq::sockopt::curve_secretkey, client_keys_->secret_key);
    }
    socket_.connect(endpoint_);
  } catch (const zmq::error_t& e) {
    return Unavailable("connecting link to " + peer_ + " at " + endpoint_ + ": " + e.what());
  }
  return Status::Ok();
}

bool LinkSender::SendFrames(const std::string& message_id, const std::string& body) {
  try {
    if (!Send(socket_, zmq::buffer(message_id), zmq::send_flags::sndmore | zmq::send_flags::dontwait)) return false;
    // Once the first frame is queued the rest of the message always follows.
    Send(socket_, zmq::buffer(body), zmq::send_flags::none);
    return true;
  } catch (const zmq::error_t& e) {
    log::Warn("link: send failed", {{"peer", peer_}, {"error", e.what()}});
    return false;
  }
}

Status LinkSender::ReadAcks() {
  while (true) {
    zmq::message_t tag, id;
    auto r = Recv(socket_, tag, zmq::recv_flags::dontwait);
    if (!r) break;
    if (!tag.more()) continue;
    (void)Recv(socket_, id, zmq::recv_flags::none);
    while (id.more()) {  // drain anything unexpected
      zmq::message_t extra;
      (void)Recv(socket_, extra, zmq::recv_flags::none);
      if (!extra.more()) break;
    }
    if (tag.to_string_view() != kAck) continue;
    std::string acked = id.to_string();
    if (in_flight_.erase(acked)) ++stats_.acked;
    if (acked_.empty()) first_acked_ms_ = clock_.NowMs();
    acked_.push_back(std::move(acked));
  }
  if (acked_.empty()) return Status::Ok();
  // When the owner folds the deletes into its own transactions, a
  // transaction of our own only for what waited while it had none to do.
  if (fold_ack_deletes_ && clock_.NowMs() - first_acked_ms_ < kAckDeleteAfterMs) return Status::Ok();
  // No fsync of its own: were this delete lost in a power cut, the messages
  // would be sent again and the receiver would drop them by their ids.
  UnsyncedCommits unsynced(db_);
  auto tx = Transaction::Begin(db_);
  if (!tx.ok()) return tx.status();
  size_t deleted = 0;
  AMPARO_RETURN_IF_ERROR(DeleteAcknowledged(&deleted));
  AMPARO_RETURN_IF_ERROR(tx->Commit());
  AcknowledgedDeletesCommitted(deleted);
  return Status::Ok();
}

Status LinkSender::DeleteAcknowledged(size_t* deleted) {
  *deleted = 0;
  if (acked_.empty()) return Status::Ok();
  auto del = db_.Prepare("DELETE FROM link_outbox WHERE message_id = ?");
  if (!del.ok()) return del.status();
  for (const std::string& id : acked_) {
    del->Bind(1, id);
    AMPARO_RETURN_IF_ERROR(del->Run());
  }
  *deleted = acked_.size();
  return Status::Ok();
}

void LinkSender::AcknowledgedDeletesCommitted(size_t n) {
  if (n == 0) return;
  acked_.erase(acked_.begin(), acked_.begin() + static_cast<ptrdiff_t>(std::min(n, acked_.size())));
  first_acked_ms_ = clock_.NowMs();  // the rest came after the deleted ones
}

Status LinkSender::SendNew() {
  int64_t now = clock_.NowMs();
  // Resend what timed out: the peer may have restarted and lost its queue.
  std::vector<std::string> overdue;
  for (const auto& [id, f] : in_flight_) {
    if (now - f.sent_ms >= options_.resend_after_ms) overdue.push_back(id);
  }
  if (!overdue.empty()) {
    auto get = db_.Prepare("SELECT envelope FROM link_outbox WHERE message_id = ?");
    if (!get.ok()) return get.status();
    for (const auto& id : overdue) {
      get->Bind(1, id);
      auto row = get->Step();
      if (!row.ok()) return row.status();
      if (!*row) {  // acknowledged meanwhile
        get->Reset();
        in_flight_.erase(id);
        continue;
      }
      std::string body = get->ColumnBlob(0);
      get->Reset();
      if (!SendFrames(id, body)) break;
      in_flight_[id].sent_ms = now;
      ++stats_.resent;
    }
  }
  int room = options_.window - static_cast<int>(in_flight_.size());
  if (room <= 0) return Status::Ok();
  auto next = db_.Prepare(
      "SELECT seq, message_id, envelope FROM link_outbox WHERE peer = ? AND seq > ? ORDER BY seq LIMIT ?");
  if (!next.ok()) return next.status();
  next->Bind(1, peer_).Bind(2, last_seq_).Bind(3, room);
  while (true) {
    auto row = next->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    int64_t seq = next->ColumnInt(0);
    std::string id = next->ColumnText(1);
    if (!SendFrames(id, next->ColumnBlob(2))) break;
    in_flight_[id] = {seq, now};
    last_seq_ = seq;
    ++stats_.sent;
  }
  next->Reset();
  return Status::Ok();
}

Status LinkSender::Pump() {
  AMPARO_RETURN_IF_ERROR(ReadAcks());
  return SendNew();
}

Result<int64_t> LinkSender::Depth() {
  auto q = db_.Prepare("SELECT count(*) FROM link_outbox WHERE peer = ?");
  if (!q.ok()) return q.status();
  q->Bind(1, peer_);
  auto row = q->Step();
  if (!row.ok()) return row.status();
  return q->ColumnInt(0);
}

// ---------------------------------------------------------------- receiver

LinkReceiver::LinkReceiver(LinkContext& ctx, Db& db, std::string endpoint, const LinkOptions& options,
                           const Clock& clock, std::optional<CurveKeyPair> server_keys)
    : db_(db),
      endpoint_(std::move(endpoint)),
      options_(options),
      clock_(clock),
      socket_(ctx.zmq(), zmq::socket_type::router),
      server_keys_(std::move(server_keys)) {}

Status LinkReceiver::Bind() {
  AMPARO_RETURN_IF_ERROR(InitLinkTables(db_));
  try {
    SetCommonOptions(socket_, options_);
    if (UsesCurve(options_.curve, endpoint_)) {
      if (!server_keys_) return {StatusCode::kFailedPrecondition, "inbox " + endpoint_ + " needs CURVE keys"};
      socket_.set(zmq::sockopt::curve_server, 1);
      socket_.set(zmq::sockopt::curve_secretkey, server_keys_->secret_key);
      socket_.set(zmq::sockopt::zap_domain, "amparo");
    }
    if (endpoint_.rfind("ipc://", 0) == 0) {
      // A stale socket file from a killed daemon would make bind fail.
      std::error_code ec;
      std::filesystem::remove(endpoint_.substr(6), ec);
    }
    socket_.bind(endpoint_);
  } catch (const zmq::error_t& e) {
    return Unavailable("binding inbox " + endpoint_ + ": " + e.what());
  }
  return Status::Ok();
}

std::vector<LinkReceiver::Incoming> LinkReceiver::ReceiveBatch() {
  std::vector<Incoming> batch;
  while (static_cast<int>(batch.size()) < options_.batch) {
    zmq::message_t identity;
    if (!Recv(socket_, identity, zmq::recv_flags::dontwait)) break;
    std::vector<zmq::message_t> parts;
    bool more = identity.more();
    while (more) {
      zmq::message_t m;
      (void)Recv(socket_, m, zmq::recv_flags::none);
      more = m.more();
      parts.push_back(std::move(m));
    }
    if (parts.size() != 2) {
      ++stats_.rejected;
      log::Warn("link: dropped malformed frame set", {{"frames", std::to_string(parts.size() + 1)}});
      continue;
    }
    batch.push_back({identity.to_string(), parts[0].to_string(), parts[1].to_string()});
  }
  return batch;
}

std::string LinkReceiver::CheckIncoming(const Incoming& in, v1::Envelope* env) {
  if (!env->ParseFromString(in.body)) return "envelope does not parse";
  if (env->message_id() != in.message_id) return "envelope message_id does not match its frame";
  if (env->schema_version() != kSchemaVersion) {
    return "unknown schema_version " + std::to_string(env->schema_version());
  }
  return {};
}

constexpr std::string_view kStoreIncoming =
    "INSERT INTO link_inbox(message_id, envelope, received_ms, processed_ms, error) VALUES(?,?,?,?,?) "
    "ON CONFLICT(message_id) DO NOTHING";

Status LinkReceiver::StoreBatch(const std::vector<Incoming>& batch) {
  auto ins = db_.Prepare(kStoreIncoming);
  if (!ins.ok()) return ins.status();
  for (const auto& in : batch) AMPARO_RETURN_IF_ERROR(StoreOne(*ins, in));
  return Status::Ok();
}

Status LinkReceiver::StoreOne(Statement& ins, const Incoming& in) {
  int64_t now = clock_.NowMs();
  v1::Envelope env;
  const std::string error = CheckIncoming(in, &env);
  ins.Bind(1, in.message_id).BindBlob(2, in.body).Bind(3, now);
  if (error.empty()) {
    ins.BindNull(4).BindNull(5);
  } else {
    // Kept as a dead letter, never processed; acknowledged so the
    // sender does not resend it forever.
    ins.Bind(4, now).Bind(5, error);
  }
  AMPARO_RETURN_IF_ERROR(ins.Run());
  if (db_.Changes() == 0) {
    ++stats_.duplicates;
  } else if (!error.empty()) {
    ++stats_.rejected;
    log::Error("link: rejected message", {{"message_id", in.message_id}, {"error", error}});
  } else {
    ++stats_.received;
  }
  return Status::Ok();
}

Result<int> LinkReceiver::StoreAndProcess(const std::vector<Incoming>& batch, const Handler& handler, int max,
                                          int* processed, int* failed) {
  // Each row is written once, as it ends: processed (the id alone, for
  // idempotency), dead letter (with its envelope and error) or, past `max`
  // or after a retryable failure, pending. Inserting every envelope and then
  // clearing it left the rows' pages mostly empty (an alert is ~9 KB) and
  // wrote them twice.
  auto ins = db_.Prepare(
      "INSERT INTO link_inbox(message_id, envelope, received_ms, processed_ms, error) "
      "VALUES(?,NULL,?,?,NULL) "
      "ON CONFLICT(message_id) DO NOTHING");
  if (!ins.ok()) return ins.status();
  auto store = db_.Prepare(kStoreIncoming);
  if (!store.ok()) return store.status();
  int done = 0;
  bool stopped = false;
  for (const auto& in : batch) {
    v1::Envelope env;
    if (stopped || done >= max || !CheckIncoming(in, &env).empty()) {
      AMPARO_RETURN_IF_ERROR(StoreOne(*store, in));  // pending, or a dead letter
      continue;
    }
    const int64_t now = clock_.NowMs();
    ins->Bind(1, in.message_id).Bind(2, now).Bind(3, now);
    AMPARO_RETURN_IF_ERROR(ins->Run());
    if (db_.Changes() == 0) {
      ++stats_.duplicates;
      continue;
    }
    ++stats_.received;
    const int64_t seq = db_.LastInsertRowId();
    auto outcome = RunHandler(handler, env, seq, in.body);
    if (!outcome.ok()) return outcome.status();
    if (*outcome == Outcome::kRetry) {
      // Back to pending with its envelope; it and what follows it are
      // tried again, in order, next time.
      AMPARO_RETURN_IF_ERROR(Mark(seq, std::nullopt, &in.body, {}));
      stopped = true;
      continue;
    }
    ++*(*outcome == Outcome::kProcessed ? processed : failed);
    ++done;
  }
  return done;
}

Result<bool> LinkReceiver::HasPending() {
  auto q = db_.Prepare("SELECT 1 FROM link_inbox WHERE processed_ms IS NULL LIMIT 1");
  if (!q.ok()) return q.status();
  auto row = q->Step();
  if (!row.ok()) return row.status();
  return *row;
}

void LinkReceiver::Acknowledge(const std::vector<Incoming>& batch) {
  for (const auto& in : batch) {
    try {
      if (!Send(socket_, zmq::buffer(in.identity), zmq::send_flags::sndmore | zmq::send_flags::dontwait))
        continue;
      Send(socket_, zmq::str_buffer(kAck), zmq::send_flags::sndmore);
      Send(socket_, zmq::buffer(in.message_id), zmq::send_flags::none);
    } catch (const zmq::error_t&) {
      // The sender will resend and we will acknowledge the duplicate.
    }
  }
}

Status LinkReceiver::Pump() {
  while (true) {
    std::vector<Incoming> batch = ReceiveBatch();
    if (batch.empty()) return Status::Ok();
    auto tx = Transaction::Begin(db_);
    if (!tx.ok()) return tx.status();
    AMPARO_RETURN_IF_ERROR(StoreBatch(batch));
    AMPARO_RETURN_IF_ERROR(tx->Commit());
    // Acknowledge only what is committed.
    Acknowledge(batch);
  }
}

Result<std::vector<LinkReceiver::PendingRow>> LinkReceiver::LoadPending(int max) {
  auto next = db_.Prepare(
      "SELECT seq, message_id, envelope FROM link_inbox WHERE processed_ms IS NULL ORDER BY seq LIMIT ?");
  if (!next.ok()) return next.status();
  std::vector<PendingRow> rows;
  next->Bind(1, max);
  while (true) {
    auto r = next->Step();
    if (!r.ok()) return r.status();
    if (!*r) break;
    rows.push_back({next->ColumnInt(0), next->ColumnText(1), next->ColumnBlob(2)});
  }
  next->Reset();
  return rows;
}

Result<LinkReceiver::Outcome> LinkReceiver::RunHandler(const Handler& handler, const v1::Envelope& env,
                                                       int64_t seq, const std::string& body) {
  AMPARO_RETURN_IF_ERROR(db_.Run("SAVEPOINT link_message"));
  Status st = handler(env, db_);
  if (st.ok()) {
    AMPARO_RETURN_IF_ERROR(db_.Run("RELEASE link_message"));
    return Outcome::kProcessed;
  }
  // The handler's partial work is undone; what came before stays.
  AMPARO_RETURN_IF_ERROR(db_.Run("ROLLBACK TO link_message"));
  AMPARO_RETURN_IF_ERROR(db_.Run("RELEASE link_message"));
  if (st.IsRetryable()) return Outcome::kRetry;  // try again, in order, next time
  log::Error("link: message failed, kept as dead letter",
             {{"message_id", env.message_id()}, {"error", st.ToString()}});
  AMPARO_RETURN_IF_ERROR(Mark(seq, clock_.NowMs(), &body, st.ToString()));
  return Outcome::kDeadLetter;
}

Status LinkReceiver::Mark(int64_t seq, std::optional<int64_t> processed_ms, const std::string* envelope,
                          const std::string& error) {
  auto mark = db_.Prepare("UPDATE link_inbox SET processed_ms = ?, envelope = ?, error = ? WHERE seq = ?");
  if (!mark.ok()) return mark.status();
  if (processed_ms) {
    mark->Bind(1, *processed_ms);
  } else {
    mark->BindNull(1);
  }
  if (envelope) {
    mark->BindBlob(2, *envelope);
  } else {
    mark->BindNull(2);
  }
  if (!error.empty()) {
    mark->Bind(3, error);
  } else {
    mark->BindNull(3);
  }
  return mark->Bind(4, seq).Run();
}

Result<int> LinkReceiver::ProcessRows(const std::vector<PendingRow>& rows, const Handler& handler,
                                      int* processed, int* failed) {
  int done = 0;
  for (const auto& row : rows) {
    v1::Envelope env;
    env.ParseFromString(row.body);  // checked when stored
    auto outcome = RunHandler(handler, env, row.seq, row.body);
    if (!outcome.ok()) return outcome.status();
    if (*outcome == Outcome::kRetry) break;
    if (*outcome == Outcome::kProcessed) {
      // Processed: the payload is dropped, the id stays for idempotency.
      AMPARO_RETURN_IF_ERROR(Mark(row.seq, clock_.NowMs(), nullptr, {}));
      ++*processed;
    } else {
      ++*failed;
    }
    ++done;
  }
  return done;
}

Result<int> LinkReceiver::ProcessPending(const Handler& handler, int max, const BeforeCommit& before_commit) {
  auto rows = LoadPending(max);
  if (!rows.ok()) return rows.status();
  if (rows->empty()) return 0;
  // Group commit: one transaction (one fsync) for the batch, a savepoint per
  // message, so a failing handler's partial work is rolled back alone while
  // the messages before it commit together with their marks.
  auto tx = Transaction::Begin(db_);
  if (!tx.ok()) return tx.status();
  int processed = 0, failed = 0;
  auto done = ProcessRows(*rows, handler, &processed, &failed);
  if (!done.ok()) return done.status();
  if (before_commit) AMPARO_RETURN_IF_ERROR(before_commit());
  AMPARO_RETURN_IF_ERROR(tx->Commit());
  stats_.processed += processed;
  stats_.failed += failed;
  return *done;
}

Result<int> LinkReceiver::PumpAndProcess(const Handler& handler, int max, const BeforeCommit& before_commit) {
  std::vector<Incoming> batch = ReceiveBatch();
  // Nothing to store or acknowledge:
  if (batch.empty()) return ProcessPending(handler, max, before_commit);
  auto tx = Transaction::Begin(db_);
  if (!tx.ok()) return tx.status();
  auto backlog = HasPending();
  if (!backlog.ok()) return backlog.status();
  int processed = 0, failed = 0;
  Result<int> done = 0;
  if (*backlog) {
    // What was stored before comes first: store, then process the oldest.
    AMPARO_RETURN_IF_ERROR(StoreBatch(batch));
    // This transaction sees what it just stored.
    auto rows = LoadPending(max);
    if (!rows.ok()) return rows.status();
    done = ProcessRows(*rows, handler, &processed, &failed);
  } else {
    done = StoreAndProcess(batch, handler, max, &processed, &failed);
  }
  if (!done.ok()) return done.status();
  if (before_commit) AMPARO_RETURN_IF_ERROR(before_commit());
  AMPARO_RETURN_IF_ERROR(tx->Commit());
  // Acknowledge only what is committed (stored, and processed as far as the
  // handler allowed).
  Acknowledge(batch);
  stats_.processed += processed;
  stats_.failed += failed;
  return *done;
}

Result<int64_t> LinkReceiver::Backlog() {
  auto q = db_.Prepare("SELECT count(*) FROM link_inbox WHERE processed_ms IS NULL");
  if (!q.ok()) return q.status();
  auto row = q->Step();
  if (!row.ok()) return row.status();
  return q->ColumnInt(0);
}

}  // namespace amparo

namespace amparo {

Result<std::unique_ptr<LinkSender>> MakeSender(LinkContext& ctx, Db& db, const Config& config, std::string_view self,
                                               std::string_view peer, const std::string& endpoint,
                                               const Clock& clock) {
  std::optional<CurveKeyPair> own;
  std::string server_key;
  if (UsesCurve(config.link.curve, endpoint)) {
    auto keys = ReadCurveKeyPair(config.keys_dir, self);
    if (!keys.ok()) return keys.status();
    own = *keys;
    auto peer_keys = ReadAllowedKeys(config.keys_dir);  // validates the directory
    if (!peer_keys.ok()) return peer_keys.status();
    std::ifstream in(config.keys_dir / (std::string(peer) + ".pub"));
    if (!(in >> server_key) || server_key.size() != 40) {
      return NotFound("public key of " + std::string(peer) + " not found in " + config.keys_dir.string());
    }
  }
  auto sender = std::make_unique<LinkSender>(ctx, db, std::string(peer), endpoint, config.link, clock, own, server_key);
  AMPARO_RETURN_IF_ERROR(sender->Start());
  return sender;
}

Result<std::unique_ptr<LinkReceiver>> MakeReceiver(LinkContext& ctx, Db& db, const Config& config,
                                                   std::string_view self, const std::string& endpoint,
                                                   const Clock& clock) {
  std::optional<CurveKeyPair> own;
  if (UsesCurve(config.link.curve, endpoint)) {
    auto keys = ReadCurveKeyPair(config.keys_dir, self);
    if (!keys.ok()) return keys.status();
    own = *keys;
    auto allowed = ReadAllowedKeys(config.keys_dir);
    if (!allowed.ok()) return allowed.status();
    ctx.StartZap(*allowed);
  } else if (endpoint.rfind("ipc://", 0) == 0) {
    // ipc sockets are protected by their directory: owner only.
    std::filesystem::path dir = std::filesystem::path(endpoint.substr(6)).parent_path();
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    std::filesystem::permissions(dir, std::filesystem::perms::owner_all, ec);
  }
  auto receiver = std::make_unique<LinkReceiver>(ctx, db, endpoint, config.link, clock, own);
  AMPARO_RETURN_IF_ERROR(receiver->Bind());
  return receiver;
}

}  // namespace amparo
