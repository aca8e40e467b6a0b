#include "relay/common/time_format.h"

#include <catch2/catch.hpp>
#include <string>

using namespace std::chrono_literals;
using relay::format_http_date;
using relay::format_rfc3339;
using relay::parse_http_date;
using relay::parse_rfc3339;
using relay::parse_rfc3339_time;
using relay::Rfc3339Options;
using relay::WallTime;

namespace {

// 2024-05-01T12:00:00Z
constexpr auto kMay1Noon = std::chrono::seconds{1'714'564'800};

WallTime at(std::chrono::nanoseconds since_epoch) {
  return WallTime{std::chrono::duration_cast<WallTime::duration>(since_epoch)};
}

}  // namespace

TEST_CASE("format_rfc3339 writes UTC with the asked number of fraction digits, rounding down",
          "[common]") {
  const WallTime t = at(kMay1Noon + 123'456'789ns);
  CHECK(format_rfc3339(t, 0) == "2024-05-01T12:00:00Z");
  CHECK(format_rfc3339(t, 3) == "2024-05-01T12:00:00.123Z");
  CHECK(format_rfc3339(t, 6) == "2024-05-01T12:00:00.123456Z");
  CHECK(format_rfc3339(t, 9) == "2024-05-01T12:00:00.123456789Z");
  CHECK(format_rfc3339(at(kMay1Noon + 5ms), 6) == "2024-05-01T12:00:00.005000Z");
  CHECK(format_rfc3339(WallTime{}, 6) == "1970-01-01T00:00:00.000000Z");
  // Before 1970 the fraction still counts forward from the (earlier) second.
  CHECK(format_rfc3339(at(-1ms), 3) == "1969-12-31T23:59:59.999Z");
  CHECK(format_rfc3339(at(-1us), 6) == "1969-12-31T23:59:59.999999Z");
}

TEST_CASE("parse_rfc3339 reads RFC 3339 date-times with any offset and fraction", "[common]") {
  CHECK(parse_rfc3339("2024-05-01T12:00:00Z") == at(kMay1Noon));
  CHECK(parse_rfc3339("2024-05-01t12:00:00z") == at(kMay1Noon));
  CHECK(parse_rfc3339("2024-05-01T14:30:00+02:30") == at(kMay1Noon));
  CHECK(parse_rfc3339("2024-05-01T00:00:00-12:00") == at(kMay1Noon));
  CHECK(parse_rfc3339("2024-05-01T12:00:00.5Z") == at(kMay1Noon + 500ms));
  CHECK(parse_rfc3339("2024-05-01T12:00:00.123456789Z") == at(kMay1Noon + 123'456'789ns));
  // Digits beyond nanoseconds are ignored.
  CHECK(parse_rfc3339("2024-05-01T12:00:00.1234567891234Z") == at(kMay1Noon + 123'456'789ns));
  CHECK(parse_rfc3339("2024-02-29T00:00:00Z").has_value());  // a leap year
  CHECK(parse_rfc3339("1969-12-31T23:59:59Z") == at(-1s));
}

TEST_CASE("parse_rfc3339 reads second 60 as the next minute's first second", "[common]") {
  CHECK(parse_rfc3339("2016-12-31T23:59:60Z") == parse_rfc3339("2017-01-01T00:00:00Z"));
  CHECK(parse_rfc3339("2024-05-01T11:59:60Z") == at(kMay1Noon));
}

TEST_CASE("parse_rfc3339 refuses what is not an RFC 3339 date-time", "[common]") {
  for (const char* bad : {"",
                          "2024-05-01",
                          "2024-05-01 12:00:00Z",
                          "2024-05-01T12:00:00",
                          "2024-05-01T12:00Z",
                          "2024-05-01T12:00:00.Z",
                          "2024-05-01T12:00:00+0200",
                          "2024-05-01T12:00:00+02",
                          "2024-05-01T12:00:00 Z",
                          " 2024-05-01T12:00:00Z",
                          "2024-05-01T12:00:00Z ",
                          "24-05-01T12:00:00Z",
                          "2024-5-01T12:00:00Z",
                          "2024/05/01T12:00:00Z",
                          "2024-13-01T00:00:00Z",
                          "2024-00-01T00:00:00Z",
                          "2024-02-30T00:00:00Z",
                          "2023-02-29T00:00:00Z",
                          "2024-04-31T00:00:00Z",
                          "2024-05-00T00:00:00Z",
                          "2024-05-01T24:00:00Z",
                          "2024-05-01T12:60:00Z",
                          "2024-05-01T12:00:61Z",
                          "2024-05-01T12:00:00+24:00",
                          "2024-05-01T12:00:00+02:60",
                          "2024-05-01T12:00:00UTC",
                          "2024-05-01T12:00:00.5.5Z",
                          "+2024-05-01T12:00:00Z",
                          "2024-05-01T12:00:00GMT"}) {
    INFO("text \"" << bad << "\"");
    CHECK_FALSE(parse_rfc3339(bad).has_value());
    CHECK_FALSE(parse_rfc3339_time(bad).has_value());
  }
}

TEST_CASE("parse_rfc3339 refuses times a 64-bit nanosecond time point cannot hold", "[common]") {
  CHECK(parse_rfc3339("2262-04-11T00:00:00Z").has_value());
  CHECK_FALSE(parse_rfc3339("2262-04-12T00:00:00Z").has_value());
  CHECK(parse_rfc3339("1677-09-22T00:00:00Z").has_value());
  CHECK_FALSE(parse_rfc3339("1677-09-20T00:00:00Z").has_value());
  CHECK_FALSE(parse_rfc3339("9999-12-31T23:59:59Z").has_value());
  CHECK_FALSE(parse_rfc3339("0000-01-01T00:00:00Z").has_value());
  // ... while parse_rfc3339_time reads them, with the year as written.
  const auto far = parse_rfc3339_time("9999-12-31T23:59:59-23:59");
  REQUIRE(far.has_value());
  CHECK(far->year == 9999);
  CHECK(far->unix_seconds == 253'402'300'799LL + 23 * 3600 + 59 * 60);
}

TEST_CASE("parse_rfc3339 options allow a bare date and a space separator", "[common]") {
  const Rfc3339Options lenient{.date_only_ok = true, .space_separator_ok = true};
  CHECK(parse_rfc3339("2024-05-01", lenient) == at(kMay1Noon - 12h));
  CHECK(parse_rfc3339("2024-05-01 12:00:00Z", lenient) == at(kMay1Noon));
  CHECK(parse_rfc3339("2024-05-01 12:00:00.25+00:00", lenient) == at(kMay1Noon + 250ms));
  CHECK_FALSE(parse_rfc3339("2024-02-30", lenient).has_value());
  CHECK_FALSE(parse_rfc3339("2024-05-01T", lenient).has_value());
  CHECK_FALSE(parse_rfc3339("2024-05-01 ", lenient).has_value());
  CHECK_FALSE(parse_rfc3339("2024-05-01  12:00:00Z", lenient).has_value());
  CHECK_FALSE(parse_rfc3339("2024-05-01", {.space_separator_ok = true}).has_value());
  CHECK_FALSE(parse_rfc3339("2024-05-01 12:00:00Z", {.date_only_ok = true}).has_value());
}

TEST_CASE("parse_rfc3339 reads what format_rfc3339 writes", "[common]") {
  for (auto t : {at(kMay1Noon + 123'456'789ns), at(-1us), WallTime{}}) {
    CHECK(parse_rfc3339(format_rfc3339(t, 9)) == t);
  }
}

TEST_CASE("format_http_date writes an IMF-fixdate in whole seconds", "[common]") {
  CHECK(format_http_date(at(784'111'777s)) == "Sun, 06 Nov 1994 08:49:37 GMT");
  CHECK(format_http_date(at(784'111'777s + 999ms)) == "Sun, 06 Nov 1994 08:49:37 GMT");
  CHECK(format_http_date(at(kMay1Noon)) == "Wed, 01 May 2024 12:00:00 GMT");
  CHECK(format_http_date(WallTime{}) == "Thu, 01 Jan 1970 00:00:00 GMT");
}

TEST_CASE("parse_http_date reads IMF-fixdates, a leap second as the next minute", "[common]") {
  CHECK(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT") == std::chrono::sys_seconds{784'111'777s});
  CHECK(parse_http_date("Wed, 01 May 2024 12:00:00 GMT") == std::chrono::sys_seconds{kMay1Noon});
  CHECK(parse_http_date("Wed, 01 May 2024 11:59:60 GMT") == std::chrono::sys_seconds{kMay1Noon});
  // The day of the week is not cross-checked.
  CHECK(parse_http_date("Mon, 01 May 2024 12:00:00 GMT") == std::chrono::sys_seconds{kMay1Noon});
  CHECK(parse_http_date(format_http_date(at(kMay1Noon))) == std::chrono::sys_seconds{kMay1Noon});
}

TEST_CASE("parse_http_date refuses the obsolete forms and anything malformed", "[common]") {
  for (const char* bad : {"",
                          "Sunday, 06-Nov-94 08:49:37 GMT",
                          "Sun Nov  6 08:49:37 1994",
                          "Sun, 06 Nov 1994 08:49:37 UTC",
                          "Sun, 06 Nov 1994 08:49:37 gmt",
                          "sun, 06 Nov 1994 08:49:37 GMT",
                          "Sun, 06 nov 1994 08:49:37 GMT",
                          "Sun, 6 Nov 1994 08:49:37 GMT",
                          "Sun, 06 Nov 94 08:49:37 GMT",
                          "Sun, 06 Nov 1994 08:49:37 GMT ",
                          " Sun, 06 Nov 1994 08:49:37 GMT",
                          "Sun 06 Nov 1994 08:49:37 GMT",
                          "Sun, 06 Nov 1994 08-49-37 GMT",
                          "Sun, 31 Nov 1994 08:49:37 GMT",
                          "Sun, 00 Nov 1994 08:49:37 GMT",
                          "Sun, 29 Feb 1900 08:49:37 GMT",
                          "Sun, 06 Nov 1994 24:00:00 GMT",
                          "Sun, 06 Nov 1994 08:60:00 GMT",
                          "Sun, 06 Nov 1994 08:49:61 GMT",
                          "Sun, 06 Nov 1994 +8:49:37 GMT",
                          "Xyz, 06 Nov 1994 08:49:37 GMT",
                          "Sun, 06 Nox 1994 08:49:37 GMT"}) {
    INFO("text \"" << bad << "\"");
    CHECK_FALSE(parse_http_date(bad).has_value());
  }
}
