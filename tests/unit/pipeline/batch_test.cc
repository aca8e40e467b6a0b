// Batches through the pipeline: what closes a batch (max_events, linger, max_bytes) and per-key
// order across consecutive batches.
#include <catch2/catch.hpp>
#include <random>

#include "tests/unit/pipeline/pipeline_harness.h"

using namespace relay;
using namespace relay::testing;
using namespace std::chrono_literals;

namespace {

config::SubscriptionConfig batched(int max_events, std::int64_t max_bytes = 1 << 20,
                                   Millis linger = 10ms) {
  auto s = test_subscription("b", {"*"});
  s.format = model::Format::kCloudEventsJson;
  s.batch = config::BatchConfig{.max_events = max_events, .max_bytes = max_bytes, .linger = linger};
  return s;
}

std::vector<std::vector<std::int64_t>> bodies(const std::vector<SentRequest>& requests) {
  std::vector<std::vector<std::int64_t>> out;
  for (const auto& r : requests) {
    CHECK(r.batch);
    out.push_back(r.outbox_ids);
  }
  return out;
}

// The lane counts a batch after its request returns: wait for the outcomes to be recorded first.
double batches_closed_by(const PipelineHarness& h, const std::string& why) {
  REQUIRE(PipelineHarness::wait_until([&] { return h.store.counts().outbox == 0 && h.idle(); }));
  return h.counter("relay_delivery_batches_total", {{"subscription", "b"}, {"closed_by", why}});
}

}  // namespace

TEST_CASE("a batch closes when it reaches max_events without waiting for linger", "[pipeline]") {
  PipelineHarness h(test_config({batched(4)}));
  for (int i = 0; i < 8; ++i) h.store.publish("t", "k" + std::to_string(i), "{}");
  h.start();

  // The clock does not move: linger cannot close anything, only a full batch goes.
  REQUIRE(PipelineHarness::wait_until([&] { return h.endpoint.request_count() == 2; }));
  CHECK(bodies(h.endpoint.requests()) ==
        std::vector<std::vector<std::int64_t>>{{1, 2, 3, 4}, {5, 6, 7, 8}});
  CHECK(batches_closed_by(h, "max_events") == 2);
  CHECK(h.shutdown().has_value());
}

TEST_CASE("a batch with fewer than max_events goes when linger runs out", "[pipeline]") {
  PipelineHarness h(test_config({batched(100, 1 << 20, 10ms)}));
  for (int i = 0; i < 3; ++i) h.store.publish("t", "k" + std::to_string(i), "{}");
  const auto started = h.clock.now();
  h.start();

  REQUIRE(PipelineHarness::wait_until([&] { return h.store.leased() == 3; }));  // claimed
  CHECK(h.endpoint.request_count() == 0);  // the clock has not moved: linger has not run out
  REQUIRE(h.drive_until([&] { return h.endpoint.request_count() == 1; }, 1ms));
  const auto requests = h.endpoint.requests();
  CHECK(bodies(requests) == std::vector<std::vector<std::int64_t>>{{1, 2, 3}});
  CHECK(requests[0].received_at - started >= 10ms);  // it waited for more
  CHECK(batches_closed_by(h, "linger") == 1);
  CHECK(h.shutdown().has_value());
}

TEST_CASE("a batch closes before max_bytes and an event larger than max_bytes goes alone",
          "[pipeline]") {
  // Each 3000-byte payload takes 4000 bytes of base64 plus under 1 KiB of attributes in a body:
  // two fit in 12000 bytes, three do not. The 20000-byte one alone passes max_bytes.
  PipelineHarness h(test_config({batched(100, 12'000, 10ms)}));
  const std::string small(3000, 'x');
  for (int i = 0; i < 5; ++i) h.store.publish("t", "k", small);  // 1..5
  h.store.publish("t", "k", std::string(20'000, 'y'));           // 6
  h.store.publish("t", "k", small);                              // 7
  h.start();

  // The clock stands still until the first four are sent: only size closes those.
  REQUIRE(PipelineHarness::wait_until([&] { return h.endpoint.request_count() == 4; }));
  REQUIRE(h.drive_until([&] { return h.endpoint.request_count() == 5; }, 1ms));  // linger
  CHECK(bodies(h.endpoint.requests()) ==
        std::vector<std::vector<std::int64_t>>{{1, 2}, {3, 4}, {5}, {6}, {7}});
  CHECK(batches_closed_by(h, "max_bytes") == 4);
  CHECK(batches_closed_by(h, "linger") == 1);
  CHECK(h.shutdown().has_value());
}

TEST_CASE("per-key order holds across consecutive batches when some of them fail", "[pipeline]") {
  const std::uint64_t seed = GENERATE(7, 8);
  INFO("seed " << seed);
  auto sub = batched(4, 1 << 20, 5ms);
  sub.max_in_flight = 2;
  // Each event fails 10% of its tries; a batch fails when any of its events does (about a third
  // of the batches of four).
  PipelineHarness h(test_config({sub}, 16), flaky_consumer(seed, 10));
  std::vector<Expected> expected;
  for (int i = 0; i < 60; ++i) {
    const std::string key = "k" + std::to_string(i % 3);
    expected.push_back({h.store.publish("t", key, "{}"), key, {"b"}});
  }
  h.start();

  const bool drained = h.drive_until([&] {
    const auto c = h.store.counts();
    return c.outbox == 0 && c.delivery == 0;
  });
  INFO(h.describe());
  REQUIRE(drained);
  const auto requests = h.endpoint.requests();
  const auto problems = order_violations(requests, expected);
  std::string text;
  for (const auto& p : problems) text += p + "\n";
  INFO(text);
  CHECK(text.empty());
  size_t multi = 0, failed = 0;
  for (const auto& r : requests) {
    multi += r.outbox_ids.size() > 1;
    failed += r.outcome && r.outcome->kind != delivery::DeliveryOutcome::Kind::kDelivered;
  }
  CHECK(multi > 5);   // it did batch
  CHECK(failed > 3);  // and batches did fail
  CHECK(h.shutdown().has_value());
}
