// Integration: batch subscriptions (`batch: {max_events, max_bytes, linger}`). A batch is one
// request that succeeds or fails as a whole; per-key order holds across batches and retries; a
// final answer dead-letters every event of the batch; no request passes max_events or (with more
// than one event) max_bytes. Bodies are parsed here: JSON arrays of CloudEvents with nlohmann, and
// relay.v1.EventBatch with relay's decoder.

#include <algorithm>
#include <catch2/catch.hpp>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <set>

#include "tests/integration/batch_test_helpers.h"
#include "tests/integration/test_config.h"
#include "tests/support/fake_consumer.h"
#include "tests/support/relay_process.h"
#include "tests/support/test_database.h"
#include "tests/support/wait.h"

using namespace std::chrono_literals;
using namespace relay::testing;

namespace {

bool drained(TestDatabase& db) {
  return db.count("relay.outbox") == 0 && db.count("relay.delivery") == 0;
}

constexpr int kKeys = 20;
constexpr int kPerKey = 50;
constexpr int kMaxEvents = 20;

// Publishes kPerKey events for each of kKeys keys, interleaved; returns their ids.
std::set<std::string> publish_ordered(TestDatabase& db) {
  std::set<std::string> ids;
  for (int n0 = 0; n0 < kPerKey; n0 += 10) {
    for (const auto& row : db.rows(fmt::format(
             "SELECT relay.publish('order.step', 'key-' || k, jsonb_build_object('k', k, 'n', "
             "n))::text FROM generate_series({}, {}) n, generate_series(0, {}) k ORDER BY n, k",
             n0, n0 + 9, kKeys - 1))) {
      ids.insert(row[0]);
    }
  }
  return ids;
}

// Runs relay against a consumer failing ~30% of batch requests at random (seeded) and checks: every
// event arrives, the first successful receipts of each key are in publish order, nothing is
// dead-lettered, batches really carried several events and never more than max_events.
void check_order_across_batches(const std::string& format) {
  auto db = TestDatabase::create();
  std::mutex mu;
  std::mt19937 rng{4242};
  std::uniform_real_distribution<double> dist{0.0, 1.0};
  FakeConsumer consumer{[&](const ReceivedRequest&) {
    std::lock_guard lock(mu);
    return Reply{dist(rng) < 0.3 ? 503 : 200};
  }};
  const std::set<std::string> published = publish_ordered(db);
  REQUIRE(published.size() == static_cast<size_t>(kKeys * kPerKey));

  TestRelayConfig cfg;
  cfg.lease = "3s";
  cfg.subscriptions = {
      {.name = "batched",
       .topics = {"order.*"},
       .endpoint = consumer.url(),
       .max_attempts = 100,
       .initial_backoff = "5ms",
       .max_backoff = "50ms",
       .max_in_flight = 4,
       .extra = batch_keys(format, kMaxEvents, 1 << 20, "5ms") +
                "    circuit_breaker: { failure_threshold: 8, open_for: 50ms, max_open_for: 200ms "
                "}\n"}};
  RelayProcess relay(to_yaml(cfg), {}, {{"DATABASE_URL", db.url()}});
  REQUIRE(wait_until([&] { return drained(db); }, 240s));

  std::set<std::string> seen;
  std::map<int, std::vector<int>> order;  // key -> n of each first successful receipt
  size_t largest = 0;
  bool some_failed = false;
  for (const auto& r : consumer.requests()) {
    const auto events = events_of(r);
    largest = std::max(largest, events.size());
    if (r.status < 200 || r.status > 299) {
      some_failed = true;
      continue;
    }
    for (const auto& e : events) {
      if (!seen.insert(e.id).second) continue;
      CHECK(e.key == fmt::format("key-{}", e.k));
      order[e.k].push_back(e.n);
    }
  }
  CHECK(some_failed);  // the failure path really ran
  CHECK(largest > 1);  // and batches really formed
  CHECK(largest <= static_cast<size_t>(kMaxEvents));
  CHECK(seen == published);
  REQUIRE(order.size() == static_cast<size_t>(kKeys));
  std::vector<int> expected(kPerKey);
  for (int i = 0; i < kPerKey; ++i) expected[i] = i;
  for (const auto& [key, seq] : order) {
    INFO("key " << key);
    CHECK(seq == expected);
  }
  CHECK(db.count("relay.dead_letter") == 0);
}

// Publishes `n` events with keys key-0..key-(n-1) (each its own key, so a retry can take them all
// at once) and the given payload padding; returns their ids in publish order.
std::vector<std::string> publish_distinct_keys(TestDatabase& db, int n, int pad = 0) {
  std::vector<std::string> ids;
  for (const auto& row : db.rows(fmt::format(
           "SELECT relay.publish('t', 'key-' || i, jsonb_build_object('k', i, 'n', 0, 'pad', "
           "repeat('x', {})))::text FROM generate_series(0, {}) i ORDER BY i",
           pad, n - 1))) {
    ids.push_back(row[0]);
  }
  return ids;
}

std::vector<std::string> ids_of(const std::vector<BatchEvent>& events) {
  std::vector<std::string> out;
  for (const auto& e : events) out.push_back(e.id);
  return out;
}

}  // namespace

TEST_CASE("a protobuf batch subscription keeps per-key order through random failures",
          "[integration][batch]") {
  check_order_across_batches("protobuf");
}

TEST_CASE("a failed batch is retried whole: the same events in the same order, delivered once",
          "[integration][batch]") {
  auto db = TestDatabase::create();
  FakeConsumer consumer{
      [](const ReceivedRequest& r) { return Reply{r.sequence == 0 ? 500 : 200}; }};
  const auto ids = publish_distinct_keys(db, 12);
  TestRelayConfig cfg;
  // One lane, and a linger long enough that the whole claim forms one batch.
  cfg.subscriptions = {{.name = "batched",
                        .topics = {"*"},
                        .endpoint = consumer.url(),
                        .max_in_flight = 1,
                        .extra = batch_keys("cloudevents-json", 100, 1 << 20, "300ms")}};
  RelayProcess relay(to_yaml(cfg), {}, {{"DATABASE_URL", db.url()}});
  REQUIRE(wait_until([&] { return drained(db); }, 60s));

  const auto requests = consumer.requests();
  REQUIRE(requests.size() == 2);
  CHECK(requests[0].status == 500);
  CHECK(requests[1].status == 200);
  const auto first = ids_of(events_of(requests[0]));
  const auto second = ids_of(events_of(requests[1]));
  CHECK(first == ids);  // one batch, in publish order
  CHECK(second == first);
  // Each event was attempted twice: once in each request.
  CHECK(requests[0].headers.at("relay-attempt") == "1");
  CHECK(requests[1].headers.at("relay-attempt") == "2");
  CHECK(db.count("relay.dead_letter") == 0);
}

TEST_CASE("a 400 answer to a batch dead-letters every event of it, one row each",
          "[integration][batch]") {
  auto db = TestDatabase::create();
  FakeConsumer consumer{{.status = 400}};
  const auto ids = publish_distinct_keys(db, 9);
  TestRelayConfig cfg;
  cfg.subscriptions = {{.name = "batched",
                        .topics = {"*"},
                        .endpoint = consumer.url(),
                        .max_in_flight = 1,
                        .extra = batch_keys("protobuf", 100, 1 << 20, "300ms")}};
  RelayProcess relay(to_yaml(cfg), {}, {{"DATABASE_URL", db.url()}});
  REQUIRE(wait_until([&] { return db.count("relay.dead_letter") == 9 && drained(db); }, 60s));

  const auto rows = db.rows(
      "SELECT event_id::text, subscription, reason, attempts::text, last_status::text "
      "FROM relay.dead_letter ORDER BY outbox_id");
  REQUIRE(rows.size() == ids.size());
  for (size_t i = 0; i < rows.size(); ++i) {
    INFO("dead letter " << i);
    CHECK(rows[i][0] == ids[i]);
    CHECK(rows[i][1] == "batched");
    CHECK(rows[i][2] == "non_retryable_status");
    CHECK(rows[i][3] == "1");
    CHECK(rows[i][4] == "400");
  }
  // A 400 is final: one request, never retried.
  const auto requests = consumer.requests();
  REQUIRE(requests.size() == 1);
  CHECK(ids_of(events_of(requests[0])) == ids);
}

TEST_CASE("no batch request passes max_events, nor max_bytes with more than one event",
          "[integration][batch]") {
  constexpr int kMax = 7;
  constexpr long long kMaxBytes = 8192;
  auto db = TestDatabase::create();
  FakeConsumer consumer;
  // Small events (max_events closes their batches), 2 KB events (max_bytes does), and one event
  // bigger than max_bytes on its own (it goes alone), in one claim.
  std::set<std::string> published;
  for (const auto& id : publish_distinct_keys(db, 30)) published.insert(id);
  for (const auto& id : publish_distinct_keys(db, 10, 2000)) published.insert(id);
  const std::string huge = db.value(
      "SELECT relay.publish('t', 'huge', jsonb_build_object('k', 1000, 'n', 0, 'pad', "
      "repeat('y', 10000)))::text");
  published.insert(huge);
  TestRelayConfig cfg;
  cfg.subscriptions = {{.name = "batched",
                        .topics = {"*"},
                        .endpoint = consumer.url(),
                        .max_in_flight = 1,
                        .extra = batch_keys("cloudevents-json", kMax, kMaxBytes, "100ms")}};
  RelayProcess relay(to_yaml(cfg), {}, {{"DATABASE_URL", db.url()}});
  REQUIRE(wait_until([&] { return drained(db); }, 60s));

  std::set<std::string> seen;
  bool hit_max_events = false;
  bool hit_max_bytes = false;
  for (const auto& r : consumer.requests()) {
    const auto events = events_of(r);
    INFO("request " << r.sequence << ": " << events.size() << " events, " << r.body.size()
                    << " bytes");
    CHECK(r.status == 200);
    CHECK(events.size() <= static_cast<size_t>(kMax));
    if (events.size() > 1) CHECK(static_cast<long long>(r.body.size()) <= kMaxBytes);
    hit_max_events = hit_max_events || events.size() == static_cast<size_t>(kMax);
    for (const auto& e : events) {
      seen.insert(e.id);
      if (e.id == huge) CHECK(events.size() == 1);
    }
    // A batch of 2 KB events closed by max_bytes before max_events.
    if (events.size() > 1 && events.size() < static_cast<size_t>(kMax) && r.body.size() > 2 * 2000)
      hit_max_bytes = true;
  }
  CHECK(hit_max_events);
  CHECK(hit_max_bytes);
  CHECK(seen == published);
  CHECK(db.count("relay.dead_letter") == 0);
}

TEST_CASE("expired and too-large events are dead-lettered alone; the rest of the batch goes",
          "[integration][batch]") {
  auto db = TestDatabase::create();
  FakeConsumer consumer;
  std::vector<std::string> good = publish_distinct_keys(db, 3);
  const std::string expired = db.value(
      "SELECT relay.publish('t', 'old', '{\"k\": 100, \"n\": 0}'::jsonb, '{}'::jsonb, NULL, "
      "now() - interval '1 minute')::text");
  const std::string too_large = db.value(
      "SELECT relay.publish('t', 'big', jsonb_build_object('k', 101, 'n', 0, 'pad', repeat('z', "
      "3000)))::text");
  for (const auto& id : publish_distinct_keys(db, 2)) good.push_back(id);
  TestRelayConfig cfg;
  cfg.extra = "limits:\n  max_payload_bytes: 2048\n";
  cfg.subscriptions = {{.name = "batched",
                        .topics = {"*"},
                        .endpoint = consumer.url(),
                        .max_in_flight = 1,
                        .extra = batch_keys("cloudevents-json", 100, 1 << 20, "300ms")}};
  RelayProcess relay(to_yaml(cfg), {}, {{"DATABASE_URL", db.url()}});
  REQUIRE(wait_until([&] { return db.count("relay.dead_letter") == 2 && drained(db); }, 60s));

  CHECK(db.value("SELECT reason FROM relay.dead_letter WHERE event_id = '" + expired + "'") ==
        "expired");
  CHECK(db.value("SELECT reason FROM relay.dead_letter WHERE event_id = '" + too_large + "'") ==
        "payload_too_large");
  std::vector<std::string> received;
  for (const auto& r : consumer.requests()) {
    CHECK(r.status == 200);
    for (const auto& id : ids_of(events_of(r))) received.push_back(id);
  }
  std::sort(received.begin(), received.end());
  std::sort(good.begin(), good.end());
  CHECK(received == good);  // each good event once; neither dead-lettered one was sent
}
