#pragma once
// The retry rules in two pure functions: when a failed request's events are tried again, and what
// becomes of each event after an attempt. Unit-tested.

#include "relay/common/backoff.h"
#include "relay/config/config.h"
#include "relay/delivery/outcome.h"
#include "relay/model/work_items.h"

namespace relay::pipeline {

// How long until the next try after a retryable `outcome` of a request whose most-tried event is on
// attempt `attempts_made`: the jittered backoff, lengthened by the consumer's Retry-After, and
// never past max_backoff (the one place Retry-After is capped). One draw per request, so a batch's
// events fall due together.
Millis retry_delay(const delivery::DeliveryOutcome& outcome, int attempts_made,
                   const config::RetryConfig& retry, Backoff& backoff);

// `attempts_made` counts this attempt; `failing_for` is how long the part has been failing before
// this attempt (0 on a first attempt); `retry_in` is retry_delay()'s answer for the request.
// - delivered -> kDelivered
// - final (non-retryable 4xx) -> kDeadLetter non_retryable_status
// - retryable with attempts_made >= max_attempts, or failing_for >= max_age -> kDeadLetter
//   retries_exhausted. A TLS failure (outcome.cause set) spends no attempt (part.attempts =
//   attempts_made - 1) and is bounded by max_age only.
// - otherwise kRetry after retry_in.
model::PartOutcome decide(const delivery::DeliveryOutcome& outcome, int attempts_made,
                          Millis failing_for, const config::RetryConfig& retry, Millis retry_in);

}  // namespace relay::pipeline
