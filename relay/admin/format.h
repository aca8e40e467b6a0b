#pragma once
// Text helpers for the admin commands: times as operators read and type them, safe previews of
// bytes that came from apps and consumers, and aligned tables. Pure functions; thread-safe.
// RFC 3339 output (format_rfc3339), UTF-8 checks and base64 are the shared ones in relay/common/.

#include <chrono>
#include <cstddef>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "relay/common/result.h"

namespace relay::admin {

using WallTime = std::chrono::system_clock::time_point;

// RFC 3339: "2024-05-01T12:00:00Z", "2024-05-01 12:00:00.5+02:00", or a bare date "2024-05-01"
// (midnight UTC), in the years 1970 to 2261 (what a nanosecond system_clock holds, with room for
// offsets and a 100-year --since). kInvalidArgument naming the text otherwise ("out of range" for
// a well-formed time outside those years).
Result<WallTime> parse_timestamp(std::string_view text);

// A --since/--until value: a duration ("90m", "7d") meaning that long before `now`, or an RFC 3339
// timestamp. kInvalidArgument naming `flag` and the text otherwise.
Result<WallTime> parse_time_bound(std::string_view flag, std::string_view text, WallTime now);

// "2024-05-01 12:00:00" (UTC, whole seconds) for tables.
std::string format_utc(WallTime t);
// "45s", "5m", "2h 5m", "3d 4h": the largest two units, truncated. Negative counts as 0.
std::string format_age(std::chrono::milliseconds d);
// "5m ago" for the past, "in 5m" for the future, "now" within a second.
std::string format_ago(WallTime t, WallTime now);
// "2024-05-01 12:00:00 (5m ago)".
std::string format_when(WallTime t, WallTime now);

// Text safe for a terminal: control characters and invalid UTF-8 are shown as escapes (\n, \t,
// \x1b, ...); with `keep_newlines`, '\n' stays a line break.
std::string printable(std::string_view text, bool keep_newlines = false);
// A one-line preview of a payload of at most `max_chars` characters (ending in "…" when cut);
// "<N bytes binary>" when the bytes are not UTF-8 text, "<empty>" when there are none.
std::string payload_preview(std::string_view payload, std::size_t max_chars = 40);
// Cuts `text` to `max_chars` characters, ending in "…" when cut.
std::string truncate_chars(std::string_view text, std::size_t max_chars);
// A database error for one line of output: libpq's "ERROR:  " prefix, the LINE/caret context of a
// SQL error and line breaks go; hint lines are kept, joined with a space.
std::string one_line_error(std::string_view message);

// Columns padded to the widest cell (in characters), separated by two spaces, no trailing blanks.
// Cells are printed as given: pass them through printable() first.
class Table {
 public:
  explicit Table(std::vector<std::string> header) : header_(std::move(header)) {}
  void add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  bool empty() const { return rows_.empty(); }
  void print(std::ostream& out, const std::string& indent = "") const;

 private:
  std::vector<std::string> header_;
  std::vector<std::vector<std::string>> rows_;
};

}  // namespace relay::admin
