#include "relay/delivery/classify.h"

#include <catch2/catch.hpp>

using namespace std::chrono_literals;
using relay::Millis;
using relay::delivery::classify_status;
using relay::delivery::DeliveryOutcome;
using relay::delivery::parse_retry_after;
using Kind = relay::delivery::DeliveryOutcome::Kind;

namespace {

// Sun, 06 Nov 1994 08:49:37 GMT as a system_clock instant (784111777 unix seconds).
const std::chrono::system_clock::time_point kRfcExampleDate =
    std::chrono::sys_days{std::chrono::year{1994} / 11 / 6} + 8h + 49min + 37s;

}  // namespace

TEST_CASE("classify_status sorts every status class by the delivery contract", "[delivery]") {
  struct Row {
    int status;
    Kind kind;
  };
  const Row rows[] = {
      {200, Kind::kDelivered}, {201, Kind::kDelivered}, {204, Kind::kDelivered},
      {299, Kind::kDelivered}, {300, Kind::kRetryable}, {301, Kind::kRetryable},
      {302, Kind::kRetryable}, {308, Kind::kRetryable}, {408, Kind::kRetryable},
      {425, Kind::kRetryable}, {429, Kind::kRetryable}, {500, Kind::kRetryable},
      {502, Kind::kRetryable}, {503, Kind::kRetryable}, {504, Kind::kRetryable},
      {599, Kind::kRetryable}, {400, Kind::kFinal},     {401, Kind::kFinal},
      {403, Kind::kFinal},     {404, Kind::kFinal},     {409, Kind::kFinal},
      {410, Kind::kFinal},     {413, Kind::kFinal},     {422, Kind::kFinal},
      {499, Kind::kFinal},     {100, Kind::kFinal},     {101, Kind::kFinal},
      {199, Kind::kFinal},     {0, Kind::kFinal},       {-1, Kind::kFinal},
      {99, Kind::kFinal},      {600, Kind::kFinal},     {999, Kind::kFinal},
  };
  for (const auto& row : rows) {
    INFO("status " << row.status);
    CHECK(classify_status(row.status) == row.kind);
  }
}

TEST_CASE("outcome kinds have stable names for rows and metrics", "[delivery]") {
  CHECK(std::string(to_string(Kind::kDelivered)) == "delivered");
  CHECK(std::string(to_string(Kind::kRetryable)) == "retryable");
  CHECK(std::string(to_string(Kind::kFinal)) == "final");
}

TEST_CASE("Retry-After in delta-seconds is returned as that many seconds", "[delivery]") {
  const auto now = kRfcExampleDate;
  CHECK(parse_retry_after("7", now) == Millis(7000));
  CHECK(parse_retry_after("0", now) == Millis(0));
  CHECK(parse_retry_after("120", now) == Millis(120'000));
  CHECK(parse_retry_after(" 3 ", now) == Millis(3000));  // optional whitespace around a field value
}

TEST_CASE("Retry-After as an IMF-fixdate is the time from now until that date", "[delivery]") {
  CHECK(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", kRfcExampleDate - 90s) ==
        Millis(90'000));
  // A fractional second before the date rounds up: retrying early is the wrong direction.
  CHECK(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", kRfcExampleDate - 1500ms) ==
        Millis(1500));
  CHECK(parse_retry_after("Mon, 07 Nov 1994 08:49:37 GMT", kRfcExampleDate) == Millis(86'400'000));
  CHECK(parse_retry_after("Thu, 29 Feb 2024 00:00:00 GMT",
                          std::chrono::sys_days{std::chrono::year{2024} / 2 / 28}) ==
        Millis(86'400'000));
}

TEST_CASE("Retry-After with a date in the past or now means retry now", "[delivery]") {
  CHECK(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", kRfcExampleDate) == Millis(0));
  CHECK(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", kRfcExampleDate + 250ms) == Millis(0));
  CHECK(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", kRfcExampleDate + 24h * 365 * 30) ==
        Millis(0));
}

TEST_CASE("an unparseable Retry-After is ignored", "[delivery]") {
  const auto now = kRfcExampleDate;
  for (const char* garbage : {"", " ", "soon", "-5", "+5", "1.5", "5s", "0x10", "7 7",
                              "Sun, 06 Nov 1994 08:49:37 UTC",    // not GMT
                              "Sunday, 06-Nov-94 08:49:37 GMT",   // obsolete RFC 850 form
                              "Sun Nov  6 08:49:37 1994",         // obsolete asctime form
                              "Sun, 31 Feb 1994 08:49:37 GMT",    // no such day
                              "Sun, 06 Foo 1994 08:49:37 GMT",    // no such month
                              "Sun, 06 Nov 1994 24:49:37 GMT",    // no such hour
                              "Xyz, 06 Nov 1994 08:49:37 GMT",    // no such weekday
                              "Sun, 6 Nov 1994 08:49:37 GMT"}) {  // day must be two digits
    INFO("value \"" << garbage << "\"");
    CHECK_FALSE(parse_retry_after(garbage, now).has_value());
  }
}

TEST_CASE("a huge Retry-After saturates instead of overflowing", "[delivery]") {
  const auto now = kRfcExampleDate;
  const auto huge = parse_retry_after("99999999999999999999999999999999999999", now);
  REQUIRE(huge.has_value());
  CHECK(*huge > Millis(0));
  CHECK(*huge >= std::chrono::duration_cast<Millis>(24h * 365 * 99));  // clamped at about 100 years
  const auto far_date = parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", now);
  REQUIRE(far_date.has_value());
  CHECK(*far_date == *huge);  // the same clamp, and no nanosecond overflow on the way
}
