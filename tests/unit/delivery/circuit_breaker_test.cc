#include "relay/delivery/circuit_breaker.h"

#include <catch2/catch.hpp>

using namespace relay;
using namespace std::chrono_literals;
using State = delivery::CircuitBreaker::State;

namespace {
config::CircuitBreakerConfig breaker_config() {
  return {.failure_threshold = 3, .open_for = Millis(30'000), .max_open_for = Millis(100'000)};
}
}  // namespace

TEST_CASE("breaker opens after consecutive failures and admits one probe after open_for",
          "[delivery]") {
  ManualClock clock;
  delivery::CircuitBreaker breaker(breaker_config(), clock);
  for (int i = 0; i < 3; ++i) {
    CHECK(breaker.allow_request());
    breaker.record_failure();
  }
  CHECK(breaker.state() == State::kOpen);
  CHECK(breaker.time_until_probe() > Millis(29'000));
  clock.advance(29s);
  CHECK_FALSE(breaker.allow_request());
  clock.advance(1s);
  CHECK(breaker.admit() ==
        delivery::CircuitBreaker::Admission::kProbe);  // the single half-open probe
  CHECK(breaker.state() == State::kHalfOpen);
  CHECK_FALSE(breaker.allow_request());  // no second probe while the first is out
  breaker.record_success();
  CHECK(breaker.state() == State::kClosed);
  CHECK(breaker.allow_request());
}

TEST_CASE("a success resets the consecutive failure count", "[delivery]") {
  ManualClock clock;
  delivery::CircuitBreaker breaker(breaker_config(), clock);
  breaker.record_failure();
  breaker.record_failure();
  breaker.record_success();
  breaker.record_failure();
  breaker.record_failure();
  CHECK(breaker.state() == State::kClosed);
  breaker.record_failure();
  CHECK(breaker.state() == State::kOpen);
}

TEST_CASE("a failed probe re-opens the breaker for twice as long, capped by max_open_for",
          "[delivery]") {
  ManualClock clock;
  delivery::CircuitBreaker breaker(breaker_config(), clock);
  for (int i = 0; i < 3; ++i) breaker.record_failure();
  Millis expected{30'000};
  for (int trip = 0; trip < 5; ++trip) {
    REQUIRE(breaker.state() == State::kOpen);
    CHECK(breaker.snapshot().reopens_in == expected);
    clock.advance(expected - Millis(1));
    CHECK_FALSE(breaker.allow_request());
    clock.advance(Millis(1));
    REQUIRE(breaker.allow_request());
    breaker.record_failure();
    expected = std::min(expected * 2, Millis(100'000));
  }
  CHECK(breaker.snapshot().trips == 6);
  // Recovery earns the short period back.
  clock.advance(Millis(100'000));
  REQUIRE(breaker.allow_request());
  breaker.record_success();
  for (int i = 0; i < 3; ++i) breaker.record_failure();
  CHECK(breaker.snapshot().reopens_in == Millis(30'000));
}

TEST_CASE("failures of requests sent before the breaker opened do not extend it", "[delivery]") {
  ManualClock clock;
  delivery::CircuitBreaker breaker(breaker_config(), clock);
  for (int i = 0; i < 3; ++i) breaker.record_failure();
  clock.advance(10s);
  breaker.record_failure();  // a straggler
  CHECK(breaker.snapshot().reopens_in == Millis(20'000));
}

TEST_CASE(
    "with the default settings an endpoint that comes back is probed within 30 s, however often "
    "the breaker tripped",
    "[delivery]") {
  ManualClock clock;
  const config::CircuitBreakerConfig defaults;
  delivery::CircuitBreaker breaker(defaults, clock);
  for (int i = 0; i < defaults.failure_threshold; ++i) {
    REQUIRE(breaker.allow_request());
    breaker.record_failure();
  }
  // A long outage: every probe fails and the open period grows, up to its ceiling.
  for (int trip = 1; trip <= 20; ++trip) {
    REQUIRE(breaker.state() == State::kOpen);
    const Millis wait = breaker.time_until_probe();
    INFO("trip " << trip << ": next probe in " << wait.count() << " ms");
    CHECK(wait <= 30s + Millis(1));  // time_until_probe rounds up to the next millisecond
    clock.advance(wait);
    REQUIRE(breaker.admit() == delivery::CircuitBreaker::Admission::kProbe);
    breaker.record_failure();
  }
  CHECK(breaker.snapshot().open_for == 30s);
}
