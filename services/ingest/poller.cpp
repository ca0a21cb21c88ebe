#include "services/ingest/poller.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <strings.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <memory>
#include <system_error>

#include "common/log.h"

namespace amparo::ingest {
namespace {

namespace fs = std::filesystem;

constexpr int kMaxBackoffFactor = 10;

void InitCurlOnce() {
  // curl_global_init is not thread-safe; pollers start from several threads.
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

// Per-request state the curl callbacks fill.
struct Transfer {
  std::string body;
  int64_t max_body_bytes = 0;
  bool too_big = false;
  std::string etag;
  std::string last_modified;
  const std::atomic<bool>* stop = nullptr;
};

size_t OnBody(char* data, size_t size, size_t count, void* user) {
  auto* transfer = static_cast<Transfer*>(user);
  const size_t bytes = size * count;
  if (static_cast<int64_t>(transfer->body.size() + bytes) > transfer->max_body_bytes) {
    transfer->too_big = true;
    return 0;  // aborts the transfer with CURLE_WRITE_ERROR
  }
  transfer->body.append(data, bytes);
  return bytes;
}

std::string Trim(std::string_view text) {
  size_t begin = 0, end = text.size();
  while (begin < end && (text[begin] == ' ' || text[begin] == '\t')) ++begin;
  while (end > begin && (text[end - 1] == '\r' || text[end - 1] == '\n' || text[end - 1] == ' ')) --end;
  return std::string(text.substr(begin, end - begin));
}

bool HeaderNameIs(std::string_view line, std::string_view name) {
  if (line.size() <= name.size() || line[name.size()] != ':') return false;
  return strncasecmp(line.data(), name.data(), name.size()) == 0;
}

size_t OnHeader(char* data, size_t size, size_t count, void* user) {
  auto* transfer = static_cast<Transfer*>(user);
  const size_t bytes = size * count;
  std::string_view line(data, bytes);
  // Each response of a redirect chain starts with a status line; only the
  // last response's validators count.
  if (line.rfind("HTTP/", 0) == 0) {
    transfer->etag.clear();
    transfer->last_modified.clear();
  } else if (HeaderNameIs(line, "etag")) {
    transfer->etag = Trim(line.substr(5));
  } else if (HeaderNameIs(line, "last-modified")) {
    transfer->last_modified = Trim(line.substr(14));
  }
  return bytes;
}

int OnProgress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  return static_cast<Transfer*>(user)->stop->load() ? 1 : 0;
}

// Spool names come from the configured source name; keep them to characters
// that are safe in a path component.
std::string SafeFileStem(std::string_view name) {
  std::string out;
  for (char c : name)
    out += (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.') ? c : '_';
  return out.empty() ? "feed" : out;
}

// tmp + fsync + rename: the spool scan never sees a partial file, and a file
// that is visible survives a crash with its content.
Status WriteSpoolFile(const fs::path& spool_dir, const std::string& name, const std::string& body) {
  const fs::path tmp = spool_dir / "tmp" / name;
  std::error_code ec;
  fs::create_directories(tmp.parent_path(), ec);
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
  if (fd < 0) return Unavailable("cannot create " + tmp.string() + ": " + std::strerror(errno));
  size_t written = 0;
  while (written < body.size()) {
    ssize_t n = ::write(fd, body.data() + written, body.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      std::string error = std::strerror(errno);
      ::close(fd);
      ::unlink(tmp.c_str());
      return Unavailable("cannot write " + tmp.string() + ": " + error);
    }
    written += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    ::unlink(tmp.c_str());
    return Unavailable("cannot sync " + tmp.string() + ": " + std::strerror(errno));
  }
  fs::rename(tmp, spool_dir / name, ec);
  if (ec) return Unavailable("cannot move " + tmp.string() + " into the spool: " + ec.message());
  return Status::Ok();
}

}  // namespace

FeedPoller::FeedPoller(PollSource source, fs::path spool_dir, int64_t max_body_bytes, const Clock& clock)
    : source_(std::move(source)),
      spool_dir_(std::move(spool_dir)),
      max_body_bytes_(max_body_bytes),
      clock_(clock) {
  InitCurlOnce();
}

FeedPoller::~FeedPoller() { Stop(); }

void FeedPoller::Start() {
  if (thread_.joinable()) return;
  thread_ = std::thread([this] { Loop(); });
}

void FeedPoller::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void FeedPoller::Loop() {
  while (!stop_) {
    (void)PollOnce();  // outcome is logged and counted inside
    const std::chrono::milliseconds delay = NextDelay();
    std::unique_lock<std::mutex> lock(mu_);
    wake_.wait_for(lock, delay, [this] { return stop_.load(); });
  }
}

std::chrono::milliseconds FeedPoller::NextDelay() const {
  int failures;
  {
    std::lock_guard<std::mutex> lock(mu_);
    failures = stats_.consecutive_failures;
  }
  const int factor = failures >= 4 ? kMaxBackoffFactor : std::min(1 << failures, kMaxBackoffFactor);
  return std::chrono::milliseconds(int64_t{source_.interval_s} * 1000 * factor);
}

PollerStats FeedPoller::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

Result<PollResult> FeedPoller::PollOnce() {
  Result<PollResult> result = Fetch();
  std::lock_guard<std::mutex> lock(mu_);
  if (result.ok()) {
    ++(*result == PollResult::kFetched ? stats_.fetched : stats_.not_modified);
    stats_.consecutive_failures = 0;
    stats_.last_error.clear();
  } else {
    ++stats_.failures;
    ++stats_.consecutive_failures;
    stats_.last_error = result.status().ToString();
    log::Warn("feed poll failed", {{"source", source_.name},
                                   {"error", stats_.last_error},
                                   {"consecutive_failures", std::to_string(stats_.consecutive_failures)}});
  }
  return result;
}

Result<PollResult> FeedPoller::Fetch() {
  std::unique_ptr<CURL, void (*)(CURL*)> curl(curl_easy_init(), curl_easy_cleanup);
  if (!curl) return Internal("curl_easy_init failed");
  Transfer transfer;
  transfer.max_body_bytes = max_body_bytes_;
  transfer.stop = &stop_;

  std::unique_ptr<curl_slist, void (*)(curl_slist*)> headers(nullptr, curl_slist_free_all);
  auto add_header = [&](const std::string& header) {
    headers.reset(curl_slist_append(headers.release(), header.c_str()));
  };
  if (!etag_.empty()) add_header("If-None-Match: " + etag_);
  if (!last_modified_.empty()) add_header("If-Modified-Since: " + last_modified_);

  CURL* h = curl.get();
  char error_buffer[CURL_ERROR_SIZE] = {0};
  curl_easy_setopt(h, CURLOPT_URL, source_.url.c_str());
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, error_buffer);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);  // signals stay with the daemon's handlers
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(source_.timeout_ms));
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(source_.timeout_ms));
  curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(h, CURLOPT_MAXREDIRS, 5L);
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "");  // USGS serves gzip; curl decodes
  curl_easy_setopt(h, CURLOPT_USERAGENT, "amparo-ingest/" AMPARO_VERSION);
  curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, static_cast<curl_off_t>(max_body_bytes_));
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, OnBody);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &transfer);
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, OnHeader);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, &transfer);
  curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, OnProgress);
  curl_easy_setopt(h, CURLOPT_XFERINFODATA, &transfer);
  curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
  if (headers) curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers.get());

  const CURLcode code = curl_easy_perform(h);
  if (transfer.too_big || code == CURLE_FILESIZE_EXCEEDED) {
    return Status(StatusCode::kResourceExhausted,
                  "response body above " + std::to_string(max_body_bytes_) + " bytes from " + source_.url,
                  "ingest.max_file_bytes");
  }
  if (code == CURLE_OPERATION_TIMEDOUT) {
    return Status(StatusCode::kDeadlineExceeded, "no complete response from " + source_.url + " within " +
                                                     std::to_string(source_.timeout_ms) + " ms");
  }
  if (code != CURLE_OK) {
    return Unavailable("GET " + source_.url + ": " +
                       (error_buffer[0] ? error_buffer : curl_easy_strerror(code)));
  }
  long http_status = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &http_status);
  if (http_status == 304) return PollResult::kNotModified;
  if (http_status != 200) {
    return Unavailable("GET " + source_.url + ": HTTP " + std::to_string(http_status));
  }

  const std::string name = SafeFileStem(source_.name) + "-" + std::to_string(clock_.NowMs()) + ".json";
  AMPARO_RETURN_IF_ERROR(WriteSpoolFile(spool_dir_, name, transfer.body));
  // Validators are remembered only once the body is safely in the spool, so
  // a failed write is fetched again in full next time.
  etag_ = transfer.etag;
  last_modified_ = transfer.last_modified;
  log::Info("feed fetched",
            {{"source", source_.name}, {"file", name}, {"bytes", std::to_string(transfer.body.size())}});
  return PollResult::kFetched;
}

}  // namespace amparo::ingest
