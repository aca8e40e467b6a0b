#include "relay/delivery/circuit_breaker.h"

#include <algorithm>

namespace relay::delivery {

CircuitBreaker::CircuitBreaker(const config::CircuitBreakerConfig& config, Clock& clock)
    : config_(config), clock_(clock), period_(config.open_for) {}

CircuitBreaker::Admission CircuitBreaker::admit() {
  std::lock_guard lock(mu_);
  switch (state_) {
    case State::kClosed:
      return Admission::kAllowed;
    case State::kOpen:
      if (clock_.now() < probe_at_) return Admission::kRejected;
      transition_locked(State::kHalfOpen);
      probe_out_ = true;
      return Admission::kProbe;
    case State::kHalfOpen:
      if (probe_out_) return Admission::kRejected;
      probe_out_ = true;
      return Admission::kProbe;
  }
  return Admission::kRejected;
}

void CircuitBreaker::record_success() {
  std::lock_guard lock(mu_);
  transition_locked(State::kClosed);
  consecutive_failures_ = 0;
  probe_out_ = false;
  period_ = config_.open_for;  // a healthy endpoint earns the short period back
}

void CircuitBreaker::record_failure() {
  std::lock_guard lock(mu_);
  switch (state_) {
    case State::kClosed:
      if (++consecutive_failures_ >= config_.failure_threshold) open_locked();
      return;
    case State::kHalfOpen:
      open_locked();  // the probe failed
      return;
    case State::kOpen:
      return;  // a request sent before the breaker opened: no news
  }
}

void CircuitBreaker::transition_locked(State to) {
  const State from = state_;
  state_ = to;
  if (from != to && on_transition_) on_transition_(from, to, trips_);
}

void CircuitBreaker::open_locked() {
  probe_out_ = false;
  ++trips_;
  transition_locked(State::kOpen);
  probe_at_ = clock_.now() + period_;
  period_ = std::min(config_.max_open_for, period_ * 2);
}

Millis CircuitBreaker::time_until_probe() const {
  std::lock_guard lock(mu_);
  if (state_ != State::kOpen) return Millis(0);
  const auto now = clock_.now();
  if (now >= probe_at_) return Millis(0);
  return std::chrono::duration_cast<Millis>(probe_at_ - now) + Millis(1);
}

CircuitBreaker::State CircuitBreaker::state() const {
  std::lock_guard lock(mu_);
  return state_;
}

CircuitBreaker::Snapshot CircuitBreaker::snapshot() const {
  std::lock_guard lock(mu_);
  Snapshot s;
  s.state = state_;
  s.consecutive_failures = consecutive_failures_;
  s.trips = trips_;
  s.open_for = period_;
  if (state_ == State::kOpen) {
    const auto now = clock_.now();
    if (now < probe_at_) s.reopens_in = std::chrono::duration_cast<Millis>(probe_at_ - now);
  }
  return s;
}

}  // namespace relay::delivery
