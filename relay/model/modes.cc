#include "relay/model/modes.h"

#include <iterator>

namespace relay::model {
namespace {

template <typename E, size_t N>
std::string_view name_in(const std::string_view (&names)[N], E value) {
  const auto i = static_cast<size_t>(value);
  return i < N ? names[i] : "?";
}

template <typename E, size_t N>
std::optional<E> value_in(const std::string_view (&names)[N], std::string_view name) {
  for (size_t i = 0; i < N; ++i) {
    if (names[i] == name) return static_cast<E>(i);
  }
  return std::nullopt;
}

}  // namespace

std::string_view name_of(Format format) { return name_in(kFormatNames, format); }
std::string_view name_of(Ordering ordering) { return name_in(kOrderingNames, ordering); }
std::string_view name_of(OnDeadLetter on_dead_letter) {
  return name_in(kOnDeadLetterNames, on_dead_letter);
}
std::string_view name_of(BreakerState state) { return name_in(kBreakerStateNames, state); }
std::optional<Format> format_named(std::string_view name) {
  return value_in<Format>(kFormatNames, name);
}
std::optional<Ordering> ordering_named(std::string_view name) {
  return value_in<Ordering>(kOrderingNames, name);
}
std::optional<OnDeadLetter> on_dead_letter_named(std::string_view name) {
  return value_in<OnDeadLetter>(kOnDeadLetterNames, name);
}

std::optional<BreakerState> breaker_state_named(std::string_view name) {
  return value_in<BreakerState>(kBreakerStateNames, name);
}

}  // namespace relay::model
