// Integration: relay's memory stays bounded with a backlog of 1,000,000 events and a consumer that
// is down. relay must keep the backlog in the outbox and hold only what its bounds allow in memory
// (source.batch_size per claim, max_in_flight per subscription), whatever the backlog's size.
//
// The test waits for work done, never for a moment in a schedule: every key's head claimed and
// given an outcome (a failed attempt, or a deferral behind the open breaker), then ten more trips
// of the breaker, each of which re-claims and defers the held heads. Both are counts that only
// grow, so they are reached on any machine, only later on a slow one.
//
// Bounds on peak RSS (VmHWM), well above what was measured and well below what holding the backlog
// would take (1,000,000 events of ~150 bytes are ~150 MiB of payload alone):
// - Release (the binary operators run; $RELAY_RELEASE_BINARY, which scripts/test builds): 64 MiB,
//   measured ~20 MiB.
// - AddressSanitizer (the test build's own relay): 192 MiB with the allocator's quarantine of freed
//   memory cut to 16 MiB; ASan's shadow memory and redzones roughly triple a small process, and its
//   default 256 MiB quarantine alone would hide any leak below that.

#include <catch2/catch.hpp>
#include <csignal>
#include <cstdlib>
#include <fstream>

#include "tests/integration/test_config.h"
#include "tests/support/fake_consumer.h"
#include "tests/support/ops_probe.h"
#include "tests/support/relay_process.h"
#include "tests/support/test_database.h"
#include "tests/support/wait.h"

using namespace std::chrono_literals;
using namespace relay::testing;

namespace {

constexpr long kMiB = 1024;  // in KiB, the unit of /proc/<pid>/status
constexpr int kKeys = 1000;
constexpr int kBreakerTrips = 10;

// Peak resident set size of a process, in KiB (VmHWM), or -1.
long peak_rss_kib(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}

// Runs `binary` against the 1,000,000-event backlog in `db` with its only consumer down until it
// has done the work described at the top, and returns its peak RSS in KiB.
long peak_rss_with_consumer_down(TestDatabase& db, const std::string& binary, const EnvVars& env) {
  const int port = FakeConsumer::unused_port();  // nothing listens: every request is refused
  const int ops_port = FakeConsumer::unused_port();
  TestRelayConfig cfg;
  cfg.batch_size = 500;
  cfg.extra = fmt::format("ops:\n  listen: 127.0.0.1:{}\n", ops_port);
  cfg.subscriptions = {
      {.name = "down",
       .topics = {"*"},
       .endpoint = fmt::format("http://127.0.0.1:{}/e", port),
       .max_attempts = 1000,
       .max_in_flight = 64,
       .extra =
           "    circuit_breaker: { failure_threshold: 5, open_for: 200ms, max_open_for: 1s }\n"}};
  EnvVars relay_env = env;
  relay_env["DATABASE_URL"] = db.url();
  RelayProcess relay(to_yaml(cfg), {}, relay_env, binary);
  OpsProbe ops(ops_port);
  auto trips = [&] {
    const auto v = OpsProbe::sample(
        ops.metrics(), R"(relay_breaker_transitions_total{subscription="down",to="open"})");
    return v ? static_cast<int>(*v) : -1;
  };

  // Nothing is delivered and no event runs out of attempts, so relay.delivery only grows.
  REQUIRE(wait_until([&] { return db.count("relay.delivery") >= kKeys; }, 300s));
  int trips_then = -1;
  REQUIRE(wait_until([&] { return (trips_then = trips()) >= 0; }, 60s));
  REQUIRE(wait_until([&] { return trips() >= trips_then + kBreakerTrips; }, 300s));
  const long peak = peak_rss_kib(relay.pid());
  relay.signal(SIGTERM);
  CHECK(relay.wait_exit(60s) == 0);
  // Counted once relay has stopped, in one statement: while it runs, an event can move from the
  // outbox to relay.delivery between two separate counts and be counted twice.
  CHECK(db.count("relay.dead_letter") == 0);
  CHECK(db.value("SELECT (SELECT count(*) FROM relay.outbox) + (SELECT count(*) FROM "
                 "relay.delivery)") == "1000000");
  return peak;
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

  SECTION("the build under test") {
#if defined(__SANITIZE_ADDRESS__)
    const long bound = 192 * kMiB;
    const EnvVars env{{"ASAN_OPTIONS", "detect_leaks=1:quarantine_size_mb=16"}};
#else
    const long bound = 64 * kMiB;
    const EnvVars env;
#endif
    const long peak = peak_rss_with_consumer_down(db, RelayProcess::binary(), env);
    WARN("peak RSS, " << RelayProcess::binary() << ": " << peak / kMiB << " MiB");
    CHECK(peak > 0);
    CHECK(peak < bound);
  }
  SECTION("the Release build") {
    const char* release = std::getenv("RELAY_RELEASE_BINARY");
    if (release == nullptr || *release == '\0') {
      // scripts/test always sets it; a hand-run ctest in a build without it says so loudly.
      FAIL(
          "RELAY_RELEASE_BINARY is not set: build relay in Release (scripts/test does) and "
          "export RELAY_RELEASE_BINARY=<that build>/relay/relay");
    }
    const long peak = peak_rss_with_consumer_down(db, release, {});
    WARN("peak RSS, Release: " << peak / kMiB << " MiB");
    CHECK(peak > 0);
    CHECK(peak < 64 * kMiB);
  }
}
