#pragma once
// RFC 3339 timestamps and HTTP-dates: the one place relay formats and parses them (envelope `time`
// and ce-time, log lines, admin output and --since/--until, Retry-After, the HTTP Date header).
// Pure functions; thread-safe.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace relay {

using WallTime = std::chrono::system_clock::time_point;

// "2024-05-01T12:00:00.123456Z": UTC with exactly `fraction_digits` (0..9) fraction digits, no
// '.' for 0. Rounds down (also before 1970), so equal-width strings sort like the times.
// REQUIRES: 0 <= fraction_digits <= 9.
std::string format_rfc3339(WallTime t, int fraction_digits);

// The forms parse_rfc3339 accepts besides RFC 3339 §5.6 date-time
// (YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM), 'T' and 'Z' in either case).
struct Rfc3339Options {
  bool date_only_ok = false;        // "2024-05-01" alone: midnight UTC
  bool space_separator_ok = false;  // "2024-05-01 12:00:00Z" (RFC 3339 §5.6 NOTE)
};

// A parsed RFC 3339 time, before it is fitted into a WallTime.
struct Rfc3339Time {
  int year = 0;                   // as written (before the offset is applied)
  std::int64_t unix_seconds = 0;  // UTC, offset applied
  std::int32_t nanos = 0;         // fraction; digits beyond nanoseconds are ignored (truncated)
};

// Reads a date-time, checking month, day (Feb 30 is refused), hour 0..23, minute 0..59, second
// 0..60 (a leap second reads as the next minute's first second) and offsets up to ±23:59. At
// least one fraction digit after '.'. nullopt for anything else.
std::optional<Rfc3339Time> parse_rfc3339_time(std::string_view text, Rfc3339Options options = {});

// parse_rfc3339_time as a WallTime; nullopt also for times a WallTime (64-bit nanoseconds) cannot
// hold, roughly before 1678 and after 2261.
std::optional<WallTime> parse_rfc3339(std::string_view text, Rfc3339Options options = {});

// `seconds` and `nanos` since the epoch as a WallTime; nullopt for times it (64-bit nanoseconds)
// cannot hold, roughly before 1678 and after 2261.
std::optional<WallTime> wall_time_from_unix(std::int64_t seconds, std::int64_t nanos);

// IMF-fixdate (RFC 9110 §5.6.7), the HTTP-date relay sends: "Sun, 06 Nov 1994 08:49:37 GMT".
// Whole seconds (rounded down). REQUIRES: t in years 0..9999.
std::string format_http_date(WallTime t);

// Reads an IMF-fixdate, exactly 29 characters with English day and month names as above; day of
// week is not cross-checked, second 60 (leap second) is allowed. nullopt for anything else,
// including the obsolete RFC 850 and asctime forms (RFC 9110 says a recipient SHOULD accept them;
// no consumer we know of sends them, and an unparsed Retry-After only means relay's own backoff).
std::optional<std::chrono::sys_seconds> parse_http_date(std::string_view text);

}  // namespace relay
