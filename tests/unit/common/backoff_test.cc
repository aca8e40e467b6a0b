#include "relay/common/backoff.h"

#include <catch2/catch.hpp>

using namespace std::chrono_literals;
using relay::Backoff;
using relay::backoff_ceiling;
using relay::BackoffOptions;
using relay::Millis;

TEST_CASE("the backoff ceiling doubles from initial_backoff on each retry", "[common]") {
  const BackoffOptions opts{.initial_backoff = 500ms, .max_backoff = 600s};
  CHECK(backoff_ceiling(opts, 1) == 500ms);
  CHECK(backoff_ceiling(opts, 2) == 1000ms);
  CHECK(backoff_ceiling(opts, 3) == 2000ms);
  CHECK(backoff_ceiling(opts, 4) == 4000ms);
  CHECK(backoff_ceiling(opts, 11) == 512'000ms);
}

TEST_CASE("the backoff ceiling stops at max_backoff", "[common]") {
  const BackoffOptions opts{.initial_backoff = 500ms, .max_backoff = 600s};
  CHECK(backoff_ceiling(opts, 12) == 600s);
  CHECK(backoff_ceiling(opts, 13) == 600s);
  CHECK(backoff_ceiling(opts, 100) == 600s);
}

TEST_CASE("the backoff ceiling does not overflow at retry 1000, even with a huge cap", "[common]") {
  CHECK(backoff_ceiling({.initial_backoff = 500ms, .max_backoff = 600s}, 1000) == 600s);
  CHECK(backoff_ceiling({.initial_backoff = 500ms, .max_backoff = 7 * 24h}, 1000) == 7 * 24h);
  // Doubling 500 never lands exactly on INT64_MAX: without saturation this overflows (UBSan).
  const BackoffOptions uncapped{.initial_backoff = 500ms, .max_backoff = Millis::max()};
  CHECK(backoff_ceiling(uncapped, 1000) == Millis::max());
  CHECK(backoff_ceiling(uncapped, 10) == 256'000ms);
}

TEST_CASE("a retry number below 1 is treated as the first retry", "[common]") {
  const BackoffOptions opts{.initial_backoff = 500ms, .max_backoff = 600s};
  CHECK(backoff_ceiling(opts, 0) == 500ms);
  CHECK(backoff_ceiling(opts, -5) == 500ms);
}

TEST_CASE("jittered delays stay within zero and the ceiling", "[common]") {
  const BackoffOptions opts{.initial_backoff = 100ms, .max_backoff = 30s};
  Backoff backoff(opts, /*seed=*/42);
  for (int retry = 1; retry <= 20; ++retry) {
    const Millis ceiling = backoff_ceiling(opts, retry);
    Millis lowest = ceiling, highest{0};
    for (int i = 0; i < 500; ++i) {
      const Millis d = backoff.next_delay(retry);
      REQUIRE(d >= 0ms);
      REQUIRE(d <= ceiling);
      lowest = std::min(lowest, d);
      highest = std::max(highest, d);
    }
    INFO("retry " << retry);
    CHECK(lowest < ceiling / 4);  // full jitter spreads over the whole range, not near the cap
    CHECK(highest > ceiling * 3 / 4);
  }
}

TEST_CASE("the same seed gives the same delays", "[common]") {
  const BackoffOptions opts{.initial_backoff = 100ms, .max_backoff = 30s};
  Backoff a(opts, 7), b(opts, 7);
  for (int retry = 1; retry <= 10; ++retry) CHECK(a.next_delay(retry) == b.next_delay(retry));
}
