#pragma once
// Pipeline: relay's delivery path, wired from one stage per file.
//
//   WorkSource ──claim──▶ Claimer ──▶ Router ──▶ Lane queue ──▶ Lane ─(Batcher)─▶ Attempt ──▶
//   HttpSender (model/)     (claimer.h)  │      (router.h)  (one per key      (lane.h) (attempt.h:
//       ▲                     │       topic match,  hash, max_in_     KeyOrder          breaker,
//       rate │ wake()              │       fan-out       flight per sub)   (key_order.h)     limit,
//       retry │                     ▼ decision) └── InFlightCredit ◀── Recorder ◀────────────
//       results queue ◀───────────────────────┘
//           (in_flight_credit.h) (recorder.h) ──record──▶ OutcomeSink (model/)
//
// The claimer takes credit for every item it claims; the recorder gives it back once the item's
// outcome is written, so the work inside relay (and the memory it uses) is bounded by 2 x
// source.batch_size items whatever the backlog. Per-key order: the source hands out a key's events
// in order, the router sends a key to one lane, KeyOrder holds it behind an event that did not get
// through. app/ builds the table source and sink and injects them; tests inject fakes.
//
// Thread safety: start() and shutdown() are called from one controlling thread; wake(), status()
// and counters() from any.

#include <memory>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include "relay/common/bounded_queue.h"
#include "relay/common/clock.h"
#include "relay/common/log.h"
#include "relay/common/result.h"
#include "relay/config/config.h"
#include "relay/delivery/sender.h"
#include "relay/model/outcome_sink.h"
#include "relay/model/work_source.h"
#include "relay/pipeline/claimer.h"
#include "relay/pipeline/dispatch_stats.h"
#include "relay/pipeline/drain.h"
#include "relay/pipeline/in_flight_credit.h"
#include "relay/pipeline/recorder.h"
#include "relay/pipeline/router.h"
#include "relay/pipeline/subscription.h"
#include "relay/pipeline/task.h"

namespace relay::pipeline {

using SenderFactory =
    std::function<Result<std::unique_ptr<delivery::HttpSender>>(const config::SubscriptionConfig&)>;

struct PipelineStatus {
  std::string owner;
  bool database_ok = false;             // the claimer's last database call succeeded
  Clock::TimePoint source_heartbeat{};  // last time the claimer went round
  std::vector<model::SubscriptionStatus> subscriptions;
};

class Pipeline {
 public:
  // Builds one sender per lane (max_in_flight lanes per subscription) with `make_sender`, and
  // returns the factory's error (e.g. a bad endpoint) if any sender cannot be built. `source`,
  // `sink`, `clock` and `stats` must outlive the pipeline, and `stats` must have series for every
  // configured subscription. `owner` names this relay in logs and /status.
  static Result<std::unique_ptr<Pipeline>> create(const config::Config& config, std::string owner,
                                                  Clock& clock, model::WorkSource& source,
                                                  model::OutcomeSink& sink,
                                                  const SenderFactory& make_sender,
                                                  DispatchStats& stats);
  ~Pipeline();
  Pipeline(const Pipeline&) = delete;
  Pipeline& operator=(const Pipeline&) = delete;

  // Starts the threads. REQUIRES: called once.
  void start();

  // Stops claiming; lets requests already sent finish until `drain_deadline` and aborts the rest
  // (their claims are released, no attempt counted); records every outcome, retrying a down
  // database until `final_deadline`; releases every claim. Blocks until done. Returns an error only
  // if outcomes could not be recorded (their leases then expire and the events are delivered
  // again: nothing is lost).
  Status shutdown(Clock::TimePoint drain_deadline, Clock::TimePoint final_deadline);

  // Asks the claimer to look for due work now (e.g. the inbox just queued a push). Thread-safe.
  void wake() { source_.wake(); }

  // True once shutdown() has begun: lanes start no new attempt from then on. Thread-safe.
  bool draining() const { return drain_.draining; }

  const PipelineCounters& counters() const { return counters_; }
  // A consistent-enough snapshot for /status and health checks. Thread-safe.
  PipelineStatus status() const;
  const std::string& owner() const { return owner_; }

 private:
  Pipeline(const config::Config& config, std::string owner, Clock& clock, model::WorkSource& source,
           DispatchStats& stats);
  // Hands a result to the recorder. Its queue has room for every part in flight: never blocks long.
  void record(TaskResult&& result);

  // Constant after construction.
  const config::Config config_;
  Clock& clock_;
  const std::string owner_;
  const Logger log_{"dispatch"};
  DispatchStats& stats_;
  model::WorkSource& source_;  // the claimer's (and shutdown()'s, after it stopped)

  InFlightCredit credit_;
  Drain drain_;
  PipelineCounters counters_;
  BoundedQueue<TaskResult> results_;
  bool started_ = false;
  bool shut_down_ = false;

  // Lanes own threads: declared after everything they use.
  std::vector<std::unique_ptr<Subscription>> subscriptions_;
  std::unique_ptr<Router> router_;
  std::unique_ptr<Claimer> claimer_;
  std::unique_ptr<Recorder> recorder_;
  std::jthread recorder_thread_;
  std::jthread claimer_thread_;
};

}  // namespace relay::pipeline
