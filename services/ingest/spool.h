// The spool directory: where feed files enter ingest.
//
// Writers (the HTTP pollers, `amparo replay`, an operator) drop files
// atomically: write `<spool_dir>/tmp/<x>`, then rename into `<spool_dir>/`.
// Each ScanOnce() takes the regular files directly in `<spool_dir>/` (never
// subdirectories or dot files), oldest modification time first, and for each:
//
// The format is detected from the content (feed_detect.h: USGS GeoJSON, CAP
// 1.0-1.2 alone or in Atom/RSS, GDACS RSS and API JSON, ...), never from the
// file name.
//
//   accepted (it parsed as a known feed and at least one entry, or none at
//   all, was usable):
//     ONE SQLite transaction records every new event revision in
//     `ingest_events` and enqueues its Envelope for peer "rules"
//     (EnqueueOutbound), then the file moves to `<spool_dir>/processed/`.
//     Features that were rejected are logged, counted, and listed in
//     `processed/<name>.error`, one line per feature.
//   rejected (unknown format, not well formed, hostile XML, schema-invalid
//   CAP in strict mode, too big, unreadable, or every entry was bad):
//     `rejected/<name>.error` says why (one line per problem), then the file
//     moves to `rejected/<name>`. Nothing is enqueued.
//
// Dedupe and versions: ingest keeps one row per (event_id, status) with the
// highest revision sent. A revision not newer than the stored one is not
// sent again, so replaying a file sends nothing, and a crash between commit
// and move (the file is processed again) sends no duplicate. A newer revision
// of a known event is an UPDATE; a "deleted" feature is a CANCEL whether or
// not the event was seen, and is never dropped as a duplicate: a Cancel not
// newer than what was sent goes out one revision above it. Exercise files (name ending ".exercise.<ext>", e.g.
// ".exercise.json", ".exercise.xml") turn Actual events into EVENT_STATUS_EXERCISE
// (CAP Test/Exercise/Draft/System stay as sent) and, the status being part of the key, are deduped
// apart from real events with the same event_id. USGS `ids` aliases map a
// later preferred id back to the event_id of the first id seen.
//
// If a move to processed/ or rejected/ fails the file stays in the spool and
// is tried again on the next scan (dedupe keeps that harmless). A name that
// already exists in processed/ or rejected/ gets a ".1", ".2", ... suffix.
//
// Thread safety: a SpoolProcessor belongs to the thread that owns its Db.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "amparo/v1/crisis_event.pb.h"
#include "common/clock.h"
#include "common/db.h"
#include "common/status.h"
#include "services/ingest/correlator.h"
#include "services/ingest/feed_types.h"

namespace amparo::ingest {

// Schema of ingest's own database (Db::Migrate list). Append only.
const std::vector<std::string>& IngestMigrations();

// Applies IngestMigrations() and creates the link tables.
Status PrepareIngestDb(Db& db);

struct SpoolOptions {
  std::filesystem::path spool_dir;          // required
  int64_t max_file_bytes = 64 << 20;        // bigger files are rejected unread
  int max_files_per_scan = 32;              // the rest wait for the next scan, keeping the loop responsive
  std::string peer = "rules";               // outbox queue the events go to
  std::string producer = "amparo-ingest";   // Envelope.producer
  int max_logged_rejections_per_file = 20;  // further feature rejections are only counted (and in .error)
  ValidationMode validation = ValidationMode::kStrict;  // CAP schema checking (feed_types.h)
  // Per polled source: files named "<source>-..." (what FeedPoller writes) use
  // this mode instead of `validation`; the longest matching name wins.
  std::map<std::string, ValidationMode> source_validation;
  XmlLimits xml_limits;                                 // bounds for XML feeds (xml_safety.h)
  // Trusted signers of signed CAP (loaded from ingest.trust_store); shared,
  // immutable. nullptr = nobody is trusted (valid signatures warn).
  std::shared_ptr<const TrustStore> trust_store;
  bool require_trusted_signers = false;
  // Matching of events to incidents (correlator.h): every event sent carries
  // incident_id and incident_aliases.
  CorrelationRules correlation;
};

// Totals since construction.
struct SpoolCounters {
  uint64_t files_accepted = 0;
  uint64_t files_rejected = 0;
  uint64_t events_sent = 0;        // new revisions committed to the outbox for rules
  uint64_t events_unchanged = 0;   // already sent at this or a newer revision: dropped
  uint64_t features_rejected = 0;  // bad features inside accepted or rejected files
  uint64_t file_errors = 0;        // storage/move failures; the file stays and is retried
};

// What one file came to.
struct FileOutcome {
  std::string name;
  bool accepted = false;
  int events_sent = 0;
  int events_unchanged = 0;
  int features_rejected = 0;
  std::vector<std::string> problems;  // the lines written to the .error file
  std::string format;                 // detected format ("cap", "usgs-geojson", ...); "" when rejected unparsed
  std::vector<std::string> warnings;  // accepted deviations ("polygon-after-geocode: ..."), logged
};

class SpoolProcessor {
 public:
  // `db` must have had PrepareIngestDb(); it and `clock` must outlive this.
  SpoolProcessor(Db& db, SpoolOptions options, const Clock& clock);

  // Creates spool_dir and its tmp/, processed/ and rejected/ folders.
  Status CreateDirectories() const;

  // Processes up to max_files_per_scan files, oldest first. Per-file
  // failures are logged and counted, never returned: the error Status is
  // only for a spool directory that cannot be listed. `after_file`, when
  // set, runs after each file's transaction committed (the daemon hands the
  // file's events to the link at once instead of after the whole scan).
  Result<std::vector<FileOutcome>> ScanOnce(const std::function<void(const FileOutcome&)>& after_file = {});

  // Processes one file in spool_dir (exposed for tests and replay tools).
  // Errors: storage failures (the file is left in place).
  Result<FileOutcome> ProcessFile(const std::filesystem::path& file);

  // More work for each file's transaction, run just before its commit (the
  // daemon deletes the link's acknowledged outbox rows there, see
  // LinkSender::FoldAckDeletes); its failure fails the file as a storage
  // failure would. `after_commit` runs once that transaction committed.
  void SetCommitHooks(std::function<Status()> before_commit, std::function<void()> after_commit) {
    before_commit_ = std::move(before_commit);
    after_commit_ = std::move(after_commit);
  }

  // Records one event that arrived already normalised (operator-entered
  // events from amparo-gateway, over ingest's link inbox) exactly like the
  // events of a spool file: stable id, dedupe on (event_id, status) and
  // revision, ALERT -> UPDATE for a known event, correlation, and its
  // envelope for `options().peer` in the outbox. Must run inside the
  // caller's open transaction on the same Db (LinkReceiver::ProcessPending
  // gives one) and touches no counters: the caller counts after it commits.
  // Returns true when the event was enqueued, false when it was not newer
  // than what was already sent. Errors: storage failures.
  Result<bool> RecordEvent(v1::CrisisEvent event);

  const SpoolCounters& counters() const { return counters_; }
  const SpoolOptions& options() const { return options_; }

 private:
  Db& db_;
  SpoolOptions options_;
  const Clock& clock_;
  // Long-lived: it caches which cells hold incidents (correlator.h).
  Correlator correlator_;
  SpoolCounters counters_;
  std::function<Status()> before_commit_;
  std::function<void()> after_commit_;
};

// True for names of exercise files ("drill-1.exercise.json", "drill.exercise.xml").
bool IsExerciseFileName(std::string_view name);

}  // namespace amparo::ingest
