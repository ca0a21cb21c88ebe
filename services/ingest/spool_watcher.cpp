#include "services/ingest/spool_watcher.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>

#include "common/log.h"

namespace amparo::ingest {
namespace {

std::string Endpoint() {
  // Unique per watcher in this process (inproc names are per context).
  static std::atomic<uint64_t> next{0};
  return "inproc://amparo-spool-watcher-" + std::to_string(next.fetch_add(1));
}

}  // namespace

Result<std::unique_ptr<SpoolWatcher>> SpoolWatcher::Start(zmq::context_t& ctx,
                                                          const std::filesystem::path& spool_dir) {
  const int inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (inotify_fd < 0) return Unavailable(std::string("inotify_init1: ") + std::strerror(errno));
  if (inotify_add_watch(inotify_fd, spool_dir.c_str(), IN_MOVED_TO | IN_CLOSE_WRITE) < 0) {
    const int err = errno;
    close(inotify_fd);
    return Unavailable("inotify_add_watch " + spool_dir.string() + ": " + std::strerror(err));
  }
  const int stop_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (stop_fd < 0) {
    const int err = errno;
    close(inotify_fd);
    return Unavailable(std::string("eventfd: ") + std::strerror(err));
  }
  std::unique_ptr<SpoolWatcher> watcher(new SpoolWatcher(ctx, inotify_fd, stop_fd));
  const std::string endpoint = Endpoint();
  try {
    watcher->reader_.set(zmq::sockopt::linger, 0);
    watcher->reader_.set(zmq::sockopt::rcvhwm, 1);
    watcher->reader_.bind(endpoint);
    zmq::socket_t writer(ctx, zmq::socket_type::pair);
    writer.set(zmq::sockopt::linger, 0);
    writer.set(zmq::sockopt::sndhwm, 1);
    writer.connect(endpoint);
    // The writer moves to the thread, which alone uses it from then on.
    watcher->thread_ = std::thread(&SpoolWatcher::Watch, watcher.get(), std::move(writer));
  } catch (const zmq::error_t& e) {
    return Unavailable(std::string("spool watcher socket: ") + e.what());
  }
  return watcher;
}

SpoolWatcher::SpoolWatcher(zmq::context_t& ctx, int inotify_fd, int stop_fd)
    : inotify_fd_(inotify_fd), stop_fd_(stop_fd), reader_(ctx, zmq::socket_type::pair) {}

SpoolWatcher::~SpoolWatcher() {
  if (thread_.joinable()) {
    const uint64_t one = 1;
    if (write(stop_fd_, &one, sizeof(one)) != sizeof(one)) {
      log::Error("spool watcher: cannot signal stop", {{"error", std::strerror(errno)}});
    }
    thread_.join();
  }
  close(inotify_fd_);
  close(stop_fd_);
}

bool SpoolWatcher::Drain() {
  bool any = false;
  zmq::message_t message;
  while (reader_.recv(message, zmq::recv_flags::dontwait)) any = true;
  return any;
}

void SpoolWatcher::Watch(zmq::socket_t writer) {
  // Large enough for many events per read(); their content is not needed.
  alignas(struct inotify_event) char buffer[16 * 1024];
  pollfd fds[2] = {{inotify_fd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
  while (true) {
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      log::Error("spool watcher stopped: poll failed", {{"error", std::strerror(errno)}});
      return;
    }
    if (fds[1].revents != 0) return;
    if (fds[0].revents == 0) continue;
    bool any = false;
    while (read(inotify_fd_, buffer, sizeof(buffer)) > 0) any = true;
    if (!any) continue;
    try {
      // Would block: a wake-up is already queued, and one is enough.
      (void)writer.send(zmq::message_t(), zmq::send_flags::dontwait);
    } catch (const zmq::error_t& e) {
      log::Error("spool watcher stopped", {{"error", e.what()}});
      return;
    }
  }
}

}  // namespace amparo::ingest
