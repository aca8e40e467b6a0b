// The FakeStore against the table source's SQL (store/outbox_source.cc, store/outcome_store.cc):
// the pipeline tests are only as good as the fake is faithful.
#include "tests/support/fake_store.h"

#include <catch2/catch.hpp>
#include <functional>
#include <future>

using namespace relay;
using namespace relay::testing;
using namespace std::chrono_literals;
using Kind = model::PartOutcome::Kind;

namespace {

FakeStoreOptions options() {
  FakeStoreOptions o;
  o.subscriptions = {"a", "b"};
  o.ordered = {"a", "b"};
  o.blocking = {"b"};
  return o;
}

std::vector<std::int64_t> ids_of(const std::vector<model::ClaimedEvent>& claimed) {
  std::vector<std::int64_t> ids;
  for (const auto& c : claimed) ids.push_back(c.event.outbox_id);
  return ids;
}

model::PartOutcome part(Kind kind, const std::string& subscription, Millis retry_in = 0ms,
                        bool behind_key = false) {
  model::PartOutcome p;
  p.kind = kind;
  p.subscription = subscription;
  p.retry_in = retry_in;
  p.behind_key = behind_key;
  return p;
}

model::OutcomeBatch outbox_outcome(std::int64_t id, std::vector<model::PartOutcome> parts) {
  model::OutcomeBatch b;
  b.outbox.push_back({id, std::move(parts)});
  return b;
}

}  // namespace

TEST_CASE("the fake claims key heads with a run behind each but nothing behind a leased head",
          "[pipeline][fake]") {
  ManualClock clock;
  FakeStore store(clock, options());
  for (int i = 0; i < 10; ++i) store.publish("t", "k1", "{}");  // ids 1..10
  store.publish("t", "k2", "{}");                               // 11
  store.publish("t", std::nullopt, "{}");                       // 12
  store.publish("t", std::nullopt, "{}");                       // 13

  auto first = store.claim_outbox(100, 0);
  REQUIRE(first.has_value());
  CHECK(ids_of(*first) == std::vector<std::int64_t>{1, 2, 3, 4, 5, 6, 7, 8, 11, 12, 13});
  CHECK(store.leased() == 11);

  auto second = store.claim_outbox(100, 11);  // k1's 9 and 10 wait behind its leased run
  REQUIRE(second.has_value());
  CHECK(second->empty());

  model::OutcomeBatch done;
  for (std::int64_t id = 1; id <= 8; ++id)
    done.outbox.push_back({id, {part(Kind::kDelivered, "a")}});
  REQUIRE(store.record(done).has_value());
  auto third = store.claim_outbox(100, 3);
  REQUIRE(third.has_value());
  CHECK(ids_of(*third) == std::vector<std::int64_t>{9, 10});
  CHECK(store.max_leased() == 11);
}

TEST_CASE("the fake's claim takes no event that is not due or behind one that is not",
          "[pipeline][fake]") {
  ManualClock clock;
  FakeStore store(clock, options());
  store.publish("t", "k", "{}", {.deliver_after = clock.now() + 1s});  // 1
  store.publish("t", "k", "{}");                                       // 2: behind a delayed head
  store.publish("t", "j", "{}");                                       // 3
  auto claimed = store.claim_outbox(10, 0);
  REQUIRE(claimed.has_value());
  CHECK(ids_of(*claimed) == std::vector<std::int64_t>{3});
  auto due = store.time_until_next_due();
  REQUIRE(due.has_value());
  CHECK(*due == std::optional<Millis>(1000ms));
  clock.advance(1s);
  claimed = store.claim_outbox(10, 1);
  REQUIRE(claimed.has_value());
  CHECK(ids_of(*claimed) == std::vector<std::int64_t>{1, 2});
}

TEST_CASE("the fake holds a key's next event for the subscriptions with a pending retry of it",
          "[pipeline][fake]") {
  ManualClock clock;
  FakeStore store(clock, options());
  store.publish("t", "k", "{}");  // 1
  REQUIRE(store.claim_outbox(10, 0).has_value());
  // Delivered to a, a retry for b: the row moves to relay.delivery for b.
  REQUIRE(
      store.record(outbox_outcome(1, {part(Kind::kDelivered, "a"), part(Kind::kRetry, "b", 50ms)}))
          .has_value());
  CHECK(store.counts().outbox == 0);
  CHECK(store.counts().delivery == 1);

  store.publish("t", "k", "{}");  // 2
  auto claimed = store.claim_outbox(10, 0);
  REQUIRE(claimed.has_value());
  REQUIRE(claimed->size() == 1);
  CHECK((*claimed)[0].held_for == std::vector<std::string>{"b"});

  // 2 waits behind 1 for b (deferred behind its key, far in the future).
  REQUIRE(store
              .record(outbox_outcome(
                  2, {part(Kind::kDelivered, "a"), part(Kind::kDeferred, "b", 10min, true)}))
              .has_value());
  auto none = store.claim_deliveries(10, {"a", "b"});
  REQUIRE(none.has_value());
  CHECK(none->empty());  // 1 is not due yet, 2 is not its key's head
  clock.advance(50ms);
  auto retry = store.claim_deliveries(10, {"a", "b"});
  REQUIRE(retry.has_value());
  REQUIRE(retry->size() == 1);
  CHECK((*retry)[0].event.outbox_id == 1);

  // 1 is delivered: its row leaves and 2 is promoted (due now, not in 10 minutes).
  model::OutcomeBatch delivered;
  delivered.deliveries.push_back({(*retry)[0].delivery_id, part(Kind::kDelivered, "b")});
  REQUIRE(store.record(delivered).has_value());
  auto next = store.claim_deliveries(10, {"a", "b"});
  REQUIRE(next.has_value());
  REQUIRE(next->size() == 1);
  CHECK(next->front().event.outbox_id == 2);
}

TEST_CASE("the fake makes a row queued behind a key that is already gone due at once",
          "[pipeline][fake]") {
  ManualClock clock;
  FakeStore store(clock, options());
  store.publish("t", "k", "{}");
  REQUIRE(store.claim_outbox(10, 0).has_value());
  REQUIRE(store
              .record(outbox_outcome(
                  1, {part(Kind::kDelivered, "a"), part(Kind::kDeferred, "b", 10min, true)}))
              .has_value());
  auto due = store.claim_deliveries(10, {"b"});
  REQUIRE(due.has_value());
  CHECK(due->size() == 1);
}

TEST_CASE(
    "the fake keeps a block subscription's later events behind a dead letter until it is "
    "dropped",
    "[pipeline][fake]") {
  ManualClock clock;
  FakeStore store(clock, options());
  store.publish("t", "k", "{}");  // 1
  store.publish("t", "k", "{}");  // 2
  REQUIRE(store.claim_outbox(10, 0).has_value());
  model::PartOutcome dead = part(Kind::kDeadLetter, "b");
  dead.reason = model::DeadLetterReason::kNonRetryable;
  model::OutcomeBatch batch = outbox_outcome(1, {part(Kind::kDelivered, "a"), dead});
  batch.outbox.push_back(
      {2, {part(Kind::kDelivered, "a"), part(Kind::kDeferred, "b", 10min, true)}});
  REQUIRE(store.record(batch).has_value());
  REQUIRE(store.dead_letters().size() == 1);
  CHECK(store.dead_letters()[0].reason == model::DeadLetterReason::kNonRetryable);

  auto blocked = store.claim_deliveries(10, {"a", "b"});
  REQUIRE(blocked.has_value());
  CHECK(blocked->empty());
  REQUIRE(store.drop_dead_letter(store.dead_letters()[0].id));
  auto freed = store.claim_deliveries(10, {"a", "b"});
  REQUIRE(freed.has_value());
  CHECK(freed->size() == 1);
}

TEST_CASE("the fake changes nothing for outcomes of work it does not hold and releases aborts",
          "[pipeline][fake]") {
  ManualClock clock;
  FakeStore store(clock, options());
  store.publish("t", "k", "{}");
  store.publish("t", "j", "{}");
  REQUIRE(store.record(outbox_outcome(1, {part(Kind::kDelivered, "a")})).has_value());
  CHECK(store.counts().outbox == 2);  // never claimed: not ours to delete

  REQUIRE(store.claim_outbox(10, 0).has_value());
  REQUIRE(store.record(outbox_outcome(1, {part(Kind::kAborted, "a"), part(Kind::kAborted, "b")}))
              .has_value());
  CHECK(store.leased() == 1);
  CHECK(store.counts().outbox == 2);
  auto released = store.release_unheld({}, {});
  REQUIRE(released.has_value());
  CHECK(*released == 1);
  CHECK(store.leased() == 0);
}

TEST_CASE("the fake's wait for work ends on wake (also one sent before it) or publish or timeout",
          "[pipeline][fake]") {
  ManualClock clock;
  FakeStore store(clock, options());

  // Waits on another thread, for at most 20 s of real time: a wait that does not end is unblocked
  // with wake() so that the test fails instead of hanging.
  auto wait_with_clock_frozen = [&](const std::function<void()>& then) {
    auto waiting = std::async(std::launch::async, [&] { return store.wait_for_work(1h); });
    then();
    const bool returned = waiting.wait_for(20s) == std::future_status::ready;
    if (!returned) store.wake();
    auto woke = waiting.get();
    return returned && woke.has_value() && *woke;
  };
  store.wake();
  CHECK(wait_with_clock_frozen([] {}));  // only the earlier wake can end it
  CHECK(wait_with_clock_frozen([&] { store.publish("t", "k", "{}"); }));
  CHECK(wait_with_clock_frozen([&] { store.wake(); }));

  auto timed = std::async(std::launch::async, [&] { return store.wait_for_work(100ms); });
  // The waiter computes its deadline from the clock it read; advancing until it returns covers a
  // waiter that has not started yet.
  while (timed.wait_for(0s) != std::future_status::ready) clock.advance(100ms);
  auto by_timeout = timed.get();
  REQUIRE(by_timeout.has_value());
  CHECK_FALSE(*by_timeout);
}
