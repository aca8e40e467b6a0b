#include "relay/dispatch/retry_policy.h"

#include <catch2/catch.hpp>

using namespace relay;
using namespace relay::dispatch;
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

}  // namespace

TEST_CASE("a 2xx outcome is delivered", "[dispatch]") {
  Backoff b({}, 1);
  auto p = decide({.kind = DeliveryOutcome::Kind::kDelivered, .status = 204}, 1, Millis(0),
                  retry_config(), b);
  CHECK(p.kind == Kind::kDelivered);
  CHECK(p.attempts == 1);
}

TEST_CASE("a final outcome is dead-lettered as non_retryable_status with its status and body",
          "[dispatch]") {
  Backoff b({}, 1);
  auto p = decide({.kind = DeliveryOutcome::Kind::kFinal,
                   .status = 400,
                   .error = "HTTP 400",
                   .response_snippet = "bad"},
                  1, Millis(0), retry_config(), b);
  CHECK(p.kind == Kind::kDeadLetter);
  CHECK(p.reason == model::DeadLetterReason::kNonRetryable);
  CHECK(p.last_status == 400);
  CHECK(p.last_response == "bad");
}

TEST_CASE("a retryable outcome is retried with a backoff within the jitter range", "[dispatch]") {
  Backoff b({.initial_backoff = Millis(100), .max_backoff = Millis(1000)}, 7);
  for (int attempt = 1; attempt < 5; ++attempt) {
    auto p = decide(retryable(503), attempt, Millis(0), retry_config(), b);
    REQUIRE(p.kind == Kind::kRetry);
    CHECK(p.retry_in >= Millis(0));
    CHECK(p.retry_in <= std::min(Millis(100 << (attempt - 1)), Millis(1000)));
  }
}

TEST_CASE("the last allowed attempt failing dead-letters as retries_exhausted", "[dispatch]") {
  Backoff b({}, 1);
  auto p = decide(retryable(503), 5, Millis(0), retry_config(), b);
  CHECK(p.kind == Kind::kDeadLetter);
  CHECK(p.reason == model::DeadLetterReason::kRetriesExhausted);
  CHECK(p.attempts == 5);
}

TEST_CASE("failing for longer than max_age dead-letters even with attempts left", "[dispatch]") {
  Backoff b({}, 1);
  auto p = decide(retryable(0), 2, Millis(60'000), retry_config(), b);
  CHECK(p.kind == Kind::kDeadLetter);
  CHECK(p.reason == model::DeadLetterReason::kRetriesExhausted);
  CHECK_FALSE(p.last_status.has_value());  // no response at all
}

TEST_CASE("Retry-After lengthens the backoff but never past max_backoff", "[dispatch]") {
  Backoff b({.initial_backoff = Millis(1), .max_backoff = Millis(1)}, 1);
  auto p = decide(retryable(429, Millis(700)), 1, Millis(0), retry_config(), b);
  CHECK(p.kind == Kind::kRetry);
  CHECK(p.retry_in == Millis(700));
  auto capped = decide(retryable(429, Millis(3'600'000)), 1, Millis(0), retry_config(), b);
  CHECK(capped.retry_in == Millis(1000));
}

TEST_CASE("a TLS failure spends no attempt and is bounded by max_age only", "[dispatch]") {
  Backoff b({}, 1);
  DeliveryOutcome tls = retryable(0);
  tls.cause = DeliveryOutcome::Cause::kTlsVerification;
  tls.error = "TLS: server certificate verification failed";
  // Far past max_attempts (5): still retried, and the attempt is not charged.
  auto p = decide(tls, 50, Millis(1000), retry_config(), b);
  CHECK(p.kind == Kind::kRetry);
  CHECK(p.attempts == 49);
  CHECK(p.last_error == tls.error);
  p = decide(tls, 3, Millis(60'000), retry_config(), b);
  CHECK(p.kind == Kind::kDeadLetter);
  CHECK(p.reason == model::DeadLetterReason::kRetriesExhausted);
  // The same attempt without the TLS cause would have exhausted the retries.
  CHECK(decide(retryable(0), 50, Millis(1000), retry_config(), b).kind == Kind::kDeadLetter);
}
