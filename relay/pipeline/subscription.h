#pragma once
// Subscription: what the lanes of one subscription share: its config, circuit breaker, rate
// limiter, and the counters behind /status and the breaker log lines. Thread-safe (atomics; the
// breaker and limiter lock themselves), except where a member says which thread owns it.

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "relay/common/clock.h"
#include "relay/common/log.h"
#include "relay/config/config.h"
#include "relay/delivery/circuit_breaker.h"
#include "relay/delivery/outcome.h"
#include "relay/delivery/rate_limiter.h"
#include "relay/model/status_document.h"
#include "relay/pipeline/dispatch_stats.h"

namespace relay::pipeline {

struct Lane;

class Subscription {
 public:
  // `config`, `clock` and `stats` must outlive it. Breaker state changes are counted in `stats`
  // and logged once each (never once per failed attempt).
  Subscription(const config::SubscriptionConfig& config, Clock& clock, DispatchStats& stats);
  ~Subscription();
  Subscription(const Subscription&) = delete;
  Subscription& operator=(const Subscription&) = delete;

  const config::SubscriptionConfig& config() const { return config_; }
  const std::string& name() const { return config_.name; }
  delivery::CircuitBreaker& breaker() { return *breaker_; }
  const delivery::CircuitBreaker& breaker() const { return *breaker_; }
  delivery::RateLimiter* limiter() { return limiter_.get(); }  // null: unlimited
  // `batch` is set and the format can carry one (the loader rejects batch with format binary; a
  // hand-built config that has both sends one event per request).
  bool batched() const { return batched_; }

  // A request is on the wire while the returned guard lives.
  struct InFlight {
    explicit InFlight(std::atomic<int>& n) : n_(n) { ++n_; }
    ~InFlight() { --n_; }
    InFlight(const InFlight&) = delete;
    InFlight& operator=(const InFlight&) = delete;
    std::atomic<int>& n_;
  };
  InFlight on_the_wire() { return InFlight(in_flight_); }
  // `n` parts were deferred because the breaker is open (for the summary log).
  void note_deferred(long long n) { deferred_ += n; }
  // A TLS failure is a setting to fix, not an outage: says so once (until a request gets through
  // again) with the cause, instead of leaving only "breaker opened" in the log.
  void note_tls(const delivery::DeliveryOutcome& outcome);
  // Claimer thread: one summary line while the breaker stays open, every minute.
  void log_if_open_long();

  // What /status shows about it.
  model::SubscriptionStatus status() const;

  // The lanes (max_in_flight of them), each with its own connection. Set up by the pipeline.
  std::vector<std::unique_ptr<Lane>> lanes;

 private:
  const config::SubscriptionConfig& config_;
  Clock& clock_;
  DispatchStats& stats_;
  const Logger log_{"dispatch"};
  std::unique_ptr<delivery::CircuitBreaker> breaker_;
  std::unique_ptr<delivery::RateLimiter> limiter_;
  const bool batched_;
  std::atomic<int> in_flight_{0};
  std::atomic<long long> deferred_{0};  // since the breaker last opened
  std::atomic<bool> tls_failing_{false};
  std::atomic<Clock::TimePoint> opened_at_{};  // when it last left kClosed
  Clock::TimePoint last_summary_{};            // claimer thread only
};

}  // namespace relay::pipeline
