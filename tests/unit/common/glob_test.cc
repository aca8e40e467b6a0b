#include "relay/common/glob.h"

#include <catch2/catch.hpp>

using relay::glob_match;

TEST_CASE("a trailing star matches any suffix, dots included", "[common]") {
  CHECK(glob_match("order.*", "order.paid"));
  CHECK(glob_match("order.*", "order.item.added"));
  CHECK(glob_match("order.*", "order."));
  CHECK_FALSE(glob_match("order.*", "order"));
  CHECK_FALSE(glob_match("order.*", "orders.paid"));
  CHECK_FALSE(glob_match("order.*", "customer.order.paid"));
}

TEST_CASE("a lone star matches everything including the empty topic", "[common]") {
  CHECK(glob_match("*", ""));
  CHECK(glob_match("*", "order.paid"));
  CHECK(glob_match("**", "x"));
}

TEST_CASE("a question mark matches exactly one character", "[common]") {
  CHECK(glob_match("order.?", "order.a"));
  CHECK_FALSE(glob_match("order.?", "order."));
  CHECK_FALSE(glob_match("order.?", "order.ab"));
  CHECK(glob_match("??", "ab"));
  CHECK_FALSE(glob_match("?", ""));
}

TEST_CASE("a pattern without wildcards matches only itself", "[common]") {
  CHECK(glob_match("order.paid", "order.paid"));
  CHECK_FALSE(glob_match("order.paid", "order.paid2"));
  CHECK_FALSE(glob_match("order.paid", "order.pai"));
  CHECK_FALSE(glob_match("order.paid", "Order.paid"));  // case-sensitive
}

TEST_CASE("several stars backtrack correctly", "[common]") {
  CHECK(glob_match("a*b*c", "abc"));
  CHECK(glob_match("a*b*c", "aXbYc"));
  CHECK(glob_match("a*b*c", "abbbcbc"));
  CHECK(glob_match("a*b*c", "a.b.c"));
  CHECK_FALSE(glob_match("a*b*c", "acb"));
  CHECK_FALSE(glob_match("a*b*c", "abcd"));
  CHECK(glob_match("*.paid", "order.paid"));
  CHECK(glob_match("*a*a*a*b", std::string(30, 'a') + "b"));
  CHECK_FALSE(glob_match("*a*a*a*b", std::string(3000, 'a')));  // no blow-up on a hostile pattern
}

TEST_CASE("an empty pattern matches only the empty topic", "[common]") {
  CHECK(glob_match("", ""));
  CHECK_FALSE(glob_match("", "a"));
  CHECK_FALSE(glob_match("a", ""));
}
