#include "services/ingest/ingest_daemon.h"

#include "services/ingest/xmldsig.h"

#include <algorithm>
#include <system_error>
#include <utility>

#include "common/log.h"

namespace amparo::ingest {

using namespace std::chrono_literals;

CorrelationRules CorrelationRulesFrom(const IngestOptions& options) {
  CorrelationRules rules;
  rules.earthquake_window_ms = int64_t{options.correlation_earthquake_window_s} * 1000;
  rules.earthquake_max_distance_km = options.correlation_earthquake_distance_km;
  rules.earthquake_max_magnitude_delta = options.correlation_earthquake_magnitude_delta;
  rules.area_window_ms = int64_t{options.correlation_area_window_h} * 3'600'000;
  return rules;
}

Result<std::unique_ptr<IngestDaemon>> IngestDaemon::Create(const Config& config, LinkContext& ctx,
                                                           const Clock& clock) {
  std::error_code ec;
  std::filesystem::create_directories(config.data_dir, ec);
  if (ec) return Unavailable("cannot create data_dir " + config.data_dir.string() + ": " + ec.message());
  auto db = Db::Open(config.DbPath("ingest"));
  if (!db.ok()) return db.status();
  AMPARO_RETURN_IF_ERROR(PrepareIngestDb(*db));

  SpoolOptions spool_options;
  spool_options.spool_dir = config.ingest.spool_dir;
  spool_options.max_file_bytes = config.ingest.max_file_bytes;
  auto mode = [](const std::string& name) {
    return name == "strict" ? ValidationMode::kStrict : ValidationMode::kLenient;
  };
  spool_options.validation = mode(config.ingest.validation);
  for (const PollSource& source : config.ingest.poll) {
    if (!source.validation.empty()) spool_options.source_validation[source.name] = mode(source.validation);
  }
  spool_options.xml_limits.max_document_bytes = config.ingest.xml_max_document_bytes;
  spool_options.xml_limits.max_depth = config.ingest.xml_max_depth;
  spool_options.xml_limits.max_elements = config.ingest.xml_max_elements;
  spool_options.require_trusted_signers = config.ingest.require_trusted_signers;
  spool_options.correlation = CorrelationRulesFrom(config.ingest);
  if (!config.ingest.trust_store.empty()) {
    auto store = TrustStore::Load(config.ingest.trust_store);
    if (!store.ok()) {
      return Status(store.status().code(), store.status().message(), "ingest.trust_store");
    }
    spool_options.trust_store = std::make_shared<const TrustStore>(std::move(store).value());
  }
  std::unique_ptr<IngestDaemon> daemon(
      new IngestDaemon(std::move(db).value(), std::move(spool_options), clock));
  AMPARO_RETURN_IF_ERROR(daemon->spool_.CreateDirectories());

  auto sender = MakeSender(ctx, daemon->db_, config, "ingest", "rules", config.rules.inbox, clock);
  if (!sender.ok()) return sender.status();
  daemon->sender_ = std::move(sender).value();
  // rules' acknowledgements are deleted by the spool files' commits (or,
  // when there are none, after LinkSender::kAckDeleteAfterMs, by PumpLink).
  daemon->sender_->FoldAckDeletes();
  IngestDaemon* owner = daemon.get();
  daemon->spool_.SetCommitHooks([owner] { return owner->sender_->DeleteAcknowledged(&owner->acks_deleted_); },
                                [owner] {
                                  owner->sender_->AcknowledgedDeletesCommitted(owner->acks_deleted_);
                                  owner->acks_deleted_ = 0;
                                });
  auto inbox = MakeReceiver(ctx, daemon->db_, config, "ingest", config.ingest.inbox, clock);
  if (!inbox.ok()) return inbox.status();
  daemon->inbox_ = std::move(inbox).value();
  daemon->inbox_batch_ = config.link.batch;

  IngestDaemon* self = daemon.get();
  daemon->loop_.OnReadable(daemon->sender_->socket(), [self] { self->PumpLink(); });
  daemon->loop_.OnReadable(daemon->inbox_->socket(), [self] { self->ProcessInbox(); });
  daemon->loop_.Every(100ms, [self] {
    self->ProcessInbox();
    self->PumpLink();
  });
  daemon->loop_.Every(std::chrono::milliseconds(config.ingest.scan_interval_ms),
                      [self] { self->ScanSpool(); });
  // Files are picked up when they land, not at the next scan; the timer
  // above remains the fallback.
  if (auto watcher = SpoolWatcher::Start(ctx.zmq(), config.ingest.spool_dir); watcher.ok()) {
    daemon->watcher_ = std::move(watcher).value();
    daemon->loop_.OnReadable(daemon->watcher_->socket(), [self] {
      self->watcher_->Drain();
      self->ScanSpool();
    });
  } else {
    log::Warn("spool watcher unavailable, the spool is scanned on the timer only",
              {{"error", watcher.status().ToString()}});
  }
  daemon->loop_.Every(60s, [self] { self->LogCounters(); });

  if (!config.ingest.push_listen.empty()) {
    PushServerOptions push;
    push.listen = config.ingest.push_listen;
    push.token = config.ingest.push_token;
    push.max_body_bytes = config.ingest.push_max_body_bytes;
    push.spool_dir = config.ingest.spool_dir;
    push.port_file = config.ingest.push_port_file;
    const SpoolOptions& spool = daemon->spool_.options();
    push.check_context.validation = spool.validation;
    auto push_mode = spool.source_validation.find("push");
    if (push_mode != spool.source_validation.end()) push.check_context.validation = push_mode->second;
    push.check_context.xml_limits = spool.xml_limits;
    push.check_context.trust_store = spool.trust_store.get();  // owned by spool_, which outlives push_
    push.check_context.require_trusted_signers = spool.require_trusted_signers;
    auto server = PushServer::Start(std::move(push), clock);
    if (!server.ok()) return server.status();
    daemon->push_ = std::move(server).value();
  }

  for (const PollSource& source : config.ingest.poll) {
    daemon->pollers_.push_back(
        std::make_unique<FeedPoller>(source, config.ingest.spool_dir, config.ingest.max_file_bytes, clock));
    daemon->pollers_.back()->Start();
  }
  return daemon;
}

IngestDaemon::IngestDaemon(Db db, SpoolOptions spool_options, const Clock& clock)
    : db_(std::move(db)), clock_(clock), spool_(db_, std::move(spool_options), clock) {}

IngestDaemon::~IngestDaemon() {
  // Pollers first: they write into the spool and must not outlive it.
  for (auto& poller : pollers_) poller->Stop();
  push_.reset();
  LogCounters();
}

void IngestDaemon::Run(const std::atomic<bool>& stop) {
  while (!stop) RunOnce(200ms);
}

void IngestDaemon::RunOnce(std::chrono::milliseconds max_wait) {
  // A scan that took its maximum of files left others behind: one loop turn
  // for the link, then the next scan, without waiting for a timer.
  loop_.RunOnce(spool_backlog_ ? 0ms : max_wait);
  if (spool_backlog_) ScanSpool();
}

void IngestDaemon::ScanSpool() {
  // Each file's events go to the link as soon as its transaction committed:
  // rules starts on the first file while ingest parses the next.
  auto outcomes = spool_.ScanOnce([this](const FileOutcome&) { PumpLink(); });
  spool_backlog_ = false;
  if (!outcomes.ok()) {
    log::Error("spool scan failed", {{"error", outcomes.status().ToString()}});
    return;
  }
  spool_backlog_ = outcomes->size() >= static_cast<size_t>(spool_.options().max_files_per_scan);
}

namespace {

bool IsIso3(std::string_view code) {
  return code.size() == 3 && std::all_of(code.begin(), code.end(), [](char c) { return c >= 'A' && c <= 'Z'; });
}

// The inbox is for operator-entered events only: anything that could reach
// every state's nationals (no restriction) or pass for another source's event
// (whose dedupe rows and incidents it would then touch) is refused.
Status CheckOperatorEvent(const v1::Envelope& envelope) {
  if (envelope.payload_case() != v1::Envelope::kCrisisEvent) {
    return InvalidArgument("ingest's inbox takes only crisis_event, got payload " +
                           std::to_string(envelope.payload_case()));
  }
  const v1::CrisisEvent& event = envelope.crisis_event();
  if (event.source() != kRestrictedSource) {
    return InvalidArgument("source is \"" + event.source() + "\", only \"operator\" events come over the link",
                           "source");
  }
  if (event.restricted_to_states().empty()) {
    return InvalidArgument("an operator event must be restricted to its state", "restricted_to_states");
  }
  for (const std::string& state : event.restricted_to_states()) {
    if (!IsIso3(state)) return InvalidArgument("'" + state + "' is not an ISO3 code", "restricted_to_states");
  }
  if (event.source_id().empty() || event.event_id() != "operator:" + event.source_id()) {
    return InvalidArgument("must be \"operator:<source_id>\"", "event_id");
  }
  if (event.msg_type() != v1::MESSAGE_TYPE_ALERT && event.msg_type() != v1::MESSAGE_TYPE_UPDATE &&
      event.msg_type() != v1::MESSAGE_TYPE_CANCEL) {
    return InvalidArgument("must be ALERT, UPDATE or CANCEL", "msg_type");
  }
  if (event.revision() < 1) return InvalidArgument("must be at least 1", "revision");
  return Status::Ok();
}

}  // namespace

Status IngestDaemon::HandleInbound(const v1::Envelope& envelope) {
  if (Status bad = CheckOperatorEvent(envelope); !bad.ok()) {
    last_inbound_ = Inbound::kRejected;
    log::Warn("operator event rejected", {{"message_id", envelope.message_id()},
                                          {"producer", envelope.producer()},
                                          {"reason", bad.ToString()}});
    return bad;  // permanent: the link keeps it as a dead letter
  }
  v1::CrisisEvent event = envelope.crisis_event();
  event.set_received_ms(clock_.NowMs());
  auto sent = spool_.RecordEvent(std::move(event));
  if (!sent.ok()) return sent.status();
  last_inbound_ = *sent ? Inbound::kSent : Inbound::kUnchanged;
  return Status::Ok();
}

void IngestDaemon::ProcessInbox() {
  if (Status st = inbox_->Pump(); !st.ok()) log::Error("link inbox failed", {{"error", st.ToString()}});
  auto handler = [this](const v1::Envelope& envelope, Db&) { return HandleInbound(envelope); };
  bool enqueued = false;
  // One message per call so each outcome is counted after its own commit;
  // bounded per turn so the spool and the sender are not starved.
  for (int i = 0; i < inbox_batch_; ++i) {
    last_inbound_ = Inbound::kNone;
    auto processed = inbox_->ProcessPending(handler, 1);
    if (!processed.ok()) {
      log::Error("processing the link inbox failed", {{"error", processed.status().ToString()}});
      break;
    }
    if (*processed == 0) break;
    switch (last_inbound_) {
      case Inbound::kSent:
        ++operator_events_sent_;
        enqueued = true;
        break;
      case Inbound::kUnchanged:
        ++operator_events_unchanged_;
        break;
      case Inbound::kRejected:
        ++operator_events_rejected_;
        break;
      case Inbound::kNone:
        break;
    }
  }
  if (enqueued) PumpLink();
}

void IngestDaemon::PumpLink() {
  if (Status st = sender_->Pump(); !st.ok()) log::Error("link to rules failed", {{"error", st.ToString()}});
}

IngestCounters IngestDaemon::counters() const {
  IngestCounters out;
  out.spool = spool_.counters();
  for (const auto& poller : pollers_) {
    PollerStats stats = poller->stats();
    out.polls_fetched += stats.fetched;
    out.polls_not_modified += stats.not_modified;
    out.polls_failed += stats.failures;
  }
  if (sender_) out.link = sender_->stats();
  if (push_) out.push = push_->stats();
  if (inbox_) out.inbox = inbox_->stats();
  out.operator_events_sent = operator_events_sent_;
  out.operator_events_unchanged = operator_events_unchanged_;
  out.operator_events_rejected = operator_events_rejected_;
  return out;
}

void IngestDaemon::LogCounters() const {
  IngestCounters c = counters();
  log::Info("counters", {{"files_accepted", std::to_string(c.spool.files_accepted)},
                         {"files_rejected", std::to_string(c.spool.files_rejected)},
                         {"events_sent", std::to_string(c.spool.events_sent)},
                         {"events_unchanged", std::to_string(c.spool.events_unchanged)},
                         {"features_rejected", std::to_string(c.spool.features_rejected)},
                         {"file_errors", std::to_string(c.spool.file_errors)},
                         {"polls_fetched", std::to_string(c.polls_fetched)},
                         {"polls_not_modified", std::to_string(c.polls_not_modified)},
                         {"polls_failed", std::to_string(c.polls_failed)},
                         {"link_sent", std::to_string(c.link.sent)},
                         {"link_acked", std::to_string(c.link.acked)},
                         {"push_accepted", std::to_string(c.push.accepted)},
                         {"operator_events_sent", std::to_string(c.operator_events_sent)},
                         {"operator_events_rejected", std::to_string(c.operator_events_rejected)},
                         {"push_rejected", std::to_string(c.push.rejected + c.push.unauthorized + c.push.too_large)}});
}

}  // namespace amparo::ingest
