#include "relay/pipeline/retry_policy.h"

#include <algorithm>

namespace relay::pipeline {

Millis retry_delay(const delivery::DeliveryOutcome& outcome, int attempts_made,
                   const config::RetryConfig& retry, Backoff& backoff) {
  Millis delay = backoff.next_delay(attempts_made);
  if (outcome.retry_after) delay = std::max(delay, *outcome.retry_after);
  return std::min(delay, retry.max_backoff);
}

model::PartOutcome decide(const delivery::DeliveryOutcome& outcome, int attempts_made,
                          Millis failing_for, const config::RetryConfig& retry, Millis retry_in) {
  using Kind = model::PartOutcome::Kind;
  model::PartOutcome part;
  part.attempts = attempts_made;
  if (outcome.status != 0) part.last_status = outcome.status;
  part.last_error = outcome.error;
  part.last_response = outcome.response_snippet;
  switch (outcome.kind) {
    case delivery::DeliveryOutcome::Kind::kDelivered:
      part.kind = Kind::kDelivered;
      return part;
    case delivery::DeliveryOutcome::Kind::kFinal:
      part.kind = Kind::kDeadLetter;
      part.reason = model::DeadLetterReason::kNonRetryable;
      return part;
    case delivery::DeliveryOutcome::Kind::kRetryable:
      break;
  }
  // A TLS failure is a configuration problem (a CA, certificate or host name to fix), not the
  // consumer failing: like time spent with the breaker open, it spends no attempt, so fixing the
  // setting delivers every event. Only max_age bounds the wait.
  if (outcome.cause != delivery::DeliveryOutcome::Cause::kNone) {
    part.attempts = attempts_made - 1;
  } else if (attempts_made >= retry.max_attempts) {
    part.kind = Kind::kDeadLetter;
    part.reason = model::DeadLetterReason::kRetriesExhausted;
    return part;
  }
  if (failing_for >= retry.max_age) {
    part.kind = Kind::kDeadLetter;
    part.reason = model::DeadLetterReason::kRetriesExhausted;
    return part;
  }
  part.kind = Kind::kRetry;
  part.retry_in = retry_in;
  return part;
}

}  // namespace relay::pipeline
