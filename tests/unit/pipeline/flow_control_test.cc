// What holds the pipeline back: the circuit breaker (deferral spends no attempts), the rate limit,
// and the in-flight credit.
#include <atomic>
#include <catch2/catch.hpp>
#include <random>

#include "tests/unit/pipeline/pipeline_harness.h"

using namespace relay;
using namespace relay::testing;
using namespace std::chrono_literals;

TEST_CASE(
    "events deferred while the breaker is open keep their attempt counts and all are "
    "delivered after recovery",
    "[pipeline]") {
  auto sub = test_subscription("s", {"*"});
  sub.retry.max_attempts = 5;
  sub.circuit_breaker = {.failure_threshold = 3, .open_for = 1s, .max_open_for = 1s};
  std::atomic<bool> down{true};
  PipelineHarness h(test_config({sub}), [&down](const std::string&, const Event&, int) {
    return down ? FakeEndpoint::retryable(503) : FakeEndpoint::delivered();
  });
  for (int i = 0; i < 10; ++i) h.store.publish("t", "k" + std::to_string(i), "{}");
  h.start();

  using State = delivery::CircuitBreaker::State;
  constexpr Millis kStep{20};  // the breaker's times are in seconds
  REQUIRE(h.drive_until(
      [&] { return h.pipeline->status().subscriptions.at(0).breaker.state == State::kOpen; },
      kStep));
  // A long outage: the breaker half-opens every second and each probe fails.
  h.drive_for(10s, kStep);
  REQUIRE(h.drive_until([&] { return h.store.counts().outbox == 0 && h.idle(); }, kStep));
  CHECK(h.pipeline->status().subscriptions.at(0).breaker.trips >= 5);
  CHECK(h.endpoint.request_count() >= 3 + 5);  // 3 failures opened it, then at least 5 probes
  int attempts = 0;
  for (const auto& d : h.store.deliveries()) attempts += d.attempts;
  // One lane: exactly the 3 failures that opened the breaker were attempts; no deferral and no
  // failed probe spent one (else 5 attempts would have dead-lettered some event by now).
  CHECK(attempts == 3);
  CHECK(h.store.counts().delivery == 10);
  CHECK(h.store.counts().dead_letter == 0);

  down = false;
  REQUIRE(h.drive_until([&] { return h.store.counts().delivery == 0; }, kStep));
  CHECK(h.store.counts().dead_letter == 0);
  std::map<std::int64_t, int> delivered_on_attempt;
  for (const auto& r : h.endpoint.requests()) {
    if (r.outcome && r.outcome->kind == delivery::DeliveryOutcome::Kind::kDelivered)
      delivered_on_attempt[r.outbox_ids.at(0)] = r.attempts.at(0);
  }
  REQUIRE(delivered_on_attempt.size() == 10);
  for (const auto& [id, attempt] : delivered_on_attempt) {
    INFO("event " << id);
    CHECK(attempt <= 2);  // one real failure at most before the breaker opened
  }
  CHECK(h.shutdown().has_value());
}

TEST_CASE("a rate-limited subscription never sends more than burst + rate x interval",
          "[pipeline]") {
  constexpr double kRate = 10;  // events per second
  constexpr int kBurst = 2;
  constexpr int kEvents = 25;
  auto sub = test_subscription("s", {"*"});
  sub.max_in_flight = 3;  // the lanes share one bucket
  sub.rate_limit = config::RateLimitConfig{.events_per_second = kRate, .burst = kBurst};
  PipelineHarness h(test_config({sub}));
  for (int i = 0; i < kEvents; ++i) h.store.publish("t", "k" + std::to_string(i), "{}");
  h.start();

  constexpr Millis kStep{5};
  REQUIRE(h.drive_until([&] { return h.store.counts().outbox == 0 && h.idle(); }, kStep));
  const auto requests = h.endpoint.requests();
  REQUIRE(requests.size() == kEvents);
  // Any run of requests i..j: at most burst + rate x (its span) tokens. A request reaches the
  // endpoint up to a step or two after its token (the clock moves on meanwhile): allow 2 steps.
  int violations = 0;
  std::string first;
  for (size_t i = 0; i < requests.size(); ++i) {
    for (size_t j = i; j < requests.size(); ++j) {
      const double span = std::chrono::duration<double>(requests[j].received_at -
                                                        requests[i].received_at + 2 * kStep)
                              .count();
      if (static_cast<double>(j - i + 1) > kBurst + kRate * span) {
        if (violations++ == 0)
          first = "requests " + std::to_string(i) + ".." + std::to_string(j) + " within " +
                  std::to_string(span) + " s";
      }
    }
  }
  INFO(first);
  CHECK(violations == 0);
  const double total =
      std::chrono::duration<double>(requests.back().received_at - requests.front().received_at)
          .count();
  CHECK(total >= (kEvents - kBurst) / kRate - 0.01);
}

TEST_CASE("claimed but unrecorded work never exceeds 2 x source.batch_size", "[pipeline]") {
  constexpr int kBatch = 10;
  auto sub = test_subscription("s", {"*"});
  sub.max_in_flight = 4;
  // A slow, flaky consumer: requests wait at the gate at first; later ~30% of them fail.
  PipelineHarness h(test_config({sub}, kBatch), flaky_consumer(11, 30));
  std::vector<Expected> expected;
  for (int i = 0; i < 200; ++i) {
    const std::string key = "k" + std::to_string(i % 50);
    expected.push_back({h.store.publish("t", key, "{}"), key, {"s"}});
  }
  h.endpoint.close_gate();
  h.start();

  // Lanes hold requests at the gate; the claims stop at the bound.
  REQUIRE(PipelineHarness::wait_until([&] { return h.store.leased() == 2 * kBatch; }));
  REQUIRE(PipelineHarness::wait_until([&] { return h.endpoint.held() >= 1; }));
  h.drive_for(500ms);  // time passes (polls): still no more
  CHECK(h.store.leased() == 2 * kBatch);

  h.endpoint.open_gate();
  REQUIRE(h.drive_until(
      [&] {
        const auto c = h.store.counts();
        return c.outbox == 0 && c.delivery == 0;
      },
      10ms));
  CHECK(h.store.max_leased() == 2 * kBatch);  // reached, never passed
  CHECK(h.store.counts().dead_letter == 0);
  CHECK(order_violations(h.endpoint.requests(), expected).empty());
  CHECK(h.shutdown().has_value());
}
