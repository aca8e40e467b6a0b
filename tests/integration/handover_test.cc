// Integration: the hand-over from a key's head to its successor, in the store, against real
// PostgreSQL. A successor queued behind its key's head waits with a far next_attempt_at and is
// promoted when the head leaves. Whatever the interleaving of "the successor is queued" and "the
// head leaves" — one after the other in either order, or at the same time in two transactions —
// the successor must end up due at once, never waiting for max_backoff. Each interleaving is driven
// deterministically: the head's removal is held open in a transaction of the test's own while the
// successor is written.

#include <fmt/format.h>

#include <catch2/catch.hpp>
#include <future>
#include <pqxx/pqxx>

#include "relay/store/inbox_store.h"
#include "relay/store/outcome_store.h"
#include "tests/support/test_database.h"
#include "tests/support/wait.h"

using namespace std::chrono_literals;
using namespace relay::testing;
using relay::model::PartOutcome;

namespace {

constexpr const char* kOwner = "relay-x";
constexpr auto kFar = relay::Millis(600'000);  // max_backoff's default: the safety net

struct Pair {
  std::int64_t head_delivery_id = 0;  // the key's head, pending in relay.delivery, leased to kOwner
  std::int64_t successor_outbox_id = 0;  // its next event, in relay.outbox, leased to kOwner
};

// Two events of key K for subscription s: the head moved to relay.delivery (as after a failed
// attempt) and claimed again, the successor claimed from the outbox; both held by kOwner.
Pair head_and_successor(TestDatabase& db) {
  db.exec("SELECT relay.publish('t', 'K', '{}'::jsonb)");
  db.exec("SELECT relay.publish('t', 'K', '{}'::jsonb)");
  const std::string head_outbox = db.value("SELECT min(id) FROM relay.outbox");
  db.exec(fmt::format(
      "INSERT INTO relay.delivery (outbox_id, event_id, subscription, topic, key, payload, "
      "content_type, headers, created_at, attempts, lease_owner, lease_until) "
      "SELECT id, event_id, 's', topic, key, payload, content_type, headers, created_at, 1, '{}', "
      "now() + interval '1 hour' FROM relay.outbox WHERE id = {}",
      kOwner, head_outbox));
  db.exec("DELETE FROM relay.outbox WHERE id = " + head_outbox);
  db.exec(fmt::format(
      "UPDATE relay.outbox SET lease_owner = '{}', lease_until = now() + interval '1 hour'",
      kOwner));
  return {std::stoll(db.value("SELECT id FROM relay.delivery")),
          std::stoll(db.value("SELECT id FROM relay.outbox"))};
}

relay::model::OutcomeBatch head_delivered(const Pair& p) {
  relay::model::OutcomeBatch b;
  b.deliveries.push_back({.delivery_id = p.head_delivery_id,
                          .part = {.kind = PartOutcome::Kind::kDelivered, .subscription = "s"}});
  return b;
}

relay::model::OutcomeBatch successor_queued(const Pair& p) {
  relay::model::OutcomeBatch b;
  b.outbox.push_back(
      {.outbox_id = p.successor_outbox_id,
       .parts = {{.kind = PartOutcome::Kind::kDeferred,
                  .behind_key = true,
                  .subscription = "s",
                  .retry_in = kFar,
                  .last_error = "waiting behind an earlier event of the same key"}}});
  return b;
}

// "t" when the successor's delivery row is due now, "f" when it waits.
std::string successor_due(TestDatabase& db, std::int64_t outbox_id) {
  return db.value(fmt::format(
      "SELECT next_attempt_at <= now() FROM relay.delivery WHERE outbox_id = {}", outbox_id));
}

// True once some backend of this database waits for a row lock.
bool someone_waits_for_a_lock(TestDatabase& db) {
  return db.count(
             "pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'") >
         0;
}

}  // namespace

TEST_CASE("hand-over: a successor queued behind a live head waits for it", "[integration][order]") {
  auto db = TestDatabase::create();
  const Pair p = head_and_successor(db);
  relay::store::PgOutcomeStore store(db.url(), kOwner, 4096);
  REQUIRE(store.record(successor_queued(p)).has_value());
  CHECK(successor_due(db, p.successor_outbox_id) == "f");  // per-key order: not before its head
  REQUIRE(store.record(head_delivered(p)).has_value());
  CHECK(successor_due(db, p.successor_outbox_id) == "t");  // promoted by the head's removal
}

TEST_CASE("hand-over: a successor queued after its head was delivered is due at once",
          "[integration][order]") {
  auto db = TestDatabase::create();
  const Pair p = head_and_successor(db);
  relay::store::PgOutcomeStore store(db.url(), kOwner, 4096);
  REQUIRE(store.record(head_delivered(p)).has_value());  // promotes nothing: no successor row yet
  REQUIRE(store.record(successor_queued(p)).has_value());
  CHECK(successor_due(db, p.successor_outbox_id) == "t");
}

TEST_CASE(
    "hand-over: a successor queued while its head's removal is in flight is due once it commits",
    "[integration][order]") {
  auto db = TestDatabase::create();
  const Pair p = head_and_successor(db);
  relay::store::PgOutcomeStore store(db.url(), kOwner, 4096);

  // The head leaves in a transaction that stays open: deleted, nothing promoted (the successor's
  // row does not exist yet), not committed.
  pqxx::connection other(db.url());
  pqxx::work removal(other);
  removal.exec("DELETE FROM relay.delivery WHERE id = " + std::to_string(p.head_delivery_id));

  // Meanwhile the successor is queued. It must not decide on a snapshot that still shows the head.
  auto queued = std::async(std::launch::async, [&] { return store.record(successor_queued(p)); });
  REQUIRE(wait_until(
      [&] {
        return queued.wait_for(0s) == std::future_status::ready || someone_waits_for_a_lock(db);
      },
      60s));
  removal.commit();
  REQUIRE(queued.get().has_value());
  CHECK(successor_due(db, p.successor_outbox_id) == "t");
}

TEST_CASE(
    "hand-over: an inbox event stored while its key's pushed predecessor is being removed is due "
    "once that commits",
    "[integration][order][inbox]") {
  auto db = TestDatabase::create();
  relay::store::InboxStore inbox(db.url(), {.max_connections = 2});
  const relay::store::InboxPush push{
      .subscription = "inbox:pay", .ordered = true, .queued_recheck = kFar};
  auto store_event = [&](const std::string& id) {
    const relay::store::InboxEvent e{.source = "pay",
                                     .event_id = id,
                                     .topic = "payment.settled",
                                     .key = "acct-1",
                                     .payload = "{}",
                                     .content_type = "application/json"};
    return inbox.insert({&e, 1}, &push);
  };
  REQUIRE(store_event("e1").has_value());
  REQUIRE(db.value("SELECT next_attempt_at <= now() FROM relay.delivery WHERE event_id = 'e1'") ==
          "t");

  // e1's delivery finishes: its row is deleted in a transaction that stays open.
  pqxx::connection other(db.url());
  pqxx::work removal(other);
  removal.exec("DELETE FROM relay.delivery WHERE event_id = 'e1'");

  auto stored = std::async(std::launch::async, [&] { return store_event("e2"); });
  REQUIRE(wait_until(
      [&] {
        return stored.wait_for(0s) == std::future_status::ready || someone_waits_for_a_lock(db);
      },
      60s));
  removal.commit();
  const auto written = stored.get();
  REQUIRE(written.has_value());
  CHECK(written->stored == 1);
  CHECK(db.value("SELECT next_attempt_at <= now() FROM relay.delivery WHERE event_id = 'e2'") ==
        "t");
}
