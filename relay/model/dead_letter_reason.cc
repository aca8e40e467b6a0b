#include "relay/model/dead_letter_reason.h"

#include <array>
#include <utility>

namespace relay::model {
namespace {

constexpr std::array<std::pair<DeadLetterReason, std::string_view>, 5> kReasons{{
    {DeadLetterReason::kRetriesExhausted, "retries_exhausted"},
    {DeadLetterReason::kNonRetryable, "non_retryable_status"},
    {DeadLetterReason::kExpired, "expired"},
    {DeadLetterReason::kPayloadTooLarge, "payload_too_large"},
    {DeadLetterReason::kNoSubscription, "no_subscription"},
}};

}  // namespace

std::string_view name_of(DeadLetterReason reason) {
  for (const auto& [r, name] : kReasons) {
    if (r == reason) return name;
  }
  return "?";
}

std::optional<DeadLetterReason> dead_letter_reason_named(std::string_view name) {
  for (const auto& [r, n] : kReasons) {
    if (n == name) return r;
  }
  return std::nullopt;
}

}  // namespace relay::model
