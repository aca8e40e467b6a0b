#include "relay/admin/format.h"

#include <fmt/format.h>
#include <time.h>

#include <algorithm>
#include <cctype>
#include <cstdint>

#include "relay/common/duration.h"

namespace relay::admin {
namespace {

using std::chrono::duration_cast;
using std::chrono::microseconds;
using std::chrono::milliseconds;

// Length of the UTF-8 sequence starting at s[i], or 0 if it is not a valid one (overlongs,
// surrogates and code points above U+10FFFF included).
std::size_t utf8_sequence(std::string_view s, std::size_t i) {
  const auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = b(i);
  if (c < 0x80) return 1;
  std::size_t len = 0;
  std::uint32_t cp = 0;
  if ((c & 0xE0) == 0xC0) {
    len = 2;
    cp = c & 0x1F;
  } else if ((c & 0xF0) == 0xE0) {
    len = 3;
    cp = c & 0x0F;
  } else if ((c & 0xF8) == 0xF0) {
    len = 4;
    cp = c & 0x07;
  } else {
    return 0;
  }
  if (i + len > s.size()) return 0;
  for (std::size_t k = 1; k < len; ++k) {
    if ((b(i + k) & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (b(i + k) & 0x3F);
  }
  static constexpr std::uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < kMin[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return len;
}

std::size_t char_count(std::string_view s) {
  std::size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

bool read_digits(std::string_view s, std::size_t& i, std::size_t n, int& out) {
  if (i + n > s.size()) return false;
  out = 0;
  for (std::size_t k = 0; k < n; ++k) {
    if (!std::isdigit(static_cast<unsigned char>(s[i + k]))) return false;
    out = out * 10 + (s[i + k] - '0');
  }
  i += n;
  return true;
}

bool expect(std::string_view s, std::size_t& i, char c) {
  if (i < s.size() && s[i] == c) {
    ++i;
    return true;
  }
  return false;
}

}  // namespace

namespace {
// The years parse_timestamp accepts; with any UTC offset and a 100-year duration subtracted
// (parse_time_bound) the result still fits a nanosecond time_point.
constexpr int kMinYear = 1970;
constexpr int kMaxYear = 2261;
}  // namespace

Result<WallTime> parse_timestamp(std::string_view text) {
  const auto bad = [&] {
    return Error{
        ErrorCode::kInvalidArgument,
        fmt::format("invalid timestamp \"{}\" (expected RFC 3339, e.g. 2024-05-01T12:00:00Z)",
                    text)};
  };
  std::size_t i = 0;
  int year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0;
  if (!read_digits(text, i, 4, year) || !expect(text, i, '-') || !read_digits(text, i, 2, month) ||
      !expect(text, i, '-') || !read_digits(text, i, 2, day)) {
    return bad();
  }
  long long micros = 0;
  int offset_minutes = 0;
  if (i < text.size()) {
    if (text[i] != 'T' && text[i] != 't' && text[i] != ' ') return bad();
    ++i;
    if (!read_digits(text, i, 2, hour) || !expect(text, i, ':') ||
        !read_digits(text, i, 2, minute) || !expect(text, i, ':') ||
        !read_digits(text, i, 2, second)) {
      return bad();
    }
    if (expect(text, i, '.')) {
      int digits = 0;
      while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
        if (digits < 6) micros = micros * 10 + (text[i] - '0');
        ++digits;
        ++i;
      }
      if (digits == 0) return bad();
      for (int k = digits; k < 6; ++k) micros *= 10;
    }
    if (expect(text, i, 'Z') || expect(text, i, 'z')) {
    } else if (i < text.size() && (text[i] == '+' || text[i] == '-')) {
      const int sign = text[i] == '-' ? -1 : 1;
      ++i;
      int oh = 0, om = 0;
      if (!read_digits(text, i, 2, oh) || !expect(text, i, ':') || !read_digits(text, i, 2, om) ||
          oh > 23 || om > 59) {
        return bad();
      }
      offset_minutes = sign * (oh * 60 + om);
    } else {
      return bad();
    }
  }
  if (i != text.size() || month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 ||
      minute > 59 || second > 60) {
    return bad();
  }
  // A system_clock::time_point counts nanoseconds in 64 bits: about 1677..2262. Refuse what it
  // cannot hold instead of overflowing (a typo like 9999-01-01 is UB otherwise).
  if (year < kMinYear || year > kMaxYear) {
    return Error{
        ErrorCode::kInvalidArgument,
        fmt::format("timestamp \"{}\" is out of range (years {} to {})", text, kMinYear, kMaxYear)};
  }
  struct tm tm {};
  tm.tm_year = year - 1900;
  tm.tm_mon = month - 1;
  tm.tm_mday = day;
  tm.tm_hour = hour;
  tm.tm_min = minute;
  tm.tm_sec = second;
  const time_t secs = timegm(&tm);
  if (tm.tm_mday != day) return bad();  // timegm normalized e.g. Feb 30
  const auto since_epoch =
      std::chrono::seconds(secs - offset_minutes * 60LL) + microseconds(micros);
  return WallTime{duration_cast<WallTime::duration>(since_epoch)};
}

Result<WallTime> parse_time_bound(std::string_view flag, std::string_view text, WallTime now) {
  if (auto d = parse_duration(text)) return now - *d;
  auto t = parse_timestamp(text);
  if (t) return *t;
  if (t.error().message.find("out of range") != std::string::npos)
    return Error{ErrorCode::kInvalidArgument, fmt::format("{}: {}", flag, t.error().message)};
  return Error{
      ErrorCode::kInvalidArgument,
      fmt::format(
          "{}: invalid value \"{}\": expected a duration like 30m, 2h, 7d (meaning that long ago) "
          "or an RFC 3339 timestamp like 2024-05-01T12:00:00Z",
          flag, text)};
}

std::string format_rfc3339(WallTime t) {
  const auto us = duration_cast<microseconds>(t.time_since_epoch()).count();
  long long secs = us / 1'000'000;
  long long frac = us % 1'000'000;
  if (frac < 0) {
    frac += 1'000'000;
    --secs;
  }
  const time_t tt = static_cast<time_t>(secs);
  struct tm tm {};
  gmtime_r(&tt, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z", tm.tm_year + 1900, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
}

std::string format_utc(WallTime t) {
  std::string s = format_rfc3339(t);
  s[10] = ' ';
  return s.substr(0, 19);
}

std::string format_age(milliseconds d) {
  long long s = std::max<long long>(0, d.count() / 1000);
  if (s < 60) return fmt::format("{}s", s);
  const long long m = s / 60;
  if (m < 60) return fmt::format("{}m", m);
  const long long h = m / 60;
  if (h < 24) return m % 60 == 0 ? fmt::format("{}h", h) : fmt::format("{}h {}m", h, m % 60);
  return h % 24 == 0 ? fmt::format("{}d", h / 24) : fmt::format("{}d {}h", h / 24, h % 24);
}

std::string format_ago(WallTime t, WallTime now) {
  const auto d = duration_cast<milliseconds>(now - t);
  if (d.count() > -1000 && d.count() < 1000) return "now";
  if (d.count() < 0) return "in " + format_age(-d);
  return format_age(d) + " ago";
}

std::string format_when(WallTime t, WallTime now) {
  return format_utc(t) + " (" + format_ago(t, now) + ")";
}

bool valid_utf8(std::string_view bytes) {
  for (std::size_t i = 0; i < bytes.size();) {
    const std::size_t n = utf8_sequence(bytes, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

std::string printable(std::string_view text, bool keep_newlines) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size();) {
    const auto c = static_cast<unsigned char>(text[i]);
    const std::size_t n = utf8_sequence(text, i);
    if (n == 0) {
      out += fmt::format("\\x{:02x}", c);
      ++i;
      continue;
    }
    if (n == 1 && (c < 0x20 || c == 0x7F)) {
      if (c == '\n' && keep_newlines)
        out += '\n';
      else if (c == '\n')
        out += "\\n";
      else if (c == '\t')
        out += "\\t";
      else if (c == '\r')
        out += "\\r";
      else
        out += fmt::format("\\x{:02x}", c);
      ++i;
      continue;
    }
    // C1 controls (U+0080..U+009F) steer terminals too.
    if (n == 2 && c == 0xC2 && static_cast<unsigned char>(text[i + 1]) < 0xA0) {
      out += fmt::format("\\u{:04x}", static_cast<unsigned char>(text[i + 1]));
      i += 2;
      continue;
    }
    out.append(text.substr(i, n));
    i += n;
  }
  return out;
}

std::string truncate_chars(std::string_view text, std::size_t max_chars) {
  if (char_count(text) <= max_chars) return std::string(text);
  if (max_chars == 0) return "";
  std::string out;
  std::size_t chars = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const bool starts_char = (static_cast<unsigned char>(text[i]) & 0xC0) != 0x80;
    if (starts_char && ++chars > max_chars - 1) break;
    out += text[i];
  }
  return out + "…";
}

std::string payload_preview(std::string_view payload, std::size_t max_chars) {
  if (payload.empty()) return "<empty>";
  if (!valid_utf8(payload)) return fmt::format("<{} bytes binary>", payload.size());
  // One line: runs of whitespace (pretty-printed JSON) become one space.
  std::string flat;
  bool in_space = false;
  for (char c : payload) {
    if (c == ' ' || c == '\n' || c == '\t' || c == '\r') {
      if (!in_space && !flat.empty()) flat += ' ';
      in_space = true;
    } else {
      flat += c;
      in_space = false;
    }
    if (flat.size() > max_chars * 4 + 8) break;  // enough to cut from; keeps huge payloads cheap
  }
  while (!flat.empty() && flat.back() == ' ') flat.pop_back();
  // Cut before escaping so the escapes never split; cut again in case they lengthened it.
  return truncate_chars(printable(truncate_chars(flat, max_chars)), max_chars + 3);
}

std::string base64_encode(std::string_view bytes) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const std::uint32_t v = (static_cast<unsigned char>(bytes[i]) << 16) |
                            (static_cast<unsigned char>(bytes[i + 1]) << 8) |
                            static_cast<unsigned char>(bytes[i + 2]);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  if (i < bytes.size()) {
    std::uint32_t v = static_cast<unsigned char>(bytes[i]) << 16;
    if (i + 1 < bytes.size()) v |= static_cast<unsigned char>(bytes[i + 1]) << 8;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += i + 1 < bytes.size() ? kAlphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

std::string one_line_error(std::string_view message) {
  std::string out;
  size_t start = 0;
  while (start < message.size()) {
    size_t nl = message.find('\n', start);
    if (nl == std::string_view::npos) nl = message.size();
    std::string_view line = message.substr(start, nl - start);
    start = nl + 1;
    while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) line.remove_prefix(1);
    while (!line.empty() && (line.back() == ' ' || line.back() == '\t' || line.back() == '\r'))
      line.remove_suffix(1);
    if (line.empty() || line.rfind("LINE ", 0) == 0 ||
        line.find_first_not_of(" ^") == std::string_view::npos)
      continue;
    if (line.rfind("ERROR:", 0) == 0) {
      line.remove_prefix(6);
      while (!line.empty() && line.front() == ' ') line.remove_prefix(1);
    }
    if (!out.empty()) out += ' ';
    out += line;
  }
  return printable(out);
}

void Table::print(std::ostream& out, const std::string& indent) const {
  std::vector<std::size_t> width(header_.size(), 0);
  const auto measure = [&](const std::vector<std::string>& row) {
    for (std::size_t c = 0; c < row.size() && c < width.size(); ++c)
      width[c] = std::max(width[c], char_count(row[c]));
  };
  measure(header_);
  for (const auto& r : rows_) measure(r);
  const auto emit = [&](const std::vector<std::string>& row) {
    std::string line = indent;
    for (std::size_t c = 0; c < row.size() && c < width.size(); ++c) {
      line += row[c];
      if (c + 1 < row.size()) line += std::string(width[c] - char_count(row[c]) + 2, ' ');
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out << line << '\n';
  };
  emit(header_);
  for (const auto& r : rows_) emit(r);
}

}  // namespace relay::admin
