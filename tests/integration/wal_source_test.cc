// Integration: the WAL source (source.mode: wal) against a real PostgreSQL with wal_level =
// logical (scripts/pg). Each test uses its own slot, named after its database (slot names are
// cluster-wide); TestDatabase drops it with the database. Invariants are checked by counting rows
// and received ids.

#include <catch2/catch.hpp>
#include <csignal>
#include <map>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>
#include <set>
#include <thread>

#include "tests/integration/test_config.h"
#include "tests/integration/wal_test_helpers.h"
#include "tests/support/fake_consumer.h"
#include "tests/support/gate.h"
#include "tests/support/ops_probe.h"
#include "tests/support/relay_process.h"
#include "tests/support/test_database.h"
#include "tests/support/wait.h"

using namespace std::chrono_literals;
using namespace relay::testing;

TEST_CASE(
    "wal: events committed before and after relay starts are delivered once, in key order, "
    "and the slot confirms them",
    "[integration][wal]") {
  auto db = TestDatabase::create();
  FakeConsumer consumer;
  // Written before the slot exists: only the catch-up from the table can deliver these.
  auto ids = publish(db, 0, 500);
  RelayProcess relay(to_yaml(wal_config(db, consumer.url())), {}, {{"DATABASE_URL", db.url()}});
  REQUIRE(wait_until([&] { return consumer.count() >= 500; }, 60s));
  // Streamed.
  auto more = publish(db, 500, 1'000);
  ids.insert(ids.end(), more.begin(), more.end());
  REQUIRE(wait_until([&] { return all_done(db) && consumer.count() >= ids.size(); }, 60s));

  const auto received = consumer.received_ids();
  CHECK(std::set<std::string>(received.begin(), received.end()) ==
        std::set<std::string>(ids.begin(), ids.end()));
  CHECK(received.size() == ids.size());
  for (const auto& [key, seq] : arrivals_by_key(consumer)) {
    INFO("key " << key);
    CHECK(std::is_sorted(seq.begin(), seq.end()));
  }
  CHECK(db.count("relay.dead_letter") == 0);
  CHECK(caught_up(db));
  // No trigger, no claims: outbox rows were never leased.
  CHECK(db.count("pg_stat_user_tables WHERE relid = 'relay.outbox'::regclass AND n_tup_upd > 0") ==
        0);
  // Everything delivered is confirmed (status_interval 200ms), so a restart replays nothing.
  const std::string lsn = db.value("SELECT pg_current_wal_lsn()::text");
  REQUIRE(wait_until(
      [&] {
        return db.value("SELECT confirmed_flush_lsn >= '" + lsn +
                        "'::pg_lsn FROM pg_replication_slots WHERE slot_name = '" + db.name() +
                        "'") == "t";
      },
      30s));
}

TEST_CASE("wal: SIGKILL mid-stream loses nothing and duplicates only ids that were in flight",
          "[integration][wal]") {
  auto db = TestDatabase::create();
  Gate killed;
  FakeConsumer consumer{[&](const ReceivedRequest& r) {
    if (r.sequence >= 1'500) killed.wait(60s);
    return Reply{200};
  }};
  const auto cfg = wal_config(db, consumer.url());
  std::vector<std::string> ids;
  {
    RelayProcess relay(to_yaml(cfg), {}, {{"DATABASE_URL", db.url()}});
    ids = publish(db, 0, 5'000, 50, 250);
    REQUIRE(wait_until([&] { return consumer.count() >= 1'500; }, 60s));
    relay.kill9();
  }
  killed.open();
  const size_t before = consumer.count();
  CHECK(before < ids.size());

  // The dead relay's lease runs out after takeover_after (2s); the new one replays what was not
  // confirmed and skips rows that are gone.
  RelayProcess relay(to_yaml(cfg), {}, {{"DATABASE_URL", db.url()}});
  REQUIRE(wait_until([&] { return all_done(db); }, 120s));
  const auto received = consumer.received_ids();
  CHECK(std::set<std::string>(received.begin(), received.end()) ==
        std::set<std::string>(ids.begin(), ids.end()));
  // Repeated receipts: every one beyond an id's first.
  const size_t dups =
      received.size() - std::set<std::string>(received.begin(), received.end()).size();
  INFO("duplicates: " << dups << " of " << received.size());
  // Only what was on its way at the kill: at most max_in_flight (8) requests per lane ... bounded
  // well below what was delivered before the kill.
  CHECK(dups <= 200);
  // After dropping the replays of what was in flight, each key's first arrivals are in order.
  for (const auto& [key, firsts] : first_arrivals_by_key(consumer)) {
    INFO("key " << key);
    CHECK(std::is_sorted(firsts.begin(), firsts.end()));
  }
}

TEST_CASE("wal: a standby relay takes over the slot when the active one is SIGKILLed",
          "[integration][wal]") {
  auto db = TestDatabase::create();
  FakeConsumer consumer;
  const auto cfg = wal_config(db, consumer.url());
  RelayProcess first(to_yaml(cfg), {}, {{"DATABASE_URL", db.url()}});
  REQUIRE(wait_until([&] { return caught_up(db); }, 60s));
  RelayProcess second(to_yaml(cfg), {}, {{"DATABASE_URL", db.url()}});
  auto ids = publish(db, 0, 1'000);
  REQUIRE(wait_until([&] { return all_done(db); }, 60s));
  const std::string active = db.value("SELECT owner FROM relay.wal_reader");
  REQUIRE(!active.empty());
  // Which process is active: the owner id holds the pid.
  const bool first_active =
      active.find(":" + std::to_string(first.pid()) + ":") != std::string::npos;
  (first_active ? first : second).kill9();

  auto more = publish(db, 1'000, 1'000);
  ids.insert(ids.end(), more.begin(), more.end());
  REQUIRE(wait_until([&] { return all_done(db); }, 60s));
  const auto received = consumer.received_ids();
  CHECK(std::set<std::string>(received.begin(), received.end()) ==
        std::set<std::string>(ids.begin(), ids.end()));
  CHECK(received.size() == ids.size());  // nothing was in flight at the kill
  CHECK(db.value("SELECT owner FROM relay.wal_reader") != active);
}

TEST_CASE("wal: a slot dropped while relay is down loses nothing: the table catches it up",
          "[integration][wal]") {
  auto db = TestDatabase::create();
  FakeConsumer consumer;
  const auto cfg = wal_config(db, consumer.url());
  std::vector<std::string> ids;
  {
    RelayProcess relay(to_yaml(cfg), {}, {{"DATABASE_URL", db.url()}});
    ids = publish(db, 0, 300);
    REQUIRE(wait_until([&] { return all_done(db); }, 60s));
    relay.signal(SIGTERM);
    REQUIRE(relay.wait_exit(30s) == 0);
  }
  // Written while nobody streams, then the slot goes: the stream can never bring these.
  auto lost = publish(db, 300, 300);
  ids.insert(ids.end(), lost.begin(), lost.end());
  db.exec("SELECT pg_drop_replication_slot('" + db.name() + "')");

  RelayProcess relay(to_yaml(cfg), {}, {{"DATABASE_URL", db.url()}});
  auto after = publish(db, 600, 300);
  ids.insert(ids.end(), after.begin(), after.end());
  REQUIRE(wait_until([&] { return all_done(db) && consumer.count() >= ids.size(); }, 60s));
  const auto received = consumer.received_ids();
  CHECK(std::set<std::string>(received.begin(), received.end()) ==
        std::set<std::string>(ids.begin(), ids.end()));
  CHECK(received.size() == ids.size());
  for (const auto& [key, seq] : arrivals_by_key(consumer)) {
    INFO("key " << key);
    CHECK(std::is_sorted(seq.begin(), seq.end()));
  }
}

TEST_CASE("wal: per-key order is commit order when writers commit out of id order",
          "[integration][wal]") {
  auto db = TestDatabase::create();
  FakeConsumer consumer;
  RelayProcess relay(to_yaml(wal_config(db, consumer.url())), {}, {{"DATABASE_URL", db.url()}});
  REQUIRE(wait_until([&] { return caught_up(db); }, 60s));
  // A takes the lower id, B the higher one; B commits first. Both commit while relay is paused, so
  // it sees them together: by id (the table source's order) A would go first; by commit, B.
  relay.signal(SIGSTOP);
  OutOfIdOrderWriters w(db);
  const std::string id_a = w.id_a, id_b = w.id_b;
  w.tb.commit();
  w.ta.commit();
  relay.signal(SIGCONT);
  REQUIRE(wait_until([&] { return consumer.count() >= 2; }, 30s));
  CHECK(consumer.received_ids() == std::vector<std::string>{id_b, id_a});
}

TEST_CASE("wal: a role without REPLICATION gets exit code 2 and a message naming it",
          "[integration][wal]") {
  auto db = TestDatabase::create();
  const std::string role = db.name() + "_norepl";
  db.exec("DROP ROLE IF EXISTS " + role + "; CREATE ROLE " + role +
          " LOGIN; GRANT ALL ON SCHEMA "
          "relay TO " +
          role + "; GRANT ALL ON ALL TABLES IN SCHEMA relay TO " + role);
  FakeConsumer consumer;
  std::string url = db.url();
  url.replace(url.find("postgres@"), std::string("postgres@").size(), role + "@");
  RelayProcess relay(to_yaml(wal_config(db, consumer.url())), {}, {{"DATABASE_URL", url}});
  const auto code = relay.wait_exit(60s);
  const std::string log = relay.log();
  db.exec("DROP OWNED BY " + role + "; DROP ROLE " + role);
  REQUIRE(code.has_value());
  CHECK(*code == 2);
  INFO(log);
  CHECK(log.find("REPLICATION") != std::string::npos);
}

TEST_CASE("wal: a delayed event waits in relay.delivery until deliver_after, and its key behind it",
          "[integration][wal]") {
  auto db = TestDatabase::create();
  FakeConsumer consumer;
  RelayProcess relay(to_yaml(wal_config(db, consumer.url())), {}, {{"DATABASE_URL", db.url()}});
  REQUIRE(wait_until([&] { return caught_up(db); }, 60s));
  const auto delayed = db.value(
      "SELECT relay.publish('order.paid', 'k', '{\"i\": 1}'::jsonb, '{}'::jsonb, "
      "now() + interval '2 seconds')::text");
  const auto next = db.value("SELECT relay.publish('order.paid', 'k', '{\"i\": 2}'::jsonb)::text");
  const auto other = db.value("SELECT relay.publish('order.paid', 'x', '{\"i\": 3}'::jsonb)::text");
  // The other key is not held up; the delayed one waits without spending an attempt.
  REQUIRE(wait_until([&] { return consumer.count() >= 1; }, 30s));
  CHECK(consumer.received_ids().front() == other);
  REQUIRE(wait_until([&] { return db.count("relay.delivery WHERE attempts = 0") == 2; }, 30s));
  CHECK(db.count("relay.delivery WHERE event_id = '" + delayed +
                 "' AND next_attempt_at >= (SELECT created_at FROM relay.delivery WHERE event_id "
                 "= '" +
                 delayed + "') + interval '1900 milliseconds'") == 1);
  REQUIRE(wait_until([&] { return all_done(db) && consumer.count() >= 3; }, 30s));
  CHECK(consumer.received_ids() == std::vector<std::string>{other, delayed, next});
}

TEST_CASE(
    "wal: /metrics shows the reader, the slot, the catch-up and the confirmed position; "
    "relay status shows the slot",
    "[integration][wal]") {
  auto db = TestDatabase::create();
  FakeConsumer consumer;
  publish(db, 0, 250);  // before the slot: caught up from the table
  const int ops_port = FakeConsumer::unused_port();
  auto cfg = wal_config(db, consumer.url());
  cfg.extra = fmt::format("ops:\n  listen: 127.0.0.1:{}\n", ops_port);
  RelayProcess relay(to_yaml(cfg), {}, {{"DATABASE_URL", db.url()}});
  OpsProbe ops(ops_port);
  const std::string slot = "{slot=\"" + db.name() + "\"}";
  std::string last;
  auto value = [&](const std::string& name) {
    last = ops.metrics();
    return OpsProbe::sample(last, name + slot);
  };
  REQUIRE(wait_until([&] { return all_done(db); }, 60s));
  publish(db, 250, 100);  // streamed
  REQUIRE(wait_until([&] { return all_done(db) && consumer.count() >= 350; }, 60s));
  INFO(last);
  REQUIRE(wait_until([&] { return value("relay_wal_active") == 1.0; }, 30s));
  CHECK(value("relay_wal_catching_up") == 0.0);
  CHECK(value("relay_wal_catch_up_rows_total") == 250.0);
  // The slot row is read every status_interval (200ms): wait for one after streaming began.
  REQUIRE(wait_until([&] { return value("relay_wal_slot_active") == 1.0; }, 30s));
  CHECK(value("relay_wal_slot_lost") == 0.0);
  REQUIRE(wait_until([&] { return value("relay_wal_confirmed_lsn_bytes").value_or(0) > 0; }, 30s));
  CHECK(value("relay_wal_held_events") == 0.0);
  CHECK(value("relay_wal_slot_retained_bytes").value_or(-1) >= 0);

  std::string out;
  REQUIRE(RelayProcess::run_cli({"status", "--database-url", db.url(), "--output", "json"}, &out) ==
          0);
  INFO(out);
  const auto doc = nlohmann::json::parse(out);
  REQUIRE(doc.at("wal_slots").size() == 1);
  const auto& w = doc.at("wal_slots")[0];
  CHECK(w.at("slot") == db.name());
  CHECK(w.at("exists") == true);
  CHECK(w.at("active") == true);
  CHECK(w.at("caught_up") == true);
  CHECK(w.at("owner").is_string());
}
