#include "relay/common/duration.h"

#include <catch2/catch.hpp>

using relay::ErrorCode;
using relay::format_duration;
using relay::Millis;
using relay::parse_duration;

TEST_CASE("parse_duration reads every unit", "[common]") {
  CHECK(parse_duration("500ms").value() == Millis(500));
  CHECK(parse_duration("5s").value() == Millis(5'000));
  CHECK(parse_duration("10m").value() == Millis(600'000));
  CHECK(parse_duration("2h").value() == Millis(7'200'000));
  CHECK(parse_duration("7d").value() == Millis(604'800'000));
  CHECK(parse_duration("0s").value() == Millis(0));
}

TEST_CASE("parse_duration adds up compound durations", "[common]") {
  CHECK(parse_duration("1m30s").value() == Millis(90'000));
  CHECK(parse_duration("1h1m1s1ms").value() == Millis(3'661'001));
  CHECK(parse_duration("1s500ms").value() == Millis(1'500));
}

TEST_CASE("parse_duration rejects malformed text with kInvalidArgument naming it", "[common]") {
  for (const char* bad : {"", "30", "1m30", "5x", "5sec", "5S", "s", "ms", "-5s", "1.5s", " 5s",
                          "5s ", "5 s", "1m-30s"}) {
    INFO("text \"" << bad << "\"");
    const auto parsed = parse_duration(bad);
    REQUIRE_FALSE(parsed.has_value());
    CHECK(parsed.error().code == ErrorCode::kInvalidArgument);
    CHECK_THAT(parsed.error().message, Catch::Contains(std::string("\"") + bad + "\""));
  }
}

TEST_CASE("parse_duration says which problem it found", "[common]") {
  CHECK_THAT(parse_duration("").error().message, Catch::Contains("empty"));
  CHECK_THAT(parse_duration("30").error().message, Catch::Contains("missing unit"));
  CHECK_THAT(parse_duration("5x").error().message, Catch::Contains("unknown unit \"x\""));
}

TEST_CASE("parse_duration rejects durations that would overflow", "[common]") {
  for (const char* huge : {"99999999999999999999999ms", "9223372036854775807ms", "106751991167300d",
                           "36600d", "36500d36500d", "876600h1h"}) {
    INFO("text \"" << huge << "\"");
    const auto parsed = parse_duration(huge);
    REQUIRE_FALSE(parsed.has_value());
    CHECK_THAT(parsed.error().message, Catch::Contains("too large"));
  }
  CHECK(parse_duration("36500d").has_value());  // 100 years (of 365 days) is the bound itself
}

TEST_CASE("format_duration picks the largest exact unit", "[common]") {
  CHECK(format_duration(Millis(0)) == "0s");
  CHECK(format_duration(Millis(250)) == "250ms");
  CHECK(format_duration(Millis(1'000)) == "1s");
  CHECK(format_duration(Millis(1'500)) == "1.5s");
  CHECK(format_duration(Millis(90'000)) == "90s");
  CHECK(format_duration(Millis(600'000)) == "10m");
  CHECK(format_duration(Millis(7'200'000)) == "2h");
  CHECK(format_duration(Millis(604'800'000)) == "7d");
}

TEST_CASE("format_duration output parses back to the same duration when it is whole", "[common]") {
  for (long long ms : {0LL, 1LL, 999LL, 1'000LL, 60'000LL, 3'600'000LL, 86'400'000LL, 90'000LL}) {
    INFO("ms " << ms);
    CHECK(parse_duration(format_duration(Millis(ms))).value() == Millis(ms));
  }
}
