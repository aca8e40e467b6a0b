#pragma once
// The recorder: writes the lanes' outcomes to the outcome sink in batches (an outbox row once all
// its parts are in), keeps a batch until it is written (an outcome is never dropped while the
// database is away), then counts and logs them, forgets the claims, gives their credit back, and
// wakes the claimer when the outcomes may have made work due. One thread.

#include <atomic>
#include <functional>
#include <stop_token>

#include "relay/common/bounded_queue.h"
#include "relay/common/clock.h"
#include "relay/common/log.h"
#include "relay/model/outcome_sink.h"
#include "relay/model/work_source.h"
#include "relay/pipeline/counters.h"
#include "relay/pipeline/dispatch_stats.h"
#include "relay/pipeline/in_flight_credit.h"
#include "relay/pipeline/task.h"

namespace relay::pipeline {

class Recorder {
 public:
  // Everything must outlive it. The recorder tells `source` what it recorded and wakes the
  // claimer's wait on it; `claimer_parked` says whether the claimer is parked (asleep until
  // something announces work).
  Recorder(model::OutcomeSink& sink, model::WorkSource& source, BoundedQueue<TaskResult>& results,
           InFlightCredit& credit, PipelineCounters& counters, DispatchStats& stats, Clock& clock,
           std::function<bool()> claimer_parked);

  // Runs until `results` is closed and drained; `stop` only cuts short a database outage (its
  // outcomes are then given up: their leases expire and they are delivered again).
  void run(std::stop_token stop);
  // Some outcomes were given up. Thread-safe.
  bool gave_up() const { return gave_up_.load(); }

 private:
  // Writes `batch`, retrying while the sink is unavailable. False if given up on `stop`.
  bool write(const model::OutcomeBatch& batch, std::stop_token stop);
  void count_and_log(const model::OutcomeBatch& batch);

  model::OutcomeSink& sink_;
  model::WorkSource& source_;
  BoundedQueue<TaskResult>& results_;
  InFlightCredit& credit_;
  PipelineCounters& counters_;
  DispatchStats& stats_;
  Clock& clock_;
  const std::function<bool()> claimer_parked_;
  const Logger log_{"dispatch"};
  std::atomic<bool> gave_up_{false};
  int db_failures_ = 0;
};

}  // namespace relay::pipeline
