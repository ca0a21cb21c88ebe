#include "services/gateway/gateway_daemon.h"

#include <filesystem>
#include <set>
#include <string_view>
#include <utility>

#include "amparo/v1/envelope.pb.h"
#include "common/log.h"
#include "services/gateway/gateway_store.h"
#include "services/gateway/registry_stream.h"

namespace amparo::gateway {

using namespace std::chrono_literals;

namespace {

// Batches of link.batch messages per wake-up of the link loop, so the
// senders are not starved by a long inbox; the rest waits in the socket and
// the inbox table for the next turn.
constexpr int kMaxInboxBatches = 8;

}  // namespace

AlertInbox::AlertInbox(LinkReceiver& receiver, const Clock& clock, GatewayMetrics& metrics,
                       BroadcastFn broadcast, LiveClientsFn has_live_clients)
    : receiver_(receiver),
      clock_(clock),
      metrics_(metrics),
      broadcast_(std::move(broadcast)),
      has_live_clients_(std::move(has_live_clients)) {}

Result<int> AlertInbox::Process(int batch_size, int max_batches) {
  const LinkReceiver::Handler handler = [this](const v1::Envelope& envelope, Db& db) {
    batch_db_ = &db;
    const size_t before = pending_.size();
    Status st = Handle(envelope, db);
    // The receiver rolls this message's savepoint back: its frame goes too.
    if (!st.ok()) pending_.resize(before);
    return st;
  };
  int total = 0;
  for (int i = 0; i < max_batches; ++i) {
    pending_.clear();
    auto processed = receiver_.PumpAndProcess(handler, batch_size);
    if (!processed.ok()) {
      pending_.clear();  // the batch rolled back: nothing of it is shown
      return processed.status();
    }
    BroadcastCommitted();
    pending_.clear();
    total += *processed;
    if (*processed == 0) break;
  }
  return total;
}

void AlertInbox::BroadcastCommitted() {
  // Only for deferred alerts whose state gained a client during the batch:
  // which entries a later message of the same alert supersedes.
  std::vector<bool> superseded;
  for (size_t i = 0; i < pending_.size(); ++i) {
    Broadcast& b = pending_[i];
    metrics_.CountAlertReceived();
    if (b.deferred) {
      // Asked again after the commit: a client counted now may have loaded
      // the alert list before the commit, so it is owed this alert.
      if (!has_live_clients_(b.state)) continue;
      if (superseded.empty()) {
        superseded.assign(pending_.size(), false);
        std::set<std::pair<std::string_view, std::string_view>> later;
        for (size_t j = pending_.size(); j-- > 0;) {
          superseded[j] = !later.emplace(pending_[j].state, pending_[j].alert_id).second;
        }
      }
      if (superseded[i]) continue;
      // The committed row: what this and every earlier message of the batch
      // made of the alert. Read back (its message parsed) since the inbox
      // keeps no copy of messages nobody watched; this is the rare case of a
      // client that connected during the batch.
      b.frame = BuildFrame(*batch_db_, b.state, b.alert_id);
    }
    if (!b.frame.empty()) broadcast_(b.state, std::move(b.frame));
  }
}

std::string AlertInbox::BuildFrame(Db& db, const std::string& state, const std::string& alert_id) {
  auto row = GetAlert(db, state, alert_id);
  if (!row.ok()) {
    log::Warn("stored alert not readable for the live feed",
              {{"alert_id", alert_id}, {"error", row.status().ToString()}});
    return std::string();
  }
  ++frames_built_;
  return LiveAlertFrame(*row);
}

std::string AlertInbox::BuildFrame(Db& db, const v1::ConsularAlert& alert) {
  auto row = StoredAlertOfMessage(db, alert);
  if (!row.ok()) {
    log::Warn("stored alert not readable for the live feed",
              {{"alert_id", alert.alert_id()}, {"error", row.status().ToString()}});
    return std::string();
  }
  ++frames_built_;
  return LiveAlertFrame(*row);
}

Status AlertInbox::Handle(const v1::Envelope& envelope, Db& db) {
  switch (envelope.payload_case()) {
    case v1::Envelope::kConsularAlert: {
      const v1::ConsularAlert& alert = envelope.consular_alert();
      auto stored = UpsertAlert(db, alert, clock_);
      if (!stored.ok()) return stored.status();
      if (!*stored) return Status::Ok();
      log::Info("alert stored",
                {{"alert_id", alert.alert_id()}, {"revision", std::to_string(alert.revision())}});
      if (!has_live_clients_(alert.state())) {
        // Nobody of this state watches: no read-back, no ~35 KB frame. Still
        // counted and re-checked after the commit (BroadcastCommitted).
        pending_.push_back({alert.state(), alert.alert_id(), std::string(), /*deferred=*/true});
        return Status::Ok();
      }
      // Built here, not after the commit: a later message of the same batch
      // (the next revision, a delivery) must not show in this frame, which
      // the console gets as if this message had committed alone. The JSON
      // is rendered from `alert`: the row holds it only as protobuf bytes.
      pending_.push_back({alert.state(), alert.alert_id(), BuildFrame(db, alert), false});
      return Status::Ok();
    }
    case v1::Envelope::kDeliveryStatus:
      return UpsertDelivery(db, envelope.delivery_status());
    case v1::Envelope::kDeliveryStatuses: {
      const auto& statuses = envelope.delivery_statuses().statuses();
      for (int i = 0; i < statuses.size(); ++i) {
        Status st = UpsertDelivery(db, statuses[i]);
        if (st.ok()) continue;
        // All or nothing: the message's savepoint rolls back the ones before.
        const std::string where = "statuses[" + std::to_string(i) + "]";
        return Status(st.code(), st.message(), st.field().empty() ? where : where + "." + st.field());
      }
      return Status::Ok();
    }
    case v1::Envelope::kSnapshotRequest: {
      // From amparo-rules: the answer goes to its outbox in this transaction.
      auto answer = AnswerSnapshotRequest(db, envelope.snapshot_request(), clock_);
      if (!answer.ok()) return answer.status();
      return Status::Ok();
    }
    default:
      // Not for us: a permanent error keeps it as a dead letter to inspect.
      return InvalidArgument("gateway does not handle payload " + std::to_string(envelope.payload_case()));
  }
}

Result<std::unique_ptr<GatewayDaemon>> GatewayDaemon::Create(const Config& config, LinkContext& ctx,
                                                             const Clock& clock) {
  std::unique_ptr<GatewayDaemon> daemon(new GatewayDaemon(config, clock));
  AMPARO_RETURN_IF_ERROR(daemon->Init(ctx));
  return daemon;
}

GatewayDaemon::~GatewayDaemon() {
  // The HTTP thread and its bulk worker use http_db_, api_, bulk_db_ and
  // bulk_api_: stop them before those go.
  if (server_) server_->Stop();
}

Status GatewayDaemon::Init(LinkContext& ctx) {
  std::error_code ec;
  std::filesystem::create_directories(config_.data_dir, ec);
  if (ec) return Unavailable("cannot create data_dir " + config_.data_dir.string() + ": " + ec.message());
  const auto path = config_.DbPath("gateway");

  // The link thread's connection: checkpoints in the background, savepoint
  // journals in memory (DaemonDbOptions).
  auto link_db = Db::Open(path, DaemonDbOptions());
  if (!link_db.ok()) return link_db.status();
  link_db_.emplace(std::move(link_db).value());
  AMPARO_RETURN_IF_ERROR(MigrateGatewayDb(*link_db_));
  auto http_db = Db::Open(path);
  if (!http_db.ok()) return http_db.status();
  http_db_.emplace(std::move(http_db).value());
  auto bulk_db = Db::Open(path);
  if (!bulk_db.ok()) return bulk_db.status();
  bulk_db_.emplace(std::move(bulk_db).value());

  AMPARO_RETURN_IF_ERROR(EnsureRegistryKey(config_.keys_dir));
  auto keys = RegistryKeys::Load(config_.keys_dir);
  if (!keys.ok()) return keys.status();
  keys_.emplace(std::move(keys).value());
  auto usage = RegistryKeyUsage(*link_db_);
  if (!usage.ok()) return usage.status();
  for (const auto& [key_id, rows] : *usage) {
    if (!key_id.empty() && !keys_->Has(key_id)) {
      return Status(StatusCode::kFailedPrecondition,
                    std::to_string(rows) + " registrants are sealed with registry key " + key_id + ", but " +
                        (config_.keys_dir / ("registry." + key_id + ".key")).string() + " is missing",
                    "keys_dir");
    }
  }
  const bool gazetteer_configured = !config_.gateway.gazetteer.empty();
  const auto gazetteer_path = gazetteer_configured ? config_.gateway.gazetteer : Gazetteer::DefaultPath();
  auto gazetteer = Gazetteer::Load(gazetteer_path);
  if (gazetteer.ok()) {
    gazetteer_ = *gazetteer;
  } else if (gazetteer_configured) {
    return Status(StatusCode::kInvalidArgument, gazetteer.status().message(), "gateway.gazetteer");
  } else {
    log::Warn("no gazetteer: place names cannot be resolved", {{"error", gazetteer.status().ToString()}});
  }
  const auto spool = config_.data_dir / "gateway-spool";
  std::filesystem::create_directories(spool, ec);
  if (ec) return Unavailable("cannot create " + spool.string() + ": " + ec.message());

  auto inbox = MakeReceiver(ctx, *link_db_, config_, "gateway", config_.gateway.inbox, clock_);
  if (!inbox.ok()) return inbox.status();
  inbox_ = std::move(inbox).value();
  auto to_rules = MakeSender(ctx, *link_db_, config_, "gateway", "rules", config_.rules.inbox, clock_);
  if (!to_rules.ok()) return to_rules.status();
  to_rules_ = std::move(to_rules).value();
  auto to_notify = MakeSender(ctx, *link_db_, config_, "gateway", "notify", config_.notify.inbox, clock_);
  if (!to_notify.ok()) return to_notify.status();
  to_notify_ = std::move(to_notify).value();
  // Operator-entered events go to amparo-ingest, the same path as any source.
  auto to_ingest = MakeSender(ctx, *link_db_, config_, "gateway", "ingest", config_.ingest.inbox, clock_);
  if (!to_ingest.ok()) return to_ingest.status();
  to_ingest_ = std::move(to_ingest).value();

  GatewayApiOptions api_options;
  api_options.retention_days = config_.gateway.retention_days;
  api_options.rate_limit_per_s = config_.gateway.rate_limit_per_s;
  api_options.rate_limit_burst = config_.gateway.rate_limit_burst;
  api_options.import_batch_rows = config_.gateway.import_batch_rows;
  api_options.spool_dir = spool;
  api_ = std::make_unique<GatewayApi>(*http_db_, clock_, metrics_, *keys_, gazetteer_, api_options);
  bulk_api_ = std::make_unique<GatewayApi>(*bulk_db_, clock_, metrics_, *keys_, gazetteer_, api_options);
  HttpServerOptions options;
  options.listen = config_.gateway.listen;
  options.max_body_bytes = config_.gateway.max_body_bytes;
  options.max_upload_bytes = config_.gateway.max_import_bytes;
  options.upload_dir = spool;
  options.request_timeout_ms = config_.gateway.request_timeout_ms;
  GatewayApi* api = api_.get();
  options.upload_preflight = [api](const HttpRequest& request) { return api->Preflight(request); };
  GatewayApi* bulk_api = bulk_api_.get();
  options.bulk_handler = [bulk_api](const HttpRequest& request) { return bulk_api->Handle(request); };
  auto server = HttpServer::Start(
      options, [api](const HttpRequest& request) { return api->Handle(request); },
      [api](std::string_view first_message) -> Result<std::string> {
        auto token = api->AuthenticateLive(first_message);
        if (!token.ok()) return token.status();
        return token->state;
      },
      &metrics_);
  if (!server.ok()) return server.status();
  server_ = std::move(server).value();
  if (!config_.gateway.port_file.empty()) {
    AMPARO_RETURN_IF_ERROR(WritePortFile(config_.gateway.port_file.string(), server_->port()));
  }
  HttpServer* live = server_.get();
  alert_inbox_ = std::make_unique<AlertInbox>(
      *inbox_, clock_, metrics_,
      [live](const std::string& state, std::string frame) { live->Broadcast(state, std::move(frame)); },
      [live](const std::string& state) { return live->HasLiveClients(state); });

  loop_.OnReadable(inbox_->socket(), [this] { OnInboxReadable(); });
  loop_.OnReadable(to_rules_->socket(), [this] { PumpSenders(); });
  loop_.OnReadable(to_notify_->socket(), [this] { PumpSenders(); });
  loop_.OnReadable(to_ingest_->socket(), [this] { PumpSenders(); });
  // The senders also pick up what the HTTP thread enqueued, which no socket
  // announces: poll the outbox every 50 ms.
  loop_.Every(50ms, [this] {
    PumpSenders();
    ProcessInbox();
  });
  RunRetention();
  loop_.Every(std::chrono::seconds(config_.gateway.retention_check_s), [this] { RunRetention(); });
  return Status::Ok();
}

void GatewayDaemon::RunRetention() {
  auto purged = PurgeExpiredRegistrants(*link_db_, clock_);
  if (!purged.ok()) {
    log::Warn("retention purge failed", {{"error", purged.status().ToString()}});
  } else if (*purged > 0) {
    log::Info("retention purge", {{"purged", std::to_string(*purged)}});
  }
}

void GatewayDaemon::RunOnce(std::chrono::milliseconds max_wait) { loop_.RunOnce(max_wait); }

void GatewayDaemon::Run(const std::atomic<bool>& stop) { loop_.Run(stop); }

void GatewayDaemon::PumpSenders() {
  for (LinkSender* sender : {to_rules_.get(), to_notify_.get(), to_ingest_.get()}) {
    if (Status st = sender->Pump(); !st.ok()) {
      log::Warn("link send failed", {{"peer", sender->peer()}, {"error", st.ToString()}});
    }
  }
}

void GatewayDaemon::OnInboxReadable() {
  const auto now = std::chrono::steady_clock::now();
  const auto next = last_inbox_batch_ + std::chrono::milliseconds(config_.gateway.inbox_commit_interval_ms);
  if (now < next) {
    loop_.DeferReadable(inbox_->socket(), next);
    return;
  }
  last_inbox_batch_ = now;
  ProcessInbox();
}

void GatewayDaemon::ProcessInbox() {
  if (auto processed = alert_inbox_->Process(config_.link.batch, kMaxInboxBatches); !processed.ok()) {
    log::Warn("processing inbox failed", {{"error", processed.status().ToString()}});
  }
}

}  // namespace amparo::gateway
