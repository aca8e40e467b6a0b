#include "relay/pipeline/dispatch_stats.h"

#include <prometheus/gauge.h>

#include "relay/pipeline/retry_policy.h"

namespace relay::pipeline {
namespace {

using prometheus::BuildCounter;
using prometheus::BuildGauge;
using prometheus::BuildHistogram;

// Series created up front for each subscription (no_subscription has no subscription).
constexpr model::DeadLetterReason kReasons[] = {
    model::DeadLetterReason::kRetriesExhausted, model::DeadLetterReason::kNonRetryable,
    model::DeadLetterReason::kExpired, model::DeadLetterReason::kPayloadTooLarge};
const char* const kClasses[] = {"2xx", "3xx", "4xx", "5xx", "error"};
const char* const kBatchCloses[] = {"max_events", "max_bytes", "linger"};  // by BatchClose

int class_index(int status) {
  if (status >= 200 && status < 600) return status / 100 - 2;
  return 4;  // no response (timeout, refused) or a nonsense status
}

double state_value(delivery::CircuitBreaker::State s) {
  switch (s) {
    case delivery::CircuitBreaker::State::kClosed:
      return 0;
    case delivery::CircuitBreaker::State::kOpen:
      return 1;
    case delivery::CircuitBreaker::State::kHalfOpen:
      return 2;
  }
  return 0;
}

}  // namespace

DispatchStats::DispatchStats(prometheus::Registry& registry,
                             const std::vector<std::string>& subscriptions,
                             const std::string& version)
    : deliveries_(BuildCounter()
                      .Name("relay_deliveries_total")
                      .Help("Delivery outcomes recorded, by subscription and outcome")
                      .Register(registry)),
      attempts_(BuildCounter()
                    .Name("relay_delivery_attempts_total")
                    .Help("HTTP requests sent to consumers")
                    .Register(registry)),
      latency_(BuildHistogram()
                   .Name("relay_delivery_latency_seconds")
                   .Help("From the event's created_at to its 2xx answer")
                   .Register(registry)),
      http_(BuildCounter()
                .Name("relay_http_responses_total")
                .Help("Consumer answers by status class (error: no answer)")
                .Register(registry)),
      tls_errors_(BuildCounter()
                      .Name("relay_delivery_tls_errors_total")
                      .Help("Requests that failed in TLS (certificate verification or handshake): "
                            "usually a tls.* setting or a certificate to fix, not an outage")
                      .Register(registry)),
      breaker_state_(BuildGauge()
                         .Name("relay_breaker_state")
                         .Help("Circuit breaker state: 0 closed, 1 open, 2 half_open")
                         .Register(registry)),
      breaker_transitions_(BuildCounter()
                               .Name("relay_breaker_transitions_total")
                               .Help("Circuit breaker state changes, by the state entered")
                               .Register(registry)),
      dead_letters_created_(BuildCounter()
                                .Name("relay_dead_letters_created_total")
                                .Help("Dead letters written by this relay, by reason")
                                .Register(registry)),
      dead_letters_(BuildGauge()
                        .Name("relay_dead_letters")
                        .Help("Unreplayed rows in relay.dead_letter")
                        .Register(registry)),
      retries_waiting_(BuildGauge()
                           .Name("relay_retries_waiting")
                           .Help("Rows in relay.delivery: events that failed and wait for their "
                                 "next attempt")
                           .Register(registry)),
      database_errors_(BuildCounter()
                           .Name("relay_database_errors_total")
                           .Help("Database calls that failed because the database was unavailable")
                           .Register(registry)),
      database_reconnects_(BuildCounter()
                               .Name("relay_database_reconnects_total")
                               .Help("Times the database became usable again after errors")
                               .Register(registry)
                               .Add({})),
      ready_(BuildGauge()
                 .Name("relay_ready")
                 .Help("1 when /readyz answers 200")
                 .Register(registry)
                 .Add({})),
      backlog_(BuildGauge()
                   .Name("relay_outbox_backlog_events")
                   .Help("Rows in relay.outbox, by topic")
                   .Register(registry)),
      oldest_age_(BuildGauge()
                      .Name("relay_outbox_oldest_pending_age_seconds")
                      .Help("Age of the oldest due row in relay.outbox, by topic")
                      .Register(registry)),
      batches_(BuildCounter()
                   .Name("relay_delivery_batches_total")
                   .Help("Batch requests sent, by what closed the batch (max_events, max_bytes, "
                         "linger)")
                   .Register(registry)),
      outbox_dead_tuples_(BuildGauge()
                              .Name("relay_outbox_dead_tuples")
                              .Help("Dead tuples in relay.outbox (pg_stat_user_tables.n_dead_tup): "
                                    "deleted rows vacuum has not removed yet")
                              .Register(registry)
                              .Add({})),
      oldest_snapshot_age_(BuildGauge()
                               .Name("relay_oldest_snapshot_age_seconds")
                               .Help("Age of the oldest transaction in relay's database that holds "
                                     "back vacuum (a snapshot or an xid); 0 if none")
                               .Register(registry)
                               .Add({})) {
  BuildGauge()
      .Name("relay_build_info")
      .Help("Always 1; the version label says which relay runs")
      .Register(registry)
      .Add({{"version", version}})
      .Set(1);
  const prometheus::Histogram::BucketBoundaries buckets = {
      0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
  for (const auto& name : subscriptions) {
    Sub s;
    s.delivered = &deliveries_.Add({{"subscription", name}, {"outcome", "delivered"}});
    s.retry_scheduled = &deliveries_.Add({{"subscription", name}, {"outcome", "retry_scheduled"}});
    s.dead_lettered = &deliveries_.Add({{"subscription", name}, {"outcome", "dead_lettered"}});
    s.attempts = &attempts_.Add({{"subscription", name}});
    s.latency = &latency_.Add({{"subscription", name}}, buckets);
    for (int i = 0; i < 5; ++i)
      s.http[i] = &http_.Add({{"subscription", name}, {"class", kClasses[i]}});
    s.tls_verification = &tls_errors_.Add(
        {{"subscription", name},
         {"cause", delivery::to_string(delivery::DeliveryOutcome::Cause::kTlsVerification)}});
    s.tls_handshake = &tls_errors_.Add(
        {{"subscription", name},
         {"cause", delivery::to_string(delivery::DeliveryOutcome::Cause::kTlsHandshake)}});
    s.breaker_state = &breaker_state_.Add({{"subscription", name}});
    for (std::string_view st : model::kBreakerStateNames)
      breaker_transitions_.Add({{"subscription", name}, {"to", std::string(st)}});
    for (model::DeadLetterReason r : kReasons)
      dead_letters_created_.Add(
          {{"subscription", name}, {"reason", std::string(model::name_of(r))}});
    s.dead_letters = &dead_letters_.Add({{"subscription", name}});
    s.retries_waiting = &retries_waiting_.Add({{"subscription", name}});
    for (int i = 0; i < 3; ++i)
      s.batches[i] = &batches_.Add({{"subscription", name}, {"closed_by", kBatchCloses[i]}});
    subs_.emplace(name, s);
  }
}

DispatchStats::Sub* DispatchStats::find(const std::string& subscription) {
  auto it = subs_.find(subscription);
  return it == subs_.end() ? nullptr : &it->second;
}

void DispatchStats::outcome(const std::string& subscription, Outcome outcome) {
  Sub* s = find(subscription);
  if (s == nullptr) {
    // "(none)": events no subscription matches. Family::Add returns the existing series.
    const char* name = outcome == Outcome::kDelivered        ? "delivered"
                       : outcome == Outcome::kRetryScheduled ? "retry_scheduled"
                                                             : "dead_lettered";
    deliveries_.Add({{"subscription", subscription}, {"outcome", name}}).Increment();
    return;
  }
  switch (outcome) {
    case Outcome::kDelivered:
      s->delivered->Increment();
      break;
    case Outcome::kRetryScheduled:
      s->retry_scheduled->Increment();
      break;
    case Outcome::kDeadLettered:
      s->dead_lettered->Increment();
      break;
  }
}

void DispatchStats::dead_letter_created(const std::string& subscription,
                                        model::DeadLetterReason reason) {
  // Reasons are relay's own constants; subscriptions come from the config (or "(none)").
  dead_letters_created_
      .Add({{"subscription", subscription}, {"reason", std::string(model::name_of(reason))}})
      .Increment();
}

void DispatchStats::attempt(const std::string& subscription,
                            const delivery::DeliveryOutcome& outcome,
                            std::chrono::system_clock::time_point created_at,
                            std::chrono::system_clock::time_point now) {
  Sub* s = find(subscription);
  if (s == nullptr) return;
  record_request(*s, outcome, {&created_at, 1}, now);
}

void DispatchStats::batch_attempt(const std::string& subscription,
                                  const delivery::DeliveryOutcome& outcome,
                                  std::span<const std::chrono::system_clock::time_point> created_at,
                                  std::chrono::system_clock::time_point now, BatchClose closed_by) {
  Sub* s = find(subscription);
  if (s == nullptr) return;
  s->batches[static_cast<int>(closed_by)]->Increment();
  record_request(*s, outcome, created_at, now);
}

// One request carrying one event per `created_at`: an attempt per event, one response class, the
// TLS cause, and each event's commit-to-2xx latency when it was delivered.
void DispatchStats::record_request(
    Sub& s, const delivery::DeliveryOutcome& outcome,
    std::span<const std::chrono::system_clock::time_point> created_at,
    std::chrono::system_clock::time_point now) {
  s.attempts->Increment(static_cast<double>(created_at.size()));
  s.http[class_index(outcome.status)]->Increment();
  switch (outcome.cause) {
    case delivery::DeliveryOutcome::Cause::kTlsVerification:
      s.tls_verification->Increment();
      break;
    case delivery::DeliveryOutcome::Cause::kTlsHandshake:
      s.tls_handshake->Increment();
      break;
    case delivery::DeliveryOutcome::Cause::kNone:
      break;
  }
  if (outcome.kind != delivery::DeliveryOutcome::Kind::kDelivered) return;
  for (const auto& t : created_at) {
    const double secs = std::chrono::duration<double>(now - t).count();
    s.latency->Observe(secs < 0 ? 0 : secs);
  }
}

void DispatchStats::breaker_transition(const std::string& subscription,
                                       delivery::CircuitBreaker::State to) {
  Sub* s = find(subscription);
  if (s == nullptr) return;
  s->breaker_state->Set(state_value(to));
  breaker_transitions_
      .Add({{"subscription", subscription}, {"to", std::string(model::name_of(to))}})
      .Increment();
}

void DispatchStats::database_error(const std::string& operation) {
  database_errors_.Add({{"operation", operation}}).Increment();
}

void DispatchStats::database_reconnect() { database_reconnects_.Increment(); }

void DispatchStats::set_ready(bool ready) { ready_.Set(ready ? 1 : 0); }

void DispatchStats::set_backlog(const std::vector<TopicBacklogSample>& topics) {
  std::lock_guard lock(mu_);
  for (auto& [name, g] : topics_) {
    g.first->Set(0);
    g.second->Set(0);
  }
  std::int64_t other_pending = 0;
  double other_age = 0;
  bool other = false;
  for (const auto& t : topics) {
    auto it = topics_.find(t.topic);
    if (it == topics_.end()) {
      const size_t named = topics_.size() - topics_.count("_other");
      if (named >= kMaxTopics || t.topic == "_other") {
        other = true;
        other_pending += t.pending;
        other_age = std::max(other_age, t.oldest_age_seconds);
        continue;
      }
      it = topics_
               .emplace(t.topic, std::make_pair(&backlog_.Add({{"topic", t.topic}}),
                                                &oldest_age_.Add({{"topic", t.topic}})))
               .first;
    }
    it->second.first->Set(static_cast<double>(t.pending));
    it->second.second->Set(t.oldest_age_seconds);
  }
  if (other) {
    auto it = topics_.find("_other");
    if (it == topics_.end()) {
      it = topics_
               .emplace("_other", std::make_pair(&backlog_.Add({{"topic", "_other"}}),
                                                 &oldest_age_.Add({{"topic", "_other"}})))
               .first;
    }
    it->second.first->Increment(static_cast<double>(other_pending));
    it->second.second->Set(std::max(it->second.second->Value(), other_age));
  }
}

void DispatchStats::set_dead_letters(const std::map<std::string, std::int64_t>& by_subscription) {
  for (auto& [name, s] : subs_) {
    auto it = by_subscription.find(name);
    s.dead_letters->Set(it == by_subscription.end() ? 0 : static_cast<double>(it->second));
  }
}

void DispatchStats::set_retries_waiting(
    const std::map<std::string, std::int64_t>& by_subscription) {
  for (auto& [name, s] : subs_) {
    auto it = by_subscription.find(name);
    s.retries_waiting->Set(it == by_subscription.end() ? 0 : static_cast<double>(it->second));
  }
}

void DispatchStats::set_vacuum(std::int64_t outbox_dead_tuples,
                               double oldest_snapshot_age_seconds) {
  outbox_dead_tuples_.Set(static_cast<double>(outbox_dead_tuples));
  oldest_snapshot_age_.Set(oldest_snapshot_age_seconds);
}

}  // namespace relay::pipeline
