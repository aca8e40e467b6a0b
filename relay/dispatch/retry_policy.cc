#include "relay/dispatch/retry_policy.h"

#include <algorithm>

namespace relay::dispatch {

store::PartOutcome decide(const delivery::DeliveryOutcome& outcome, int attempts_made,
                          Millis failing_for, const config::RetryConfig& retry, Backoff& backoff) {
  using Kind = store::PartOutcome::Kind;
  store::PartOutcome part;
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
      part.reason = kReasonNonRetryable;
      return part;
    case delivery::DeliveryOutcome::Kind::kRetryable:
      break;
  }
  if (attempts_made >= retry.max_attempts || failing_for >= retry.max_age) {
    part.kind = Kind::kDeadLetter;
    part.reason = kReasonRetriesExhausted;
    return part;
  }
  Millis delay = backoff.next_delay(attempts_made);
  if (outcome.retry_after) delay = std::max(delay, *outcome.retry_after);
  part.kind = Kind::kRetry;
  part.retry_in = std::min(delay, retry.max_backoff);
  return part;
}

}  // namespace relay::dispatch
