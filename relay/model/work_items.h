#pragma once
// Plain data passed between a work source, the pipeline and the outcome sink: what was claimed, and
// what became of it.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "relay/common/duration.h"
#include "relay/common/event.h"
#include "relay/model/dead_letter_reason.h"

namespace relay::model {

// An outbox event and the subscriptions that must not get it directly (an earlier event of its
// key is still pending for them, or dead-lettered under on_dead_letter: block).
struct ClaimedEvent {
  Event event;
  std::vector<std::string> held_for;
};

// A relay.delivery row: one subscription's pending part of an event, claimed under a lease.
struct ClaimedDelivery {
  std::int64_t delivery_id = 0;
  std::string subscription;
  int attempts = 0;  // attempts made before this claim
  std::chrono::system_clock::time_point first_failed_at{};
  Event event;
};

// What happened to one (event, subscription) part.
struct PartOutcome {
  enum class Kind {
    kDelivered,   // done: nothing to keep
    kRetry,       // keep in relay.delivery, next attempt after retry_in
    kDeadLetter,  // move to relay.dead_letter with `reason`
    kAborted,     // not attempted (shutdown): keep as it was, no attempt counted
    kDeferred,    // not attempted (breaker open, waiting behind its key): wait retry_in, no attempt
                  // counted
  };
  Kind kind = Kind::kDelivered;
  // kDeferred only: queued behind an earlier event of its key, not held back by the breaker. The
  // store makes it due at once if that predecessor is already gone when the row is written.
  bool behind_key = false;
  std::string subscription;
  int attempts = 0;  // attempts made in total, including this one
  Millis retry_in{0};
  DeadLetterReason reason = DeadLetterReason::kRetriesExhausted;  // kDeadLetter only
  std::optional<int> last_status;
  std::string last_error;
  std::string last_response;
};

// Every part of one claimed outbox event. The row leaves relay.outbox only when all parts are
// known; parts that are not delivered move to relay.delivery or relay.dead_letter.
struct OutboxOutcome {
  std::int64_t outbox_id = 0;
  std::vector<PartOutcome>
      parts;  // at least one (an unmatched topic is a no_subscription dead letter)
};

struct DeliveryOutcomeRecord {
  std::int64_t delivery_id = 0;
  PartOutcome part;
};

struct OutcomeBatch {
  std::vector<OutboxOutcome> outbox;
  std::vector<DeliveryOutcomeRecord> deliveries;
  bool empty() const { return outbox.empty() && deliveries.empty(); }
  size_t size() const { return outbox.size() + deliveries.size(); }
};

}  // namespace relay::model
