#include "relay/model/modes.h"

#include <catch2/catch.hpp>

#include "relay/model/dead_letter_reason.h"

using namespace relay::model;

TEST_CASE("every mode has one spelling, and the spelling maps back to it", "[model]") {
  for (auto f : {Format::kBinary, Format::kCloudEventsJson, Format::kProtobuf})
    CHECK(format_named(name_of(f)) == f);
  for (auto o : {Ordering::kPerKey, Ordering::kNone}) CHECK(ordering_named(name_of(o)) == o);
  for (auto d : {OnDeadLetter::kSkip, OnDeadLetter::kBlock})
    CHECK(on_dead_letter_named(name_of(d)) == d);
  CHECK(name_of(Format::kCloudEventsJson) == "cloudevents-json");
  CHECK(name_of(Ordering::kPerKey) == "per_key");
  CHECK(name_of(OnDeadLetter::kBlock) == "block");
}

TEST_CASE("an unknown spelling is no mode", "[model]") {
  CHECK_FALSE(format_named("json").has_value());
  CHECK_FALSE(format_named("").has_value());
  CHECK_FALSE(ordering_named("PER_KEY").has_value());
  CHECK_FALSE(on_dead_letter_named("drop").has_value());
}

TEST_CASE("only formats that can carry several events batch", "[model]") {
  CHECK_FALSE(can_batch(Format::kBinary));
  CHECK(can_batch(Format::kCloudEventsJson));
  CHECK(can_batch(Format::kProtobuf));
}

TEST_CASE("dead-letter reasons keep their stored spellings", "[model]") {
  CHECK(name_of(DeadLetterReason::kRetriesExhausted) == "retries_exhausted");
  CHECK(name_of(DeadLetterReason::kNonRetryable) == "non_retryable_status");
  CHECK(name_of(DeadLetterReason::kExpired) == "expired");
  CHECK(name_of(DeadLetterReason::kPayloadTooLarge) == "payload_too_large");
  CHECK(name_of(DeadLetterReason::kNoSubscription) == "no_subscription");
  for (auto r : {DeadLetterReason::kRetriesExhausted, DeadLetterReason::kNonRetryable,
                 DeadLetterReason::kExpired, DeadLetterReason::kPayloadTooLarge,
                 DeadLetterReason::kNoSubscription})
    CHECK(dead_letter_reason_named(name_of(r)) == r);
  CHECK_FALSE(dead_letter_reason_named("lost").has_value());
}

TEST_CASE("breaker states keep the spellings /status and the metrics use", "[model]") {
  CHECK(name_of(BreakerState::kClosed) == "closed");
  CHECK(name_of(BreakerState::kOpen) == "open");
  CHECK(name_of(BreakerState::kHalfOpen) == "half_open");
  for (auto s : {BreakerState::kClosed, BreakerState::kOpen, BreakerState::kHalfOpen})
    CHECK(breaker_state_named(name_of(s)) == s);
  CHECK_FALSE(breaker_state_named("half-open").has_value());
}
