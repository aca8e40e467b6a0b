// Integration: /metrics shows what a long-running snapshot costs the outbox. While a REPEATABLE
// READ transaction holds its snapshot, every delivered (deleted) event stays a dead tuple:
// relay_outbox_dead_tuples counts them and relay_oldest_snapshot_age_seconds shows how long the
// snapshot has been open; once it ends and the outbox is vacuumed, both fall back.

#include <fmt/format.h>

#include <catch2/catch.hpp>
#include <pqxx/pqxx>

#include "tests/integration/test_config.h"
#include "tests/support/fake_consumer.h"
#include "tests/support/ops_probe.h"
#include "tests/support/relay_process.h"
#include "tests/support/test_database.h"
#include "tests/support/wait.h"

using namespace std::chrono_literals;
using namespace relay::testing;

TEST_CASE("/metrics shows the outbox's dead tuples and the age of a snapshot that blocks vacuum",
          "[integration][ops][metrics][floor]") {
  auto db = TestDatabase::create();
  FakeConsumer consumer;
  const int ops_port = FakeConsumer::unused_port();
  TestRelayConfig cfg;
  cfg.subscriptions = {{.name = "s", .topics = {"*"}, .endpoint = consumer.url()}};
  cfg.extra = fmt::format("ops:\n  listen: 127.0.0.1:{}\n", ops_port);
  RelayProcess relay(to_yaml(cfg), {}, {{"DATABASE_URL", db.url()}});
  OpsProbe ops(ops_port);
  std::string last;
  auto gauge = [&](const char* name) {
    last = ops.metrics();
    return OpsProbe::sample(last, name);
  };
  REQUIRE(wait_until([&] { return gauge("relay_oldest_snapshot_age_seconds").has_value(); }, 60s));

  // The snapshot is taken before the events exist and then stays idle in transaction.
  pqxx::connection reader{db.url()};
  pqxx::transaction<pqxx::isolation_level::repeatable_read> snapshot{reader, "long"};
  snapshot.exec("SELECT count(*) FROM relay.outbox");

  db.exec("SELECT relay.publish('t', 'k' || g, '{}'::jsonb) FROM generate_series(1, 500) g");
  REQUIRE(wait_until([&] { return db.count("relay.outbox") == 0; }, 60s));
  // VACUUM cannot remove what the snapshot may still see.
  db.exec("VACUUM relay.outbox");
  REQUIRE(wait_until([&] { return gauge("relay_outbox_dead_tuples").value_or(0) >= 500; }, 60s));
  REQUIRE(
      wait_until([&] { return gauge("relay_oldest_snapshot_age_seconds").value_or(0) >= 1; }, 60s));
  INFO(last);

  snapshot.abort();
  db.exec("VACUUM relay.outbox");
  // relay's own transactions are short: what remains is milliseconds old.
  REQUIRE(
      wait_until([&] { return gauge("relay_oldest_snapshot_age_seconds").value_or(99) < 1; }, 60s));
  REQUIRE(wait_until(
      [&] {
        db.exec("VACUUM relay.outbox");  // statistics of a VACUUM that ran before the abort landed
        return gauge("relay_outbox_dead_tuples").value_or(500) < 500;
      },
      60s));
  CHECK(consumer.received_ids().size() >= 500);
}
