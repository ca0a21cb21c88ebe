#include "common/log.h"

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <boost/json/serialize.hpp>
#include <boost/json/object.hpp>

#include <mutex>

#include "common/clock.h"

namespace amparo::log {
namespace {

std::mutex g_mu;
std::string g_daemon = "amparo";  // guarded by g_mu
Level g_min = Level::kInfo;
std::shared_ptr<spdlog::logger> g_logger;

std::shared_ptr<spdlog::logger> Logger() {
  if (!g_logger) {
    g_logger = spdlog::stderr_logger_mt("amparo");
    g_logger->set_pattern("%v");
    g_logger->flush_on(spdlog::level::trace);
  }
  return g_logger;
}

constexpr std::string_view Name(Level l) {
  switch (l) {
    case Level::kDebug: return "debug";
    case Level::kInfo: return "info";
    case Level::kWarn: return "warn";
    case Level::kError: return "error";
  }
  return "info";
}

}  // namespace

void Init(std::string_view daemon, Level min_level) {
  std::lock_guard lock(g_mu);
  g_daemon = std::string(daemon);
  g_min = min_level;
}

bool ParseLevel(std::string_view text, Level* out) {
  for (Level l : {Level::kDebug, Level::kInfo, Level::kWarn, Level::kError}) {
    if (text == Name(l)) {
      *out = l;
      return true;
    }
  }
  return false;
}

void Write(Level level, std::string_view msg, std::initializer_list<Field> fields) {
  std::lock_guard lock(g_mu);
  if (level < g_min) return;
  boost::json::object line;
  line["ts"] = FormatRfc3339(SystemClock::Instance().NowMs());
  line["level"] = Name(level);
  line["daemon"] = g_daemon;
  line["msg"] = msg;
  for (const auto& [key, value] : fields) line[key] = value;
  Logger()->info(boost::json::serialize(line));
}

}  // namespace amparo::log
