#include "relay/pipeline/attempt.h"

#include <fmt/format.h>

#include <algorithm>

#include "relay/pipeline/retry_policy.h"

namespace relay::pipeline {
namespace {

using Kind = model::PartOutcome::Kind;

// A deferral spends no attempt; it comes back when the breaker may be probed.
model::PartOutcome deferred(Millis retry_in, std::string why) {
  model::PartOutcome part;
  part.kind = Kind::kDeferred;
  part.retry_in = std::max(Millis(250), retry_in);
  part.last_error = std::move(why);
  return part;
}

model::PartOutcome aborted() {
  model::PartOutcome part;
  part.kind = Kind::kAborted;
  return part;
}

}  // namespace

Attempt::Attempt(Subscription& sub, delivery::HttpSender& sender, KeyOrder& key_order,
                 const Drain& drain, DispatchStats& stats, Clock& clock,
                 std::int64_t max_payload_bytes)
    : sub_(sub),
      sender_(sender),
      key_order_(key_order),
      drain_(drain),
      stats_(stats),
      clock_(clock),
      max_payload_bytes_(max_payload_bytes),
      backoff_({.initial_backoff = sub.config().retry.initial_backoff,
                .max_backoff = sub.config().retry.max_backoff}) {}

std::optional<model::PartOutcome> Attempt::settle_unsent(const Task& task) {
  const Event& e = *task.event;
  model::PartOutcome part;
  part.attempts = task.attempts_before;
  if (drain_.draining) {
    part.kind = Kind::kAborted;
  } else if (static_cast<std::int64_t>(e.payload.size()) > max_payload_bytes_) {
    part.kind = Kind::kDeadLetter;
    part.reason = model::DeadLetterReason::kPayloadTooLarge;
    part.last_error = fmt::format("payload is {} bytes; limits.max_payload_bytes is {}",
                                  e.payload.size(), max_payload_bytes_);
  } else if (e.expires_at && *e.expires_at <= clock_.wall_now()) {
    part.kind = Kind::kDeadLetter;
    part.reason = model::DeadLetterReason::kExpired;
    part.last_error = "expires_at passed before delivery";
  } else if (e.deliver_after && *e.deliver_after > clock_.wall_now()) {
    // Not yet: wait in relay.delivery until deliver_after, spending no attempt. Later events of
    // its key queue behind it there.
    part.kind = Kind::kDeferred;
    part.retry_in =
        std::max(Millis(1), std::chrono::ceil<Millis>(*e.deliver_after - clock_.wall_now()));
    part.last_error = "waiting for deliver_after";
  } else if (key_order_.must_wait(task)) {
    // An earlier event of this key is not through yet: queue behind it. The store makes it due
    // when its predecessor leaves (at once if that already happened); max_backoff is only the
    // safety net.
    part.kind = Kind::kDeferred;
    part.behind_key = true;
    part.retry_in = sub_.config().retry.max_backoff;
    part.last_error = "waiting behind an earlier event of the same key";
  } else {
    return std::nullopt;
  }
  key_order_.settled(task, part);
  return part;
}

std::vector<model::PartOutcome> Attempt::settled(std::span<const Task> tasks,
                                                 std::vector<model::PartOutcome> parts) {
  for (size_t i = 0; i < tasks.size(); ++i) key_order_.settled(tasks[i], parts[i]);
  return parts;
}

std::vector<model::PartOutcome> Attempt::settle_all(std::span<const Task> tasks,
                                                    const model::PartOutcome& part) {
  std::vector<model::PartOutcome> parts(tasks.size(), part);
  for (size_t i = 0; i < tasks.size(); ++i) parts[i].attempts = tasks[i].attempts_before;
  return settled(tasks, std::move(parts));
}

std::vector<model::PartOutcome> Attempt::run(std::span<const Task> tasks,
                                             DispatchStats::BatchClose closed_by) {
  const config::SubscriptionConfig& cfg = sub_.config();
  if (drain_.draining) return settle_all(tasks, aborted());  // shutdown began while it lingered
  const auto admission = sub_.breaker().admit();
  if (admission == delivery::CircuitBreaker::Admission::kRejected) {
    // The endpoint is resting: no request, no attempt spent. Come back when it may be probed.
    sub_.note_deferred(static_cast<long long>(tasks.size()));
    return settle_all(tasks, deferred(sub_.breaker().time_until_probe(), "circuit breaker open"));
  }
  if (delivery::RateLimiter* limiter = sub_.limiter()) {
    // One token per event: a batch is no way around the subscription's event rate.
    for (size_t i = 0; i < tasks.size(); ++i) {
      if (!limiter->acquire(drain_.stop.get_token())) return settle_all(tasks, aborted());
    }
  }

  const auto wall_now = clock_.wall_now();
  delivery::DeliveryOutcome outcome;
  if (sub_.batched()) {
    std::vector<delivery::BatchItem> items;
    std::vector<std::chrono::system_clock::time_point> created;
    items.reserve(tasks.size());
    created.reserve(tasks.size());
    for (const Task& t : tasks) {
      items.push_back({.event = t.event.get(), .attempt = t.attempts_before + 1});
      created.push_back(t.event->created_at);
    }
    {
      auto wire = sub_.on_the_wire();
      outcome = sender_.send_batch(items);
    }
    stats_.batch_attempt(cfg.name, outcome, created, clock_.wall_now(), closed_by);
  } else {
    RELAY_CHECK(tasks.size() == 1, "an unbatched subscription sends one event per request");
    const Task& t = tasks.front();
    {
      auto wire = sub_.on_the_wire();
      outcome = sender_.send(*t.event, t.attempts_before + 1);
    }
    stats_.attempt(cfg.name, outcome, t.event->created_at, clock_.wall_now());
  }
  sub_.note_tls(outcome);

  if (drain_.hard_stop && outcome.kind != delivery::DeliveryOutcome::Kind::kDelivered) {
    // Cut off by shutdown: not the consumer's fault, no attempt counted.
    return settle_all(tasks, aborted());
  }
  int most_attempts = 0;
  for (const Task& t : tasks) most_attempts = std::max(most_attempts, t.attempts_before + 1);
  Millis retry_in{0};
  if (outcome.kind == delivery::DeliveryOutcome::Kind::kRetryable) {
    sub_.breaker().record_failure();
    if (admission == delivery::CircuitBreaker::Admission::kProbe) {
      // A failed probe says the endpoint is still down, not that these events are bad: no attempt
      // spent (max_age still bounds how long an event may wait).
      return settle_all(tasks, deferred(sub_.breaker().time_until_probe(),
                                        "circuit breaker probe failed: " + outcome.error));
    }
    retry_in = retry_delay(outcome, most_attempts, cfg.retry, backoff_);
  } else {
    sub_.breaker().record_success();  // 2xx, or a final 4xx: the endpoint is up
  }
  std::vector<model::PartOutcome> parts;
  parts.reserve(tasks.size());
  for (const Task& t : tasks) {
    Millis failing_for{0};
    if (t.delivery_id != 0 && wall_now > t.first_failed_at)
      failing_for = std::chrono::duration_cast<Millis>(wall_now - t.first_failed_at);
    parts.push_back(decide(outcome, t.attempts_before + 1, failing_for, cfg.retry, retry_in));
  }
  return settled(tasks, std::move(parts));
}

}  // namespace relay::pipeline
