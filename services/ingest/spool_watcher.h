// SpoolWatcher: wakes the ingest loop as soon as a file lands in the spool,
// so pick-up does not wait for the next ingest.scan_interval_ms scan.
//
// Linux inotify on <spool_dir> itself (not its subdirectories) for
// IN_MOVED_TO (the writers' rename from tmp/, spool.h) and IN_CLOSE_WRITE (a
// file written in place). A thread blocks on the inotify descriptor and, for
// each burst of events, sends one empty message over inproc:// to a ZeroMQ
// PAIR socket the daemon's PollLoop watches (the loop polls ZeroMQ sockets
// only). The wake-up says "scan now", nothing about which file: the scan
// decides what to take, exactly as the timer's scan does, which stays as the
// fallback (files written before start, a full inotify queue, a file system
// without inotify).
//
// Bounds: at most one wake-up is queued (the PAIR socket's high-water mark
// is 1; a send that would block is dropped, one is already pending).
//
// Thread safety: socket() and Drain() belong to the thread that created the
// watcher; the internal thread touches only its own socket and descriptors.
#pragma once

#include <zmq.hpp>

#include <filesystem>
#include <memory>
#include <thread>

#include "common/status.h"

namespace amparo::ingest {

class SpoolWatcher {
 public:
  // UNAVAILABLE when inotify cannot watch `spool_dir` (e.g. the watch limit
  // is reached); callers then rely on the timer alone.
  static Result<std::unique_ptr<SpoolWatcher>> Start(zmq::context_t& ctx,
                                                     const std::filesystem::path& spool_dir);
  // Stops and joins the thread.
  ~SpoolWatcher();
  SpoolWatcher(const SpoolWatcher&) = delete;
  SpoolWatcher& operator=(const SpoolWatcher&) = delete;

  // Readable when files arrived since the last Drain().
  zmq::socket_t& socket() { return reader_; }
  // Consumes the pending wake-up; true when there was one.
  bool Drain();

 private:
  SpoolWatcher(zmq::context_t& ctx, int inotify_fd, int stop_fd);
  void Watch(zmq::socket_t writer);

  int inotify_fd_;
  int stop_fd_;
  zmq::socket_t reader_;
  std::thread thread_;
};

}  // namespace amparo::ingest
