// Integration: edge cases of batch subscriptions (`batch: {max_events, max_bytes, linger}` with
// `format: cloudevents-json`). SIGTERM while a batch lingers sends nothing, spends no attempt and
// releases the claims; a rate limit counts the events of a batch, not its requests. (Breaker
// deferral is one code path for batches and single events: tests/unit/pipeline.) Bodies are parsed
// here as JSON arrays of CloudEvents.

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <csignal>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "tests/integration/batch_test_helpers.h"
#include "tests/integration/test_config.h"
#include "tests/support/fake_consumer.h"
#include "tests/support/ops_probe.h"
#include "tests/support/relay_process.h"
#include "tests/support/test_database.h"
#include "tests/support/wait.h"

using namespace std::chrono_literals;
using namespace relay::testing;

namespace {

// The events of one cloudevents-json batch request, in body order, each with its payload's k and n
// and its relayattempt. Fails the test on anything else.
std::vector<BatchEvent> json_events_of(const ReceivedRequest& r) {
  REQUIRE(content_type_of(r) == "application/cloudevents-batch+json");
  auto events = events_of(r);
  for (const auto& e : events) {
    INFO("event " << e.id);
    REQUIRE(e.k >= 0);
    REQUIRE(e.n >= 0);
    REQUIRE(e.attempt > 0);
  }
  return events;
}

// The ids of every event in the 2xx-answered requests, sorted (a multiset: a duplicate shows).
std::vector<std::string> acknowledged_ids(const std::vector<ReceivedRequest>& requests) {
  std::vector<std::string> ids;
  for (const auto& r : requests) {
    if (r.status < 200 || r.status > 299) continue;
    for (const auto& e : json_events_of(r)) ids.push_back(e.id);
  }
  std::sort(ids.begin(), ids.end());
  return ids;
}

std::vector<std::string> sorted(std::vector<std::string> v) {
  std::sort(v.begin(), v.end());
  return v;
}

// The keys of a cloudevents-json batch subscription.
std::string batch_keys(int max_events, const std::string& linger) {
  return relay::testing::batch_keys("cloudevents-json", max_events, 1048576, linger);
}

bool drained(TestDatabase& db) {
  return db.count("relay.outbox") == 0 && db.count("relay.delivery") == 0;
}

// Publishes `n` events with keys key-0..key-(n-1) in one statement; returns their ids in publish
// order.
std::vector<std::string> publish_distinct_keys(TestDatabase& db, int n) {
  std::vector<std::string> ids;
  for (const auto& row : db.rows(fmt::format(
           "SELECT relay.publish('t', 'key-' || i, jsonb_build_object('k', i, 'n', 0))::text "
           "FROM generate_series(0, {}) i ORDER BY i",
           n - 1))) {
    ids.push_back(row[0]);
  }
  return ids;
}

}  // namespace

TEST_CASE(
    "SIGTERM while a batch lingers: relay exits at once, sends nothing, spends no attempt, and a "
    "restart delivers every event once",
    "[integration][batch]") {
  constexpr int kEvents = 5;
  // The longest linger the config accepts; the batch would wait this long for max_events (100).
  constexpr auto kLinger = 10s;
  auto db = TestDatabase::create();
  FakeConsumer consumer;
  TestRelayConfig cfg;
  cfg.shutdown_timeout = "20s";  // longer than the linger: only waking the lane ends it sooner
  cfg.subscriptions = {{.name = "batched",
                        .topics = {"*"},
                        .endpoint = consumer.url(),
                        .max_in_flight = 1,
                        .extra = batch_keys(100, "10s")}};
  const auto ids = publish_distinct_keys(db, kEvents);
  {
    RelayProcess relay(to_yaml(cfg), {}, {{"DATABASE_URL", db.url()}});
    // Claimed, so handed to the lane, which lingers for 95 more events. (The claims stay for the
    // whole 10 s linger: a state that lasts, not one the re-check could miss.)
    REQUIRE(wait_until(
        [&] { return db.count("relay.outbox WHERE lease_owner IS NOT NULL") == kEvents; }, 60s));
    const auto signalled = std::chrono::steady_clock::now();
    relay.signal(SIGTERM);
    const auto code = relay.wait_exit(60s);
    const auto took = std::chrono::steady_clock::now() - signalled;
    INFO(relay.log());
    REQUIRE(code == 0);
    // A lane that slept out its linger would keep relay up until kLinger after it got the events,
    // so nearly kLinger after this SIGTERM (sent as soon as the claim showed). Waking the lane ends
    // it at once; the 2 s below kLinger are for the observation lag, and leave a slow machine 8 s
    // to shut down (a fixed kLinger / 2 made relay's shutdown speed race the test's deadline).
    INFO("relay exited " << std::chrono::duration_cast<std::chrono::milliseconds>(took).count()
                         << " ms after SIGTERM");
    CHECK(took < kLinger - 2s);
  }
  CHECK(consumer.count() == 0);
  CHECK(db.count("relay.dead_letter") == 0);
  CHECK(db.count("relay.delivery WHERE attempts > 0") == 0);
  // Still pending, and the claims were released: another relay may take them at once.
  CHECK(db.count("relay.outbox WHERE lease_owner IS NULL AND lease_until IS NULL") == kEvents);

  cfg.subscriptions[0].extra = batch_keys(100, "10ms");
  RelayProcess restarted(to_yaml(cfg), {}, {{"DATABASE_URL", db.url()}});
  REQUIRE(wait_until([&] { return drained(db); }, 60s));
  const auto requests = consumer.requests();
  for (const auto& r : requests) CHECK(r.status == 200);
  CHECK(acknowledged_ids(requests) == sorted(ids));  // each exactly once
  CHECK(db.count("relay.dead_letter") == 0);
}

TEST_CASE("a batch subscription's rate limit counts events, not requests", "[integration][batch]") {
  constexpr int kRate = 10;  // events per second
  constexpr int kBurst = 5;
  constexpr int kEvents = kBurst + 2 * kRate;  // takes >= 2 s at the limit
  constexpr auto kTolerance = 20ms;            // clock rounding between two processes
  auto db = TestDatabase::create();
  FakeConsumer consumer;
  TestRelayConfig cfg;
  // max_events > kEvents: counting requests, the whole backlog would go at once.
  cfg.subscriptions = {
      {.name = "limited",
       .topics = {"*"},
       .endpoint = consumer.url(),
       .max_in_flight = 2,
       .extra =
           batch_keys(100, "10ms") +
           fmt::format("    rate_limit: {{ events_per_second: {}, burst: {} }}\n", kRate, kBurst)}};
  RelayProcess relay(to_yaml(cfg), {}, {{"DATABASE_URL", db.url()}});
  // Before the publish, so before relay can take any token for these events. The bucket holds at
  // most kBurst tokens then, and gains kRate per second: by time t after this, at most
  // kBurst + kRate * t events can have been sent. That is a lower bound on time, whatever the
  // machine's speed.
  const auto published_at = std::chrono::steady_clock::now();
  const auto ids = publish_distinct_keys(db, kEvents);
  REQUIRE(wait_until([&] { return drained(db); }, 60s));

  const auto requests = consumer.requests();  // in arrival order
  REQUIRE(!requests.empty());
  CHECK(acknowledged_ids(requests) == sorted(ids));  // every event exactly once
  int received = 0;
  for (const auto& r : requests) {
    CHECK(r.status == 200);
    received += static_cast<int>(json_events_of(r).size());
    const double elapsed =
        std::chrono::duration<double>(r.received_at - published_at + kTolerance).count();
    INFO("request " << r.sequence << " of " << requests.size() << ": " << received
                    << " events received " << elapsed << " s after the publish");
    CHECK(received <= kBurst + kRate * elapsed);
  }
  const auto last = requests.back().received_at - published_at;
  INFO(requests.size() << " requests");
  CHECK(last >= std::chrono::milliseconds(1000 * (kEvents - kBurst) / kRate) - kTolerance);
}
