// Integration: relay to relay. App A publishes 10,000 events into database A; relay A delivers
// them (signed) to relay B's inbox; relay B stores each once in database B and pushes it to app B.
// Both relays are SIGKILLed at different moments and restarted. In the end app B has received
// every event, relay.inbox holds each exactly once, and every request app B saw carries the
// original event id as Idempotency-Key (so a duplicate is recognisable as one).

#include <catch2/catch.hpp>
#include <csignal>
#include <map>
#include <memory>
#include <set>

#include "tests/integration/inbox_test_helpers.h"
#include "tests/integration/test_config.h"
#include "tests/support/fake_consumer.h"
#include "tests/support/relay_process.h"
#include "tests/support/test_database.h"
#include "tests/support/wait.h"

using namespace std::chrono_literals;
using namespace relay::testing;

TEST_CASE("relay A to relay B's inbox to app B: 10,000 events survive SIGKILLs of both relays",
          "[integration][inbox][crash]") {
  constexpr int kEvents = 10'000;
  constexpr int kChunk = kEvents / 4;
  auto db_a = TestDatabase::create();
  auto db_b = TestDatabase::create();
  FakeConsumer app_b;
  const int port_b = FakeConsumer::unused_port();

  // Fast retries and a breaker that reopens quickly: a killed relay B is back within seconds.
  const std::string fast_delivery =
      "        retry: { max_attempts: 1000, initial_backoff: 20ms, max_backoff: 300ms }\n"
      "        circuit_breaker: { failure_threshold: 5, open_for: 100ms, max_open_for: 500ms }\n"
      "        max_in_flight: 16\n";
  const std::string yaml_b = inbox_yaml(port_b,
                                        {{.name = "relay-a",
                                          .secrets = {kSecretA},
                                          .deliver_to = app_b.url("/app-b"),
                                          .extra = "      delivery:\n" + fast_delivery}},
                                        "  max_queued_connections: 256\n");
  TestRelayConfig cfg_a;
  cfg_a.lease = "3s";
  cfg_a.batch_size = 200;
  cfg_a.subscriptions = {
      {.name = "to-b",
       .topics = {"*"},
       .endpoint = fmt::format("http://127.0.0.1:{}/inbox/relay-a", port_b),
       .max_attempts = 1000,
       .initial_backoff = "20ms",
       .max_backoff = "300ms",
       .max_in_flight = 16,
       .extra = fmt::format("    signing_secret: \"{}\"\n"
                            "    circuit_breaker: {{ failure_threshold: 5, open_for: 100ms, "
                            "max_open_for: 500ms }}\n",
                            kSecretA)}};
  const std::string yaml_a = to_yaml(cfg_a);

  std::set<std::string> published;
  auto publish = [&](int from) {
    for (const auto& row : db_a.rows(fmt::format(
             "SELECT relay.publish('order.event', 'key-' || (g % 97), jsonb_build_object('n', g))"
             "::text FROM generate_series({}, {}) g",
             from, from + kChunk - 1))) {
      published.insert(row[0]);
    }
  };
  auto start_a = [&] {
    return std::make_unique<RelayProcess>(yaml_a, std::vector<std::string>{},
                                          EnvVars{{"DATABASE_URL", db_a.url()}});
  };
  auto start_b = [&] {
    return std::make_unique<RelayProcess>(yaml_b, std::vector<std::string>{},
                                          EnvVars{{"DATABASE_URL", db_b.url()}});
  };
  auto stored_b = [&] { return db_b.count("relay.inbox"); };

  auto relay_b = start_b();
  auto relay_a = start_a();
  publish(0);

  // Kill B while it is both taking events in and pushing them out.
  REQUIRE(wait_until([&] { return app_b.count() >= 500; }, 120s));
  relay_b->kill9();
  publish(kChunk);
  // A keeps retrying against a dead B; then B comes back.
  REQUIRE(wait_until([&] { return db_a.count("relay.delivery WHERE attempts > 0") > 0; }, 60s));
  relay_b = start_b();

  // Kill A mid-stream, while B is receiving.
  REQUIRE(wait_until([&] { return stored_b() >= kChunk + 500; }, 120s));
  relay_a->kill9();
  publish(2 * kChunk);
  relay_a = start_a();

  // Kill B once more, later in the run, then finish.
  REQUIRE(wait_until([&] { return app_b.count() >= 2 * kChunk + 1000; }, 120s));
  relay_b->kill9();
  publish(3 * kChunk);
  relay_b = start_b();

  REQUIRE(published.size() == static_cast<size_t>(kEvents));
  INFO("relay A log:\n" << relay_a->log() << "\nrelay B log:\n" << relay_b->log());
  REQUIRE(wait_until(
      [&] {
        return db_b.count("relay.inbox WHERE processed_at IS NOT NULL") == kEvents &&
               db_a.count("relay.outbox") == 0 && db_a.count("relay.delivery") == 0 &&
               db_b.count("relay.delivery") == 0;
      },
      240s));

  // relay.inbox holds each event exactly once, under the id app A's outbox gave it.
  CHECK(stored_b() == kEvents);
  std::set<std::string> inbox_ids;
  for (const auto& r : db_b.rows("SELECT event_id FROM relay.inbox")) inbox_ids.insert(r[0]);
  CHECK(inbox_ids == published);
  CHECK(db_a.count("relay.dead_letter") == 0);
  CHECK(db_b.count("relay.dead_letter") == 0);

  // App B got every event; each request's Idempotency-Key is the event id (webhook-id agrees), so
  // any duplicate it saw carries a key it had already seen.
  std::map<std::string, int> seen;
  bool keys_consistent = true;
  for (const auto& r : app_b.requests()) {
    const std::string key =
        r.headers.count("idempotency-key") ? r.headers.at("idempotency-key") : "";
    const std::string wid = r.headers.count("webhook-id") ? r.headers.at("webhook-id") : "";
    if (key != wid || published.count(key) == 0) keys_consistent = false;
    ++seen[key];
  }
  CHECK(keys_consistent);
  std::set<std::string> received;
  for (const auto& id : app_b.successful_ids()) received.insert(id);
  CHECK(received == published);
  int duplicates = 0;
  for (const auto& [key, n] : seen) duplicates += n - 1;
  WARN("app B requests: " << app_b.count()
                          << ", duplicates (same Idempotency-Key): " << duplicates);
}
