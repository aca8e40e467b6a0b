// libFuzzer target for the shared text parsers in relay/common that read bytes from outside:
// RFC 3339 times (envelope `time`, --since/--until), HTTP-dates (Retry-After), endpoint URLs
// (config, --ops-url), base64 (data_base64, whsec_ secrets) and the UTF-8 check. Every input goes
// through all of them. Beyond "no crash" (and no ASan/UBSan report), it checks:
//  - RFC 3339: what the strict form accepts, the lenient options accept with the same value; an
//    accepted time re-parses from format_rfc3339(t, 9) to the same time point;
//  - HTTP-date: an accepted date (in the years a time point holds) re-parses from
//    format_http_date to the same second;
//  - endpoint: an accepted URL re-parses from its own `url` to the same parts, within bounds
//    (a host, a port in 1..65535, a path starting with '/', no credentials);
//  - base64: decoded bytes encode and decode again to the same bytes, 3 bytes per 4 characters;
//  - UTF-8: is_valid_utf8 agrees with walking utf8_sequence_length, and a valid input stays valid
//    when cut between sequences.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "relay/common/base64.h"
#include "relay/common/endpoint.h"
#include "relay/common/time_format.h"
#include "relay/common/utf8.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

void check_rfc3339(std::string_view input) {
  const auto strict = relay::parse_rfc3339_time(input);
  const auto lenient =
      relay::parse_rfc3339_time(input, {.date_only_ok = true, .space_separator_ok = true});
  if (strict) {
    FUZZ_CHECK(lenient.has_value());
    FUZZ_CHECK(lenient->unix_seconds == strict->unix_seconds);
    FUZZ_CHECK(lenient->nanos == strict->nanos && strict->nanos >= 0 &&
               strict->nanos < 1'000'000'000);
    FUZZ_CHECK(strict->year >= 0 && strict->year <= 9999);
  }
  if (const auto t = relay::parse_rfc3339(input)) {
    FUZZ_CHECK(strict.has_value());
    FUZZ_CHECK(relay::parse_rfc3339(relay::format_rfc3339(*t, 9)) == t);
  }
}

void check_http_date(std::string_view input) {
  const auto date = relay::parse_http_date(input);
  if (!date) return;
  FUZZ_CHECK(input.size() == 29);
  const auto secs = date->time_since_epoch().count();
  const auto wall = relay::wall_time_from_unix(secs, 0);
  if (!wall) return;  // beyond what a nanosecond time point holds
  FUZZ_CHECK(relay::parse_http_date(relay::format_http_date(*wall)) == date);
}

void check_endpoint(std::string_view input) {
  const auto ep = relay::parse_endpoint(input);
  if (!ep) {
    FUZZ_CHECK(ep.error().code == relay::ErrorCode::kInvalidArgument);
    return;
  }
  FUZZ_CHECK(ep->url == input);
  FUZZ_CHECK(!ep->host.empty());
  FUZZ_CHECK(ep->port >= 1 && ep->port <= 65535);
  FUZZ_CHECK(!ep->path.empty() && ep->path.front() == '/');
  const std::size_t host_start = input.find("://") + 3;
  const std::string_view authority =
      input.substr(host_start, input.find_first_of("/?#", host_start) - host_start);
  FUZZ_CHECK(authority.find('@') == std::string_view::npos);  // never credentials
  const auto again = relay::parse_endpoint(ep->url);
  FUZZ_CHECK(again.has_value());
  FUZZ_CHECK(again->tls == ep->tls && again->host == ep->host && again->port == ep->port &&
             again->path == ep->path);
}

void check_base64(std::string_view input) {
  const auto bytes = relay::base64_decode(input);
  if (!bytes) return;
  FUZZ_CHECK(input.size() % 4 == 0);
  FUZZ_CHECK((bytes->size() + 2) / 3 * 4 == input.size());
  const auto again = relay::base64_decode(relay::base64_encode(*bytes));
  FUZZ_CHECK(again.has_value() && *again == *bytes);
}

void check_utf8(std::string_view input) {
  bool walked = true;
  std::size_t cut = 0;  // the end of a sequence in the middle, if any
  for (std::size_t i = 0; i < input.size();) {
    const std::size_t n = relay::utf8_sequence_length(input, i);
    if (n == 0) {
      walked = false;
      break;
    }
    FUZZ_CHECK(n <= 4 && i + n <= input.size());
    i += n;
    if (cut == 0 && i >= input.size() / 2) cut = i;
  }
  FUZZ_CHECK(relay::is_valid_utf8(input) == walked);
  if (walked) {
    FUZZ_CHECK(relay::is_valid_utf8(input.substr(0, cut)));
    FUZZ_CHECK(relay::is_valid_utf8(input.substr(cut)));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  check_rfc3339(input);
  check_http_date(input);
  check_endpoint(input);
  check_base64(input);
  check_utf8(input);
  return 0;
}
