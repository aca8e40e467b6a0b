#pragma once
// Durations as people write them in relay.yaml and on the command line: an integer and a unit,
// "500ms", "5s", "10m", "2h", "7d"; several parts may be joined ("1m30s").

#include <chrono>
#include <string>
#include <string_view>

#include "relay/common/result.h"

namespace relay {

using Millis = std::chrono::milliseconds;

// Returns the duration, or kInvalidArgument with a message naming the bad text. Units: ms, s, m,
// h, d. A bare number without a unit is rejected (is "30" seconds or milliseconds?).
Result<Millis> parse_duration(std::string_view text);

// "1500ms" -> "1.5s"; for messages and `--status` output.
std::string format_duration(Millis d);

}  // namespace relay
