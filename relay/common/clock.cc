#include "relay/common/clock.h"

#include <cstdio>
#include <cstdlib>

#include "relay/common/check.h"
#include "relay/common/result.h"

namespace relay {

namespace detail {
void check_failed(const char* file, int line, const char* cond, const char* msg) {
  std::fprintf(stderr, "%s:%d: RELAY_CHECK(%s) failed: %s\n", file, line, cond, msg);
  std::abort();
}
}  // namespace detail

const char* to_string(ErrorCode code) {
  switch (code) {
    case ErrorCode::kUnavailable:
      return "unavailable";
    case ErrorCode::kConflict:
      return "conflict";
    case ErrorCode::kInDoubt:
      return "in_doubt";
    case ErrorCode::kInvalidArgument:
      return "invalid_argument";
    case ErrorCode::kNotFound:
      return "not_found";
    case ErrorCode::kInternal:
      return "internal";
  }
  return "unknown";
}

Clock::TimePoint SystemClock::now() const { return std::chrono::steady_clock::now(); }

std::chrono::system_clock::time_point SystemClock::wall_now() const {
  return std::chrono::system_clock::now();
}

bool SystemClock::sleep_until(TimePoint deadline, std::stop_token stop) {
  std::mutex mu;
  std::condition_variable_any cv;
  std::unique_lock lock(mu);
  cv.wait_until(lock, stop, deadline, [] { return false; });
  return !stop.stop_requested();
}

ManualClock::ManualClock()
    : now_(TimePoint{} + std::chrono::hours(1000)),
      wall_(std::chrono::system_clock::time_point{} + std::chrono::seconds(1700000000)) {}

Clock::TimePoint ManualClock::now() const {
  std::lock_guard lock(mu_);
  return now_;
}

std::chrono::system_clock::time_point ManualClock::wall_now() const {
  std::lock_guard lock(mu_);
  return wall_;
}

bool ManualClock::sleep_until(TimePoint deadline, std::stop_token stop) {
  std::unique_lock lock(mu_);
  cv_.wait(lock, stop, [&] { return now_ >= deadline; });
  return !stop.stop_requested();
}

void ManualClock::advance(Duration d) {
  {
    std::lock_guard lock(mu_);
    now_ += d;
    wall_ += std::chrono::duration_cast<std::chrono::system_clock::duration>(d);
  }
  cv_.notify_all();
}

}  // namespace relay
