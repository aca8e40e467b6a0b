// Integration: the outbox claim itself (PgOutboxSource::claim_outbox against real PostgreSQL).
// A claim takes each key's oldest event (its head) and up to kRunLength - 1 events behind it, in
// id order; never an event behind a leased or delayed one of its key; never a run behind a head
// it could not lock, nor past a row it could not lock; and it names the subscriptions that must
// not get an event directly (held_for). The ordering tests check the same rules end to end
// through the binary; these pin down each rule on its own.

#include <fmt/format.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <pqxx/pqxx>

#include "relay/store/outbox_source.h"
#include "tests/support/test_database.h"

using namespace std::chrono_literals;
using namespace relay::testing;
using relay::store::PgOutboxSource;

namespace {

using Ids = std::vector<std::string>;

// Publishes one event; `key_sql` is an SQL literal ('a' or NULL). Returns its event id.
std::string publish(TestDatabase& db, const std::string& key_sql, bool delayed = false) {
  return db.value(
      fmt::format("SELECT relay.publish('t', {}, '{{}}'::jsonb, '{{}}'::jsonb, {})::text", key_sql,
                  delayed ? "now() + interval '1 hour'" : "NULL"));
}

Ids publish_n(TestDatabase& db, const std::string& key_sql, int n) {
  Ids ids;
  for (int i = 0; i < n; ++i) ids.push_back(publish(db, key_sql));
  return ids;
}

PgOutboxSource make_source(TestDatabase& db, const std::string& owner,
                           std::vector<std::string> ordered = {"s"},
                           std::vector<std::string> blocking = {}) {
  return PgOutboxSource(db.url(), owner, relay::Millis(60'000), {"s", "other", "b"},
                        std::move(ordered), std::move(blocking));
}

std::vector<relay::model::ClaimedEvent> claim(PgOutboxSource& source, int limit) {
  auto r = source.claim_outbox(limit, 0);
  REQUIRE(r.has_value());
  return std::move(*r);
}

Ids ids_of(const std::vector<relay::model::ClaimedEvent>& claimed) {
  Ids out;
  for (const auto& c : claimed) out.push_back(c.event.event_id);
  return out;
}

Ids concat(std::initializer_list<Ids> parts) {
  Ids out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

// The events `claim` returns in id order, as the pipeline expects them.
Ids in_outbox_order(TestDatabase& db, const Ids& ids) {
  Ids out;
  for (const auto& row : db.rows("SELECT event_id::text FROM relay.outbox ORDER BY id")) {
    if (std::find(ids.begin(), ids.end(), row[0]) != ids.end()) out.push_back(row[0]);
  }
  return out;
}

// Deletes what `owner` holds, as recording a delivered outcome does.
void deliver_all(TestDatabase& db, const std::string& owner) {
  db.exec(fmt::format("DELETE FROM relay.outbox WHERE lease_owner = '{}'", owner));
}

}  // namespace

TEST_CASE("an outbox claim takes each key's head and its run, and nothing behind a leased event",
          "[integration][ordering][claim]") {
  auto db = TestDatabase::create();
  constexpr int kRun = PgOutboxSource::kRunLength;
  Ids a, b, loose;
  // Interleaved: a1 b1 n1 a2 b2 n2 a3 b3 a4 ... a20.
  for (int i = 0; i < 20; ++i) {
    a.push_back(publish(db, "'a'"));
    if (i < 3) b.push_back(publish(db, "'b'"));
    if (i < 2) loose.push_back(publish(db, "NULL"));
  }
  auto one = make_source(db, "one");
  auto two = make_source(db, "two");

  const Ids a_run(a.begin(), a.begin() + kRun);
  const auto first = claim(one, 100);
  CHECK(ids_of(first) == in_outbox_order(db, concat({a_run, b, loose})));
  CHECK(db.count("relay.outbox WHERE lease_owner = 'one'") == static_cast<long long>(first.size()));

  // Everything left is behind an event `one` holds; rows that wait do not use up a claim's limit.
  CHECK(claim(two, 100).empty());
  const std::string f = publish(db, "'f'");
  CHECK(ids_of(claim(two, 1)) == Ids{f});

  deliver_all(db, "one");
  deliver_all(db, "two");
  CHECK(ids_of(claim(two, 100)) == Ids(a.begin() + kRun, a.begin() + 2 * kRun));

  // A claim's limit cuts a run short; the rest stays behind the leased part.
  deliver_all(db, "two");
  CHECK(ids_of(claim(one, 2)) == Ids(a.begin() + 2 * kRun, a.begin() + 2 * kRun + 2));
  CHECK(claim(two, 100).empty());
}

TEST_CASE("a delayed event ends its key's run and, as the head, holds the key back",
          "[integration][ordering][claim]") {
  auto db = TestDatabase::create();
  const std::string c1 = publish(db, "'c'");
  const std::string c2 = publish(db, "'c'", /*delayed=*/true);
  const std::string c3 = publish(db, "'c'");
  const std::string n1 = publish(db, "NULL", /*delayed=*/true);
  const std::string n2 = publish(db, "NULL");
  auto one = make_source(db, "one");

  CHECK(ids_of(claim(one, 100)) == Ids{c1, n2});
  deliver_all(db, "one");
  CHECK(claim(one, 100).empty());  // c2 is the head now and not yet due; c3 waits behind it

  db.exec("UPDATE relay.outbox SET deliver_after = now() - interval '1 second'");
  CHECK(ids_of(claim(one, 100)) == Ids{c2, c3, n1});
}

TEST_CASE(
    "an outbox claim skips a head another transaction holds, with its run, and stops a run "
    "at a row it cannot lock",
    "[integration][ordering][claim]") {
  auto db = TestDatabase::create();
  const Ids d = publish_n(db, "'d'", 4);
  const Ids e = publish_n(db, "'e'", 4);
  auto one = make_source(db, "one");

  // Another relay in the middle of its own claim of d's head (rows locked, not yet leased).
  pqxx::connection other(db.url());
  {
    pqxx::work tx(other);
    tx.exec_params("SELECT 1 FROM relay.outbox WHERE event_id = $1::uuid FOR UPDATE", d[0]);
    CHECK(ids_of(claim(one, 100)) == e);
    tx.abort();
  }
  deliver_all(db, "one");
  {
    pqxx::work tx(other);
    tx.exec_params("SELECT 1 FROM relay.outbox WHERE event_id = $1::uuid FOR UPDATE", d[2]);
    CHECK(ids_of(claim(one, 100)) == Ids{d[0], d[1]});
    tx.abort();
  }
  deliver_all(db, "one");
  CHECK(ids_of(claim(one, 100)) == Ids{d[2], d[3]});
}

TEST_CASE("keys that share a hashtext are ordered as one key: held back together, each in order",
          "[integration][ordering][claim]") {
  auto db = TestDatabase::create();
  // Two different keys with the same 32-bit hashtext (among 300,000 keys about ten pairs collide).
  const auto pair = db.rows(
      "SELECT min(k), max(k) FROM (SELECT 'k' || i AS k FROM generate_series(1, 300000) i) keys "
      "GROUP BY hashtext(k) HAVING count(*) > 1 LIMIT 1");
  REQUIRE(pair.size() == 1);
  const std::string x = "'" + pair[0][0] + "'";
  const std::string y = "'" + pair[0][1] + "'";
  REQUIRE(x != y);

  const std::string x1 = publish(db, x);
  const std::string y1 = publish(db, y);
  const std::string x2 = publish(db, x);
  const std::string y2 = publish(db, y);
  auto one = make_source(db, "one");
  auto two = make_source(db, "two");

  // x1 is the group's head: `one` gets both keys, each in its own order.
  CHECK(ids_of(claim(one, 1)) == Ids{x1});
  CHECK(claim(two, 100).empty());  // y1 waits behind x1, which `one` holds
  deliver_all(db, "one");
  CHECK(ids_of(claim(two, 100)) == Ids{y1, x2, y2});
}

TEST_CASE(
    "held_for names the ordered subscriptions with an earlier event of the key pending or "
    "dead-lettered",
    "[integration][ordering][claim]") {
  auto db = TestDatabase::create();
  auto pending = [&](const std::string& subscription, const std::string& key) {
    db.exec(fmt::format(
        "INSERT INTO relay.delivery (outbox_id, event_id, subscription, topic, key, payload, "
        "content_type, headers, created_at, next_attempt_at) VALUES (0, gen_random_uuid()::text, "
        "'{}', 't', '{}', 'x', 'application/json', '{{}}', now(), now() + interval '1 hour')",
        subscription, key));
  };

  SECTION("no pending row of an ordered subscription: nothing is held") {
    pending("other", "h");  // `other` is not ordered
    publish(db, "'h'");
    publish(db, "NULL");
    auto one = make_source(db, "one");
    const auto claimed = claim(one, 100);
    REQUIRE(claimed.size() == 2);
    for (const auto& c : claimed) CHECK(c.held_for.empty());
  }
  SECTION("a pending earlier event holds its key for that subscription only") {
    pending("s", "h");
    pending("other", "h");
    const std::string h = publish(db, "'h'");
    const std::string z = publish(db, "'z'");
    auto one = make_source(db, "one", {"s", "other"});
    const auto claimed = claim(one, 100);
    REQUIRE(ids_of(claimed) == Ids{h, z});
    auto held = claimed[0].held_for;
    std::sort(held.begin(), held.end());
    CHECK(held == std::vector<std::string>{"other", "s"});
    CHECK(claimed[1].held_for.empty());
  }
  SECTION("an unreplayed dead letter of an earlier event holds a blocking subscription") {
    db.exec(
        "INSERT INTO relay.dead_letter (event_id, subscription, topic, key, payload, content_type, "
        "headers, created_at, reason, attempts, outbox_id) VALUES (gen_random_uuid()::text, 'b', "
        "'t', 'h', 'x', 'application/json', '{}', now(), 'retries_exhausted', 3, 0)");
    const std::string h = publish(db, "'h'");
    auto blocking = make_source(db, "one", {"s"}, {"b"});
    auto claimed = claim(blocking, 100);
    REQUIRE(ids_of(claimed) == Ids{h});
    CHECK(claimed[0].held_for == std::vector<std::string>{"b"});

    // Replayed: it holds nothing any more.
    db.exec("UPDATE relay.dead_letter SET replayed_at = now()");
    db.exec("UPDATE relay.outbox SET lease_owner = NULL, lease_until = NULL");
    claimed = claim(blocking, 100);
    REQUIRE(claimed.size() == 1);
    CHECK(claimed[0].held_for.empty());
  }
}
