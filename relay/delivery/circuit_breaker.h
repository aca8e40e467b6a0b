#pragma once
// CircuitBreaker: per subscription endpoint. Closed -> open after failure_threshold consecutive
// retryable failures; open for open_for, doubling on each trip in a row up to max_open_for; then
// half-open: exactly one probe request; its success closes the breaker, its failure re-opens it.
// While open, relay sends nothing to the endpoint and spends no retry attempts (the caller defers
// its work instead). Thread-safe: the lanes of a subscription share one breaker.

#include <functional>
#include <mutex>

#include "relay/common/clock.h"
#include "relay/config/config.h"
#include "relay/model/modes.h"

namespace relay::delivery {

class CircuitBreaker {
 public:
  using State = model::BreakerState;

  struct Snapshot {
    State state = State::kClosed;
    int consecutive_failures = 0;
    long long trips = 0;   // times it opened
    Millis open_for{0};    // length of the current (or next) open period
    Millis reopens_in{0};  // open: time until the half-open probe; otherwise 0
  };

  CircuitBreaker(const config::CircuitBreakerConfig& config, Clock& clock);
  CircuitBreaker(const CircuitBreaker&) = delete;
  CircuitBreaker& operator=(const CircuitBreaker&) = delete;

  enum class Admission {
    kRejected,  // open, or half-open with the probe already out: send nothing
    kAllowed,   // closed: send
    kProbe,     // the single half-open probe: send; its outcome decides the state
  };
  // Closed: kAllowed. Open: kRejected until open_for has passed, then the breaker turns half-open
  // and admits exactly one caller as kProbe. Half-open: kRejected while the probe is out.
  Admission admit();
  // admit() != kRejected.
  bool allow_request() { return admit() != Admission::kRejected; }
  // The endpoint answered (2xx, or a final 4xx: it is up). Closes the breaker.
  void record_success();
  // A retryable failure (5xx, 408/425/429, 3xx, timeout, refused). May open the breaker.
  void record_failure();

  // Open: time until the probe may go; half-open: an estimate (0); closed: 0.
  Millis time_until_probe() const;
  State state() const;
  Snapshot snapshot() const;

  // Called on every state change (closed->open, open->half_open, half_open->open|closed) with the
  // trip count after it, under the breaker's lock: keep it short (a log line, a counter) and do not
  // call back into the breaker. REQUIRES: set before the breaker is shared between threads.
  using TransitionFn = std::function<void(State from, State to, long long trips)>;
  void set_on_transition(TransitionFn fn) { on_transition_ = std::move(fn); }

 private:
  void transition_locked(State to);
  void open_locked();

  const config::CircuitBreakerConfig config_;
  Clock& clock_;
  mutable std::mutex mu_;
  State state_ = State::kClosed;  // guarded by mu_
  int consecutive_failures_ = 0;  // guarded by mu_
  long long trips_ = 0;           // guarded by mu_
  Millis period_;                 // guarded by mu_: the next open period
  Clock::TimePoint probe_at_{};   // guarded by mu_
  bool probe_out_ = false;        // guarded by mu_
  TransitionFn on_transition_;
};

}  // namespace relay::delivery
