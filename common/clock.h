// Time as an injected dependency (STYLE.md 4): production code asks a Clock,
// tests pass a FakeClock they move by hand.
#pragma once

#include <cstdint>
#include <string>

namespace amparo {

class Clock {
 public:
  virtual ~Clock() = default;
  // Wall-clock time, unix milliseconds (UTC).
  virtual int64_t NowMs() const = 0;
};

class SystemClock final : public Clock {
 public:
  int64_t NowMs() const override;
  static const SystemClock& Instance();
};

class FakeClock final : public Clock {
 public:
  explicit FakeClock(int64_t now_ms = 1'700'000'000'000) : now_ms_(now_ms) {}
  int64_t NowMs() const override { return now_ms_; }
  void Advance(int64_t ms) { now_ms_ += ms; }
  void Set(int64_t ms) { now_ms_ = ms; }

 private:
  int64_t now_ms_;
};

// "2018-09-15T04:05:29.280Z" (RFC 3339, UTC, milliseconds).
std::string FormatRfc3339(int64_t unix_ms);

}  // namespace amparo
