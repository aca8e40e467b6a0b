// Integration: the inbox's SQL side. The app claims events with relay.inbox_claim() under a lease
// (one per key at a time, re-claimable when the lease expires), acknowledges them with
// relay.inbox_ack() and releases them with relay.inbox_nack(); relay's retention task deletes
// finished rows in batches; InboxStore answers busy when its connections stay taken and fails
// (503) when a statement runs past statement_timeout, storing nothing in either case.

#include <catch2/catch.hpp>
#include <future>
#include <pqxx/pqxx>

#include "relay/store/inbox_store.h"
#include "tests/integration/inbox_test_helpers.h"
#include "tests/support/fake_consumer.h"
#include "tests/support/ops_probe.h"
#include "tests/support/relay_process.h"
#include "tests/support/test_database.h"
#include "tests/support/wait.h"

using namespace std::chrono_literals;
using namespace relay::testing;

namespace {

using Rows = std::vector<std::vector<std::string>>;

// Five events of claim-mode source "pull", received in this order (seq ascending).
void insert_pull_events(TestDatabase& db) {
  db.exec(
      "INSERT INTO relay.inbox (source, event_id, key, payload) VALUES "
      "('pull', 'e1', 'k1', 'a'), ('pull', 'e2', 'k1', 'b'), ('pull', 'e3', 'k2', 'c'), "
      "('pull', 'e4', NULL, 'd'), ('pull', 'e5', NULL, 'e'), ('other', 'e6', NULL, 'f')");
}

Rows claim(TestDatabase& db, int n, const std::string& lease = "60 seconds") {
  return db.rows(fmt::format(
      "SELECT event_id, attempts::text FROM relay.inbox_claim('pull', {}, '{}')", n, lease));
}

}  // namespace

TEST_CASE("inbox_claim hands out one event per key, oldest first, and ack/nack settle them",
          "[integration][inbox]") {
  auto db = TestDatabase::create();
  insert_pull_events(db);

  // e2 waits behind e1 (same key); e6 belongs to another source.
  CHECK(claim(db, 10) == Rows{{"e1", "1"}, {"e3", "1"}, {"e4", "1"}, {"e5", "1"}});
  CHECK(claim(db, 10).empty());  // everything claimable is leased

  CHECK(db.value("SELECT relay.inbox_ack('pull', ARRAY['e1', 'e3'])") == "2");
  CHECK(db.value("SELECT relay.inbox_ack('pull', ARRAY['e1'])") == "0");  // already acknowledged
  CHECK(claim(db, 10) == Rows{{"e2", "1"}});

  // nack: released with its error, claimable again at once (or after p_retry_after).
  CHECK(db.value("SELECT relay.inbox_nack('pull', 'e4', 'db deadlock')") == "t");
  CHECK(db.value("SELECT relay.inbox_nack('pull', 'e5', 'later', '1 hour')") == "t");
  CHECK(db.value("SELECT relay.inbox_nack('pull', 'e1', 'not claimed')") == "f");
  CHECK(claim(db, 10) == Rows{{"e4", "2"}});
  CHECK(db.value("SELECT last_error FROM relay.inbox WHERE event_id = 'e4'") == "db deadlock");

  CHECK(db.value("SELECT relay.inbox_ack('pull', ARRAY['e2', 'e4'])") == "2");
  CHECK(db.count("relay.inbox WHERE source = 'pull' AND processed_at IS NOT NULL") == 4);
  CHECK(db.count("relay.inbox WHERE source = 'other' AND processed_at IS NULL") == 1);
}

TEST_CASE("an inbox event whose lease expires unacknowledged is claimed again",
          "[integration][inbox]") {
  auto db = TestDatabase::create();
  insert_pull_events(db);
  CHECK(claim(db, 1, "200 milliseconds") == Rows{{"e1", "1"}});
  // Lease time is the database's: wait for it to pass, then e1 is the oldest claimable again.
  REQUIRE(wait_until([&] { return claim(db, 1) == Rows{{"e1", "2"}}; }, 60s));
  CHECK(db.value("SELECT relay.inbox_ack('pull', ARRAY['e1'])") == "1");
  CHECK(claim(db, 1) == Rows{{"e2", "1"}});
}

TEST_CASE("a pushed inbox row is never handed out by inbox_claim nor acknowledged by inbox_ack",
          "[integration][inbox]") {
  auto db = TestDatabase::create();
  db.exec(
      "INSERT INTO relay.inbox (source, event_id, payload, lease_owner, lease_until) VALUES "
      "('pull', 'p1', 'x', 'relay-push', 'infinity')");
  CHECK(claim(db, 10).empty());
  CHECK(db.value("SELECT relay.inbox_ack('pull', ARRAY['p1'])") == "0");
}

TEST_CASE("retention deletes finished inbox rows past inbox.retention in batches, and only those",
          "[integration][inbox]") {
  auto db = TestDatabase::create();
  // 2,500 processed long ago (three batches of 1,000), 3 dead-lettered long ago; kept: 10 processed
  // recently, 5 never processed (however old).
  db.exec(
      "INSERT INTO relay.inbox (source, event_id, payload, received_at, processed_at) "
      "SELECT 'pull', 'old-' || g, 'x', now() - interval '9 days', now() - interval '8 days' "
      "FROM generate_series(1, 2500) g");
  db.exec(
      "INSERT INTO relay.inbox (source, event_id, payload, received_at, dead_lettered_at) "
      "SELECT 'pull', 'dead-' || g, 'x', now() - interval '9 days', now() - interval '8 days' "
      "FROM generate_series(1, 3) g");
  db.exec(
      "INSERT INTO relay.inbox (source, event_id, payload, processed_at) "
      "SELECT 'pull', 'recent-' || g, 'x', now() - interval '1 hour' FROM generate_series(1, 10) "
      "g");
  db.exec(
      "INSERT INTO relay.inbox (source, event_id, payload, received_at) "
      "SELECT 'pull', 'pending-' || g, 'x', now() - interval '30 days' FROM generate_series(1, 5) "
      "g");

  const int port = FakeConsumer::unused_port();
  const int ops_port = FakeConsumer::unused_port();
  RelayProcess relay(inbox_yaml(port, {{.name = "pull"}}, "  retention: 7d\n",
                                fmt::format("ops:\n  listen: 127.0.0.1:{}\n", ops_port)),
                     {}, {{"DATABASE_URL", db.url()}});
  REQUIRE(wait_until([&] { return db.count("relay.inbox") == 15; }, 60s));
  CHECK(db.count("relay.inbox WHERE event_id LIKE 'recent-%'") == 10);
  CHECK(db.count("relay.inbox WHERE event_id LIKE 'pending-%'") == 5);
  OpsProbe ops(ops_port);
  REQUIRE(wait_until(
      [&] {
        return OpsProbe::sample(ops.metrics(), "relay_inbox_retention_deleted_total") == 2503;
      },
      60s));
}

TEST_CASE(
    "InboxStore answers busy when its connections stay taken and fails past "
    "statement_timeout, storing nothing",
    "[integration][inbox]") {
  auto db = TestDatabase::create();
  // The first insert waits on the lock until statement_timeout; the test has to see it waiting and
  // make its second insert (acquire_timeout) inside that window. 1 s raced a loaded machine; 5 s is
  // the store's default.
  constexpr auto kStatementTimeout = 5000ms;
  relay::store::InboxStore store(
      db.url(),
      {.max_connections = 1, .acquire_timeout = 200ms, .statement_timeout = kStatementTimeout});
  relay::store::InboxEvent event{.source = "s", .event_id = "blocked", .payload = "x"};
  event.content_type = "application/json";

  // Another session inserts the same (source, event_id) and does not commit: the store's insert
  // waits on it, holding the store's only connection.
  pqxx::connection other(db.url());
  pqxx::work blocker(other);
  blocker.exec("INSERT INTO relay.inbox (source, event_id, payload) VALUES ('s', 'blocked', 'y')");

  auto first = std::async(std::launch::async, [&] { return store.insert({&event, 1}, nullptr); });
  REQUIRE(wait_until(
      [&] {
        return db.count(
                   "pg_stat_activity WHERE datname = current_database() AND "
                   "wait_event_type = 'Lock'") == 1;
      },
      kStatementTimeout));  // the lock wait cannot outlast it
  // While the first insert waits, a second one finds no free connection.
  relay::store::InboxEvent second_event = event;
  second_event.event_id = "second";
  auto second = store.insert({&second_event, 1}, nullptr);
  REQUIRE(second.has_value());
  CHECK(second->busy);
  // The first runs into statement_timeout: an error (503), not an acknowledgement.
  auto r = first.get();
  CHECK_FALSE(r.has_value());
  blocker.abort();

  CHECK(db.count("relay.inbox") == 0);
  // The store recovers on its own: the next insert stores.
  auto again = store.insert({&event, 1}, nullptr);
  REQUIRE(again.has_value());
  CHECK(again->stored == 1);
  CHECK(db.count("relay.inbox") == 1);
}
