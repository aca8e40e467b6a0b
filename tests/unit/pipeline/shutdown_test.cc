// Shutdown with work in flight: a request on the wire finishes and is recorded if it can before the
// drain deadline, is aborted (no attempt counted) after it, and queued work goes back to the store.
#include <catch2/catch.hpp>
#include <future>

#include "tests/unit/pipeline/pipeline_harness.h"

using namespace relay;
using namespace relay::testing;
using namespace std::chrono_literals;

namespace {

// Starts the pipeline's shutdown on another thread, with its deadlines fixed here (before the
// test moves the clock), and returns once it has begun: from then on no lane starts a new attempt.
// (Waiting for the claimer's wake-up instead raced with a late wake from the recorder.)
std::future<Status> begin_shutdown(PipelineHarness& h, Millis drain, Millis final_wait) {
  const auto now = h.clock.now();
  auto done = std::async(std::launch::async, [&h, now, drain, final_wait] {
    return h.pipeline->shutdown(now + drain, now + drain + final_wait);
  });
  REQUIRE(PipelineHarness::wait_until([&] { return h.pipeline->draining(); }));
  return done;
}

}  // namespace

TEST_CASE(
    "at shutdown a request in flight completes and is recorded before the drain deadline "
    "and queued work is released",
    "[pipeline]") {
  PipelineHarness h(test_config({test_subscription("s", {"*"})}));
  for (int i = 0; i < 5; ++i) h.store.publish("t", "k" + std::to_string(i), "{}");
  h.endpoint.close_gate();
  h.start();
  REQUIRE(PipelineHarness::wait_until([&] { return h.endpoint.held() == 1; }));  // event 1
  REQUIRE(PipelineHarness::wait_until([&] { return h.store.leased() == 5; }));   // 2..5 queued
  const auto drain_deadline = h.clock.now() + 10s;

  auto done = begin_shutdown(h, 10s, 10s);
  h.endpoint.open_gate();
  REQUIRE(done.wait_for(20s) == std::future_status::ready);  // the clock never moved
  CHECK(done.get().has_value());
  CHECK(h.clock.now() < drain_deadline);

  const auto requests = h.endpoint.requests();
  REQUIRE(requests.size() == 1);
  CHECK(requests[0].outbox_ids == std::vector<std::int64_t>{1});
  CHECK_FALSE(requests[0].aborted);
  const auto left = h.store.outbox();  // 1 was delivered and its row deleted
  REQUIRE(left.size() == 4);
  for (const auto& row : left) {
    INFO("event " << row.event.outbox_id);
    CHECK(row.event.outbox_id != 1);
    CHECK_FALSE(row.lease_owner.has_value());
  }
  CHECK(h.store.counts().delivery == 0);
  CHECK(h.store.counts().dead_letter == 0);
  CHECK(h.pipeline->counters().delivered == 1);
}

TEST_CASE(
    "at shutdown a request still in flight at the drain deadline is aborted and released "
    "with no attempt counted and nothing queued is lost",
    "[pipeline]") {
  // Event 1 fails once, so its next try is a relay.delivery row with one attempt made.
  PipelineHarness h(test_config({test_subscription("s", {"*"})}),
                    [](const std::string&, const Event& e, int attempt) {
                      return e.outbox_id == 1 && attempt == 1 ? FakeEndpoint::retryable(503)
                                                              : FakeEndpoint::delivered();
                    });
  h.store.publish("t", "k1", "{}");
  h.endpoint.close_gate([](const SentRequest& r) { return r.attempts.at(0) > 1; });  // retries
  h.start();
  // The retry falls due: it is claimed and held at the gate; four new events queue behind it.
  REQUIRE(h.drive_until([&] { return h.endpoint.held() == 1; }, 1ms));
  for (int i = 2; i <= 5; ++i) h.store.publish("t", "k" + std::to_string(i), "{}");
  REQUIRE(PipelineHarness::wait_until([&] { return h.store.leased() == 5; }));

  auto done = begin_shutdown(h, 1s, 1s);
  h.clock.advance(1s);  // the drain deadline passes with the request still held
  REQUIRE(done.wait_for(20s) == std::future_status::ready);
  CHECK(done.get().has_value());

  const auto requests = h.endpoint.requests();
  REQUIRE(requests.size() == 2);
  CHECK(requests[1].outbox_ids == std::vector<std::int64_t>{1});
  CHECK(requests[1].attempts == std::vector<int>{2});
  CHECK(requests[1].aborted);
  const auto retry = h.store.deliveries();
  REQUIRE(retry.size() == 1);
  CHECK(retry[0].event.outbox_id == 1);
  CHECK(retry[0].attempts == 1);  // the aborted try was not an attempt
  CHECK_FALSE(retry[0].lease_owner.has_value());
  const auto queued = h.store.outbox();
  REQUIRE(queued.size() == 4);
  for (const auto& row : queued) {
    INFO("event " << row.event.outbox_id);
    CHECK_FALSE(row.lease_owner.has_value());
  }
  CHECK(h.store.leased() == 0);
  CHECK(h.store.counts().dead_letter == 0);
}
