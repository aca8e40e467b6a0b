#include "relay/pipeline/retry_policy.h"

#include <catch2/catch.hpp>

using namespace relay;
using namespace relay::pipeline;
using Kind = model::PartOutcome::Kind;
using delivery::DeliveryOutcome;

namespace {

config::RetryConfig retry_config() {
  config::RetryConfig r;
  r.max_attempts = 5;
  r.initial_backoff = Millis(100);
  r.max_backoff = Millis(1000);
  r.max_age = Millis(60'000);
  return r;
}

DeliveryOutcome retryable(int status, std::optional<Millis> retry_after = std::nullopt) {
  return DeliveryOutcome{.kind = DeliveryOutcome::Kind::kRetryable,
                         .status = status,
                         .error = "HTTP 503",
                         .response_snippet = "busy",
                         .retry_after = retry_after};
}

// decide() after one backoff draw for this attempt, as the pipeline's attempt stage does.
model::PartOutcome decide_drawing(const DeliveryOutcome& outcome, int attempts_made,
                                  Millis failing_for, Backoff& b) {
  return decide(outcome, attempts_made, failing_for, retry_config(),
                retry_delay(outcome, attempts_made, retry_config(), b));
}

}  // namespace

TEST_CASE("a 2xx outcome is delivered", "[pipeline]") {
  auto p = decide({.kind = DeliveryOutcome::Kind::kDelivered, .status = 204}, 1, Millis(0),
                  retry_config(), Millis(0));
  CHECK(p.kind == Kind::kDelivered);
  CHECK(p.attempts == 1);
}

TEST_CASE("a final outcome is dead-lettered as non_retryable_status with its status and body",
          "[pipeline]") {
  auto p = decide({.kind = DeliveryOutcome::Kind::kFinal,
                   .status = 400,
                   .error = "HTTP 400",
                   .response_snippet = "bad"},
                  1, Millis(0), retry_config(), Millis(0));
  CHECK(p.kind == Kind::kDeadLetter);
  CHECK(p.reason == model::DeadLetterReason::kNonRetryable);
  CHECK(p.last_status == 400);
  CHECK(p.last_response == "bad");
}

TEST_CASE("a retryable outcome is retried with a backoff within the jitter range", "[pipeline]") {
  Backoff b({.initial_backoff = Millis(100), .max_backoff = Millis(1000)}, 7);
  for (int attempt = 1; attempt < 5; ++attempt) {
    auto p = decide_drawing(retryable(503), attempt, Millis(0), b);
    REQUIRE(p.kind == Kind::kRetry);
    CHECK(p.retry_in >= Millis(0));
    CHECK(p.retry_in <= std::min(Millis(100 << (attempt - 1)), Millis(1000)));
  }
}

TEST_CASE("the last allowed attempt failing dead-letters as retries_exhausted", "[pipeline]") {
  Backoff b({}, 1);
  auto p = decide_drawing(retryable(503), 5, Millis(0), b);
  CHECK(p.kind == Kind::kDeadLetter);
  CHECK(p.reason == model::DeadLetterReason::kRetriesExhausted);
  CHECK(p.attempts == 5);
}

TEST_CASE("failing for longer than max_age dead-letters even with attempts left", "[pipeline]") {
  Backoff b({}, 1);
  auto p = decide_drawing(retryable(0), 2, Millis(60'000), b);
  CHECK(p.kind == Kind::kDeadLetter);
  CHECK(p.reason == model::DeadLetterReason::kRetriesExhausted);
  CHECK_FALSE(p.last_status.has_value());  // no response at all
}

TEST_CASE("Retry-After lengthens the backoff but never past max_backoff", "[pipeline]") {
  Backoff b({.initial_backoff = Millis(1), .max_backoff = Millis(1)}, 1);
  auto p = decide_drawing(retryable(429, Millis(700)), 1, Millis(0), b);
  CHECK(p.kind == Kind::kRetry);
  CHECK(p.retry_in == Millis(700));
  auto capped = decide_drawing(retryable(429, Millis(3'600'000)), 1, Millis(0), b);
  CHECK(capped.retry_in == Millis(1000));
}

TEST_CASE("a TLS failure spends no attempt and is bounded by max_age only", "[pipeline]") {
  Backoff b({}, 1);
  DeliveryOutcome tls = retryable(0);
  tls.cause = DeliveryOutcome::Cause::kTlsVerification;
  tls.error = "TLS: server certificate verification failed";
  // Far past max_attempts (5): still retried, and the attempt is not charged.
  auto p = decide_drawing(tls, 50, Millis(1000), b);
  CHECK(p.kind == Kind::kRetry);
  CHECK(p.attempts == 49);
  CHECK(p.last_error == tls.error);
  p = decide_drawing(tls, 3, Millis(60'000), b);
  CHECK(p.kind == Kind::kDeadLetter);
  CHECK(p.reason == model::DeadLetterReason::kRetriesExhausted);
  // The same attempt without the TLS cause would have exhausted the retries.
  CHECK(decide_drawing(retryable(0), 50, Millis(1000), b).kind == Kind::kDeadLetter);
}
