#pragma once
// How a subscription sends: the config's `format`, `ordering` and `on_dead_letter` values as enums,
// with their one spelling in relay.yaml. The config loader checks the spelling; everything after it
// compares enums.

#include <optional>
#include <string_view>

namespace relay::model {

// Config key `format`: the body of a request.
enum class Format { kBinary, kCloudEventsJson, kProtobuf };
// Config key `ordering`.
enum class Ordering {
  kPerKey,  // a key's events reach the subscription one at a time, in outbox order
  kNone,    // no order between events
};
// Config key `on_dead_letter`: what a key's later events do when its head is dead-lettered.
enum class OnDeadLetter {
  kSkip,   // they go on
  kBlock,  // they wait until an operator replays or drops the dead letter
};

// A subscription's circuit breaker (delivery/circuit_breaker.h): its state as /status,
// relay status and the `to` label of relay_breaker_transitions_total spell it.
enum class BreakerState { kClosed, kOpen, kHalfOpen };

// The spellings in relay.yaml, in enum order.
inline constexpr std::string_view kFormatNames[] = {"binary", "cloudevents-json", "protobuf"};
inline constexpr std::string_view kOrderingNames[] = {"per_key", "none"};
inline constexpr std::string_view kOnDeadLetterNames[] = {"skip", "block"};
inline constexpr std::string_view kBreakerStateNames[] = {"closed", "open", "half_open"};

std::string_view name_of(Format format);
std::string_view name_of(Ordering ordering);
std::string_view name_of(OnDeadLetter on_dead_letter);
std::string_view name_of(BreakerState state);
// nullopt for a spelling that is not one of the names above.
std::optional<Format> format_named(std::string_view name);
std::optional<Ordering> ordering_named(std::string_view name);
std::optional<OnDeadLetter> on_dead_letter_named(std::string_view name);
std::optional<BreakerState> breaker_state_named(std::string_view name);

// A batch needs a format that can carry several events in one body (binary carries one).
inline bool can_batch(Format format) { return format != Format::kBinary; }

}  // namespace relay::model
