#include "relay/admin/format.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cstdint>

#include "relay/common/duration.h"
#include "relay/common/time_format.h"
#include "relay/common/utf8.h"

namespace relay::admin {
namespace {

using std::chrono::duration_cast;
using std::chrono::microseconds;
using std::chrono::milliseconds;

std::size_t char_count(std::string_view s) {
  std::size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

// The years parse_timestamp accepts; with any UTC offset and a 100-year duration subtracted
// (parse_time_bound) the result still fits a nanosecond time_point.
constexpr int kMinYear = 1970;
constexpr int kMaxYear = 2261;
}  // namespace

Result<WallTime> parse_timestamp(std::string_view text) {
  const auto t = parse_rfc3339_time(text, {.date_only_ok = true, .space_separator_ok = true});
  if (!t) {
    return Error{
        ErrorCode::kInvalidArgument,
        fmt::format("invalid timestamp \"{}\" (expected RFC 3339, e.g. 2024-05-01T12:00:00Z)",
                    text)};
  }
  // A system_clock::time_point counts nanoseconds in 64 bits: about 1677..2262. Refuse what it
  // cannot hold instead of overflowing (a typo like 9999-01-01 is UB otherwise).
  if (t->year < kMinYear || t->year > kMaxYear) {
    return Error{
        ErrorCode::kInvalidArgument,
        fmt::format("timestamp \"{}\" is out of range (years {} to {})", text, kMinYear, kMaxYear)};
  }
  // Microseconds, PostgreSQL's precision: further digits are dropped.
  const auto since_epoch = std::chrono::seconds(t->unix_seconds) + microseconds(t->nanos / 1000);
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

std::string format_utc(WallTime t) {
  std::string s = format_rfc3339(t, 0);
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

std::string printable(std::string_view text, bool keep_newlines) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size();) {
    const auto c = static_cast<unsigned char>(text[i]);
    const std::size_t n = utf8_sequence_length(text, i);
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
  if (!is_valid_utf8(payload)) return fmt::format("<{} bytes binary>", payload.size());
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
