#pragma once
// Gate: holds the threads that wait on it until the test opens it, or until their own deadline.
// A FakeConsumer handler that waits on a gate keeps its request in flight for as long as a test
// needs (a kill or a shutdown lands mid-request by construction, not by timing):
//
//   Gate gate;
//   FakeConsumer consumer{[&](const ReceivedRequest&) { gate.wait(60s); return Reply{200}; }};
//   ... relay.kill9(); gate.open();
//
// Thread-safe. Declare it before the FakeConsumer whose handler uses it, so it outlives the server.

#include <chrono>
#include <condition_variable>
#include <mutex>

namespace relay::testing {

class Gate {
 public:
  // Returns once the gate is open, or after `at_most`.
  void wait(std::chrono::milliseconds at_most) {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, at_most, [&] { return open_; });
  }
  // Lets every waiter (and every later one) through.
  void open() {
    {
      std::lock_guard lock(mu_);
      open_ = true;
    }
    cv_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = false;  // guarded by mu_
};

}  // namespace relay::testing
