#include "relay/pipeline/subscription.h"

#include <fmt/format.h>

#include "relay/common/duration.h"
#include "relay/pipeline/lane.h"

namespace relay::pipeline {

Subscription::Subscription(const config::SubscriptionConfig& config, Clock& clock,
                           DispatchStats& stats)
    : config_(config),
      clock_(clock),
      stats_(stats),
      breaker_(std::make_unique<delivery::CircuitBreaker>(config.circuit_breaker, clock)),
      limiter_(config.rate_limit
                   ? std::make_unique<delivery::RateLimiter>(*config.rate_limit, clock)
                   : nullptr),
      batched_(config.batch.has_value() && model::can_batch(config.format)) {
  // Runs under the breaker's lock.
  breaker_->set_on_transition([this](delivery::CircuitBreaker::State from,
                                     delivery::CircuitBreaker::State to, long long trips) {
    using State = delivery::CircuitBreaker::State;
    stats_.breaker_transition(name(), to);
    const auto now = clock_.now();
    if (from == State::kClosed) {
      opened_at_ = now;
      deferred_ = 0;
      log_.warn("breaker opened", {{"subscription", name()}, {"trips", std::to_string(trips)}});
    } else if (to == State::kClosed) {
      const auto open = std::chrono::duration_cast<Millis>(now - opened_at_.load());
      log_.info("breaker closed", {{"subscription", name()},
                                   {"trips", std::to_string(trips)},
                                   {"was_open_for", format_duration(open)},
                                   {"deferred", std::to_string(deferred_.load())}});
    } else {
      // open <-> half_open while the outage lasts: the periodic summary covers it at info.
      log_.debug(to == State::kHalfOpen ? "breaker half-open" : "breaker re-opened",
                 {{"subscription", name()}, {"trips", std::to_string(trips)}});
    }
  });
}

Subscription::~Subscription() = default;

void Subscription::note_tls(const delivery::DeliveryOutcome& outcome) {
  if (outcome.cause == delivery::DeliveryOutcome::Cause::kNone) {
    if (outcome.kind == delivery::DeliveryOutcome::Kind::kDelivered) tls_failing_ = false;
    return;
  }
  if (tls_failing_.exchange(true)) return;
  log_.error("TLS failure: fix the subscription's tls settings; its events are kept and retried",
             {{"subscription", name()}, {"error", outcome.error}});
}

void Subscription::log_if_open_long() {
  constexpr Millis kSummaryEvery{60'000};
  if (breaker_->state() == delivery::CircuitBreaker::State::kClosed) return;
  const auto now = clock_.now();
  const auto opened = opened_at_.load();
  if (now - opened < kSummaryEvery || now - last_summary_ < kSummaryEvery) return;
  last_summary_ = now;
  const auto secs = std::chrono::duration_cast<std::chrono::seconds>(now - opened).count();
  log_.warn(fmt::format("subscription {} breaker open for {} s; {} deferred", name(), secs,
                        deferred_.load()),
            {{"subscription", name()}, {"trips", std::to_string(breaker_->snapshot().trips)}});
}

model::SubscriptionStatus Subscription::status() const {
  const auto breaker = breaker_->snapshot();
  model::SubscriptionStatus st;
  st.name = name();
  st.in_flight = in_flight_.load();
  st.breaker = {.state = breaker.state,
                .consecutive_failures = breaker.consecutive_failures,
                .trips = breaker.trips,
                .open_for_ms = breaker.open_for.count(),
                .reopens_in_ms = breaker.reopens_in.count()};
  if (limiter_) st.rate_tokens_available = limiter_->available();
  return st;
}

}  // namespace relay::pipeline
