// Integration: no event waits for the safety-net poll. Whatever makes an event sendable — its key's
// predecessor getting an outcome, its deliver_after time coming — must wake relay's source while it
// is parked. Each case runs relay with a 60 s poll_interval and a 10 min lease (renewals wake the
// source too, every lease / 3), so a missed wake-up shows as a wait of a minute, and asserts that
// every event arrived within kWell of becoming sendable: far below the poll, far above any delay a
// loaded machine adds, so the verdict does not depend on the machine's speed.

#include <catch2/catch.hpp>
#include <map>
#include <thread>

#include "tests/integration/inbox_test_helpers.h"
#include "tests/integration/test_config.h"
#include "tests/support/fake_consumer.h"
#include "tests/support/relay_process.h"
#include "tests/support/test_database.h"
#include "tests/support/wait.h"

using namespace std::chrono_literals;
using namespace relay::testing;

namespace {

using SteadyTime = std::chrono::steady_clock::time_point;

constexpr auto kAnswerAfter = 300ms;  // the consumer's think time: relay parks meanwhile (25 ms)
constexpr auto kWell = 15s;           // "at once", with room for a loaded machine; the poll is 60 s

// A consumer that takes kAnswerAfter to answer 200.
FakeConsumer slow_consumer() {
  return FakeConsumer{[](const ReceivedRequest&) {
    std::this_thread::sleep_for(kAnswerAfter);  // ok-sleep: the consumer's think time
    return Reply{200};
  }};
}

// For each request after the first of its key (`key_of`), how long after its predecessor's answer
// it arrived. Also checks that each key's requests came in the order of `want` for that key.
std::vector<std::chrono::milliseconds> waits_after_predecessor(
    const std::vector<ReceivedRequest>& requests,
    const std::function<std::string(const ReceivedRequest&)>& key_of) {
  std::map<std::string, SteadyTime> answered;  // per key: when its latest request was answered
  std::vector<std::chrono::milliseconds> out;
  for (const auto& r : requests) {
    const std::string key = key_of(r);
    if (auto it = answered.find(key); it != answered.end()) {
      out.push_back(
          std::chrono::duration_cast<std::chrono::milliseconds>(r.received_at - it->second));
    }
    answered[key] = r.received_at + kAnswerAfter;
  }
  return out;
}

// One subscription to `consumer`, and no timer that would claim for relay: a 60 s poll and a
// 10 min lease (renewed every lease / 3).
TestRelayConfig timerless_config(const FakeConsumer& consumer) {
  TestRelayConfig cfg;
  cfg.poll_interval = "60s";
  cfg.lease = "10m";
  cfg.subscriptions = {{.name = "s", .topics = {"*"}, .endpoint = consumer.url()}};
  return cfg;
}

// relay is up and parked once a first event has gone through (its request is the consumer's
// first).
void warm_up(TestDatabase& db, FakeConsumer& consumer) {
  db.exec("SELECT relay.publish('warm.up', 'w', '{}'::jsonb)");
  REQUIRE(wait_until([&] { return consumer.successful_ids().size() == 1; }, 60s));
}

std::string format_waits(const std::vector<std::chrono::milliseconds>& waits) {
  std::string s;
  for (auto w : waits) s += std::to_string(w.count()) + " ms  ";
  return s;
}

}  // namespace

TEST_CASE(
    "outbox: a key's next event is claimed as soon as its predecessor has an outcome, not at the "
    "poll",
    "[integration][liveness]") {
  auto db = TestDatabase::create();
  FakeConsumer consumer = slow_consumer();
  RelayProcess relay(to_yaml(timerless_config(consumer)), {}, {{"DATABASE_URL", db.url()}});
  warm_up(db, consumer);

  // Five separate transactions, as an app commits them; A:2, B:2 and B:3 commit while their key's
  // head is still at the consumer.
  std::vector<std::pair<std::string, std::string>> want;  // (key, event id) in commit order
  for (const char* key : {"A", "B", "A", "B", "B"}) {
    want.emplace_back(
        key, db.value(fmt::format("SELECT relay.publish('order.paid', '{}', '{{}}'::jsonb)::text",
                                  key)));
  }
  REQUIRE(wait_until([&] { return consumer.successful_ids().size() == 6; }, 180s));
  REQUIRE(wait_until([&] { return db.count("relay.outbox") == 0; }, 60s));

  auto requests = consumer.requests();
  requests.erase(requests.begin());  // the warm-up
  REQUIRE(requests.size() == 5);
  std::map<std::string, std::vector<std::string>> got, expected;
  for (const auto& r : requests)
    got[r.headers.at("ce-subject")].push_back(r.headers.at("idempotency-key"));
  for (const auto& [key, id] : want) expected[key].push_back(id);
  CHECK(got == expected);  // per-key order

  const auto waits = waits_after_predecessor(
      requests, [](const ReceivedRequest& r) { return r.headers.at("ce-subject"); });
  INFO("each successor arrived this long after its predecessor's answer: " << format_waits(waits));
  REQUIRE(waits.size() == 3);
  for (auto w : waits) CHECK(w < kWell);
}

TEST_CASE("outbox: a delayed event is sent when its deliver_after comes, while relay is parked",
          "[integration][liveness]") {
  auto db = TestDatabase::create();
  FakeConsumer consumer;
  RelayProcess relay(to_yaml(timerless_config(consumer)), {}, {{"DATABASE_URL", db.url()}});
  warm_up(db, consumer);

  const auto published = std::chrono::steady_clock::now();
  const std::string id = db.value(
      "SELECT relay.publish('order.paid', 'k', '{}'::jsonb, '{}'::jsonb, now() + interval '2 "
      "seconds')::text");
  REQUIRE(wait_until([&] { return consumer.successful_ids().size() == 2; }, 180s));
  const auto r = consumer.requests().back();
  CHECK(r.headers.at("idempotency-key") == id);
  const auto after =
      std::chrono::duration_cast<std::chrono::milliseconds>(r.received_at - published);
  INFO("the delayed event arrived " << after.count() << " ms after it was published");
  CHECK(after >= 2s - 50ms);  // not early (the database's clock and ours may differ slightly)
  CHECK(after < 2s + kWell);
}

TEST_CASE(
    "inbox push: a key's next event is pushed as soon as its predecessor has an outcome, not at "
    "the "
    "poll",
    "[integration][liveness][inbox]") {
  auto db = TestDatabase::create();
  FakeConsumer app = slow_consumer();
  const int port = FakeConsumer::unused_port();
  const std::string yaml = fmt::format(
      "database:\n  url: ${{DATABASE_URL}}\n"
      "source:\n  poll_interval: 60s\n  lease: 10m\n"
      "inbox:\n  listen: 127.0.0.1:{}\n  sources:\n"
      "    - name: pay\n      signing_secret: [\"{}\"]\n      deliver_to: {}\n",
      port, kSecretA, app.url("/inbox"));
  RelayProcess relay(yaml, {}, {{"DATABASE_URL", db.url()}});
  REQUIRE(wait_until([&] { return InboxClient(port).get("/inbox/x").status == 405; }, 60s));
  InboxClient client(port);
  auto post = [&](const std::string& id, const std::string& key) {
    const std::string body = "{}";
    Headers h = signed_headers(kKeyA, id, body);
    h.emplace_back("ce-type", "payment.settled");
    h.emplace_back("ce-subject", key);
    return client.post("/inbox/pay", body, h).status;
  };
  REQUIRE(post("warm-up", "w") == 200);
  REQUIRE(wait_until([&] { return app.successful_ids().size() == 1; }, 60s));

  const std::vector<std::pair<std::string, std::string>> events = {
      {"a1", "A"}, {"b1", "B"}, {"a2", "A"}, {"b2", "B"}, {"b3", "B"}};
  for (const auto& [id, key] : events) REQUIRE(post(id, key) == 200);
  REQUIRE(wait_until([&] { return app.successful_ids().size() == 6; }, 180s));
  REQUIRE(wait_until([&] { return db.count("relay.delivery") == 0; }, 60s));

  auto requests = app.requests();
  requests.erase(requests.begin());
  REQUIRE(requests.size() == 5);
  std::map<std::string, std::vector<std::string>> got;
  for (const auto& r : requests)
    got[r.headers.at("ce-subject")].push_back(r.headers.at("idempotency-key"));
  CHECK(got == std::map<std::string, std::vector<std::string>>{{"A", {"a1", "a2"}},
                                                               {"B", {"b1", "b2", "b3"}}});
  const auto waits = waits_after_predecessor(
      requests, [](const ReceivedRequest& r) { return r.headers.at("ce-subject"); });
  INFO("each successor arrived this long after its predecessor's answer: " << format_waits(waits));
  REQUIRE(waits.size() == 3);
  for (auto w : waits) CHECK(w < kWell);
}
