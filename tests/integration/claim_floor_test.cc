// Integration: the claim floor (relay/store/claim_floor.h) against real PostgreSQL. The floor
// moves past the delivered prefix even while a REPEATABLE READ snapshot elsewhere keeps every
// deleted row as a dead tuple; and a row that a slow transaction inserted with a low id, committed
// after many later rows were claimed and delivered, is still claimed, at the head of its key.

#include <fmt/format.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <pqxx/pqxx>

#include "relay/store/outbox_rows.h"
#include "relay/store/outbox_source.h"
#include "tests/support/test_database.h"
#include "tests/support/wait.h"

using namespace std::chrono_literals;
using namespace relay::testing;
using relay::store::PgOutboxSource;

namespace {

PgOutboxSource make_source(TestDatabase& db, const std::string& owner) {
  return PgOutboxSource(db.url(), owner, relay::Millis(60'000), {"s"}, {"s"}, {});
}

// Publishes `n` events with keys k0..k(n-1) (one statement).
void publish_many(TestDatabase& db, int n, const std::string& prefix = "k") {
  db.exec(fmt::format(
      "SELECT relay.publish('t', '{}' || g, '{{}}'::jsonb) FROM generate_series(1, {}) g", prefix,
      n));
}

// One claim and the delivery of everything it took (deleted, as the recorder does). Returns the
// ids claimed, in order.
std::vector<std::int64_t> claim_and_deliver(TestDatabase& db, PgOutboxSource& source, int limit) {
  auto r = source.claim_outbox(limit, 0);
  REQUIRE(r.has_value());
  std::vector<std::int64_t> ids;
  for (const auto& c : *r) ids.push_back(c.event.outbox_id);
  db.exec(fmt::format("DELETE FROM relay.outbox WHERE lease_owner = '{}'", source.owner()));
  return ids;
}

}  // namespace

TEST_CASE("the claim floor moves past delivered rows while a REPEATABLE READ snapshot is open",
          "[integration][claim][floor]") {
  auto db = TestDatabase::create();
  auto source = make_source(db, "floor-a");
  // A snapshot taken before any event exists, held idle in transaction: vacuum can remove nothing.
  pqxx::connection reader{db.url()};
  pqxx::transaction<pqxx::isolation_level::repeatable_read> snapshot{reader, "long"};
  snapshot.exec("SELECT count(*) FROM relay.outbox");

  publish_many(db, 3000);
  const auto last_id = std::stoll(db.value("SELECT max(id) FROM relay.outbox"));
  long long delivered = 0;
  // Claims every few ms until all is delivered and a round moved the floor past it.
  REQUIRE(wait_until(
      [&] {
        delivered += static_cast<long long>(claim_and_deliver(db, source, 500).size());
        return delivered == 3000 && source.claim_floor().floor() > last_id;
      },
      60s));
  CHECK(source.claim_floor().enabled());
  CHECK(db.count("relay.outbox") == 0);
  // New events are claimed from there on.
  publish_many(db, 10, "late");
  REQUIRE(wait_until([&] { return claim_and_deliver(db, source, 100).size() == 10; }, 60s));
  snapshot.abort();
}

TEST_CASE(
    "a row a slow transaction inserts with a low id is claimed after it commits, at the head of "
    "its key, however many later rows were delivered meanwhile",
    "[integration][claim][floor][ordering]") {
  auto db = TestDatabase::create();
  auto source = make_source(db, "floor-b");
  auto other = make_source(db, "floor-c");  // a second relay: its floor is its own
  publish_many(db, 50, "warm");
  REQUIRE(wait_until([&] { return claim_and_deliver(db, source, 100).size() == 50; }, 60s));

  // The slow writer takes an id now and commits much later.
  pqxx::connection writer_conn{db.url()};
  pqxx::work writer{writer_conn, "slow"};
  const std::string slow_event =
      writer.exec("SELECT relay.publish('t', 'shared', '{}'::jsonb)::text")[0][0].c_str();
  const auto slow_id = std::stoll(
      writer.exec("SELECT id FROM relay.outbox WHERE event_id = " + writer.quote(slow_event))[0][0]
          .c_str());

  // Many later rows, claimed and delivered by both relays over many floor rounds.
  long long delivered = 0;
  int batches = 0;
  std::int64_t highest_floor = 0;
  const auto started = std::chrono::steady_clock::now();
  REQUIRE(wait_until(
      [&] {
        if (batches < 40) {
          publish_many(db, 100, fmt::format("b{}-", batches));
          ++batches;
        }
        delivered += static_cast<long long>(claim_and_deliver(db, source, 60).size());
        delivered += static_cast<long long>(claim_and_deliver(db, other, 60).size());
        // Both floors must stay at or below the slow row the whole time.
        highest_floor =
            std::max({highest_floor, source.claim_floor().floor(), other.claim_floor().floor()});
        // Enough rounds to have moved the floor many times if it ignored the writer.
        return delivered == 4000 && std::chrono::steady_clock::now() - started >
                                        20 * relay::store::ClaimFloor::kRoundEvery;
      },
      120s));
  CHECK(highest_floor <= slow_id);
  CHECK(highest_floor > 0);  // the floors did move up to it
  CHECK(source.claim_floor().final_through() < slow_id);

  // Later events of the same key, then the slow one commits.
  db.exec("SELECT relay.publish('t', 'shared', '{}'::jsonb) FROM generate_series(1, 3)");
  const auto later = db.rows("SELECT id FROM relay.outbox WHERE key = 'shared' ORDER BY id");
  REQUIRE(later.size() == 3);
  writer.commit();

  auto claimed = claim_and_deliver(db, source, 100);
  std::vector<std::int64_t> expected = {slow_id};
  for (const auto& row : later) expected.push_back(std::stoll(row[0]));
  CHECK(claimed == expected);
  CHECK(db.count("relay.outbox") == 0);
  // And now the floor moves past it.
  REQUIRE(wait_until(
      [&] {
        claim_and_deliver(db, source, 100);
        return source.claim_floor().floor() > expected.back();
      },
      60s));
}

// A queue table's statistics are mostly wrong, and a prepared statement keeps the generic plan it
// made while the outbox was empty: `id = ANY(array)` planned then is a sequential scan, and stays
// one when a backlog arrives. On relay's queue connections (plan_for_queue_tables) it probes the
// primary key. Measured in tests/bench before the fix: claims read the 20k-row backlog twice per
// 500 events, and the drain ran at a third of its rate.
TEST_CASE(
    "on relay's queue connections id = ANY(array) probes the primary key even with a plan "
    "made while the outbox was empty",
    "[integration][claim]") {
  auto db = TestDatabase::create();
  db.exec("VACUUM ANALYZE relay.outbox");
  auto prepare = [](pqxx::connection& c) {
    pqxx::nontransaction tx(c);
    tx.exec("SET plan_cache_mode = force_generic_plan");  // as a prepared claim gets after 5 runs
    tx.exec("PREPARE by_ids(bigint[]) AS SELECT id FROM relay.outbox WHERE id = ANY($1)");
    tx.exec("EXECUTE by_ids('{1,2,3}')");  // plans now, on the empty outbox
  };
  auto plan = [](pqxx::connection& c) {
    pqxx::nontransaction tx(c);
    std::string text;
    for (const auto& row : tx.exec("EXPLAIN EXECUTE by_ids('{1,2,3}')"))
      text += row[0].as<std::string>() + "\n";
    return text;
  };
  pqxx::connection plain{db.url()};
  pqxx::connection queue{db.url()};
  relay::store::plan_for_queue_tables(queue);
  prepare(plain);
  prepare(queue);
  publish_many(db, 5000);

  const std::string unguarded = plan(plain);
  INFO(unguarded);
  CHECK(unguarded.find("Seq Scan on outbox") != std::string::npos);  // the hazard is real here
  const std::string guarded = plan(queue);
  INFO(guarded);
  CHECK(guarded.find("Seq Scan") == std::string::npos);
  CHECK(guarded.find("Index") != std::string::npos);
}
