// Integration: every database connection relay holds is ended by the server (pg_terminate_backend,
// as an operator or a failover does) while relay is idle on some of them and has deliveries in
// flight. relay must replace them and shut down cleanly — and, in the sanitizer build, without the
// leak libpqxx 6.4 has when a statement starts on a connection that is already gone: this relay
// runs with LeakSanitizer on and no suppressions, so a leak fails it with a non-zero exit.

#include <catch2/catch.hpp>
#include <csignal>

#include "tests/integration/test_config.h"
#include "tests/support/fake_consumer.h"
#include "tests/support/gate.h"
#include "tests/support/relay_process.h"
#include "tests/support/test_database.h"
#include "tests/support/wait.h"

using namespace std::chrono_literals;
using namespace relay::testing;

TEST_CASE(
    "connections the server terminated are replaced before use: relay delivers, then exits 0 "
    "under LeakSanitizer with no suppressions",
    "[integration][db]") {
  auto db = TestDatabase::create();
  // Requests are held until the test lets them go, so deliveries are in flight while the sessions
  // are ended and their outcomes then go through the recorder's terminated connection.
  Gate gate;
  FakeConsumer consumer{[&](const ReceivedRequest&) {
    gate.wait(120s);
    return Reply{200};
  }};
  const int ops_port = FakeConsumer::unused_port();
  TestRelayConfig cfg;
  // No timer makes relay use a connection while the test ends them: the source sleeps until woken
  // (no poll, no lease renewal for minutes). A session ended in the middle of a statement still
  // leaks in libpqxx 6.4 (scripts/lsan.supp); this test is about sessions ended while idle.
  cfg.poll_interval = "60s";
  cfg.lease = "10m";
  cfg.shutdown_timeout = "2s";
  cfg.extra =
      fmt::format("ops:\n  listen: 127.0.0.1:{}\n", ops_port);  // its metrics connection too
  cfg.subscriptions = {{.name = "s", .topics = {"*"}, .endpoint = consumer.url()}};
  RelayProcess relay(to_yaml(cfg), {},
                     {{"DATABASE_URL", db.url()}, {"LSAN_OPTIONS", "print_suppressions=0"}});
  for (int i = 0; i < 3; ++i)
    db.exec("SELECT relay.publish('t', 'k" + std::to_string(i) + "', '{}'::jsonb)");
  REQUIRE(wait_until([&] { return consumer.count() >= 3; }, 60s));

  // Once relay has parked (its source asleep) and every session of its is idle, end them all, and
  // wait until each backend is gone: by then it has told its client so on the socket.
  const std::string relay_backends =
      "pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() "
      "AND backend_type = 'client backend'";
  REQUIRE(wait_until(
      [&] {
        return db.count("relay.parked") == 1 &&
               db.count(relay_backends + " AND state <> 'idle'") == 0;
      },
      60s));
  const std::string pids =
      db.value("SELECT coalesce(string_agg(pid::text, ','), '0') FROM " + relay_backends);
  REQUIRE(pids != "0");
  db.exec("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid IN (" + pids + ")");
  REQUIRE(wait_until([&] { return db.count("pg_stat_activity WHERE pid IN (" + pids + ")") == 0; },
                     60s));

  // Work still flows on new connections...
  gate.open();
  db.exec("SELECT relay.publish('t', 'after', '{}'::jsonb)");
  REQUIRE(wait_until([&] { return db.count("relay.outbox") == 0; }, 60s));
  CHECK(consumer.successful_ids().size() >= 4);

  // ...and the shutdown, which writes on every connection it still has, ends cleanly.
  relay.signal(SIGTERM);
  const auto code = relay.wait_exit(60s);
  INFO("relay log:\n" << relay.log());
  CHECK(code == 0);
}
