#include "relay/common/duration.h"

#include <fmt/format.h>

#include <cctype>
#include <cstdint>
#include <limits>

namespace relay {

Result<Millis> parse_duration(std::string_view text) {
  auto bad = [&](std::string_view why) {
    return Error{ErrorCode::kInvalidArgument,
                 fmt::format("invalid duration \"{}\": {} (expected e.g. 500ms, 5s, 10m, 2h, 7d)",
                             text, why)};
  };
  if (text.empty()) return bad("empty");
  std::int64_t total_ms = 0;
  size_t i = 0;
  while (i < text.size()) {
    if (!std::isdigit(static_cast<unsigned char>(text[i]))) return bad("expected a number");
    std::int64_t n = 0;
    while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
      if (n > std::numeric_limits<std::int64_t>::max() / 10 - 10) return bad("too large");
      n = n * 10 + (text[i] - '0');
      ++i;
    }
    size_t unit_start = i;
    while (i < text.size() && std::isalpha(static_cast<unsigned char>(text[i]))) ++i;
    std::string_view unit = text.substr(unit_start, i - unit_start);
    std::int64_t scale = 0;
    if (unit == "ms")
      scale = 1;
    else if (unit == "s")
      scale = 1000;
    else if (unit == "m")
      scale = 60'000;
    else if (unit == "h")
      scale = 3'600'000;
    else if (unit == "d")
      scale = 86'400'000;
    else if (unit.empty())
      return bad("missing unit");
    else
      return bad(fmt::format("unknown unit \"{}\"", unit));
    // Bound every duration to 100 years so arithmetic on deadlines cannot overflow.
    constexpr std::int64_t kMaxMs = 100LL * 365 * 86'400'000;
    if (n > kMaxMs / scale || total_ms + n * scale > kMaxMs) return bad("too large");
    total_ms += n * scale;
  }
  return Millis(total_ms);
}

std::string format_duration(Millis d) {
  auto ms = d.count();
  if (ms % 86'400'000 == 0 && ms != 0) return fmt::format("{}d", ms / 86'400'000);
  if (ms % 3'600'000 == 0 && ms != 0) return fmt::format("{}h", ms / 3'600'000);
  if (ms % 60'000 == 0 && ms != 0) return fmt::format("{}m", ms / 60'000);
  if (ms % 1000 == 0) return fmt::format("{}s", ms / 1000);
  if (ms > 1000) return fmt::format("{}s", static_cast<double>(ms) / 1000.0);
  return fmt::format("{}ms", ms);
}

}  // namespace relay
