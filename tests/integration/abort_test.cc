// Integration: abort-on-queue (cancel, cancel_key), the time horizon (max_age), ordering: none, and
// fan-out dead letters that name only the failing subscription.

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <set>

#include "tests/integration/test_config.h"
#include "tests/support/fake_consumer.h"
#include "tests/support/relay_process.h"
#include "tests/support/test_database.h"
#include "tests/support/wait.h"

using namespace std::chrono_literals;
using namespace relay::testing;

TEST_CASE(
    "relay.cancel and relay.cancel_key withdraw undelivered events into the dead letters as "
    "cancelled",
    "[integration][abort]") {
  auto db = TestDatabase::create();
  FakeConsumer consumer;
  // Everything is delayed by an hour, so nothing is sent while we cancel.
  const std::string one = db.value(
      "SELECT relay.publish('order.paid', 'o-1', '{}'::jsonb, '{}'::jsonb, now() + interval '1 "
      "hour')::text");
  db.exec(
      "SELECT relay.publish('order.paid', 'o-2', '{}'::jsonb, '{}'::jsonb, now() + interval '1 "
      "hour') "
      "FROM generate_series(1, 3)");
  const std::string keep = db.value("SELECT relay.publish('order.paid', 'o-3', '{}'::jsonb)::text");
  TestRelayConfig cfg;
  cfg.subscriptions = {{.name = "s", .topics = {"*"}, .endpoint = consumer.url()}};
  RelayProcess relay(to_yaml(cfg), {}, {{"DATABASE_URL", db.url()}});
  REQUIRE(
      wait_until([&] { return consumer.successful_ids() == std::vector<std::string>{keep}; }, 60s));

  CHECK(db.value("SELECT relay.cancel('" + one + "')") == "1");
  CHECK(db.value("SELECT relay.cancel('" + one + "')") == "0");  // already withdrawn
  CHECK(db.value("SELECT relay.cancel_key('order.paid', 'o-2')") == "3");
  // The consumer answers before relay records the outcome: wait for the delete to commit.
  REQUIRE(wait_until([&] { return db.count("relay.outbox") == 0; }, 60s));
  CHECK(db.count("relay.dead_letter WHERE reason = 'cancelled' AND subscription = '*'") == 4);
  CHECK(db.value("SELECT key FROM relay.dead_letter WHERE event_id = '" + one + "'") == "o-1");
  CHECK(consumer.count() == 1);
}

TEST_CASE("cancel withdraws a part waiting in relay.delivery for its retry",
          "[integration][abort]") {
  auto db = TestDatabase::create();
  // The backoff has full jitter (a delay in [0, 30s] could be a few ms, and a second attempt would
  // come before the cancel): Retry-After, capped by max_backoff, makes the wait exactly an hour.
  FakeConsumer consumer{Reply{.status = 503, .headers = {{"Retry-After", "3600"}}}};
  TestRelayConfig cfg;
  cfg.subscriptions = {{.name = "s",
                        .topics = {"*"},
                        .endpoint = consumer.url(),
                        .max_attempts = 100,
                        .initial_backoff = "30s",
                        .max_backoff = "1h"}};
  RelayProcess relay(to_yaml(cfg), {}, {{"DATABASE_URL", db.url()}});
  const std::string id = db.value("SELECT relay.publish('t', 'k', '{}'::jsonb)::text");
  REQUIRE(
      wait_until([&] { return db.count("relay.delivery WHERE lease_owner IS NULL") == 1; }, 60s));
  CHECK(db.value("SELECT relay.cancel('" + id + "')") == "1");
  CHECK(db.count("relay.delivery") == 0);
  CHECK(
      db.value("SELECT subscription || ' ' || reason || ' ' || attempts FROM relay.dead_letter") ==
      "s cancelled 1");
}

TEST_CASE("an event failing for longer than retry.max_age is dead-lettered as retries_exhausted",
          "[integration][abort]") {
  auto db = TestDatabase::create();
  FakeConsumer consumer{Reply{503}};
  TestRelayConfig cfg;
  cfg.subscriptions = {{.name = "s",
                        .topics = {"*"},
                        .endpoint = consumer.url(),
                        .max_attempts = 1000,
                        .initial_backoff = "50ms",
                        .max_backoff = "100ms",
                        .extra = "    circuit_breaker: { failure_threshold: 1000 }\n"}};
  // max_age lives in the retry map: replace it to add the key.
  auto yaml = to_yaml(cfg);
  const std::string from = "max_backoff: 100ms }";
  yaml.replace(yaml.find(from), from.size(), "max_backoff: 100ms, max_age: 1s }");
  RelayProcess relay(yaml, {}, {{"DATABASE_URL", db.url()}});
  db.value("SELECT relay.publish('t', 'k', '{}'::jsonb)::text");
  REQUIRE(wait_until([&] { return db.count("relay.dead_letter") == 1; }, 60s));
  CHECK(db.value("SELECT reason FROM relay.dead_letter") == "retries_exhausted");
  CHECK(std::stoi(db.value("SELECT attempts FROM relay.dead_letter")) < 1000);
}

TEST_CASE("with ordering: none a failing event does not hold back later events of its key",
          "[integration][abort]") {
  auto db = TestDatabase::create();
  // The first event fails until the test lets it through; the others succeed.
  std::atomic<bool> let_first{false};
  FakeConsumer consumer{[&](const ReceivedRequest& r) {
    auto body = nlohmann::json::parse(r.body);
    return Reply{body["n"] == 0 && !let_first ? 503 : 200};
  }};
  TestRelayConfig cfg;
  cfg.subscriptions = {
      {.name = "s",
       .topics = {"*"},
       .endpoint = consumer.url(),
       .max_attempts = 1000,
       .initial_backoff = "20ms",
       .max_backoff = "50ms",
       .extra = "    ordering: none\n    circuit_breaker: { failure_threshold: 1000 }\n"}};
  RelayProcess relay(to_yaml(cfg), {}, {{"DATABASE_URL", db.url()}});
  for (int n = 0; n < 4; ++n) {
    db.value(fmt::format("SELECT relay.publish('t', 'same-key', '{{\"n\":{}}}'::jsonb)::text", n));
  }
  REQUIRE(wait_until([&] { return consumer.successful_ids().size() == 3; }, 60s));
  let_first = true;
  REQUIRE(wait_until([&] { return consumer.successful_ids().size() == 4; }, 60s));
  REQUIRE(wait_until(
      [&] { return db.count("relay.delivery") == 0 && db.count("relay.outbox") == 0; }, 60s));
}

TEST_CASE("fan-out: one failing subscription dead-letters only its own part",
          "[integration][abort]") {
  auto db = TestDatabase::create();
  FakeConsumer good;
  FakeConsumer strict{Reply{422}};
  TestRelayConfig cfg;
  cfg.subscriptions = {{.name = "good", .topics = {"*"}, .endpoint = good.url()},
                       {.name = "strict", .topics = {"*"}, .endpoint = strict.url()}};
  RelayProcess relay(to_yaml(cfg), {}, {{"DATABASE_URL", db.url()}});
  const std::string id = db.value("SELECT relay.publish('t', 'k', '{}'::jsonb)::text");
  REQUIRE(wait_until(
      [&] { return db.count("relay.dead_letter") == 1 && db.count("relay.outbox") == 0; }, 60s));
  CHECK(db.value(
            "SELECT subscription || ' ' || reason || ' ' || last_status FROM relay.dead_letter") ==
        "strict non_retryable_status 422");
  CHECK(good.successful_ids() == std::vector<std::string>{id});
  CHECK(strict.count() == 1);
}
