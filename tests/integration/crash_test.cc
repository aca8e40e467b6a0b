// Integration: crashes, restarts, shutdowns and several relays on one outbox. Invariants are
// checked by counting rows and received ids: nothing committed is lost, duplicates only ever carry
// an id that was already delivered.

#include <catch2/catch.hpp>
#include <csignal>
#include <set>

#include "tests/integration/test_config.h"
#include "tests/support/fake_consumer.h"
#include "tests/support/gate.h"
#include "tests/support/relay_process.h"
#include "tests/support/test_database.h"
#include "tests/support/wait.h"

using namespace std::chrono_literals;
using namespace relay::testing;

namespace {

std::set<std::string> publish_many(TestDatabase& db, int n, int per_txn = 500) {
  std::set<std::string> ids;
  for (int first = 0; first < n; first += per_txn) {
    auto rows = db.rows(fmt::format(
        "SELECT relay.publish('order.paid', 'k' || (i % 100), jsonb_build_object('i', i))::text "
        "FROM generate_series({}, {}) i",
        first, std::min(n, first + per_txn) - 1));
    for (auto& r : rows) ids.insert(r[0]);
  }
  return ids;
}

bool all_done(TestDatabase& db) {
  return db.count("relay.outbox") == 0 && db.count("relay.delivery") == 0;
}

}  // namespace

TEST_CASE(
    "SIGKILL in the middle of a 10,000-event run loses nothing and duplicates only delivered ids",
    "[integration][crash]") {
  auto db = TestDatabase::create();
  // Requests after the first 2,000 are held until relay is dead, so the kill lands mid-run however
  // fast relay is and however late the test thread runs (they get their 200 after the kill).
  Gate killed;
  FakeConsumer consumer{[&](const ReceivedRequest& r) {
    if (r.sequence >= 2'000) killed.wait(60s);
    return Reply{200};
  }};
  TestRelayConfig cfg;
  cfg.lease = "2s";  // the killed relay's claims come back after this
  cfg.subscriptions = {{.name = "s", .topics = {"*"}, .endpoint = consumer.url()}};
  const auto ids = publish_many(db, 10'000);

  {
    RelayProcess relay(to_yaml(cfg), {}, {{"DATABASE_URL", db.url()}});
    REQUIRE(wait_until([&] { return consumer.count() >= 2'000; }, 120s));
    relay.kill9();
  }
  killed.open();
  const size_t before_restart = consumer.count();
  INFO("received before the kill: " << before_restart);
  CHECK(before_restart < 10'000);  // the kill really was mid-run

  RelayProcess relay(to_yaml(cfg), {}, {{"DATABASE_URL", db.url()}});
  REQUIRE(wait_until([&] { return all_done(db); }, 240s));

  const auto received = consumer.received_ids();
  const std::set<std::string> distinct(received.begin(), received.end());
  CHECK(distinct == ids);  // every event at least once, and nothing else
  // A duplicate is a retransmission of an id that had already been sent before.
  std::set<std::string> seen;
  size_t duplicates = 0;
  for (const auto& id : received) {
    if (!seen.insert(id).second) ++duplicates;
  }
  INFO("duplicates after the crash: " << duplicates);
  CHECK(received.size() == ids.size() + duplicates);
  CHECK(db.count("relay.dead_letter") == 0);
}

TEST_CASE("SIGTERM during slow deliveries exits 0 within shutdown_timeout and loses no event",
          "[integration][crash]") {
  auto db = TestDatabase::create();
  Gate gate;
  // Every request hangs until the test releases it: deliveries are in flight when SIGTERM comes.
  FakeConsumer consumer{[&](const ReceivedRequest&) {
    gate.wait(60s);
    return Reply{200};
  }};
  auto release_all = [&] { gate.open(); };
  TestRelayConfig cfg;
  cfg.shutdown_timeout = "3s";
  cfg.subscriptions = {{.name = "s",
                        .topics = {"*"},
                        .endpoint = consumer.url(),
                        .timeout = "30s",
                        .max_in_flight = 4}};
  const auto ids = publish_many(db, 200, 200);

  std::optional<int> exit_code;
  {
    RelayProcess relay(to_yaml(cfg), {}, {{"DATABASE_URL", db.url()}});
    REQUIRE(wait_until([&] { return consumer.count() >= 4; }, 60s));
    relay.signal(SIGTERM);
    // shutdown_timeout (3 s) plus slack for a loaded machine. A relay that ignored it would wait
    // out the held requests (30 s request timeout), so any bound well below 30 s still tells.
    exit_code = relay.wait_exit(20s);
    if (!exit_code) release_all();
  }
  release_all();
  REQUIRE(exit_code.has_value());
  CHECK(*exit_code == 0);
  // Its claims were released and no attempt was charged: nothing is dead, nothing is scheduled
  // late.
  CHECK(db.count("relay.dead_letter") == 0);
  CHECK(db.count("relay.outbox WHERE lease_owner IS NOT NULL") == 0);
  CHECK(db.count("relay.delivery WHERE lease_owner IS NOT NULL") == 0);
  CHECK(db.count("relay.outbox") + db.count("relay.delivery") == 200);

  // A new relay delivers every event.
  RelayProcess relay(to_yaml(cfg), {}, {{"DATABASE_URL", db.url()}});
  REQUIRE(wait_until([&] { return all_done(db); }, 60s));
  const auto successful = consumer.successful_ids();
  CHECK(std::set<std::string>(successful.begin(), successful.end()) == ids);
  CHECK(db.count("relay.dead_letter") == 0);
}

TEST_CASE("two relays on one outbox never deliver the same event twice while both are healthy",
          "[integration][crash]") {
  auto db = TestDatabase::create();
  FakeConsumer consumer;
  TestRelayConfig cfg;
  cfg.batch_size = 50;
  // Leases are renewed every lease / 3; a long lease keeps a relay that a loaded machine stalls
  // for seconds "healthy", so its claims cannot expire into the other relay's hands.
  cfg.lease = "60s";
  cfg.subscriptions = {{.name = "s", .topics = {"*"}, .endpoint = consumer.url()}};
  RelayProcess a(to_yaml(cfg), {}, {{"DATABASE_URL", db.url()}});
  RelayProcess b(to_yaml(cfg), {}, {{"DATABASE_URL", db.url()}});

  const auto ids = publish_many(db, 10'000, 100);
  REQUIRE(wait_until([&] { return all_done(db) && consumer.count() >= ids.size(); }, 240s));
  const auto received = consumer.received_ids();
  CHECK(received.size() == ids.size());
  CHECK(std::set<std::string>(received.begin(), received.end()) == ids);

  a.signal(SIGTERM);
  b.signal(SIGTERM);
  CHECK(a.wait_exit(60s) == 0);
  CHECK(b.wait_exit(60s) == 0);
}

TEST_CASE(
    "retry state lives in Postgres: a relay restarted after failures continues the attempt count",
    "[integration][crash]") {
  auto db = TestDatabase::create();
  std::atomic<bool> healthy{false};
  FakeConsumer consumer{[&](const ReceivedRequest&) { return Reply{healthy ? 200 : 503}; }};
  TestRelayConfig cfg;
  cfg.subscriptions = {{.name = "s",
                        .topics = {"*"},
                        .endpoint = consumer.url(),
                        .max_attempts = 50,
                        .initial_backoff = "50ms",
                        .max_backoff = "100ms"}};
  const std::string id = db.value("SELECT relay.publish('t', 'k', '{}'::jsonb)::text");
  {
    RelayProcess relay(to_yaml(cfg), {}, {{"DATABASE_URL", db.url()}});
    REQUIRE(wait_until([&] { return db.count("relay.delivery WHERE attempts >= 3") == 1; }, 60s));
    relay.signal(SIGTERM);
    REQUIRE(relay.wait_exit(60s) == 0);
  }
  const int attempts = std::stoi(db.value("SELECT attempts FROM relay.delivery"));
  CHECK(consumer.count() == static_cast<size_t>(attempts));

  healthy = true;
  RelayProcess relay(to_yaml(cfg), {}, {{"DATABASE_URL", db.url()}});
  REQUIRE(wait_until([&] { return consumer.successful_ids().size() == 1; }, 60s));
  REQUIRE(wait_until([&] { return all_done(db); }, 60s));
  const auto last = consumer.requests().back();
  CHECK(last.headers.at("idempotency-key") == id);
  CHECK(last.headers.at("relay-attempt") == std::to_string(attempts + 1));
  CHECK(db.count("relay.dead_letter") == 0);
}
