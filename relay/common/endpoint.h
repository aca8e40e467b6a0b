#pragma once
// Endpoint URLs: the one parser that both the config loader (check-config, and run before it
// starts anything) and the HTTP sender use, so whatever check-config accepts, run can send to.
// Pure functions; thread-safe.

#include <string>
#include <string_view>

#include "relay/common/result.h"

namespace relay {

// An endpoint URL, parsed once (by the config loader) and split for the HTTP client.
struct Endpoint {
  std::string url;   // as written; parse_endpoint refuses credentials in it, so it may be shown
  bool tls = false;  // https://
  std::string host;  // without brackets for an IPv6 literal
  int port = 80;     // 443 for https:// when the URL names none
  std::string path;  // starts with '/', may carry a query
};

// Parses http(s)://host[:port][/path[?query]] (scheme case-insensitive). kInvalidArgument, with a
// message that never quotes the URL (it may carry credentials), for any other scheme, whitespace,
// userinfo (user@ or user:password@), an empty host or a host with other characters than letters,
// digits, '-', '.', '_' (or an IPv6 literal in brackets), an empty port or one outside 1..65535,
// a fragment, or path characters that must be percent-encoded. The message reads after "endpoint"
// ("must be an http:// or https:// URL, ...").
Result<Endpoint> parse_endpoint(std::string_view url);

}  // namespace relay
