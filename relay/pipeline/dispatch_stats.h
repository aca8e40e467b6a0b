#pragma once
// DispatchStats: the pipeline's Prometheus metrics (STYLE.md section 7), built from a Registry&
// and updated by the source, the lanes, the recorder and the runner's database poller. Series of
// every configured subscription are created up front (so increase() sees the first event). Label
// values are bounded: subscription names from the config, fixed outcome/class/reason sets, and at
// most kMaxTopics topics (the rest summed under topic="_other").
//
// Thread-safe: prometheus-cpp metrics are atomic; the per-topic gauges are guarded by a mutex.

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "relay/delivery/circuit_breaker.h"
#include "relay/delivery/outcome.h"
#include "relay/model/dead_letter_reason.h"

namespace relay::pipeline {

class DispatchStats {
 public:
  static constexpr size_t kMaxTopics = 100;

  DispatchStats(prometheus::Registry& registry, const std::vector<std::string>& subscriptions,
                const std::string& version);
  DispatchStats(const DispatchStats&) = delete;
  DispatchStats& operator=(const DispatchStats&) = delete;

  enum class Outcome { kDelivered, kRetryScheduled, kDeadLettered };
  void outcome(const std::string& subscription, Outcome outcome);
  void dead_letter_created(const std::string& subscription, model::DeadLetterReason reason);
  // One HTTP request was sent: attempts, response class, latency (created_at -> now) on 2xx, and
  // TLS failures (relay_delivery_tls_errors_total, by cause) besides their class "error".
  void attempt(const std::string& subscription, const delivery::DeliveryOutcome& outcome,
               std::chrono::system_clock::time_point created_at,
               std::chrono::system_clock::time_point now);
  // What closed a batch: it reached max_events, the next event would pass max_bytes, or linger ran
  // out (or nothing more could come).
  enum class BatchClose { kMaxEvents, kMaxBytes, kLinger };
  // One batch request was sent carrying one event per `created_at`. relay_delivery_attempts_total
  // counts events (each event of the batch spent an attempt, as relay.delivery.attempts does);
  // relay_http_responses_total counts the one response; latency is observed per event on 2xx;
  // relay_delivery_batches_total counts the request by what closed it.
  void batch_attempt(const std::string& subscription, const delivery::DeliveryOutcome& outcome,
                     std::span<const std::chrono::system_clock::time_point> created_at,
                     std::chrono::system_clock::time_point now, BatchClose closed_by);
  void breaker_transition(const std::string& subscription, delivery::CircuitBreaker::State to);
  void database_error(const std::string& operation);
  void database_reconnect();
  void set_ready(bool ready);

  struct TopicBacklogSample {
    std::string topic;
    std::int64_t pending = 0;
    double oldest_age_seconds = 0;  // of the oldest due row; 0 if none
  };
  // Replaces the per-topic backlog gauges: topics no longer present read 0.
  void set_backlog(const std::vector<TopicBacklogSample>& topics);
  void set_dead_letters(const std::map<std::string, std::int64_t>& by_subscription);
  // relay_retries_waiting: relay.delivery rows (failed, waiting for their next attempt).
  void set_retries_waiting(const std::map<std::string, std::int64_t>& by_subscription);
  // relay_outbox_dead_tuples and relay_oldest_snapshot_age_seconds (store::MetricsSnapshot).
  void set_vacuum(std::int64_t outbox_dead_tuples, double oldest_snapshot_age_seconds);

 private:
  struct Sub {
    prometheus::Counter* delivered = nullptr;
    prometheus::Counter* retry_scheduled = nullptr;
    prometheus::Counter* dead_lettered = nullptr;
    prometheus::Counter* attempts = nullptr;
    prometheus::Histogram* latency = nullptr;
    prometheus::Counter* http[5] = {};  // 2xx 3xx 4xx 5xx error
    prometheus::Counter* tls_verification = nullptr;
    prometheus::Counter* tls_handshake = nullptr;
    prometheus::Gauge* breaker_state = nullptr;
    prometheus::Gauge* dead_letters = nullptr;
    prometheus::Gauge* retries_waiting = nullptr;
    prometheus::Counter* batches[3] = {};  // by BatchClose
  };
  Sub* find(const std::string& subscription);
  void record_request(Sub& s, const delivery::DeliveryOutcome& outcome,
                      std::span<const std::chrono::system_clock::time_point> created_at,
                      std::chrono::system_clock::time_point now);

  prometheus::Family<prometheus::Counter>& deliveries_;
  prometheus::Family<prometheus::Counter>& attempts_;
  prometheus::Family<prometheus::Histogram>& latency_;
  prometheus::Family<prometheus::Counter>& http_;
  prometheus::Family<prometheus::Counter>& tls_errors_;
  prometheus::Family<prometheus::Gauge>& breaker_state_;
  prometheus::Family<prometheus::Counter>& breaker_transitions_;
  prometheus::Family<prometheus::Counter>& dead_letters_created_;
  prometheus::Family<prometheus::Gauge>& dead_letters_;
  prometheus::Family<prometheus::Gauge>& retries_waiting_;
  prometheus::Family<prometheus::Counter>& database_errors_;
  prometheus::Counter& database_reconnects_;
  prometheus::Gauge& ready_;
  prometheus::Family<prometheus::Gauge>& backlog_;
  prometheus::Family<prometheus::Gauge>& oldest_age_;
  prometheus::Family<prometheus::Counter>& batches_;
  prometheus::Gauge& outbox_dead_tuples_;
  prometheus::Gauge& oldest_snapshot_age_;

  std::map<std::string, Sub> subs_;  // constant after construction

  std::mutex mu_;
  std::map<std::string, std::pair<prometheus::Gauge*, prometheus::Gauge*>> topics_;  // guarded
};

}  // namespace relay::pipeline
