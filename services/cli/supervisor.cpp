#include "services/cli/supervisor.h"

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <thread>

#include "common/log.h"

extern char** environ;

namespace amparo::cli {

std::filesystem::path SelfDirectory() {
  std::error_code ec;
  auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::filesystem::current_path() : exe.parent_path();
}

Supervisor::Supervisor(std::vector<SupervisedProgram> programs, SupervisorOptions options)
    : programs_(std::move(programs)), options_(options), children_(programs_.size()), restarts_(programs_.size()) {}

Status Supervisor::Spawn(size_t i) {
  const auto& p = programs_[i];
  std::vector<std::string> argv_store{p.binary.string()};
  argv_store.insert(argv_store.end(), p.args.begin(), p.args.end());
  std::vector<char*> argv;
  for (auto& a : argv_store) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid;
  int rc = posix_spawn(&pid, p.binary.c_str(), nullptr, nullptr, argv.data(), environ);
  if (rc != 0) return Unavailable("starting " + p.binary.string() + ": " + std::strerror(rc));
  children_[i].pid = pid;
  children_[i].started = std::chrono::steady_clock::now();
  log::Info("started", {{"program", p.name}, {"pid", std::to_string(pid)}});
  return Status::Ok();
}

Status Supervisor::Run(const std::atomic<bool>& stop) {
  for (size_t i = 0; i < programs_.size(); ++i) {
    children_[i].delay = options_.restart_initial;
    AMPARO_RETURN_IF_ERROR(Spawn(i));
  }
  while (!stop) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    auto now = std::chrono::steady_clock::now();
    for (size_t i = 0; i < children_.size(); ++i) {
      Child& c = children_[i];
      if (c.pid > 0) {
        int status = 0;
        pid_t r = waitpid(c.pid, &status, WNOHANG);
        if (r != c.pid) continue;
        std::string how = WIFEXITED(status) ? "exit " + std::to_string(WEXITSTATUS(status))
                                            : "signal " + std::to_string(WTERMSIG(status));
        if (now - c.started >= options_.stable_after) c.delay = options_.restart_initial;
        c.pid = -1;
        c.restart_at = now + c.delay;
        log::Warn("program died; restarting",
                  {{"program", programs_[i].name}, {"how", how},
                   {"restart_in_ms", std::to_string(c.delay.count())}});
        c.delay = std::min(c.delay * 2, options_.restart_max);
      } else if (now >= c.restart_at) {
        ++restarts_[i];
        Status st = Spawn(i);
        if (!st.ok()) {
          log::Error("restart failed", {{"program", programs_[i].name}, {"error", st.ToString()}});
          c.restart_at = now + c.delay;
        }
      }
    }
  }
  StopAll();
  return Status::Ok();
}

void Supervisor::StopAll() {
  for (auto& c : children_) {
    if (c.pid > 0) kill(c.pid, SIGTERM);
  }
  auto deadline = std::chrono::steady_clock::now() + options_.stop_grace;
  for (size_t i = 0; i < children_.size(); ++i) {
    Child& c = children_[i];
    while (c.pid > 0) {
      int status = 0;
      if (waitpid(c.pid, &status, WNOHANG) == c.pid) {
        log::Info("stopped", {{"program", programs_[i].name}});
        c.pid = -1;
        break;
      }
      if (std::chrono::steady_clock::now() >= deadline) {
        log::Warn("did not stop in time; killing", {{"program", programs_[i].name}});
        kill(c.pid, SIGKILL);
        waitpid(c.pid, &status, 0);
        c.pid = -1;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
}

}  // namespace amparo::cli
