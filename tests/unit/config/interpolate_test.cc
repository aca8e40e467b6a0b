#include "relay/config/interpolate.h"

#include <catch2/catch.hpp>
#include <map>
#include <string>

namespace {

using relay::config::EnvLookup;
using relay::config::interpolate;

EnvLookup env_of(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

}  // namespace

TEST_CASE("text without references is returned unchanged, lone dollars included", "[config]") {
  auto r = interpolate("cost: $5 and $HOME and $ {x}", env_of({{"HOME", "/root"}}));
  REQUIRE(r.has_value());
  CHECK(*r == "cost: $5 and $HOME and $ {x}");
}

TEST_CASE("several references in one value are all replaced", "[config]") {
  auto r = interpolate("postgresql://${USER}@${HOST:-localhost}:${PORT}/db",
                       env_of({{"USER", "app"}, {"PORT", "5432"}}));
  REQUIRE(r.has_value());
  CHECK(*r == "postgresql://app@localhost:5432/db");
}

TEST_CASE("a default applies when the variable is unset or empty, as in sh", "[config]") {
  CHECK(*interpolate("${A:-x}", env_of({})) == "x");
  CHECK(*interpolate("${A:-x}", env_of({{"A", ""}})) == "x");
  CHECK(*interpolate("${A:-x}", env_of({{"A", "set"}})) == "set");
  CHECK(interpolate("${A:-}", env_of({}))->empty());
  CHECK(*interpolate("${A:-a:-b}", env_of({})) == "a:-b");
}

TEST_CASE("a variable that is set but empty is fine without a default", "[config]") {
  auto r = interpolate("[${A}]", env_of({{"A", ""}}));
  REQUIRE(r.has_value());
  CHECK(*r == "[]");
}

TEST_CASE("$${ is a literal ${ and environment values are not scanned again", "[config]") {
  CHECK(*interpolate("$${NOT_A_VAR}", env_of({})) == "${NOT_A_VAR}");
  CHECK(*interpolate("${A}", env_of({{"A", "${B}"}})) == "${B}");
}

TEST_CASE("unset variables without a default are all named in one error", "[config]") {
  auto r = interpolate("${A}-${B:-b}-${C}", env_of({}));
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error().code == relay::ErrorCode::kInvalidArgument);
  CHECK_THAT(r.error().message, Catch::Contains("A, C are not set"));
}

TEST_CASE("malformed references are errors that do not quote the text", "[config]") {
  auto unterminated = interpolate("secret${A", env_of({}));
  REQUIRE_FALSE(unterminated.has_value());
  CHECK_THAT(unterminated.error().message, Catch::Contains("unterminated"));
  CHECK_THAT(unterminated.error().message, !Catch::Contains("secret"));

  for (const char* bad : {"${}", "${1A}", "${A-B}", "${ A }", "${A:b}"}) {
    CAPTURE(bad);
    auto r = interpolate(bad, env_of({{"A", "x"}}));
    REQUIRE_FALSE(r.has_value());
    CHECK_THAT(r.error().message, Catch::Contains("invalid variable reference"));
  }
}

TEST_CASE("an empty EnvLookup means no variable is set", "[config]") {
  CHECK(*interpolate("${A:-d}", EnvLookup{}) == "d");
  CHECK_FALSE(interpolate("${A}", EnvLookup{}).has_value());
}
