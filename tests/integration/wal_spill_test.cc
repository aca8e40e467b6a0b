// Integration: the WAL source's bound on memory (issue 15: "beyond which held events are written
// to relay.delivery and the stream goes on"). One key's first event hangs at the consumer; its
// later events fill source.wal.max_held_events; they must move to relay.delivery (parked behind
// the hanging event) so that other keys' events, committed after them, still arrive. When the
// hanging event finishes (delivered, retried, or after a SIGKILL of relay), the key's events
// arrive in commit order. Invariants are checked by counting rows and received ids.

#include <atomic>
#include <catch2/catch.hpp>
#include <csignal>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "tests/integration/test_config.h"
#include "tests/integration/wal_test_helpers.h"
#include "tests/support/fake_consumer.h"
#include "tests/support/gate.h"
#include "tests/support/relay_process.h"
#include "tests/support/test_database.h"
#include "tests/support/wait.h"

using namespace std::chrono_literals;
using namespace relay::testing;

namespace {

constexpr int kHotEvents = 300;    // after the hanging one: three times max_held_events
constexpr int kOtherEvents = 200;  // on keys k0..k19, committed after the hot key's events
constexpr int kFirstOther = 1000;

// Memory holds 100 events; a key in flight for 200ms has its waiting events moved out. The hot key's
// events (topic hot.e) go to their own subscription: a subscription's lane that waits for a hanging
// request holds the other keys that share the lane too, and that is not what this is about.
TestRelayConfig spill_config(const TestDatabase& db, const std::string& endpoint) {
  auto cfg = wal_config(db, endpoint, "    max_held_events: 100\n    spill_after: 200ms\n");
  cfg.subscriptions = {{.name = "slow", .topics = {"hot.*"}, .endpoint = endpoint},
                       {.name = "fast", .topics = {"order.*"}, .endpoint = endpoint}};
  return cfg;
}

int number_of(const ReceivedRequest& r) { return nlohmann::json::parse(r.body).at("i").get<int>(); }

bool is_hot_first(const ReceivedRequest& r) { return key_of(r) == "hot" && number_of(r) == 0; }

// The hot key's event 0 in one transaction, then its events 1..kHotEvents, then the other keys'
// events, in transactions of 50.
void publish_rest(TestDatabase& db) {
  for (int at = 1; at <= kHotEvents; at += 50) {
    db.exec(fmt::format(
        "SELECT relay.publish('hot.e', 'hot', jsonb_build_object('i', i)) "
        "FROM generate_series({}, {}) i ORDER BY i",
        at, std::min(kHotEvents, at + 49)));
  }
  for (int at = kFirstOther; at < kFirstOther + kOtherEvents; at += 50) {
    db.exec(fmt::format(
        "SELECT relay.publish('order.paid', 'k' || (i % 20), jsonb_build_object('i', i)) "
        "FROM generate_series({}, {}) i ORDER BY i",
        at, at + 49));
  }
}

// Opens the gate when the test ends, however it ends, so that the consumer's destructor does not
// wait for a hanging handler.
struct OpenAtExit {
  Gate& gate;
  ~OpenAtExit() { gate.open(); }
};

size_t others_received(const FakeConsumer& consumer) {
  std::set<int> seen;
  for (const auto& r : consumer.requests()) {
    if (key_of(r) != "hot") seen.insert(number_of(r));
  }
  return seen.size();
}

size_t hot_received_after_first(const FakeConsumer& consumer) {
  size_t n = 0;
  for (const auto& r : consumer.requests()) {
    if (key_of(r) == "hot" && number_of(r) != 0) ++n;
  }
  return n;
}

long long parked_rows(TestDatabase& db) {
  return std::stoll(
      db.value("SELECT count(*) FROM relay.delivery WHERE behind_outbox_id IS NOT NULL"));
}

// The hot key's events kHotEvents+1..last, in one transaction.
void publish_more_hot(TestDatabase& db, int last) {
  db.exec(fmt::format(
      "SELECT relay.publish('hot.e', 'hot', jsonb_build_object('i', i)) "
      "FROM generate_series({}, {}) i ORDER BY i",
      kHotEvents + 1, last));
}

// Every key's events arrived (first arrivals) in commit order, the hot key's 0..hot_last.
void check_orders(const FakeConsumer& consumer, bool successful, int hot_last = kHotEvents) {
  const auto by_key = first_arrivals_by_key(consumer, successful);
  REQUIRE(by_key.count("hot") == 1);
  std::vector<int> expected_hot;
  for (int i = 0; i <= hot_last; ++i) expected_hot.push_back(i);
  CHECK(by_key.at("hot") == expected_hot);
  size_t others = 0;
  for (const auto& [key, seq] : by_key) {
    if (key == "hot") continue;
    INFO("key " << key);
    CHECK(std::is_sorted(seq.begin(), seq.end()));
    others += seq.size();
  }
  CHECK(others == static_cast<size_t>(kOtherEvents));
}

// With relay (in spill_config) running: publishes the hot key's event 0, waits until it hangs at the
// consumer, publishes the rest, and waits until the other keys' events, committed after the hot
// key's 300, have all arrived. Returns what did not happen, or "" when the hot key's waiting events
// were moved out (parked) and the stream went on.
std::string spill_behind_hanging_event(TestDatabase& db, const FakeConsumer& consumer) {
  if (!wait_until([&] { return caught_up(db); }, 60s)) return "relay did not catch up";
  db.exec("SELECT relay.publish('hot.e', 'hot', '{\"i\": 0}'::jsonb)");
  if (!wait_until([&] { return consumer.requests().size() == 1; }, 30s))
    return "event 0 did not reach the consumer";
  publish_rest(db);
  if (!wait_until([&] { return others_received(consumer) == kOtherEvents; }, 60s))
    return "the other keys' events did not all arrive while event 0 hung";
  if (parked_rows(db) == 0) return "no row is parked";
  return "";
}

}  // namespace

TEST_CASE(
    "wal: a full memory moves a slow key's waiting events to relay.delivery and the stream goes "
    "on; the key keeps its commit order",
    "[integration][wal]") {
  auto db = TestDatabase::create();
  Gate gate;
  FakeConsumer consumer{[&](const ReceivedRequest& r) {
    if (is_hot_first(r)) gate.wait(120s);
    return Reply{200};
  }};
  OpenAtExit open_at_exit{gate};
  RelayProcess relay(to_yaml(spill_config(db, consumer.url())), {},
                     {{"DATABASE_URL", db.url()}});
  // The other keys' events were read past the hot key's 300 (three times what memory holds) while
  // its first event still hangs: the hot key's waiting events were moved out.
  const std::string missed = spill_behind_hanging_event(db, consumer);
  INFO(relay.log());
  REQUIRE(missed == "");
  CHECK(hot_received_after_first(consumer) == 0);

  gate.open();
  REQUIRE(wait_until([&] { return all_done(db); }, 60s));
  check_orders(consumer, /*successful=*/false);
  CHECK(duplicated(consumer.received_ids()).empty());
  CHECK(consumer.received_ids().size() == static_cast<size_t>(1 + kHotEvents + kOtherEvents));
  CHECK(parked_rows(db) == 0);
}

TEST_CASE(
    "wal: events moved out behind a slow event that then fails go after its retry",
    "[integration][wal]") {
  auto db = TestDatabase::create();
  Gate gate;
  std::atomic<int> hot_first_attempts{0};
  FakeConsumer consumer{[&](const ReceivedRequest& r) {
    if (is_hot_first(r) && hot_first_attempts++ == 0) {
      gate.wait(120s);
      return Reply{503};
    }
    return Reply{200};
  }};
  OpenAtExit open_at_exit{gate};
  RelayProcess relay(to_yaml(spill_config(db, consumer.url())), {},
                     {{"DATABASE_URL", db.url()}});
  REQUIRE(spill_behind_hanging_event(db, consumer) == "");

  gate.open();  // the hanging attempt fails: event 0 is retried from relay.delivery
  REQUIRE(wait_until([&] { return all_done(db); }, 60s));
  CHECK(hot_first_attempts.load() == 2);
  // In arrival order the hot key's answered-2xx events are 0, 1, ..., 300: none of the moved
  // events overtook the retry of event 0.
  check_orders(consumer, /*successful=*/true);
  CHECK(duplicated(consumer.successful_ids()).empty());
}

// The hot key's events committed while relay is down come back from the stream with event 0, in
// one claim: they must wait for the moved events, which wait behind event 0.
TEST_CASE(
    "wal: after a SIGKILL with events moved out behind an event in flight, the next relay "
    "delivers that event first, then the moved ones, then the key's later events",
    "[integration][wal]") {
  auto db = TestDatabase::create();
  Gate gate;
  FakeConsumer consumer{[&](const ReceivedRequest& r) {
    if (is_hot_first(r)) gate.wait(120s);
    return Reply{200};
  }};
  OpenAtExit open_at_exit{gate};
  const std::string yaml = to_yaml(spill_config(db, consumer.url()));
  std::set<std::string> before_kill;
  {
    RelayProcess relay(yaml, {}, {{"DATABASE_URL", db.url()}});
    REQUIRE(spill_behind_hanging_event(db, consumer) == "");
    relay.kill9();  // event 0 is in flight, the moved events are parked behind its row
    const auto received = consumer.received_ids();
    before_kill.insert(received.begin(), received.end());
  }
  gate.open();  // the first request for event 0 now gets its answer; nobody is listening
  publish_more_hot(db, kHotEvents + 50);

  RelayProcess relay(yaml, {}, {{"DATABASE_URL", db.url()}});
  REQUIRE(wait_until([&] { return all_done(db); }, 90s));
  check_orders(consumer, /*successful=*/false, kHotEvents + 50);
  // Only what was in flight or not yet recorded at the kill may arrive twice.
  for (const auto& id : duplicated(consumer.received_ids())) {
    INFO("duplicate " << id);
    CHECK(before_kill.count(id) == 1);
  }
  CHECK(parked_rows(db) == 0);
}

// The release of the moved events fails once (fault point: its connection is lost). The hot key's
// later events, in memory by then, must still wait until the next term of the reader has released
// the moved ones.
TEST_CASE(
    "wal: when the release of moved events is lost, the key's later events still wait for them",
    "[integration][wal]") {
  auto db = TestDatabase::create();
  Gate gate;
  FakeConsumer consumer{[&](const ReceivedRequest& r) {
    if (is_hot_first(r)) gate.wait(120s);
    return Reply{200};
  }};
  OpenAtExit open_at_exit{gate};
  RelayProcess relay(to_yaml(spill_config(db, consumer.url())), {},
                     {{"DATABASE_URL", db.url()}, {"RELAY_FAULTS", "wal.release_parked.lost@1"}});
  REQUIRE(spill_behind_hanging_event(db, consumer) == "");
  // Fewer than max_held_events: these stay in memory behind event 0.
  publish_more_hot(db, kHotEvents + 50);
  REQUIRE(wait_until(
      [&] { return db.value("SELECT count(*) FROM relay.outbox WHERE key = 'hot'") == "51"; }, 30s));

  gate.open();
  REQUIRE(wait_until([&] { return all_done(db); }, 60s));
  check_orders(consumer, /*successful=*/false, kHotEvents + 50);
  CHECK(parked_rows(db) == 0);
}

// Back to the table source with rows still parked: the table source releases them once the event
// they wait behind is delivered (checked when it renews its leases), so none waits forever. (Their
// order against the key's later events is not kept across such a switch: see README.)
TEST_CASE("wal: rows parked when relay switches back to the table source are still delivered",
          "[integration][wal]") {
  auto db = TestDatabase::create();
  Gate gate;
  FakeConsumer consumer{[&](const ReceivedRequest& r) {
    if (is_hot_first(r)) gate.wait(120s);
    return Reply{200};
  }};
  OpenAtExit open_at_exit{gate};
  auto cfg = spill_config(db, consumer.url());
  {
    RelayProcess relay(to_yaml(cfg), {}, {{"DATABASE_URL", db.url()}});
    REQUIRE(spill_behind_hanging_event(db, consumer) == "");
    relay.kill9();
  }
  gate.open();

  cfg.source_extra.clear();  // source.mode: table
  RelayProcess relay(to_yaml(cfg), {}, {{"DATABASE_URL", db.url()}});
  REQUIRE(wait_until([&] { return all_done(db); }, 90s));
  std::set<int> hot;
  for (const auto& r : consumer.requests()) {
    if (key_of(r) == "hot") hot.insert(number_of(r));
  }
  CHECK(hot.size() == static_cast<size_t>(kHotEvents + 1));
}
