#pragma once
// Fault-test helpers that act on the integration test cluster ($RELAY_TEST_PG_DIR) through
// scripts/pg. Every test shares that cluster, so a test that stops or restarts it must run alone:
// give it the CTest property RUN_SERIAL (or its own cluster). Each call returns once the command
// has finished (pg_ctl -w); each throws std::runtime_error with the script's output on failure.

namespace relay::testing {

// Fast shutdown (connections are cut), then start on the same port.
void pg_restart();
// Fast shutdown; the URL stays valid for a later pg_start().
void pg_stop();
// Start again on the same port as before; no-op if running. Throws if that port was taken.
void pg_start();

// Starts the cluster again however the scope ends (an exception, a failed REQUIRE): the tests after
// a stopping test need it. Errors are swallowed; the next test's own connection reports them.
struct RestartClusterOnExit {
  RestartClusterOnExit() = default;
  RestartClusterOnExit(const RestartClusterOnExit&) = delete;
  RestartClusterOnExit& operator=(const RestartClusterOnExit&) = delete;
  ~RestartClusterOnExit() {
    try {
      pg_start();
    } catch (...) {
    }
  }
};

}  // namespace relay::testing
