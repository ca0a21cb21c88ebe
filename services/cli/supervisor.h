// `amparo up`: starts every daemon of one config as a child process,
// restarts one that dies (with backoff), and stops all on SIGINT/SIGTERM.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include "common/status.h"

namespace amparo::cli {

struct SupervisedProgram {
  std::string name;                    // "amparo-rules"
  std::filesystem::path binary;
  std::vector<std::string> args;       // after argv[0]
};

struct SupervisorOptions {
  // A child that dies is restarted after a delay that doubles from
  // `restart_initial` up to `restart_max`; a child that stayed up for
  // `stable_after` starts again from `restart_initial`.
  std::chrono::milliseconds restart_initial{500};
  std::chrono::milliseconds restart_max{30'000};
  std::chrono::milliseconds stable_after{60'000};
  // On stop: SIGTERM, then SIGKILL after this long.
  std::chrono::milliseconds stop_grace{10'000};
};

class Supervisor {
 public:
  Supervisor(std::vector<SupervisedProgram> programs, SupervisorOptions options);
  // Runs until `stop` becomes true; then stops every child. Returns OK when
  // every child was stopped cleanly.
  Status Run(const std::atomic<bool>& stop);
  // How many times each program was restarted (same order as given).
  const std::vector<int>& restarts() const { return restarts_; }

 private:
  struct Child {
    pid_t pid = -1;
    std::chrono::steady_clock::time_point started;
    std::chrono::steady_clock::time_point restart_at;
    std::chrono::milliseconds delay;
  };
  Status Spawn(size_t i);
  void StopAll();

  std::vector<SupervisedProgram> programs_;
  SupervisorOptions options_;
  std::vector<Child> children_;
  std::vector<int> restarts_;
};

// The directory holding the running `amparo` binary (where the daemons are).
std::filesystem::path SelfDirectory();

}  // namespace amparo::cli
