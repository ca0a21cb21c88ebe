// What every daemon's thin main() shares: command-line options, signals,
// logging set-up, and a single-threaded poll loop over ZeroMQ sockets and
// timers.
#pragma once

#include <zmq.hpp>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <optional>
#include <string_view>
#include <vector>

#include "common/config.h"

namespace amparo {

// Parses `--config FILE`, `--help`, `--version`; loads and validates the
// config and sets up logging. On `--help`/`--version`/errors it prints and
// returns the exit code to return from main (0 or 2); otherwise nullopt.
std::optional<int> StartDaemon(int argc, char** argv, std::string_view name, std::string_view summary,
                               Config* config);

// SIGINT/SIGTERM set the returned flag; SIGHUP sets `ReloadRequested()`.
const std::atomic<bool>& InstallStopSignals();
bool ConsumeReloadRequest();

// Polls sockets and runs timers on one thread. Callbacks must not block.
class PollLoop {
 public:
  void OnReadable(zmq::socket_t& socket, std::function<void()> callback);
  // Paces a reader: `socket` (registered with OnReadable) is not polled
  // until `until`, when its callback runs once, readable or not. What
  // arrives meanwhile waits in the socket and is taken in one batch (one
  // commit) instead of one batch per wake-up. A later call moves `until`.
  void DeferReadable(zmq::socket_t& socket, std::chrono::steady_clock::time_point until);
  // Runs `callback` every `interval`, first after one interval.
  void Every(std::chrono::milliseconds interval, std::function<void()> callback);
  // Waits up to `max_wait` for readability, then runs due callbacks.
  void RunOnce(std::chrono::milliseconds max_wait);
  void Run(const std::atomic<bool>& stop);

 private:
  struct Timer {
    std::chrono::milliseconds interval;
    std::chrono::steady_clock::time_point next;
    std::function<void()> callback;
  };
  std::vector<zmq::pollitem_t> items_;
  std::vector<std::function<void()>> readers_;
  std::vector<std::optional<std::chrono::steady_clock::time_point>> deferred_;  // per item
  std::vector<Timer> timers_;
};

}  // namespace amparo
