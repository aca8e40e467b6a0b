#include "relay/config/interpolate.h"

#include <fmt/format.h>

#include <optional>
#include <vector>

namespace relay::config {
namespace {

bool is_name_start(char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_'; }
bool is_name_char(char c) { return is_name_start(c) || (c >= '0' && c <= '9'); }

bool is_valid_name(std::string_view name) {
  if (name.empty() || !is_name_start(name.front())) return false;
  for (char c : name) {
    if (!is_name_char(c)) return false;
  }
  return true;
}

}  // namespace

Result<std::string> interpolate(std::string_view text, const EnvLookup& env) {
  std::string out;
  out.reserve(text.size());
  std::vector<std::string> missing;
  std::size_t i = 0;
  while (i < text.size()) {
    if (text.substr(i, 3) == "$${") {
      out += "${";
      i += 3;
      continue;
    }
    if (text.substr(i, 2) != "${") {
      out += text[i];
      ++i;
      continue;
    }
    const std::size_t close = text.find('}', i + 2);
    if (close == std::string_view::npos) {
      return Error{
          ErrorCode::kInvalidArgument,
          "unterminated \"${\" (expected ${NAME} or ${NAME:-default}; write $${ for a literal ${)"};
    }
    const std::string_view body = text.substr(i + 2, close - i - 2);
    std::string_view name = body;
    std::optional<std::string_view> fallback;
    if (const std::size_t sep = body.find(":-"); sep != std::string_view::npos) {
      name = body.substr(0, sep);
      fallback = body.substr(sep + 2);
    }
    if (!is_valid_name(name)) {
      return Error{
          ErrorCode::kInvalidArgument,
          "invalid variable reference (expected ${NAME} or ${NAME:-default}, NAME made of letters, "
          "digits and _; write $${ for a literal ${)"};
    }
    std::optional<std::string> value;
    if (env) value = env(std::string(name));
    if (fallback && (!value || value->empty())) {
      out += *fallback;
    } else if (value) {
      out += *value;
    } else {
      missing.emplace_back(name);
    }
    i = close + 1;
  }
  if (missing.size() == 1) {
    return Error{
        ErrorCode::kInvalidArgument,
        fmt::format("environment variable {} is not set and has no default (use ${{{}:-default}})",
                    missing.front(), missing.front())};
  }
  if (!missing.empty()) {
    return Error{ErrorCode::kInvalidArgument,
                 fmt::format("environment variables {} are not set and have no default",
                             fmt::join(missing, ", "))};
  }
  return out;
}

}  // namespace relay::config
