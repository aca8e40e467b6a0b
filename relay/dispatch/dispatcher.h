#pragma once
// Dispatcher: relay's pipeline. One source thread claims due work (outbox events and scheduled
// retries) under a lease; per-subscription lanes deliver it over HTTP, one keep-alive connection
// each; one recorder thread writes outcomes in batches. Work in flight is bounded
// (2 x source.batch_size claimed items), so memory stays flat whatever the backlog.
//
// Ordering: an event's parts go to the lane chosen by its key, so one relay delivers a key's
// events of one claim in outbox order. (Strict per-key order across retries and relays comes
// later.)
//
// Batches (a subscription with `batch`): a lane takes its first task, then gathers more from its
// queue for up to `linger` (not while the pipeline is at its in-flight bound: nothing more could
// come), until `max_events`, or until the next event would take the body past `max_bytes` (one
// event bigger than that goes alone). The batch is one request: one breaker verdict, one token
// per event from the rate limiter, and its outcome applies to every event (each then retries or
// dead-letters on its own attempt count). Per-key order holds as for single events: a batch keeps
// queue order, and a key whose earlier event is not through is held before it joins a batch.
//
// Thread safety: start() and shutdown() are called from one controlling thread.

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "relay/common/backoff.h"
#include "relay/common/bounded_queue.h"
#include "relay/common/clock.h"
#include "relay/common/event.h"
#include "relay/common/log.h"
#include "relay/common/result.h"
#include "relay/config/config.h"
#include "relay/delivery/circuit_breaker.h"
#include "relay/delivery/rate_limiter.h"
#include "relay/delivery/sender.h"
#include "relay/dispatch/dispatch_stats.h"
#include "relay/dispatch/held_claims.h"
#include "relay/dispatch/matcher.h"
#include "relay/model/outcome_sink.h"
#include "relay/model/work_source.h"

namespace relay::dispatch {

using SenderFactory =
    std::function<Result<std::unique_ptr<delivery::HttpSender>>(const config::SubscriptionConfig&)>;

// What /status shows about one subscription.
struct SubscriptionStatus {
  std::string name;
  delivery::CircuitBreaker::Snapshot breaker;
  int in_flight = 0;                  // requests on the wire now
  std::optional<double> rate_tokens;  // rate limit tokens available, if limited
};

struct DispatcherStatus {
  std::string owner;
  bool database_ok = false;             // the last database call of the source succeeded
  Clock::TimePoint source_heartbeat{};  // last time the source loop went round
  std::vector<SubscriptionStatus> subscriptions;
};

struct DispatcherCounters {
  std::atomic<long long> claimed{0};
  std::atomic<long long> delivered{0};
  std::atomic<long long> retries_scheduled{0};
  std::atomic<long long> dead_lettered{0};
};

class Dispatcher {
 public:
  // Builds one sender per lane (max_in_flight lanes per subscription) with `make_sender`.
  // Returns the factory's error (e.g. a bad endpoint) if any sender cannot be built. `stats` must
  // outlive the dispatcher and have series for every configured subscription.
  // `source` and `sink` must outlive the dispatcher; it is their only user while it runs. `owner`
  // names this relay in logs and /status (the source's lease owner).
  static Result<std::unique_ptr<Dispatcher>> create(const config::Config& config, std::string owner,
                                                    Clock& clock, model::WorkSource& source,
                                                    model::OutcomeSink& sink,
                                                    const SenderFactory& make_sender,
                                                    DispatchStats& stats);
  ~Dispatcher();
  Dispatcher(const Dispatcher&) = delete;
  Dispatcher& operator=(const Dispatcher&) = delete;

  // Starts the threads. REQUIRES: called once.
  void start();

  // Stops claiming; lets deliveries already sent finish until `drain_deadline`, aborts the rest
  // (their claims are released, no attempt counted); records every outcome, retrying a down
  // database until `final_deadline`; releases every claim. Blocks until done. Returns an error only
  // if outcomes could not be recorded (their leases then expire and the events are delivered
  // again: nothing is lost).
  Status shutdown(Clock::TimePoint drain_deadline, Clock::TimePoint final_deadline);

  // Asks the source to look for due work now (e.g. the inbox just queued a push). Thread-safe.
  void wake() { source_.wake(); }

  const DispatcherCounters& counters() const { return counters_; }
  // A consistent-enough snapshot for /status and health checks. Thread-safe.
  DispatcherStatus status() const;
  const std::string& owner() const { return owner_; }

 private:
  // One (event, subscription) part to attempt.
  struct Task {
    std::shared_ptr<const Event> event;  // shared by the parts of a fanned-out event
    std::int64_t delivery_id = 0;        // 0: a part of a claimed outbox row
    int parts_total = 1;                 // parts of the outbox row (for the recorder)
    int attempts_before = 0;
    std::chrono::system_clock::time_point first_failed_at{};
    std::uint64_t claim = 0;  // which claim it came from (per-key blocking within a claim)
    bool held = false;        // an earlier event of its key is pending for this subscription
  };
  struct TaskResult {
    std::int64_t outbox_id = 0;
    std::int64_t delivery_id = 0;
    int parts_total = 1;
    model::PartOutcome part;
  };
  // Wakes a batch lane lingering for more tasks: enqueue() rings it. Thread-safe.
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
  struct Lane {
    explicit Lane(size_t capacity) : queue(capacity) {}
    BoundedQueue<Task> queue;
    LaneBell bell;  // rung on every push for a batch subscription
    std::unique_ptr<delivery::HttpSender> sender;
    // Keys whose earlier event of the same claim was not delivered: later ones must wait behind
    // it (lane thread only). Maps key -> claim number.
    std::unordered_map<std::string, std::uint64_t> held_keys;
    std::jthread thread;  // last: joined before the rest
  };
  struct SubscriptionLanes {
    const config::SubscriptionConfig* config = nullptr;
    std::unique_ptr<delivery::CircuitBreaker> breaker;
    std::unique_ptr<delivery::RateLimiter> limiter;  // null: unlimited
    // `batch` is set and the format can carry one (the loader rejects batch with format binary; a
    // hand-built config that has both sends one event per request).
    bool batched = false;
    std::atomic<int> in_flight{0};
    // Parts deferred because the breaker was open, since it last opened (for the summary log).
    std::atomic<long long> deferred{0};
    std::atomic<bool> tls_failing{false};       // a TLS failure was logged; reset by a delivery
    std::atomic<Clock::TimePoint> opened_at{};  // when it last left kClosed
    Clock::TimePoint last_summary{};            // source thread only
    std::vector<std::unique_ptr<Lane>> lanes;
  };

  Dispatcher(const config::Config& config, std::string owner, Clock& clock,
             model::WorkSource& source, model::OutcomeSink& sink, DispatchStats& stats);

  void run_source(std::stop_token stop);
  void run_lane(SubscriptionLanes& sub, Lane& lane, std::stop_token stop);
  void run_recorder(std::stop_token stop);

  void dispatch_event(model::ClaimedEvent&& claimed);
  void dispatch_delivery(model::ClaimedDelivery&& claimed);
  void enqueue(size_t subscription_index, Task&& task);
  model::PartOutcome attempt(SubscriptionLanes& sub, Lane& lane, const Task& task,
                             Backoff& backoff);
  // Lane thread: what settles `task` without a request (shutdown, payload too large, expired,
  // waiting behind an earlier event of its key); nullopt when it may be sent.
  std::optional<model::PartOutcome> settle_unsent(const SubscriptionLanes& sub, Lane& lane,
                                                  const Task& task);
  // Lane thread: a key that must wait behind `task` for the rest of its claim (per_key only).
  static void hold_key(const SubscriptionLanes& sub, Lane& lane, const Task& task);
  void run_batch_lane(SubscriptionLanes& sub, Lane& lane, std::stop_token stop, Backoff& backoff);
  // Sends `tasks` (non-empty) as one request and pushes one result per task.
  void deliver_batch(SubscriptionLanes& sub, Lane& lane, std::vector<Task>& tasks, Backoff& backoff,
                     DispatchStats::BatchClose closed_by);
  void push_task_result(const SubscriptionLanes& sub, const Task& task, model::PartOutcome&& part);
  // Names of the subscriptions that may be sent to now (breaker not holding them back), and the
  // shortest wait until a held-back one may probe.
  std::vector<std::string> sendable_subscriptions(Millis& next_probe) const;
  void push_result(TaskResult&& result);
  void note_tls(SubscriptionLanes& sub, const delivery::DeliveryOutcome& outcome);
  // Source thread: one summary line per subscription whose breaker stays open, every minute.
  void log_open_breakers();
  bool wait_backoff(int failures, std::stop_token stop);

  // Constant after construction.
  const config::Config config_;
  Clock& clock_;
  const std::string owner_;
  const Matcher matcher_;
  const int max_in_flight_items_;
  const Logger log_{"dispatch"};
  DispatchStats& stats_;

  model::WorkSource& source_;  // used by the source thread only (and by shutdown() after it)
  model::OutcomeSink& sink_;   // used by the recorder thread only
  BoundedQueue<TaskResult> results_;

  std::atomic<int> in_flight_items_{0};
  HeldClaims held_;  // what this relay claimed and has not yet recorded
  // The source is parked: it sleeps until a notification, a kick or its timer. Set before its last
  // claim, so an outcome recorded before the flag is seen set was visible to that claim.
  std::atomic<bool> source_parked_{false};
  std::atomic<bool> draining_{false};   // shutdown: do not start new attempts
  std::atomic<bool> hard_stop_{false};  // drain deadline passed: in-flight sends were aborted
  std::atomic<bool> record_failed_{false};
  std::atomic<bool> database_ok_{false};
  std::atomic<Clock::TimePoint> source_heartbeat_{};
  std::atomic<std::uint64_t> claim_seq_{0};
  std::stop_source drain_stop_;  // shutdown: wakes lanes waiting for a rate-limit token
  bool started_ = false;
  bool shut_down_ = false;
  DispatcherCounters counters_;

  // Lanes own threads: declared after everything they use.
  std::vector<std::unique_ptr<SubscriptionLanes>> subscriptions_;

  std::jthread recorder_thread_;
  std::jthread source_thread_;
};

}  // namespace relay::dispatch
