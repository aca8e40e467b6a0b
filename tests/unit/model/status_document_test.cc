#include "relay/model/status_document.h"

#include <catch2/catch.hpp>
#include <string>

using relay::ErrorCode;
using relay::model::BreakerState;
using relay::model::parse_status_document;
using relay::model::StatusDocument;
using relay::model::SubscriptionStatus;

namespace {

StatusDocument running() {
  StatusDocument doc;
  doc.version = "0.1.0";
  doc.owner = "app-7:4242:9f";
  doc.ready = true;
  doc.state = "running";
  SubscriptionStatus billing;
  billing.name = "billing";
  billing.in_flight = 3;
  billing.breaker = {.state = BreakerState::kOpen,
                     .consecutive_failures = 5,
                     .trips = 2,
                     .open_for_ms = 20'000,
                     .reopens_in_ms = 12'000};
  SubscriptionStatus search;
  search.name = "search";
  search.breaker.state = BreakerState::kHalfOpen;
  search.rate_tokens_available = 4.5;
  doc.subscriptions = {billing, search};
  return doc;
}

}  // namespace

TEST_CASE("a status document is written with the field names and order /status has always had",
          "[model]") {
  CHECK(to_json(running()) ==
        R"({"owner":"app-7:4242:9f","ready":true,"state":"running","subscriptions":[)"
        R"({"breaker":{"consecutive_failures":5,"open_for_ms":20000,"reopens_in_ms":12000,)"
        R"("state":"open","trips":2},"in_flight":3,"name":"billing"},)"
        R"({"breaker":{"consecutive_failures":0,"open_for_ms":0,"reopens_in_ms":0,)"
        R"("state":"half_open","trips":0},"in_flight":0,"name":"search",)"
        R"("rate_limit":{"tokens_available":4.5}}],"version":"0.1.0"})");
}

TEST_CASE("a starting relay's document has no owner and no subscriptions", "[model]") {
  StatusDocument doc;
  doc.version = "0.1.0";
  doc.state = "waiting for the database";
  CHECK(
      to_json(doc) ==
      R"({"ready":false,"state":"waiting for the database","subscriptions":[],"version":"0.1.0"})");
  const auto parsed = parse_status_document(to_json(doc));
  REQUIRE(parsed.has_value());
  CHECK_FALSE(parsed->owner.has_value());
  CHECK(parsed->subscriptions.empty());
}

TEST_CASE("a status document survives to_json and parse unchanged", "[model]") {
  const StatusDocument doc = running();
  const auto parsed = parse_status_document(to_json(doc));
  REQUIRE(parsed.has_value());
  CHECK(parsed->version == doc.version);
  CHECK(parsed->owner == doc.owner);
  CHECK(parsed->ready == doc.ready);
  CHECK(parsed->state == doc.state);
  REQUIRE(parsed->subscriptions.size() == 2);
  const auto& b = parsed->subscriptions[0];
  CHECK(b.name == "billing");
  CHECK(b.in_flight == 3);
  CHECK(b.breaker.state == BreakerState::kOpen);
  CHECK(b.breaker.consecutive_failures == 5);
  CHECK(b.breaker.trips == 2);
  CHECK(b.breaker.open_for_ms == 20'000);
  CHECK(b.breaker.reopens_in_ms == 12'000);
  CHECK_FALSE(b.rate_tokens_available.has_value());
  CHECK(parsed->subscriptions[1].breaker.state == BreakerState::kHalfOpen);
  CHECK(parsed->subscriptions[1].rate_tokens_available == 4.5);
  CHECK(to_json(*parsed) == to_json(doc));
}

TEST_CASE("parse ignores fields it does not know and reads whole-number token counts", "[model]") {
  const auto parsed = parse_status_document(
      R"({"version":"9.9.9","ready":false,"state":"running","new_field":[1,2],"subscriptions":[)"
      R"({"name":"s","in_flight":0,"extra":true,"rate_limit":{"tokens_available":3},)"
      R"("breaker":{"state":"closed","consecutive_failures":0,"trips":0,"open_for_ms":0,"reopens_in_ms":0}}]})");
  REQUIRE(parsed.has_value());
  CHECK(parsed->subscriptions.at(0).rate_tokens_available == 3.0);
}

TEST_CASE("parse refuses a malformed document, naming the field", "[model]") {
  const std::string breaker =
      R"("breaker":{"state":"closed","consecutive_failures":0,"trips":0,"open_for_ms":0,"reopens_in_ms":0})";
  const std::string head = R"({"version":"1","ready":true,"state":"running","subscriptions":[)";
  const std::string cases[][2] = {
      {"not json", "(document): not JSON"},
      {"[1,2]", "(document): expected a JSON object"},
      {R"({"ready":true,"state":"running","subscriptions":[]})", "version: missing"},
      {R"({"version":1,"ready":true,"state":"running","subscriptions":[]})",
       "version: expected a string"},
      {R"({"version":"1","ready":"yes","state":"running","subscriptions":[]})",
       "ready: expected true or false"},
      {R"({"version":"1","ready":true,"subscriptions":[]})", "state: missing"},
      {R"({"version":"1","ready":true,"state":"running","owner":7,"subscriptions":[]})",
       "owner: expected a string"},
      {R"({"version":"1","ready":true,"state":"running","subscriptions":{}})",
       "subscriptions: expected a list"},
      {head + "7]}", "subscriptions[0]: expected an object"},
      {head + R"({"in_flight":0,)" + breaker + "}]}", "subscriptions[0].name: missing"},
      {head + R"({"name":"s","in_flight":1.5,)" + breaker + "}]}",
       "subscriptions[0].in_flight: expected an integer"},
      {head + R"({"name":"s","in_flight":9223372036854775808,)" + breaker + "}]}",
       "subscriptions[0].in_flight: expected an integer"},
      {head + R"({"name":"s","in_flight":0}]})", "subscriptions[0].breaker: missing"},
      {head + R"({"name":"s","in_flight":0,"breaker":{"state":"ajar"}}]})",
       "subscriptions[0].breaker.state: expected one of closed, open, half_open"},
      {head + R"({"name":"s","in_flight":0,"breaker":{"state":"open","consecutive_failures":0}}]})",
       "subscriptions[0].breaker.trips: missing"},
      {head + R"({"name":"s","in_flight":0,)" + breaker + R"(,"rate_limit":{"burst":10}}]})",
       "subscriptions[0].rate_limit.tokens_available: missing"},
      {head + R"({"name":"s","in_flight":0,)" + breaker + R"(,"rate_limit":5}]})",
       "subscriptions[0].rate_limit: expected an object"},
  };
  for (const auto& [json, problem] : cases) {
    INFO(json);
    const auto parsed = parse_status_document(json);
    REQUIRE_FALSE(parsed.has_value());
    CHECK(parsed.error().code == ErrorCode::kInvalidArgument);
    CHECK(parsed.error().message == "malformed status document: " + problem);
  }
}
