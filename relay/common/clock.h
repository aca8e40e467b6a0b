#pragma once
// Clock is the only way relay code reads time or waits. Production passes SystemClock; tests pass
// ManualClock and move time with advance(). Implementations are thread-safe.

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <stop_token>

namespace relay {

class Clock {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;
  using Duration = std::chrono::steady_clock::duration;
  virtual ~Clock() = default;
  // For intervals, deadlines and backoff.
  virtual TimePoint now() const = 0;
  // For timestamps people or peers see (webhook-timestamp, ce-time).
  virtual std::chrono::system_clock::time_point wall_now() const = 0;
  // Blocks until `deadline` or a stop request; returns false if stopped.
  virtual bool sleep_until(TimePoint deadline, std::stop_token stop) = 0;
};

class SystemClock final : public Clock {
 public:
  TimePoint now() const override;
  std::chrono::system_clock::time_point wall_now() const override;
  bool sleep_until(TimePoint deadline, std::stop_token stop) override;
};

// ManualClock starts at an arbitrary fixed point; time moves only through advance(), which wakes
// every sleeper whose deadline has passed.
class ManualClock final : public Clock {
 public:
  ManualClock();
  TimePoint now() const override;
  std::chrono::system_clock::time_point wall_now() const override;
  bool sleep_until(TimePoint deadline, std::stop_token stop) override;
  void advance(Duration d);

 private:
  mutable std::mutex mu_;
  std::condition_variable_any cv_;
  TimePoint now_;
  std::chrono::system_clock::time_point wall_;
};

}  // namespace relay
