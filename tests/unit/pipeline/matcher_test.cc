#include "relay/pipeline/matcher.h"

#include <catch2/catch.hpp>

using namespace relay;

TEST_CASE("an event goes to every subscription with a matching glob, once each, in config order",
          "[pipeline]") {
  std::vector<config::SubscriptionConfig> subs(3);
  subs[0].name = "orders";
  subs[0].topics = {"order.*"};
  subs[1].name = "all";
  subs[1].topics = {"*", "order.paid"};  // two matching globs: still one delivery
  subs[2].name = "invoices";
  subs[2].topics = {"invoice.?aid"};
  pipeline::Matcher m(subs);
  CHECK(m.match("order.paid") == std::vector<size_t>{0, 1});
  CHECK(m.match("invoice.paid") == std::vector<size_t>{1, 2});
  CHECK(m.match("user.signup") == std::vector<size_t>{1});
  subs[1].topics = {"order.paid"};
  CHECK(m.match("user.signup").empty());
}
