#include "services/ingest/spool.h"

#include <algorithm>
#include <fstream>
#include <optional>
#include <system_error>
#include <utility>

#include "amparo/v1/envelope.pb.h"
#include "common/link.h"
#include "common/log.h"
#include "services/ingest/correlator.h"
#include "services/ingest/feed_detect.h"

namespace amparo::ingest {
namespace fs = std::filesystem;
namespace {

constexpr std::string_view kExerciseMarker = ".exercise.";

// Picks `dir/name`, or `dir/name.1`, `.2`, ... when taken, so an older file
// of the same name (a replay) is never overwritten.
fs::path UniqueTarget(const fs::path& dir, const std::string& name) {
  fs::path target = dir / name;
  std::error_code ec;
  for (int n = 1; fs::exists(target, ec) && n < 10000; ++n) target = dir / (name + "." + std::to_string(n));
  return target;
}

// Writes `lines` to `target` through tmp/ + rename, so a reader never sees half
// an .error file.
Status WriteLinesAtomically(const fs::path& tmp_dir, const fs::path& target,
                            const std::vector<std::string>& lines) {
  std::string name = ".";  // appended: "." + name trips GCC 12's false -Wrestrict
  name += target.filename().native();
  name += ".tmp";
  const fs::path tmp = tmp_dir / name;
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    for (const auto& line : lines) out << line << '\n';
    out.flush();
    if (!out) return Unavailable("cannot write " + tmp.string());
  }
  std::error_code ec;
  fs::rename(tmp, target, ec);
  if (ec)
    return Unavailable("cannot rename " + tmp.string() + " to " + target.string() + ": " + ec.message());
  return Status::Ok();
}

Status MoveFile(const fs::path& from, const fs::path& to) {
  std::error_code ec;
  fs::rename(from, to, ec);
  if (ec) return Unavailable("cannot move " + from.string() + " to " + to.string() + ": " + ec.message());
  return Status::Ok();
}

// A whole-file error as one .error line: "field: message" without the code,
// which says nothing an operator can act on.
std::string ProblemLine(const Status& status) {
  return status.field().empty() ? status.message() : status.field() + ": " + status.message();
}

// Result of recording one event.
enum class Recorded { kSent, kUnchanged };

// Records `event` (already normalised, msg_type ALERT or CANCEL) inside the
// caller's transaction: resolves its stable event_id through known aliases,
// drops it if not newer than what was sent, else upgrades ALERT to UPDATE for
// known events, stores the revision and enqueues the envelope.
class EventRecorder {
 public:
  EventRecorder(Db& db, const SpoolOptions& options, const Clock& clock, Correlator& correlator)
      : db_(db), options_(options), clock_(clock), correlator_(correlator) {}

  Result<Recorded> Record(v1::CrisisEvent event) {
    const int status = static_cast<int>(event.status());
    // Stable id: the event_id of the first of its ids ingest has seen.
    std::vector<std::string> ids{event.source_id()};
    ids.insert(ids.end(), event.id_aliases().begin(), event.id_aliases().end());
    auto find_id = db_.Prepare(
        "SELECT event_id FROM ingest_event_ids WHERE source = ? AND source_id = ? AND status = ?");
    if (!find_id.ok()) return find_id.status();
    for (const auto& id : ids) {
      find_id->Reset();
      find_id->Bind(1, event.source()).Bind(2, id).Bind(3, status);
      auto row = find_id->Step();
      if (!row.ok()) return row.status();
      if (*row) {
        event.set_event_id(find_id->ColumnText(0));
        break;
      }
    }
    auto add_id = db_.Prepare(
        "INSERT INTO ingest_event_ids(source, source_id, status, event_id) VALUES(?,?,?,?) "
        "ON CONFLICT DO NOTHING");
    if (!add_id.ok()) return add_id.status();
    for (const auto& id : ids) {
      add_id->Bind(1, event.source()).Bind(2, id).Bind(3, status).Bind(4, event.event_id());
      AMPARO_RETURN_IF_ERROR(add_id->Run());
    }

    auto find =
        db_.Prepare("SELECT revision, source_id, msg_type FROM ingest_events WHERE event_id = ? AND status = ?");
    if (!find.ok()) return find.status();
    find->Bind(1, event.event_id()).Bind(2, status);
    auto row = find->Step();
    if (!row.ok()) return row.status();
    std::optional<std::string> previous_source_id;
    if (*row) {
      const int64_t stored_revision = find->ColumnInt(0);
      const bool stored_cancel = find->ColumnInt(2) == v1::MESSAGE_TYPE_CANCEL;
      if (stored_revision >= event.revision()) {
        // A Cancel is never swallowed as a duplicate: one that is not newer
        // than what was sent (a deletion list stamped with the event's own
        // time) still goes out, one revision above, so rules takes it as new.
        if (event.msg_type() != v1::MESSAGE_TYPE_CANCEL || stored_cancel) return Recorded::kUnchanged;
        event.set_revision(stored_revision + 1);
      }
      previous_source_id = find->ColumnText(1);
    }
    if (event.msg_type() != v1::MESSAGE_TYPE_CANCEL && previous_source_id) {
      event.set_msg_type(v1::MESSAGE_TYPE_UPDATE);
    }
    // CAP: an Update or Cancel names the message it supersedes.
    // (CAP messages name them themselves: keep theirs.)
    if (event.msg_type() != v1::MESSAGE_TYPE_ALERT && event.references().empty()) {
      v1::EventReference* ref = event.add_references();
      ref->set_source(event.source());
      ref->set_source_id(previous_source_id.value_or(event.source_id()));
    }

    auto upsert = db_.Prepare(
        "INSERT INTO ingest_events(event_id, status, revision, msg_type, source_id, updated_ms) "
        "VALUES(?,?,?,?,?,?) ON CONFLICT(event_id, status) DO UPDATE SET revision = excluded.revision, "
        "msg_type = excluded.msg_type, source_id = excluded.source_id, updated_ms = excluded.updated_ms");
    if (!upsert.ok()) return upsert.status();
    upsert->Bind(1, event.event_id())
        .Bind(2, status)
        .Bind(3, event.revision())
        .Bind(4, static_cast<int>(event.msg_type()))
        .Bind(5, event.source_id())
        .Bind(6, clock_.NowMs());
    AMPARO_RETURN_IF_ERROR(upsert->Run());

    // One crisis, many reports: stamp the incident (same transaction).
    auto incident = correlator_.Correlate(&event, clock_.NowMs());
    if (!incident.ok()) return incident.status();

    v1::Envelope envelope = MakeEnvelope(options_.producer, clock_);
    *envelope.mutable_crisis_event() = std::move(event);
    AMPARO_RETURN_IF_ERROR(EnqueueOutbound(db_, options_.peer, envelope));
    return Recorded::kSent;
  }

 private:
  Db& db_;
  const SpoolOptions& options_;
  const Clock& clock_;
  Correlator& correlator_;
};

}  // namespace

const std::vector<std::string>& IngestMigrations() {
  static const std::vector<std::string> kMigrations = {
      R"sql(
      -- Highest revision sent per event; status is part of the key so an
      -- exercise never suppresses (or is suppressed by) the real event.
      CREATE TABLE ingest_events(
        event_id TEXT NOT NULL,
        status INTEGER NOT NULL,
        revision INTEGER NOT NULL,
        msg_type INTEGER NOT NULL,
        source_id TEXT NOT NULL,
        updated_ms INTEGER NOT NULL,
        PRIMARY KEY(event_id, status)) WITHOUT ROWID;
      -- Every id (and alias) a source used for an event -> its stable event_id.
      CREATE TABLE ingest_event_ids(
        source TEXT NOT NULL,
        source_id TEXT NOT NULL,
        status INTEGER NOT NULL,
        event_id TEXT NOT NULL,
        PRIMARY KEY(source, source_id, status)) WITHOUT ROWID;
      -- One row per processed spool file, for `amparo status` and audits.
      CREATE TABLE ingest_files(
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL,
        accepted INTEGER NOT NULL,
        events_sent INTEGER NOT NULL,
        events_unchanged INTEGER NOT NULL,
        features_rejected INTEGER NOT NULL,
        error TEXT,
        processed_ms INTEGER NOT NULL);
      )sql",
      CorrelatorMigration(),
      CorrelatorCellMigration(),
  };
  return kMigrations;
}

// A new ingest database gets 4 KiB pages (SQLite's default). Each spool file
// dirties a page in each of a dozen B-trees (events, ids, incidents and their
// indexes, keys, members, revisions, the outbox) and every dirty page is
// written twice (WAL, checkpoint): with 16 KiB pages a file of 10 events
// wrote ~730 KB, with 4 KiB ~250 KB (bench-pipeline at 1,000 events/s,
// docs/PERFORMANCE.md "Pipeline"), for the same CPU in bulk. Existing
// databases keep theirs.
constexpr int kIngestPageSize = 4096;

Status PrepareIngestDb(Db& db) {
  auto sized = db.SetPageSizeIfEmpty(kIngestPageSize);
  if (!sized.ok()) return sized.status();
  AMPARO_RETURN_IF_ERROR(db.Migrate(IngestMigrations()));
  return InitLinkTables(db);
}

bool IsExerciseFileName(std::string_view name) {
  // ".exercise." followed by one extension: "x.exercise.json", "x.exercise.xml".
  const size_t marker = name.rfind(kExerciseMarker);
  if (marker == std::string_view::npos) return false;
  const std::string_view extension = name.substr(marker + kExerciseMarker.size());
  return !extension.empty() && extension.find('.') == std::string_view::npos;
}

SpoolProcessor::SpoolProcessor(Db& db, SpoolOptions options, const Clock& clock)
    : db_(db), options_(std::move(options)), clock_(clock), correlator_(db, options_.correlation) {}

Status SpoolProcessor::CreateDirectories() const {
  for (const fs::path& dir : {options_.spool_dir, options_.spool_dir / "tmp",
                              options_.spool_dir / "processed", options_.spool_dir / "rejected"}) {
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) return Unavailable("cannot create " + dir.string() + ": " + ec.message());
  }
  return Status::Ok();
}

Result<std::vector<FileOutcome>> SpoolProcessor::ScanOnce(
    const std::function<void(const FileOutcome&)>& after_file) {
  struct Candidate {
    fs::file_time_type mtime;
    fs::path path;
  };
  std::vector<Candidate> candidates;
  std::error_code ec;
  for (fs::directory_iterator it(options_.spool_dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.empty() || name[0] == '.') continue;
    std::error_code entry_ec;
    if (!it->is_regular_file(entry_ec)) continue;
    fs::file_time_type mtime = it->last_write_time(entry_ec);
    if (entry_ec) continue;  // vanished since listing
    candidates.push_back({mtime, it->path()});
  }
  if (ec)
    return Unavailable("cannot list spool directory " + options_.spool_dir.string() + ": " + ec.message());
  std::sort(candidates.begin(), candidates.end(), [](const Candidate& a, const Candidate& b) {
    return a.mtime != b.mtime ? a.mtime < b.mtime : a.path < b.path;
  });
  if (candidates.size() > static_cast<size_t>(options_.max_files_per_scan)) {
    candidates.resize(options_.max_files_per_scan);
  }

  std::vector<FileOutcome> outcomes;
  for (const Candidate& candidate : candidates) {
    auto outcome = ProcessFile(candidate.path);
    if (!outcome.ok()) {
      ++counters_.file_errors;
      log::Error("spool file left for the next scan",
                 {{"file", candidate.path.filename().string()}, {"error", outcome.status().ToString()}});
      continue;
    }
    outcomes.push_back(std::move(outcome).value());
    if (after_file) after_file(outcomes.back());
  }
  return outcomes;
}

Result<bool> SpoolProcessor::RecordEvent(v1::CrisisEvent event) {
  EventRecorder recorder(db_, options_, clock_, correlator_);
  auto recorded = recorder.Record(std::move(event));
  if (!recorded.ok()) return recorded.status();
  return *recorded == Recorded::kSent;
}

Result<FileOutcome> SpoolProcessor::ProcessFile(const fs::path& file) {
  FileOutcome outcome;
  outcome.name = file.filename().string();
  const bool exercise = IsExerciseFileName(outcome.name);
  FeedContext context;
  context.exercise = exercise;
  context.received_ms = clock_.NowMs();
  context.validation = options_.validation;
  context.trust_store = options_.trust_store.get();
  context.require_trusted_signers = options_.require_trusted_signers;
  size_t matched = 0;
  for (const auto& [source, mode] : options_.source_validation) {
    if (source.size() > matched && outcome.name.rfind(source + "-", 0) == 0) {
      context.validation = mode;
      matched = source.size();
    }
  }
  context.xml_limits = options_.xml_limits;

  auto parsed = ParseFeedFile(file, options_.max_file_bytes, context);
  if (!parsed.ok() && parsed.status().code() == StatusCode::kNotFound) {
    return parsed.status();  // removed by someone else since the listing
  }
  if (parsed.ok()) {
    for (const FeatureRejection& rejection : parsed->rejections)
      outcome.problems.push_back(rejection.ToString());
    for (const ParseWarning& warning : parsed->warnings) outcome.warnings.push_back(warning.ToString());
    outcome.format = parsed->format;
    outcome.features_rejected = static_cast<int>(parsed->rejections.size());
    counters_.features_rejected += parsed->rejections.size();
  } else {
    outcome.problems.push_back(ProblemLine(parsed.status()));
  }
  // A file whose every feature was bad carries nothing: it belongs with the
  // rejected files where an operator looks, not with the processed ones.
  outcome.accepted = !FeedRejection(parsed).has_value();

  if (outcome.accepted) {
    auto tx = Transaction::Begin(db_);
    if (!tx.ok()) return tx.status();
    EventRecorder recorder(db_, options_, clock_, correlator_);
    for (v1::CrisisEvent& event : parsed->events) {
      auto recorded = recorder.Record(std::move(event));
      if (!recorded.ok()) return recorded.status();
      ++(*recorded == Recorded::kSent ? outcome.events_sent : outcome.events_unchanged);
    }
    auto audit = db_.Prepare(
        "INSERT INTO ingest_files(name, accepted, events_sent, events_unchanged, features_rejected, error, "
        "processed_ms) VALUES(?,1,?,?,?,NULL,?)");
    if (!audit.ok()) return audit.status();
    audit->Bind(1, outcome.name)
        .Bind(2, outcome.events_sent)
        .Bind(3, outcome.events_unchanged)
        .Bind(4, outcome.features_rejected)
        .Bind(5, clock_.NowMs());
    AMPARO_RETURN_IF_ERROR(audit->Run());
    if (before_commit_) AMPARO_RETURN_IF_ERROR(before_commit_());
    AMPARO_RETURN_IF_ERROR(tx->Commit());
    if (after_commit_) after_commit_();
    // Committed: from here a crash only means the file is read again, and
    // dedupe turns every event into "unchanged".
    counters_.events_sent += outcome.events_sent;
    counters_.events_unchanged += outcome.events_unchanged;
  }

  const fs::path dest_dir = options_.spool_dir / (outcome.accepted ? "processed" : "rejected");
  const fs::path target = UniqueTarget(dest_dir, outcome.name);
  if (!outcome.problems.empty()) {
    AMPARO_RETURN_IF_ERROR(WriteLinesAtomically(
        options_.spool_dir / "tmp", target.parent_path() / (target.filename().string() + ".error"),
        outcome.problems));
  }
  AMPARO_RETURN_IF_ERROR(MoveFile(file, target));

  if (outcome.accepted) {
    ++counters_.files_accepted;
    int logged = 0;
    for (const std::string& problem : outcome.problems) {
      if (logged++ == options_.max_logged_rejections_per_file) break;
      log::Warn("feature rejected", {{"file", outcome.name}, {"problem", problem}});
    }
    logged = 0;
    for (const std::string& warning : outcome.warnings) {
      if (logged++ == options_.max_logged_rejections_per_file) break;
      log::Warn("feed deviation accepted", {{"file", outcome.name}, {"warning", warning}});
    }
    log::Info("spool file accepted", {{"file", outcome.name},
                                      {"format", outcome.format},
                                      {"events_sent", std::to_string(outcome.events_sent)},
                                      {"events_unchanged", std::to_string(outcome.events_unchanged)},
                                      {"features_rejected", std::to_string(outcome.features_rejected)},
                                      {"exercise", exercise ? "true" : "false"}});
  } else {
    ++counters_.files_rejected;
    // Rejected files record their fate outside any event transaction: losing
    // this audit row loses nothing that was accepted.
    auto audit = db_.Prepare(
        "INSERT INTO ingest_files(name, accepted, events_sent, events_unchanged, features_rejected, error, "
        "processed_ms) VALUES(?,0,0,0,?,?,?)");
    if (audit.ok()) {
      audit->Bind(1, outcome.name).Bind(2, outcome.features_rejected).Bind(3, outcome.problems.front());
      audit->Bind(4, clock_.NowMs());
      if (Status st = audit->Run(); !st.ok())
        log::Warn("cannot record rejected file", {{"error", st.ToString()}});
    }
    log::Warn("spool file rejected", {{"file", outcome.name},
                                      {"reason", outcome.problems.front()},
                                      {"problems", std::to_string(outcome.problems.size())}});
  }
  return outcome;
}

}  // namespace amparo::ingest
