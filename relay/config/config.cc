#include "relay/config/config.h"

#include <fmt/format.h>

namespace relay::config {

const char* to_string(VerifyScheme scheme) {
  switch (scheme) {
    case VerifyScheme::kStandardWebhooks:
      return "standard-webhooks";
    case VerifyScheme::kStripe:
      return "stripe";
    case VerifyScheme::kGithub:
      return "github";
    case VerifyScheme::kShopify:
      return "shopify";
  }
  return "standard-webhooks";
}

std::string escape_control_characters(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7f) {
      out += fmt::format("\\x{:02x}", c);
    } else if (c == 0xc2 && i + 1 < text.size() &&
               static_cast<unsigned char>(text[i + 1]) >= 0x80 &&
               static_cast<unsigned char>(text[i + 1]) <= 0x9f) {
      // A C1 control in UTF-8 (U+0080..U+009F; U+0085 is NEXT LINE to some terminals).
      out += fmt::format("\\u{:04x}", static_cast<unsigned char>(text[i + 1]));
      ++i;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

std::string ConfigError::to_string() const {
  // Keys and values come from the file: a newline in them must not start a line of its own that
  // reads like another error.
  std::string where = escape_control_characters(file);
  if (line > 0) where += fmt::format(":{}:{}", line, column);
  const std::string text = escape_control_characters(message);
  if (key_path.empty()) return fmt::format("{}: {}", where, text);
  return fmt::format("{}: {}: {}", where, escape_control_characters(key_path), text);
}

}  // namespace relay::config
