// Integration: GET /metrics on the ops listener. Scrapes the Prometheus text and checks that the
// counters move as deliveries succeed, fail (retry) and dead-letter, that the breaker gauge shows
// an open breaker, and that the database gauges (backlog, dead letters) are refreshed.

#include <httplib.h>

#include <catch2/catch.hpp>
#include <optional>
#include <sstream>

#include "tests/integration/test_config.h"
#include "tests/support/fake_consumer.h"
#include "tests/support/ops_probe.h"
#include "tests/support/relay_process.h"
#include "tests/support/test_database.h"
#include "tests/support/wait.h"

using namespace std::chrono_literals;
using namespace relay::testing;

namespace {

constexpr auto sample = &OpsProbe::sample;

}  // namespace

TEST_CASE("/metrics counts deliveries, retries, dead letters, attempts, classes and breakers",
          "[integration][ops][metrics]") {
  auto db = TestDatabase::create();
  // t.ok: 200; t.retry: 503 on the first attempt, then 200; t.dead: 400 (final).
  FakeConsumer consumer{[](const ReceivedRequest& r) {
    const std::string type = r.headers.count("ce-type") ? r.headers.at("ce-type") : "";
    const std::string attempt =
        r.headers.count("relay-attempt") ? r.headers.at("relay-attempt") : "";
    if (type == "t.retry") return Reply{attempt == "1" ? 503 : 200};
    if (type == "t.dead") return Reply{400};
    return Reply{200};
  }};
  FakeConsumer down{{.status = 503}};
  const int ops_port = FakeConsumer::unused_port();
  TestRelayConfig cfg;
  cfg.subscriptions = {
      {.name = "s",
       .topics = {"t.*"},
       .endpoint = consumer.url(),
       .max_attempts = 5,
       .max_in_flight = 2,
       .extra = "    circuit_breaker: { failure_threshold: 100 }\n"},
      {.name = "b",
       .topics = {"b.*"},
       .endpoint = down.url(),
       .max_attempts = 100,
       .max_in_flight = 1,
       .extra = "    circuit_breaker: { failure_threshold: 2, open_for: 1h, max_open_for: 1h }\n"}};
  cfg.extra = fmt::format("ops:\n  listen: 127.0.0.1:{}\n", ops_port);
  RelayProcess relay(to_yaml(cfg), {}, {{"DATABASE_URL", db.url()}});

  OpsProbe ops(ops_port);
  std::string last;
  auto scrape = [&] { return last = ops.metrics(); };
  auto value = [&](const std::string& series) { return sample(scrape(), series); };
  auto equals = [&](const std::string& series, double want) {
    auto v = value(series);
    return v && *v == want;
  };
  REQUIRE(wait_until([&] { return equals("relay_ready", 1); }, 60s));

  // Series exist at 0 before anything happened (increase() sees the first event).
  scrape();
  INFO(last);
  CHECK(sample(last, R"(relay_deliveries_total{outcome="delivered",subscription="s"})") == 0.0);
  CHECK(
      sample(last,
             R"(relay_dead_letters_created_total{reason="retries_exhausted",subscription="s"})") ==
      0.0);
  CHECK(
      sample(last,
             R"(relay_dead_letters_created_total{reason="payload_too_large",subscription="b"})") ==
      0.0);
  CHECK(sample(last, R"(relay_breaker_state{subscription="b"})") == 0.0);
  CHECK(last.find("relay_build_info{version=\"") != std::string::npos);
  CHECK(sample(last, "relay_database_reconnects_total") == 0.0);

  db.exec(
      "SELECT relay.publish('t.ok', 'k' || i, '{}'::jsonb) FROM generate_series(1, 5) i;"
      "SELECT relay.publish('t.retry', 'r' || i, '{}'::jsonb) FROM generate_series(1, 3) i;"
      "SELECT relay.publish('t.dead', 'd' || i, '{}'::jsonb) FROM generate_series(1, 2) i;"
      "SELECT relay.publish('t.later', 'l', '{}'::jsonb, '{}'::jsonb, now() + interval '1 hour');");

  REQUIRE(wait_until(
      [&] { return equals(R"(relay_deliveries_total{outcome="delivered",subscription="s"})", 8); },
      60s));
  // relay bumps relay_dead_letters_created_total just after the dead_lettered outcome: wait for
  // both in one scrape, so the checks below cannot fall between the two increments.
  const std::string created =
      R"(relay_dead_letters_created_total{reason="non_retryable_status",subscription="s"})";
  REQUIRE(wait_until(
      [&] {
        return equals(R"(relay_deliveries_total{outcome="dead_lettered",subscription="s"})", 2) &&
               sample(last, created) == 2.0;
      },
      60s));
  scrape();
  INFO(last);
  CHECK(sample(last, R"(relay_deliveries_total{outcome="retry_scheduled",subscription="s"})") ==
        3.0);
  CHECK(sample(last, R"(relay_delivery_attempts_total{subscription="s"})") == 13.0);
  CHECK(sample(last, R"(relay_http_responses_total{class="2xx",subscription="s"})") == 8.0);
  CHECK(sample(last, R"(relay_http_responses_total{class="4xx",subscription="s"})") == 2.0);
  CHECK(sample(last, R"(relay_http_responses_total{class="5xx",subscription="s"})") == 3.0);
  CHECK(sample(last, R"(relay_http_responses_total{class="error",subscription="s"})") == 0.0);
  CHECK(
      sample(
          last,
          R"(relay_dead_letters_created_total{reason="non_retryable_status",subscription="s"})") ==
      2.0);
  CHECK(sample(last, R"(relay_delivery_latency_seconds_count{subscription="s"})") == 8.0);
  CHECK(sample(last, R"(relay_delivery_latency_seconds_bucket{subscription="s",le="+Inf"})") ==
        8.0);
  CHECK(sample(last, R"(relay_breaker_state{subscription="s"})") == 0.0);

  // Database gauges come from a query every ~5 s.
  REQUIRE(wait_until([&] { return equals(R"(relay_dead_letters{subscription="s"})", 2); }, 60s));
  REQUIRE(wait_until([&] { return equals(R"(relay_outbox_backlog_events{topic="t.later"})", 1); },
                     60s));
  CHECK(sample(last, R"(relay_outbox_oldest_pending_age_seconds{topic="t.later"})") == 0.0);

  // A consumer that only answers 503 opens b's breaker after two failures.
  db.exec("SELECT relay.publish('b.x', 'b' || i, '{}'::jsonb) FROM generate_series(1, 3) i");
  // The state gauge is set just before the transition counter: wait for both in one scrape.
  REQUIRE(wait_until(
      [&] {
        return equals(R"(relay_breaker_state{subscription="b"})", 1) &&
               sample(last, R"(relay_breaker_transitions_total{subscription="b",to="open"})") >=
                   1.0;
      },
      60s));
  scrape();
  INFO(last);
  CHECK(sample(last, R"(relay_breaker_transitions_total{subscription="b",to="open"})") == 1.0);
  CHECK(sample(last, R"(relay_breaker_transitions_total{subscription="b",to="closed"})") == 0.0);
  CHECK(sample(last, R"(relay_http_responses_total{class="5xx",subscription="b"})") >= 2.0);
  CHECK(sample(last, R"(relay_breaker_state{subscription="s"})") == 0.0);
  // Pending in b's retries: the outbox keeps nothing of b once claimed; no dead letter for b.
  CHECK(sample(last, R"(relay_dead_letters{subscription="b"})") == 0.0);
  WARN("scrape size: " << last.size() << " bytes");
}

TEST_CASE("/metrics bounds the topic label: 100 topics, the rest summed under _other",
          "[integration][ops][metrics]") {
  auto db = TestDatabase::create();
  FakeConsumer consumer;
  const int ops_port = FakeConsumer::unused_port();
  TestRelayConfig cfg;
  cfg.subscriptions = {{.name = "s", .topics = {"*"}, .endpoint = consumer.url()}};
  cfg.extra = fmt::format("ops:\n  listen: 127.0.0.1:{}\n", ops_port);
  // 110 delayed topics (they stay in the outbox); topic "big" has the most rows.
  db.exec(
      "SELECT relay.publish('topic.' || i, 'k', '{}'::jsonb, '{}'::jsonb, now() + interval '1 "
      "hour') FROM generate_series(1, 110) i;"
      "SELECT relay.publish('big', 'k' || i, '{}'::jsonb, '{}'::jsonb, now() + interval '1 hour') "
      "FROM generate_series(1, 3) i;");
  RelayProcess relay(to_yaml(cfg), {}, {{"DATABASE_URL", db.url()}});
  OpsProbe ops(ops_port);
  std::string last;
  auto scrape = [&] { return last = ops.metrics(); };
  REQUIRE(wait_until(
      [&] { return sample(scrape(), R"(relay_outbox_backlog_events{topic="_other"})") == 11.0; },
      60s));
  INFO(last);
  CHECK(sample(last, R"(relay_outbox_backlog_events{topic="big"})") == 3.0);
  std::istringstream in(last);
  std::string line;
  int series = 0;
  while (std::getline(in, line)) series += line.rfind("relay_outbox_backlog_events{", 0) == 0;
  CHECK(series == 101);
}
