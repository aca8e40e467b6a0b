#include "relay/common/clock.h"

#include <atomic>
#include <catch2/catch.hpp>
#include <thread>

using namespace std::chrono_literals;
using relay::ManualClock;

TEST_CASE("a manual clock moves only when advanced, wall and steady time together", "[common]") {
  ManualClock clock;
  const auto t0 = clock.now();
  const auto w0 = clock.wall_now();
  CHECK(clock.now() == t0);
  clock.advance(1500ms);
  CHECK(clock.now() - t0 == 1500ms);
  CHECK(clock.wall_now() - w0 == 1500ms);
}

TEST_CASE("a manual clock's wall time starts at a fixed instant", "[common]") {
  ManualClock clock;
  CHECK(std::chrono::duration_cast<std::chrono::seconds>(clock.wall_now().time_since_epoch())
            .count() == 1700000000);
}

TEST_CASE("sleep_until returns at once for a deadline already reached", "[common]") {
  ManualClock clock;
  std::stop_source stop;
  CHECK(clock.sleep_until(clock.now(), stop.get_token()));
  CHECK(clock.sleep_until(clock.now() - 1s, stop.get_token()));
}

TEST_CASE("a sleeper wakes when advance reaches its deadline", "[common]") {
  ManualClock clock;
  const auto deadline = clock.now() + 10s;  // computed before the sleeper starts (STYLE.md §6)
  std::atomic<bool> woke{false};
  bool result = false;
  std::jthread sleeper([&](std::stop_token st) {
    result = clock.sleep_until(deadline, st);
    woke = true;
  });

  clock.advance(9s);
  CHECK_FALSE(woke.load());  // 9s short of the deadline: cannot have returned true yet
  clock.advance(1s);
  sleeper.join();

  CHECK(woke.load());
  CHECK(result);
}

TEST_CASE("a stop request wakes a sleeper, which reports it was stopped", "[common]") {
  ManualClock clock;
  const auto deadline = clock.now() + 24h;
  bool result = true;
  std::jthread sleeper([&](std::stop_token st) { result = clock.sleep_until(deadline, st); });

  sleeper.request_stop();
  sleeper.join();

  CHECK_FALSE(result);
}

TEST_CASE("advance wakes every sleeper whose deadline passed and only those", "[common]") {
  ManualClock clock;
  const auto near = clock.now() + 1s;
  const auto far = clock.now() + 1h;
  std::atomic<int> woke_near{0};
  bool far_result = true;
  std::jthread a([&](std::stop_token st) { woke_near += clock.sleep_until(near, st) ? 1 : 0; });
  std::jthread b([&](std::stop_token st) { woke_near += clock.sleep_until(near, st) ? 1 : 0; });
  std::jthread c([&](std::stop_token st) { far_result = clock.sleep_until(far, st); });

  clock.advance(2s);
  a.join();
  b.join();
  CHECK(woke_near.load() == 2);
  c.request_stop();
  c.join();
  CHECK_FALSE(far_result);  // still asleep at +2s, so only the stop request ended it
}
