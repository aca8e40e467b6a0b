// admin/format: the times operators type (--since, --until, --older-than, RELAY_NOW). Values a
// nanosecond system_clock cannot hold are refused with a message, never converted (UB).

#include "relay/admin/format.h"

#include <catch2/catch.hpp>

using namespace std::chrono_literals;
using relay::admin::parse_time_bound;
using relay::admin::parse_timestamp;
using relay::admin::WallTime;

TEST_CASE("parse_timestamp reads RFC 3339 within the years a time_point holds", "[admin]") {
  auto t = parse_timestamp("2024-05-01T12:00:00Z");
  REQUIRE(t.has_value());
  CHECK(t->time_since_epoch() == std::chrono::seconds(1'714'564'800));
  CHECK(parse_timestamp("1970-01-01").has_value());
  CHECK(parse_timestamp("2261-12-31T23:59:59-23:59").has_value());
}

TEST_CASE("parse_timestamp refuses years a nanosecond time_point cannot hold", "[admin]") {
  for (const char* text : {"9999-12-31T23:59:59Z", "2300-01-01", "0001-01-01", "1600-01-01"}) {
    INFO(text);
    auto t = parse_timestamp(text);
    REQUIRE_FALSE(t.has_value());
    CHECK_THAT(t.error().message, Catch::Contains("out of range"));
    CHECK_THAT(t.error().message, Catch::Contains(text));
  }
  auto bound = parse_time_bound("--until", "9999-01-01", WallTime{} + 1'700'000'000s);
  REQUIRE_FALSE(bound.has_value());
  CHECK_THAT(bound.error().message, Catch::Contains("--until"));
}

TEST_CASE("parse_time_bound takes the longest duration back from the earliest now", "[admin]") {
  // 36500d is parse_duration's bound; from 1970 it reaches 1870, still inside the range.
  auto t = parse_time_bound("--since", "36500d", WallTime{});
  REQUIRE(t.has_value());
  CHECK(*t == WallTime{} - std::chrono::hours(24 * 36500));
}
