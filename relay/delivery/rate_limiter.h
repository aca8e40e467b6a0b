#pragma once
// RateLimiter: a token bucket shared by a subscription's lanes: on average at most
// events_per_second requests, bursts up to `burst`. acquire() reserves the next token and waits for
// it on the Clock, so waiting lanes are served in order and tests move time instead of sleeping.
// Thread-safe.

#include <mutex>
#include <stop_token>

#include "relay/common/clock.h"
#include "relay/config/config.h"

namespace relay::delivery {

class RateLimiter {
 public:
  RateLimiter(const config::RateLimitConfig& config, Clock& clock);
  RateLimiter(const RateLimiter&) = delete;
  RateLimiter& operator=(const RateLimiter&) = delete;

  // Takes one token, waiting until it is available. Returns false if `stop` was requested first
  // (the reserved token is then lost, which only slows the rate slightly).
  bool acquire(std::stop_token stop);
  // Tokens available now (negative: reserved ahead by waiting callers). For /status.
  double available() const;

 private:
  void refill_locked(Clock::TimePoint now) const;

  const double rate_;  // tokens per second
  const double burst_;
  Clock& clock_;
  mutable std::mutex mu_;
  mutable double tokens_;              // guarded by mu_
  mutable Clock::TimePoint refilled_;  // guarded by mu_
};

}  // namespace relay::delivery
