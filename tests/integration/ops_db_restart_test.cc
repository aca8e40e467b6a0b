// Integration: PostgreSQL stops for a while under load. /readyz turns 503 while it is away and 200
// once it is back; relay reconnects by itself, never exits, and every event that committed is
// delivered at least once, with nothing left in relay.outbox or relay.delivery.
//
// Stops the shared test cluster, so CTest runs it with RUN_SERIAL: tests/integration/CMakeLists.txt
// sets that property on every discovered test whose name starts with "serial:".

#include <httplib.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <csignal>
#include <set>
#include <thread>

#include "tests/integration/test_config.h"
#include "tests/support/fake_consumer.h"
#include "tests/support/ops_probe.h"
#include "tests/support/pg_cluster.h"
#include "tests/support/relay_process.h"
#include "tests/support/test_database.h"
#include "tests/support/wait.h"

using namespace std::chrono_literals;
using namespace relay::testing;

TEST_CASE("serial: relay rides out a PostgreSQL stop and start: readyz flips, nothing is lost",
          "[integration][ops][db_restart]") {
  auto db = TestDatabase::create();
  FakeConsumer consumer;
  const int ops_port = FakeConsumer::unused_port();
  TestRelayConfig cfg;
  cfg.subscriptions = {{.name = "s", .topics = {"*"}, .endpoint = consumer.url()}};
  cfg.extra = fmt::format("ops:\n  listen: 127.0.0.1:{}\n", ops_port);
  RelayProcess relay(to_yaml(cfg), {}, {{"DATABASE_URL", db.url()}});

  OpsProbe ops(ops_port);
  auto get = [&](const char* path) { return ops.get(path); };
  auto readyz = [&] { return get("/readyz").first; };
  REQUIRE(wait_until([&] { return readyz() == 200; }, 60s));

  std::set<std::string> committed;
  int failed_publishes = 0;
  int n = 0;
  // One event per call; an id is only counted once its commit returned.
  auto publish_one = [&] {
    try {
      const std::string id = db.value(fmt::format(
          "SELECT relay.publish('t', 'k' || {}, jsonb_build_object('n', {}))::text", n % 7, n));
      ++n;
      if (!id.empty()) committed.insert(id);
    } catch (const std::exception&) {
      ++failed_publishes;
      std::this_thread::sleep_for(20ms);  // ok-sleep: paces the app's retries while the DB is down
    }
  };
  auto publish_for = [&](std::chrono::milliseconds d) {
    const auto end = std::chrono::steady_clock::now() + d;
    while (std::chrono::steady_clock::now() < end) {
      publish_one();
      // ok-sleep: the load generator's pace, not a wait for relay
      std::this_thread::sleep_for(5ms);  // ok-sleep
    }
  };

  publish_for(1500ms);
  const size_t before_stop = committed.size();
  REQUIRE(before_stop > 10);
  {
    RestartClusterOnExit guard;
    pg_stop();
    // Publishing fails while the database is down; that is the app's problem, not relay's.
    REQUIRE(wait_until(
        [&] {
          publish_one();
          return readyz() == 503;
        },
        60s));
    CHECK(get("/healthz").first == 200);  // down database: not ready, but alive
    publish_for(3000ms);
    CHECK(relay.running());
    pg_start();
  }
  REQUIRE(wait_until([&] { return readyz() == 200; }, 60s));
  publish_for(1500ms);
  INFO("committed " << committed.size() << ", failed publishes " << failed_publishes
                    << ", received " << consumer.count());
  CHECK(failed_publishes > 0);
  CHECK(committed.size() > before_stop);

  auto all_received = [&] {
    const auto got = consumer.successful_ids();
    const std::set<std::string> got_set(got.begin(), got.end());
    return std::includes(got_set.begin(), got_set.end(), committed.begin(), committed.end());
  };
  REQUIRE(wait_until(all_received, 90s));
  REQUIRE(wait_until(
      [&] { return db.count("relay.outbox") == 0 && db.count("relay.delivery") == 0; }, 60s));
  CHECK(db.count("relay.dead_letter") == 0);
  CHECK(relay.running());
  WARN("committed " << committed.size() << ", failed publishes " << failed_publishes
                    << ", requests received " << consumer.count());
  const std::string metrics = get("/metrics").second;
  CHECK(metrics.find("relay_database_reconnects_total ") != std::string::npos);
  CHECK(metrics.find("relay_database_reconnects_total 0") == std::string::npos);
  CHECK(metrics.find("relay_ready 1") != std::string::npos);
  INFO(relay.log());
  relay.signal(SIGTERM);
  CHECK(relay.wait_exit(60s) == 0);
}
