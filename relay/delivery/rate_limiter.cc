#include "relay/delivery/rate_limiter.h"

#include <algorithm>
#include <cmath>

namespace relay::delivery {

RateLimiter::RateLimiter(const config::RateLimitConfig& config, Clock& clock)
    : rate_(config.events_per_second),
      burst_(std::max(1, config.burst)),
      clock_(clock),
      tokens_(burst_),
      refilled_(clock.now()) {}

void RateLimiter::refill_locked(Clock::TimePoint now) const {
  const double elapsed = std::chrono::duration<double>(now - refilled_).count();
  if (elapsed > 0) {
    tokens_ = std::min(burst_, tokens_ + elapsed * rate_);
    refilled_ = now;
  }
}

bool RateLimiter::acquire(std::stop_token stop) {
  Clock::TimePoint ready;
  {
    std::lock_guard lock(mu_);
    const auto now = clock_.now();
    refill_locked(now);
    tokens_ -= 1;  // reserve, possibly ahead of time
    if (tokens_ >= 0) return true;
    const double wait_s = -tokens_ / rate_;
    ready =
        now + std::chrono::duration_cast<Clock::Duration>(std::chrono::duration<double>(wait_s));
  }
  return clock_.sleep_until(ready, stop);
}

double RateLimiter::available() const {
  std::lock_guard lock(mu_);
  refill_locked(clock_.now());
  return tokens_;
}

}  // namespace relay::delivery
