// Integration: a claim whose commit acknowledgement is lost. The claim committed (its rows are
// leased to this relay) but relay saw an error, as when PostgreSQL restarts during COMMIT. relay
// must find out what it owns: rows leased to it that it does not work on are released, never kept
// alive by its lease renewals. The fault is injected deterministically at the store's fault point
// (RELAY_FAULTS, relay/common/fault_point.h) on the first claim that takes rows. Leases are 10
// minutes, so only the release, not a lease running out, can deliver the events within the test.

#include <atomic>
#include <catch2/catch.hpp>
#include <map>

#include "tests/integration/test_config.h"
#include "tests/support/fake_consumer.h"
#include "tests/support/relay_process.h"
#include "tests/support/test_database.h"
#include "tests/support/wait.h"

using namespace std::chrono_literals;
using namespace relay::testing;

namespace {

// Each key's ids in arrival order, from the consumer's 2xx requests.
std::map<std::string, std::vector<std::string>> delivered_by_key(const FakeConsumer& consumer) {
  std::map<std::string, std::vector<std::string>> out;
  for (const auto& r : consumer.requests()) {
    if (r.status >= 200 && r.status < 300)
      out[r.headers.at("ce-subject")].push_back(r.headers.at("idempotency-key"));
  }
  return out;
}

}  // namespace

TEST_CASE("an outbox claim whose commit is in doubt strands nothing: every event is delivered once",
          "[integration][fault]") {
  auto db = TestDatabase::create();
  std::map<std::string, std::vector<std::string>> want;
  for (const char* key : {"A", "B", "A", "B", "A"}) {
    want[key].push_back(
        db.value(fmt::format("SELECT relay.publish('t', '{}', '{{}}'::jsonb)::text", key)));
  }
  FakeConsumer consumer;
  TestRelayConfig cfg;
  cfg.lease = "10m";
  cfg.subscriptions = {{.name = "s", .topics = {"*"}, .endpoint = consumer.url()}};
  RelayProcess relay(to_yaml(cfg), {},
                     {{"DATABASE_URL", db.url()}, {"RELAY_FAULTS", "claim_outbox.ack_lost@1"}});
  INFO("relay log:\n" << relay.log());

  REQUIRE(wait_until([&] { return consumer.successful_ids().size() >= 5; }, 60s));
  REQUIRE(wait_until([&] { return db.count("relay.outbox") == 0; }, 60s));
  CHECK(consumer.count() == 5);  // none sent twice: the in-doubt claim dispatched nothing
  CHECK(delivered_by_key(consumer) == want);
  CHECK(db.count("relay.delivery") == 0);
  CHECK(db.count("relay.dead_letter") == 0);
}

TEST_CASE(
    "a retry claim whose commit is in doubt strands nothing: the retry and its key's successors "
    "are delivered",
    "[integration][fault]") {
  auto db = TestDatabase::create();
  // The first request fails, so the event waits in relay.delivery for its retry; the claim of that
  // retry is the one whose acknowledgement is lost.
  std::atomic<int> requests{0};
  FakeConsumer consumer{[&](const ReceivedRequest&) { return Reply{requests++ == 0 ? 503 : 200}; }};
  TestRelayConfig cfg;
  cfg.lease = "10m";
  cfg.subscriptions = {{.name = "s",
                        .topics = {"*"},
                        .endpoint = consumer.url(),
                        .initial_backoff = "10ms",
                        .max_backoff = "20ms"}};
  RelayProcess relay(to_yaml(cfg), {},
                     {{"DATABASE_URL", db.url()}, {"RELAY_FAULTS", "claim_deliveries.ack_lost@1"}});
  INFO("relay log:\n" << relay.log());
  const std::string first = db.value("SELECT relay.publish('t', 'K', '{}'::jsonb)::text");
  REQUIRE(wait_until([&] { return db.count("relay.delivery") == 1; }, 60s));
  const std::string second = db.value("SELECT relay.publish('t', 'K', '{}'::jsonb)::text");

  REQUIRE(wait_until([&] { return consumer.successful_ids().size() >= 2; }, 60s));
  REQUIRE(
      wait_until([&] { return db.count("relay.outbox") + db.count("relay.delivery") == 0; }, 60s));
  CHECK(consumer.successful_ids() == std::vector<std::string>{first, second});
  CHECK(db.count("relay.dead_letter") == 0);
}
