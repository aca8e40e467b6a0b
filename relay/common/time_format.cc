#include "relay/common/time_format.h"

#include <fmt/format.h>

#include <array>
#include <limits>

namespace relay {
namespace {

using namespace std::chrono;

constexpr std::array<std::string_view, 7> kWeekdays = {"Sun", "Mon", "Tue", "Wed",
                                                       "Thu", "Fri", "Sat"};
constexpr std::array<std::string_view, 12> kMonths = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                      "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

// Seconds since the epoch that WallTime (nanoseconds in int64 with libstdc++) can hold, with a
// margin for the fraction: years 1678..2261.
constexpr std::int64_t kMaxAbsSeconds =
    std::numeric_limits<std::int64_t>::max() / 1'000'000'000 - 1;

// Reads exactly n digits at text[pos], advancing pos.
std::optional<int> read_digits(std::string_view text, std::size_t& pos, std::size_t n) {
  if (pos + n > text.size()) return std::nullopt;
  int v = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const char c = text[pos + i];
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + (c - '0');
  }
  pos += n;
  return v;
}

bool read_literal(std::string_view text, std::size_t& pos, char a, char b = '\0') {
  if (pos < text.size() && (text[pos] == a || (b != '\0' && text[pos] == b))) {
    ++pos;
    return true;
  }
  return false;
}

// Seconds since the epoch of a checked calendar time; nullopt if the date does not exist or a
// field is out of range. Second 60 counts as the next minute's first second.
std::optional<std::int64_t> unix_seconds(int year, int month, int day, int hour, int minute,
                                         int second) {
  if (month < 1 || month > 12 || day < 1 || day > 31) return std::nullopt;
  const year_month_day ymd{std::chrono::year{year},
                           std::chrono::month{static_cast<unsigned>(month)},
                           std::chrono::day{static_cast<unsigned>(day)}};
  if (!ymd.ok() || hour > 23 || minute > 59 || second > 60) return std::nullopt;
  return std::int64_t{sys_days{ymd}.time_since_epoch().count()} * 86'400 + hour * 3'600 +
         minute * 60 + second;
}

}  // namespace

std::string format_rfc3339(WallTime t, int fraction_digits) {
  const auto day = floor<days>(t);
  const year_month_day ymd{day};
  const hh_mm_ss hms{floor<nanoseconds>(t - day)};
  std::string out =
      fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}", static_cast<int>(ymd.year()),
                  static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                  hms.hours().count(), hms.minutes().count(), hms.seconds().count());
  if (fraction_digits > 0) {
    std::int64_t fraction = hms.subseconds().count();
    for (int i = fraction_digits; i < 9; ++i) fraction /= 10;
    out += fmt::format(".{:0{}}", fraction, fraction_digits);
  }
  out += 'Z';
  return out;
}

std::optional<Rfc3339Time> parse_rfc3339_time(std::string_view text, Rfc3339Options options) {
  std::size_t pos = 0;
  const auto year = read_digits(text, pos, 4);
  if (!year || !read_literal(text, pos, '-')) return std::nullopt;
  const auto month = read_digits(text, pos, 2);
  if (!month || !read_literal(text, pos, '-')) return std::nullopt;
  const auto day = read_digits(text, pos, 2);
  if (!day) return std::nullopt;
  if (pos == text.size() && options.date_only_ok) {
    const auto secs = unix_seconds(*year, *month, *day, 0, 0, 0);
    if (!secs) return std::nullopt;
    return Rfc3339Time{.year = *year, .unix_seconds = *secs, .nanos = 0};
  }
  if (!read_literal(text, pos, 'T', 't') &&
      !(options.space_separator_ok && read_literal(text, pos, ' '))) {
    return std::nullopt;
  }
  const auto hour = read_digits(text, pos, 2);
  if (!hour || !read_literal(text, pos, ':')) return std::nullopt;
  const auto minute = read_digits(text, pos, 2);
  if (!minute || !read_literal(text, pos, ':')) return std::nullopt;
  const auto second = read_digits(text, pos, 2);
  if (!second) return std::nullopt;
  std::int32_t nanos = 0;
  if (read_literal(text, pos, '.')) {
    int n = 0;
    while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') {
      if (n < 9) nanos = nanos * 10 + (text[pos] - '0');
      ++n;
      ++pos;
    }
    if (n == 0) return std::nullopt;
    for (int i = n; i < 9; ++i) nanos *= 10;
  }
  int offset_minutes = 0;
  if (!read_literal(text, pos, 'Z', 'z')) {
    if (pos >= text.size() || (text[pos] != '+' && text[pos] != '-')) return std::nullopt;
    const int sign = text[pos] == '-' ? -1 : 1;
    ++pos;
    const auto off_h = read_digits(text, pos, 2);
    if (!off_h || !read_literal(text, pos, ':')) return std::nullopt;
    const auto off_m = read_digits(text, pos, 2);
    if (!off_m || *off_h > 23 || *off_m > 59) return std::nullopt;
    offset_minutes = sign * (*off_h * 60 + *off_m);
  }
  if (pos != text.size()) return std::nullopt;
  const auto secs = unix_seconds(*year, *month, *day, *hour, *minute, *second);
  if (!secs) return std::nullopt;
  return Rfc3339Time{.year = *year, .unix_seconds = *secs - offset_minutes * 60LL, .nanos = nanos};
}

std::optional<WallTime> wall_time_from_unix(std::int64_t secs, std::int64_t nanos) {
  if (secs > kMaxAbsSeconds || secs < -kMaxAbsSeconds) return std::nullopt;
  return WallTime{duration_cast<WallTime::duration>(seconds{secs} + nanoseconds{nanos})};
}

std::optional<WallTime> parse_rfc3339(std::string_view text, Rfc3339Options options) {
  const auto t = parse_rfc3339_time(text, options);
  if (!t) return std::nullopt;
  return wall_time_from_unix(t->unix_seconds, t->nanos);
}

std::string format_http_date(WallTime t) {
  const auto day = floor<days>(t);
  const year_month_day ymd{day};
  const hh_mm_ss hms{floor<seconds>(t - day)};
  const weekday wd{day};
  return fmt::format("{}, {:02} {} {:04} {:02}:{:02}:{:02} GMT", kWeekdays[wd.c_encoding()],
                     static_cast<unsigned>(ymd.day()),
                     kMonths[static_cast<unsigned>(ymd.month()) - 1], static_cast<int>(ymd.year()),
                     hms.hours().count(), hms.minutes().count(), hms.seconds().count());
}

std::optional<sys_seconds> parse_http_date(std::string_view s) {
  // "Sun, 06 Nov 1994 08:49:37 GMT" is exactly 29 characters.
  if (s.size() != 29) return std::nullopt;
  bool weekday_ok = false;
  for (auto d : kWeekdays) weekday_ok = weekday_ok || s.substr(0, 3) == d;
  if (!weekday_ok || s.substr(3, 2) != ", " || s[7] != ' ' || s[11] != ' ' || s[16] != ' ' ||
      s[19] != ':' || s[22] != ':' || s.substr(25) != " GMT") {
    return std::nullopt;
  }
  int month = 0;
  for (std::size_t i = 0; i < kMonths.size(); ++i) {
    if (s.substr(8, 3) == kMonths[i]) month = static_cast<int>(i) + 1;
  }
  if (month == 0) return std::nullopt;
  std::size_t pos = 5;
  const auto day = read_digits(s, pos, 2);
  pos = 12;
  const auto year = read_digits(s, pos, 4);
  pos = 17;
  const auto hour = read_digits(s, pos, 2);
  pos = 20;
  const auto minute = read_digits(s, pos, 2);
  pos = 23;
  const auto second = read_digits(s, pos, 2);
  if (!day || !year || !hour || !minute || !second) return std::nullopt;
  const auto secs = unix_seconds(*year, month, *day, *hour, *minute, *second);
  if (!secs) return std::nullopt;
  return sys_seconds{seconds{*secs}};
}

}  // namespace relay
