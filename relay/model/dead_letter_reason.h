#pragma once
// Why an event was dead-lettered: relay.dead_letter.reason, the `reason` label of
// relay_dead_letters_created_total, and what `relay dlq list --reason` filters on.

#include <optional>
#include <string_view>

namespace relay::model {

enum class DeadLetterReason {
  kRetriesExhausted,  // max_attempts or max_age reached on retryable failures
  kNonRetryable,      // the consumer answered with a final status (most 4xx)
  kExpired,           // the event's expires_at passed before it was delivered
  kPayloadTooLarge,   // larger than limits.max_payload_bytes
  kNoSubscription,    // no subscription matches its topic
};

// The stored spelling, e.g. "retries_exhausted".
std::string_view name_of(DeadLetterReason reason);
std::optional<DeadLetterReason> dead_letter_reason_named(std::string_view name);

}  // namespace relay::model
