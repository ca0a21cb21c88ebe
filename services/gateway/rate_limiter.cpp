#include "services/gateway/rate_limiter.h"

#include <algorithm>
#include <cmath>

namespace amparo::gateway {

RateLimiter::RateLimiter(double rate_per_s, double burst, const Clock& clock, size_t max_keys)
    : rate_per_ms_(rate_per_s / 1000.0), burst_(std::max(1.0, burst)), clock_(clock), max_keys_(max_keys) {}

void RateLimiter::Refill(Bucket& bucket, int64_t now) const {
  if (now > bucket.updated_ms) {
    bucket.tokens =
        std::min(burst_, bucket.tokens + static_cast<double>(now - bucket.updated_ms) * rate_per_ms_);
    bucket.updated_ms = now;
  }
}

int64_t RateLimiter::Take(std::string_view key) {
  const int64_t now = clock_.NowMs();
  auto it = buckets_.find(std::string(key));
  if (it == buckets_.end()) {
    if (buckets_.size() >= max_keys_) {
      for (auto b = buckets_.begin(); b != buckets_.end();) {
        Refill(b->second, now);
        b = b->second.tokens >= burst_ ? buckets_.erase(b) : std::next(b);
      }
      // Still full: every bucket is busy. Refuse rather than grow.
      if (buckets_.size() >= max_keys_) return static_cast<int64_t>(std::ceil(1.0 / rate_per_ms_));
    }
    it = buckets_.emplace(std::string(key), Bucket{burst_, now}).first;
  }
  Bucket& bucket = it->second;
  Refill(bucket, now);
  if (bucket.tokens >= 1.0) {
    bucket.tokens -= 1.0;
    return 0;
  }
  return std::max<int64_t>(1, static_cast<int64_t>(std::ceil((1.0 - bucket.tokens) / rate_per_ms_)));
}

}  // namespace amparo::gateway
