// The "retry" stage of amparo-notify: what happens to a delivery after one
// attempt. Retries are decided here, in one place, with exponential backoff,
// "full jitter" (AWS Architecture Blog, "Exponential Backoff And Jitter") and
// a dead letter after a bounded number of attempts (STYLE.md 7).
//
// Pure functions over an injected random source; thread-compatible.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "services/notify/channel.h"
#include "services/notify/notify_store.h"

namespace amparo::notify {

// Returns a uniformly distributed integer in [0, max_inclusive]. Tests pass a
// fixed function; production uses DefaultJitterSource().
using JitterSource = std::function<int64_t(int64_t max_inclusive)>;

// A Mersenne Twister seeded from the OS CSPRNG. Not thread-safe: one per thread.
JitterSource DefaultJitterSource();

struct RetryOptions {
  int max_attempts = 12;  // attempts before the delivery is dead-lettered; >= 1
  int64_t backoff_initial_ms = 1000;
  int64_t backoff_max_ms = 300000;
};

// The ceiling of the wait after the `attempts`-th failed attempt (>= 1):
// min(backoff_max_ms, backoff_initial_ms * 2^(attempts - 1)), without overflow.
int64_t BackoffCeilingMs(int attempts, const RetryOptions& options);

// What a delivery becomes after an attempt that ended with `result`.
struct RetryDecision {
  DeliveryState state = DeliveryState::kPending;
  int attempts = 0;             // including the attempt just made
  int64_t next_attempt_ms = 0;  // when to try again (kRetrying only; else now)
  std::string last_error;       // "" when delivered
};

// `attempts_before` counts earlier attempts. Delivered -> kDelivered;
// permanent -> kDead; retryable -> kRetrying at now + jitter(BackoffCeilingMs),
// or kDead when this was attempt number `max_attempts`.
RetryDecision DecideAfterAttempt(const SendResult& result, int attempts_before, int64_t now_ms,
                                 const RetryOptions& options, const JitterSource& jitter);

}  // namespace amparo::notify
