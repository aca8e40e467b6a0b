#include "relay/delivery/rate_limiter.h"

#include <catch2/catch.hpp>
#include <thread>

using namespace relay;
using namespace std::chrono_literals;

TEST_CASE("the rate limiter allows a burst at once, then one token per 1/rate", "[delivery]") {
  ManualClock clock;
  delivery::RateLimiter limiter({.events_per_second = 10, .burst = 3}, clock);
  std::stop_source stop;
  for (int i = 0; i < 3; ++i) CHECK(limiter.acquire(stop.get_token()));
  CHECK(limiter.available() == Approx(0));

  // The fourth waits for 100ms of (manual) time.
  std::atomic<bool> got{false};
  std::thread waiter([&] { got = limiter.acquire(stop.get_token()); });
  clock.advance(99ms);
  CHECK_FALSE(got.load());
  clock.advance(1ms);
  waiter.join();
  CHECK(got.load());
}

TEST_CASE("tokens never accumulate beyond the burst", "[delivery]") {
  ManualClock clock;
  delivery::RateLimiter limiter({.events_per_second = 100, .burst = 5}, clock);
  clock.advance(1h);
  CHECK(limiter.available() == Approx(5));
}

TEST_CASE("a waiting acquire gives up on a stop request", "[delivery]") {
  ManualClock clock;
  delivery::RateLimiter limiter({.events_per_second = 0.001, .burst = 1}, clock);
  std::stop_source stop;
  CHECK(limiter.acquire(stop.get_token()));
  std::atomic<int> result{-1};
  std::thread waiter([&] { result = limiter.acquire(stop.get_token()) ? 1 : 0; });
  stop.request_stop();
  waiter.join();
  CHECK(result.load() == 0);
}
