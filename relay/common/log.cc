#include "relay/common/log.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <mutex>

#include "relay/common/time_format.h"

namespace relay {
namespace {

std::atomic<LogLevel> g_level{LogLevel::kInfo};
std::atomic<LogFormat> g_format{LogFormat::kText};
std::mutex g_write_mu;

const char* level_name(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return "debug";
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kWarn:
      return "warn";
    case LogLevel::kError:
      return "error";
  }
  return "info";
}

std::string json_escape(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 2);
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20)
          out += fmt::format("\\u{:04x}", c);
        else
          out += static_cast<char>(c);
    }
  }
  return out;
}

// A value with spaces or quotes is quoted so a line stays machine-splittable.
std::string text_value(std::string_view v) {
  if (v.find_first_of(" \"=\t\n") == std::string_view::npos && !v.empty()) return std::string(v);
  // Built by appending: GCC 12 at -O2 reports a false -Wrestrict on "x" + std::string + "x" (PR
  // 105329).
  std::string out = "\"";
  out += json_escape(v);
  out += '"';
  return out;
}

std::string timestamp() {
  // Logging is the one place besides SystemClock that reads the wall clock: a log line's time is
  // for people, never for decisions.
  return format_rfc3339(std::chrono::system_clock::now(), 3);
}

}  // namespace

void set_log_level(LogLevel level) { g_level = level; }
void set_log_format(LogFormat format) { g_format = format; }

void Logger::log(LogLevel level, std::string_view msg, const LogFields& fields) const {
  if (level < g_level.load()) return;
  std::string line;
  if (g_format.load() == LogFormat::kJson) {
    line = fmt::format(R"({{"ts":"{}","level":"{}","component":"{}","msg":"{}")", timestamp(),
                       level_name(level), component_, json_escape(msg));
    for (const auto& [k, v] : fields)
      line += fmt::format(R"(,"{}":"{}")", json_escape(k), json_escape(v));
    line += "}\n";
  } else {
    line = fmt::format("{} {:<5} {} {}", timestamp(), level_name(level), component_, msg);
    for (const auto& [k, v] : fields) line += fmt::format(" {}={}", k, text_value(v));
    line += "\n";
  }
  std::lock_guard lock(g_write_mu);
  std::fwrite(line.data(), 1, line.size(), stderr);
}

}  // namespace relay
