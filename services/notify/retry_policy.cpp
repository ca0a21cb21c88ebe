#include "services/notify/retry_policy.h"

#include <algorithm>
#include <cstring>
#include <memory>
#include <random>

#include "common/crypto.h"

namespace amparo::notify {

JitterSource DefaultJitterSource() {
  std::string seed_bytes = RandomBytes(sizeof(uint64_t));
  uint64_t seed = 0;
  std::memcpy(&seed, seed_bytes.data(), sizeof(seed));
  // shared_ptr: std::function must be copyable; copies share one generator.
  auto engine = std::make_shared<std::mt19937_64>(seed);
  return [engine](int64_t max_inclusive) -> int64_t {
    if (max_inclusive <= 0) return 0;
    return std::uniform_int_distribution<int64_t>(0, max_inclusive)(*engine);
  };
}

int64_t BackoffCeilingMs(int attempts, const RetryOptions& options) {
  int64_t ceiling = std::max<int64_t>(0, options.backoff_initial_ms);
  // Double until the cap instead of computing 2^(attempts-1), which overflows
  // long before max_attempts (up to 1000) does.
  for (int i = 1; i < attempts && ceiling < options.backoff_max_ms; ++i) ceiling *= 2;
  return std::min(ceiling, options.backoff_max_ms);
}

RetryDecision DecideAfterAttempt(const SendResult& result, int attempts_before, int64_t now_ms,
                                 const RetryOptions& options, const JitterSource& jitter) {
  RetryDecision decision;
  decision.attempts = attempts_before + 1;
  decision.next_attempt_ms = now_ms;
  decision.last_error = result.error;
  switch (result.outcome) {
    case SendOutcome::kDelivered:
      decision.state = DeliveryState::kDelivered;
      decision.last_error.clear();
      return decision;
    case SendOutcome::kPermanent:
      decision.state = DeliveryState::kDead;
      return decision;
    case SendOutcome::kRetryable:
      break;
  }
  if (decision.attempts >= options.max_attempts) {
    decision.state = DeliveryState::kDead;
    decision.last_error = "gave up after " + std::to_string(decision.attempts) + " attempts: " + result.error;
    return decision;
  }
  const int64_t ceiling = BackoffCeilingMs(decision.attempts, options);
  decision.state = DeliveryState::kRetrying;
  decision.next_attempt_ms = now_ms + std::clamp<int64_t>(jitter(ceiling), 0, ceiling);
  return decision;
}

}  // namespace amparo::notify
