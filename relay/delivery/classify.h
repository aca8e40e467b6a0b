#pragma once
// Pure rules that turn an HTTP exchange into a DeliveryOutcome. No I/O; unit-tested.

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "relay/delivery/outcome.h"

namespace relay::delivery {

// 2xx delivered; 408, 425, 429, 5xx and 3xx (redirects are not followed) retryable; other 4xx and
// anything else final.
DeliveryOutcome::Kind classify_status(int status);

// Parses a Retry-After value: delta-seconds ("120") or an HTTP-date ("Wed, 21 Oct 2015 07:28:00
// GMT", relative to `now`). Returns nullopt for anything unparseable; a date in the past is 0.
std::optional<Millis> parse_retry_after(std::string_view value,
                                        std::chrono::system_clock::time_point now);

}  // namespace relay::delivery
