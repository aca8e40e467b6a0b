#pragma once
// wait_until: the one way integration tests wait. It is a condition wait with a deadline, not a
// sleep: the predicate is re-checked every few milliseconds and the call returns as soon as it
// holds. Use it as REQUIRE(wait_until([&] { return db.count("relay.outbox") == 0; }, 60s)).
//
// Deadlines (issue #18): the suite runs under ASan+UBSan in Debug on a loaded machine, two tests at
// a time, so
// - a deadline bounds something that must happen if relay is correct, and is generous (>= 60 s;
//   more for big workloads): it costs nothing when the condition holds, since the call returns;
// - wait for a durable end state or a monotonic counter (>=), never for a transient state relay may
//   pass through between two checks, nor for an exact count a timer can push past;
// - a wait that is expected to time out ("X did not happen within N s") is only allowed when X
//   cannot happen at all if relay is correct, whatever the machine's speed; say so next to it.

#include <chrono>
#include <exception>
#include <functional>
#include <thread>

namespace relay::testing {

// Returns true as soon as `pred()` returns true, false if it is still false at the deadline.
// A predicate that throws counts as "not yet" (e.g. a query while Postgres restarts); if the last
// check before the deadline threw, that exception is rethrown so the failure says why.
// Thread-safe if `pred` is.
inline bool wait_until(const std::function<bool()>& pred, std::chrono::milliseconds timeout) {
  using Clock = std::chrono::steady_clock;
  const auto deadline = Clock::now() + timeout;
  constexpr auto kRecheckEvery = std::chrono::milliseconds(5);
  while (true) {
    std::exception_ptr failure;
    try {
      if (pred()) {
        return true;
      }
    } catch (...) {
      failure = std::current_exception();
    }
    if (Clock::now() >= deadline) {
      if (failure) {
        std::rethrow_exception(failure);
      }
      return false;
    }
    // The pause between re-checks of a condition that has a deadline.
    std::this_thread::sleep_for(kRecheckEvery);  // ok-sleep
  }
}

}  // namespace relay::testing
