// Per-token request rate limits: a token bucket per key (the token id)
// refilled at `rate_per_s` up to `burst`. Time comes from the injected
// Clock so tests drive it.
//
// Bounded: at most `max_keys` buckets; when full, buckets that have refilled
// completely (idle callers, indistinguishable from new ones) are dropped.
// Thread safety: none; one thread (the HTTP thread) uses it.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>

#include "common/clock.h"

namespace amparo::gateway {

class RateLimiter {
 public:
  RateLimiter(double rate_per_s, double burst, const Clock& clock, size_t max_keys = 100'000);

  // Takes one request from `key`'s bucket. Returns 0 when allowed, otherwise
  // how many milliseconds until one request is available again.
  int64_t Take(std::string_view key);

 private:
  struct Bucket {
    double tokens;
    int64_t updated_ms;
  };
  void Refill(Bucket& bucket, int64_t now) const;

  double rate_per_ms_;
  double burst_;
  const Clock& clock_;
  size_t max_keys_;
  std::unordered_map<std::string, Bucket> buckets_;
};

}  // namespace amparo::gateway
