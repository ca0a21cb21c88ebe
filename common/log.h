// Structured logging: one JSON object per line on stderr, e.g.
//   {"ts":"...","level":"info","daemon":"amparo-rules","msg":"alert raised","alert_id":"..."}
// Thread-safe. Never log contact data or names (DESIGN.md guarantee 5).
#pragma once

#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

namespace amparo::log {

enum class Level { kDebug, kInfo, kWarn, kError };

using Field = std::pair<std::string_view, std::string>;

// Sets the daemon name printed on every line and the minimum level.
void Init(std::string_view daemon, Level min_level);
// Parses "debug" | "info" | "warn" | "error".
bool ParseLevel(std::string_view text, Level* out);

void Write(Level level, std::string_view msg, std::initializer_list<Field> fields = {});
inline void Debug(std::string_view msg, std::initializer_list<Field> f = {}) { Write(Level::kDebug, msg, f); }
inline void Info(std::string_view msg, std::initializer_list<Field> f = {}) { Write(Level::kInfo, msg, f); }
inline void Warn(std::string_view msg, std::initializer_list<Field> f = {}) { Write(Level::kWarn, msg, f); }
inline void Error(std::string_view msg, std::initializer_list<Field> f = {}) { Write(Level::kError, msg, f); }

}  // namespace amparo::log
