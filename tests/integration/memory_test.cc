// Integration: relay's memory stays bounded with a backlog of 1,000,000 events and a consumer that
// is down. The bound is generous (it must also hold under AddressSanitizer); the measured peak is
// printed for the record.

#include <catch2/catch.hpp>
#include <fstream>

#include "tests/integration/test_config.h"
#include "tests/support/fake_consumer.h"
#include "tests/support/relay_process.h"
#include "tests/support/test_database.h"
#include "tests/support/wait.h"

using namespace std::chrono_literals;
using namespace relay::testing;

namespace {

// Peak resident set size of a process, in KiB (VmHWM), or -1.
long peak_rss_kib(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}

}  // namespace

TEST_CASE("a 1,000,000-event backlog with the consumer down keeps relay's memory bounded",
          "[integration][memory]") {
  auto db = TestDatabase::create();
  // Direct inserts (what relay.publish does, without a function call per row) to build the backlog
  // fast.
  db.exec(
      "INSERT INTO relay.outbox (topic, key, payload) "
      "SELECT 'order.paid', 'k' || (i % 1000), convert_to('{\"i\":' || i || ',\"pad\":\"' || "
      "repeat('x', 100) || '\"}', 'UTF8') "
      "FROM generate_series(1, 1000000) i");
  const int port = FakeConsumer::unused_port();
  TestRelayConfig cfg;
  cfg.batch_size = 500;
  cfg.subscriptions = {
      {.name = "down",
       .topics = {"*"},
       .endpoint = fmt::format("http://127.0.0.1:{}/e", port),
       .max_attempts = 1000,
       .max_in_flight = 64,
       .extra =
           "    circuit_breaker: { failure_threshold: 5, open_for: 200ms, max_open_for: 1s }\n"}};
  RelayProcess relay(to_yaml(cfg), {}, {{"DATABASE_URL", db.url()}});

  // Let relay work the backlog for a while: claims, failures, the breaker opening, probes.
  REQUIRE(wait_until([&] { return db.count("relay.delivery") >= 1000; }, 120s));
  REQUIRE(wait_until(
      [&] { return db.count("relay.delivery WHERE next_attempt_at > now()") >= 1000; }, 60s));
  const long peak = peak_rss_kib(relay.pid());
  WARN("relay peak RSS with a 1,000,000-event backlog and the consumer down: " << peak / 1024
                                                                               << " MiB");
  CHECK(peak > 0);
  CHECK(peak < 512 * 1024);  // generous: measured far below this, see the issue note
  CHECK(db.count("relay.dead_letter") == 0);
  CHECK(db.count("relay.outbox") + db.count("relay.delivery") == 1000000);
}
