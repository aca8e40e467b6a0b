#pragma once
// The batcher: a batch lane's way of taking work. It takes the lane's first task, then gathers
// more from the lane's queue for up to `linger` (while more can come), until `max_events`, or
// until the next event would take the body past `max_bytes` (one event bigger than that goes
// alone; the event that did not fit opens the next batch). A batch keeps queue order, so per-key
// order holds across batches. Lane thread only, except LaneBell::ring().

#include <functional>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <vector>

#include "relay/common/bounded_queue.h"
#include "relay/common/clock.h"
#include "relay/config/config.h"
#include "relay/pipeline/dispatch_stats.h"
#include "relay/pipeline/task.h"

namespace relay::pipeline {

// Wakes a batch lane lingering for more tasks: the router rings it on every push. Thread-safe.
class LaneBell {
 public:
  void ring();
  // Returns once rung (at once if rung since the last wait), at `deadline`, or when `stop` or
  // `drain` is requested.
  void wait_until(Clock& clock, Clock::TimePoint deadline, std::stop_token stop,
                  std::stop_token drain);

 private:
  std::mutex mu_;
  bool rung_ = false;                    // guarded by mu_
  std::stop_source* sleeper_ = nullptr;  // guarded by mu_: the wait in progress, if any
};

// An upper bound on the bytes one event adds to a batch body, in either batch format.
std::int64_t batch_bytes_bound(const Event& e, const std::string& subscription);

class Batcher {
 public:
  Batcher(const config::BatchConfig& limits, std::string subscription, Clock& clock);

  struct Batch {
    std::vector<Task> tasks;  // non-empty
    DispatchStats::BatchClose closed_by = DispatchStats::BatchClose::kLinger;
  };
  // Takes the next batch from `queue`. `may_send(task)` is asked of every task taken: false means
  // the caller settled it without a request, and it joins no batch. `may_linger()` false stops the
  // wait for more (shutdown, or nothing more can come). Returns nullopt once the queue is closed
  // and drained, or on `stop`.
  std::optional<Batch> next(BoundedQueue<Task>& queue, LaneBell& bell,
                            const std::function<bool(const Task&)>& may_send,
                            const std::function<bool()>& may_linger, std::stop_token stop,
                            std::stop_token drain);

 private:
  const config::BatchConfig limits_;
  const std::string subscription_;
  Clock& clock_;
  std::optional<Task> carried_;  // taken from the queue, but it would have passed max_bytes
};

}  // namespace relay::pipeline
