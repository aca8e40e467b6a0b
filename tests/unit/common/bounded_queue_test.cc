#include "relay/common/bounded_queue.h"

#include <atomic>
#include <catch2/catch.hpp>
#include <memory>
#include <stop_token>
#include <thread>

using relay::BoundedQueue;

namespace {

// Spins (yielding) until `pred` holds. Only for waiting on another thread's progress that has no
// condition to wait on; bounded by the test runner's timeout, never by a sleep.
template <typename Pred>
void yield_until(Pred pred) {
  while (!pred()) std::this_thread::yield();
}

}  // namespace

TEST_CASE("a queue holds up to its capacity in FIFO order", "[common]") {
  BoundedQueue<int> q(3);
  std::stop_source stop;
  for (int i = 1; i <= 3; ++i) {
    int item = i;
    REQUIRE(q.push(item, stop.get_token()));
  }
  CHECK(q.size() == 3);
  CHECK(q.capacity() == 3);
  CHECK(q.pop(stop.get_token()) == 1);
  CHECK(q.pop(stop.get_token()) == 2);
  CHECK(q.try_pop() == 3);
  CHECK_FALSE(q.try_pop().has_value());
}

TEST_CASE("push blocks while the queue is full and completes after a pop", "[common]") {
  BoundedQueue<int> q(1);
  std::stop_source stop;
  int first = 1;
  REQUIRE(q.push(first, stop.get_token()));
  std::atomic<bool> about_to_push{false}, pushed{false};
  std::jthread producer([&] {
    int second = 2;
    about_to_push = true;
    pushed = q.push(second, stop.get_token());
  });

  yield_until([&] { return about_to_push.load(); });
  CHECK_FALSE(pushed.load());  // cannot have succeeded: the queue is full until we pop
  CHECK(q.size() == 1);
  CHECK(q.pop(stop.get_token()) == 1);
  producer.join();

  CHECK(pushed.load());
  CHECK(q.pop(stop.get_token()) == 2);
}

TEST_CASE(
    "a stop request releases a push blocked on a full queue and leaves the item to the caller",
    "[common]") {
  BoundedQueue<std::unique_ptr<int>> q(1);
  std::stop_source stop;
  auto first = std::make_unique<int>(1);
  REQUIRE(q.push(first, stop.get_token()));
  std::atomic<bool> about_to_push{false};
  bool pushed = true;
  std::unique_ptr<int> second = std::make_unique<int>(2);
  std::jthread producer([&] {
    about_to_push = true;
    pushed = q.push(second, stop.get_token());
  });

  yield_until([&] { return about_to_push.load(); });
  stop.request_stop();
  producer.join();

  CHECK_FALSE(pushed);
  REQUIRE(second != nullptr);  // not moved from
  CHECK(*second == 2);
  CHECK(q.size() == 1);
}

TEST_CASE("a stop request releases a pop waiting on an empty queue", "[common]") {
  BoundedQueue<int> q(1);
  std::stop_source stop;
  std::optional<int> popped = 99;
  std::jthread consumer([&] { popped = q.pop(stop.get_token()); });

  stop.request_stop();
  consumer.join();

  CHECK_FALSE(popped.has_value());
}

TEST_CASE("after close, push fails and pop drains what is left", "[common]") {
  BoundedQueue<int> q(4);
  std::stop_source stop;
  for (int i = 1; i <= 2; ++i) {
    int item = i;
    REQUIRE(q.push(item, stop.get_token()));
  }
  q.close();
  int late = 3;
  CHECK_FALSE(q.push(late, stop.get_token()));
  CHECK(late == 3);
  CHECK(q.pop(stop.get_token()) == 1);
  CHECK(q.pop(stop.get_token()) == 2);
  CHECK_FALSE(q.pop(stop.get_token()).has_value());  // closed and drained: returns, does not block
}

TEST_CASE("close wakes a consumer waiting on an empty queue and a producer waiting on a full one",
          "[common]") {
  BoundedQueue<int> q(1);
  std::stop_source stop;
  int first = 1;
  REQUIRE(q.push(first, stop.get_token()));
  std::atomic<bool> producer_started{false};
  bool pushed = true;
  std::jthread producer([&] {
    int second = 2;
    producer_started = true;
    pushed = q.push(second, stop.get_token());
  });
  BoundedQueue<int> empty(1);
  std::optional<int> popped = 99;
  std::jthread consumer([&] { popped = empty.pop(stop.get_token()); });

  yield_until([&] { return producer_started.load(); });
  q.close();
  empty.close();
  producer.join();
  consumer.join();

  CHECK_FALSE(pushed);
  CHECK_FALSE(popped.has_value());
  CHECK(q.pop(stop.get_token()) == 1);  // what was queued before close is still delivered
}
