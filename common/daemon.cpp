#include "common/daemon.h"

#include <csignal>
#include <iostream>

#include "common/log.h"

namespace amparo {
namespace {

std::atomic<bool> g_stop{false};
std::atomic<bool> g_reload{false};

extern "C" void OnStopSignal(int) { g_stop = true; }
extern "C" void OnHupSignal(int) { g_reload = true; }

}  // namespace

std::optional<int> StartDaemon(int argc, char** argv, std::string_view name, std::string_view summary,
                               Config* config) {
  std::string config_path;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::cout << "Usage: " << name << " --config FILE\n\n" << summary
                << "\n\nOptions:\n  --config FILE  the deployment's amparo.toml (see docs/configuration.md)\n"
                   "  --help         this text\n  --version      print the version\n";
      return 0;
    }
    if (arg == "--version") {
      std::cout << name << " " << AMPARO_VERSION << "\n";
      return 0;
    }
    if (arg == "--config" && i + 1 < argc) {
      config_path = argv[++i];
    } else if (arg.rfind("--config=", 0) == 0) {
      config_path = std::string(arg.substr(9));
    } else {
      std::cerr << name << ": unknown argument '" << arg << "' (see --help)\n";
      return 2;
    }
  }
  if (config_path.empty()) {
    std::cerr << name << ": --config FILE is required (see --help)\n";
    return 2;
  }
  auto loaded = Config::Load(config_path);
  if (!loaded.ok()) {
    std::cerr << name << ": refusing to start: bad config: " << loaded.status().ToString() << "\n";
    return 2;
  }
  *config = std::move(loaded).value();
  log::Level level = log::Level::kInfo;
  log::ParseLevel(config->log_level, &level);
  log::Init(name, level);
  return std::nullopt;
}

const std::atomic<bool>& InstallStopSignals() {
  struct sigaction sa{};
  sa.sa_handler = OnStopSignal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  struct sigaction hup{};
  hup.sa_handler = OnHupSignal;
  sigemptyset(&hup.sa_mask);
  sigaction(SIGHUP, &hup, nullptr);
  std::signal(SIGPIPE, SIG_IGN);
  return g_stop;
}

bool ConsumeReloadRequest() { return g_reload.exchange(false); }

void PollLoop::OnReadable(zmq::socket_t& socket, std::function<void()> callback) {
  items_.push_back({socket.handle(), 0, ZMQ_POLLIN, 0});
  readers_.push_back(std::move(callback));
  deferred_.emplace_back();
}

void PollLoop::DeferReadable(zmq::socket_t& socket, std::chrono::steady_clock::time_point until) {
  for (size_t i = 0; i < items_.size(); ++i) {
    if (items_[i].socket == socket.handle()) deferred_[i] = until;
  }
}

void PollLoop::Every(std::chrono::milliseconds interval, std::function<void()> callback) {
  timers_.push_back({interval, std::chrono::steady_clock::now() + interval, std::move(callback)});
}

void PollLoop::RunOnce(std::chrono::milliseconds max_wait) {
  auto now = std::chrono::steady_clock::now();
  auto wait = max_wait;
  auto wait_until = [&](std::chrono::steady_clock::time_point t) {
    auto until = std::chrono::ceil<std::chrono::milliseconds>(t - now);
    if (until < wait) wait = std::max(until, std::chrono::milliseconds(0));
  };
  for (const auto& t : timers_) wait_until(t.next);
  for (size_t i = 0; i < items_.size(); ++i) {
    items_[i].revents = 0;
    items_[i].events = deferred_[i] ? 0 : ZMQ_POLLIN;
    if (deferred_[i]) wait_until(*deferred_[i]);
  }
  try {
    zmq::poll(items_.data(), items_.size(), wait);
  } catch (const zmq::error_t& e) {
    if (e.num() != EINTR) log::Error("poll failed", {{"error", e.what()}});
  }
  now = std::chrono::steady_clock::now();
  for (size_t i = 0; i < items_.size(); ++i) {
    if (deferred_[i]) {
      if (now < *deferred_[i]) continue;
      deferred_[i].reset();
      readers_[i]();
    } else if (items_[i].revents & ZMQ_POLLIN) {
      readers_[i]();
    }
  }
  now = std::chrono::steady_clock::now();
  for (auto& t : timers_) {
    if (now >= t.next) {
      t.next = now + t.interval;
      t.callback();
    }
  }
}

void PollLoop::Run(const std::atomic<bool>& stop) {
  while (!stop) RunOnce(std::chrono::milliseconds(200));
}

}  // namespace amparo
