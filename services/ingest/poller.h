// HTTP(S) polling of one configured feed ([[ingest.poll]]) into the spool.
//
// Every `interval_s` a FeedPoller GETs `url` (libcurl, whole-request timeout
// `timeout_ms`, redirects followed up to 5, http/https only, gzip accepted)
// with If-None-Match / If-Modified-Since from the previous 200 response
// (remembered in memory: after a restart the first fetch is unconditional,
// and spool dedupe drops what was already sent).
//   200 -> the body is written to `<spool_dir>/tmp/<name>-<unix ms>.json`,
//          fsynced, then renamed into `<spool_dir>/` where the spool scan
//          picks it up like any dropped file.
//   304 -> nothing.
//   anything else, a transport error, or a body above `max_body_bytes` ->
//          logged, no file; the next attempt waits interval * 2^failures,
//          capped at 10 * interval. A success resets the backoff.
//
// Threading: Start() runs the loop on its own std::thread so a slow feed
// never blocks the daemon's poll loop; Stop() (and the destructor) wakes it
// aborts an in-progress request (checked by curl's progress callback about
// once a second), and joins.
// PollOnce() is the single fetch the thread runs; tests call it directly and
// must not call it while the thread runs. stats() is safe from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <mutex>
#include <string>
#include <thread>

#include "common/clock.h"
#include "common/config.h"
#include "common/status.h"

namespace amparo::ingest {

struct PollerStats {
  uint64_t fetched = 0;       // 200 responses written to the spool
  uint64_t not_modified = 0;  // 304 responses
  uint64_t failures = 0;      // errors of any kind
  int consecutive_failures = 0;
  std::string last_error;  // "" after a success
};

enum class PollResult { kFetched, kNotModified };

class FeedPoller {
 public:
  // `clock` names the spool files and must outlive the poller.
  FeedPoller(PollSource source, std::filesystem::path spool_dir, int64_t max_body_bytes, const Clock& clock);
  ~FeedPoller();
  FeedPoller(const FeedPoller&) = delete;
  FeedPoller& operator=(const FeedPoller&) = delete;

  // Starts the polling thread; the first fetch happens at once.
  void Start();
  // Idempotent. Joins the thread.
  void Stop();

  // One fetch. Errors: UNAVAILABLE (transport failure, HTTP status other
  // than 200/304, unwritable spool), RESOURCE_EXHAUSTED (body too big),
  // DEADLINE_EXCEEDED (timeout). Updates stats and the backoff.
  Result<PollResult> PollOnce();

  // How long the loop waits before the next fetch given the failures so far.
  std::chrono::milliseconds NextDelay() const;
  PollerStats stats() const;
  const PollSource& source() const { return source_; }

 private:
  Result<PollResult> Fetch();
  void Loop();

  const PollSource source_;
  const std::filesystem::path spool_dir_;
  const int64_t max_body_bytes_;
  const Clock& clock_;

  // Validators of the last 200; touched only by the fetching thread.
  std::string etag_;
  std::string last_modified_;

  mutable std::mutex mu_;
  std::condition_variable wake_;
  std::atomic<bool> stop_{
      false};          // set under mu_ so the wait cannot miss it; read by curl's progress callback
  PollerStats stats_;  // guarded by mu_
  std::thread thread_;
};

}  // namespace amparo::ingest
