#include "relay/common/http_header.h"

#include <array>
#include <cctype>

namespace relay {

bool istarts_with(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && iequals_ascii(s.substr(0, prefix.size()), prefix);
}

bool iequals_ascii(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i])))
      return false;
  }
  return true;
}

bool is_relay_reserved_header(std::string_view name) {
  constexpr std::array<std::string_view, 7> kExact = {"idempotency-key",
                                                      "content-type",
                                                      "content-length",
                                                      "host",
                                                      "transfer-encoding",
                                                      "connection",
                                                      "te"};
  constexpr std::array<std::string_view, 3> kPrefixes = {"webhook-", "ce-", "relay-"};
  for (auto n : kExact) {
    if (iequals_ascii(name, n)) return true;
  }
  for (auto p : kPrefixes) {
    if (istarts_with(name, p)) return true;
  }
  return false;
}

bool is_http_token(std::string_view name) {
  if (name.empty()) return false;
  for (unsigned char c : name) {
    if (c < 0x80 && std::isalnum(c)) continue;
    if (std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos)
      continue;
    return false;
  }
  return true;
}

bool is_http_field_value(std::string_view value) {
  for (unsigned char c : value) {
    if ((c < 0x20 && c != '\t') || c == 0x7f) return false;
  }
  return true;
}

}  // namespace relay
