#pragma once
// The retry rules in one pure function: what to do with a part after an attempt. Unit-tested.

#include "relay/common/backoff.h"
#include "relay/config/config.h"
#include "relay/delivery/outcome.h"
#include "relay/model/work_items.h"

namespace relay::dispatch {

// `attempts_made` counts this attempt; `failing_for` is how long the part has been failing before
// this attempt (0 on a first attempt).
// - delivered -> kDelivered
// - final (non-retryable 4xx) -> kDeadLetter non_retryable_status
// - retryable with attempts_made >= max_attempts, or failing_for >= max_age -> kDeadLetter
//   retries_exhausted. A TLS failure (outcome.cause set) spends no attempt (part.attempts =
//   attempts_made - 1) and is bounded by max_age only.
// - otherwise kRetry after max(jittered backoff, Retry-After), capped by max_backoff.
model::PartOutcome decide(const delivery::DeliveryOutcome& outcome, int attempts_made,
                          Millis failing_for, const config::RetryConfig& retry, Backoff& backoff);

}  // namespace relay::dispatch
