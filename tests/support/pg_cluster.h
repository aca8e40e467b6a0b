#pragma once
// Fault-test helpers that act on the integration test cluster ($RELAY_TEST_PG_DIR) through
// scripts/pg. Every test shares that cluster, so a test that stops or restarts it must run alone:
// give it the CTest property RUN_SERIAL (or its own cluster: PrivateCluster below). Each call
// returns once the command has finished (pg_ctl -w); each throws std::runtime_error with the
// script's output on failure.

#include <initializer_list>
#include <string>

#include "tests/support/temp_dir.h"

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

// A cluster of a test's own (scripts/pg in a temporary directory, wal_level = logical like the
// shared one), for settings the shared cluster must keep (max_replication_slots, wal_level,
// max_slot_wal_keep_size) or for a test that stops its server without running alone. Started by
// the constructor, stopped (and its directory removed) at scope exit: declare it before the
// TestDatabase::create_on() and RelayProcess objects that use it.
//
//   PrivateCluster pg;
//   pg.exec({"ALTER SYSTEM SET max_replication_slots = 1"});
//   pg.restart();
//   auto db = TestDatabase::create_on(pg.url());
//
// Not thread-safe; one owner. Failures throw std::runtime_error (scripts/pg's output) or pqxx
// exceptions.
class PrivateCluster {
 public:
  PrivateCluster();
  ~PrivateCluster();
  PrivateCluster(const PrivateCluster&) = delete;
  PrivateCluster& operator=(const PrivateCluster&) = delete;

  // The maintenance database's URL: postgresql://postgres@127.0.0.1:PORT/postgres.
  std::string url() const;
  // Stop, then start on the same port (settings from ALTER SYSTEM take effect).
  void restart();
  // Runs each statement on its own in autocommit, in the maintenance database (ALTER SYSTEM
  // refuses a transaction block).
  void exec(std::initializer_list<std::string> statements);
  // First column of the first row as text; "" for NULL and for no rows.
  std::string value(const std::string& sql);

 private:
  void pg(const std::string& command);

  TempDir dir_{"relay-pg-private."};
};

}  // namespace relay::testing
