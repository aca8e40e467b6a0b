#pragma once
// TestDatabase: a private database for one integration test on the cluster started by the CTest
// fixture (scripts/pg; its admin URL is in $RELAY_TEST_PG_DIR/url).
//
//   auto db = TestDatabase::create();          // relay_it_<random hex>, migrations applied
//   db.value("SELECT relay.publish('t', 'k', '{}'::jsonb)::text");
//   REQUIRE(wait_until([&] { return db.count("relay.outbox") == 0; }, 60s));
//
// The database is dropped (WITH (FORCE), so relay connections do not block it) when the object is
// destroyed. Queries run in autocommit on one connection owned by the object, opened lazily and
// reopened once if it broke (e.g. after pg_restart()); a statement that was cut off that way is
// sent again, so keep exec() idempotent in fault tests. Not thread-safe: use one TestDatabase
// from one thread at a time (another thread may open its own connection with url()).
// Errors throw std::runtime_error / pqxx exceptions, which Catch2 reports as test failures.

#include <memory>
#include <string>
#include <vector>

namespace relay::testing {

class TestDatabase {
 public:
  // A new database with every migration in sql/ applied through relay::store::migrate.
  // Throws if RELAY_TEST_PG_DIR is unset, the server is unreachable, or a migration fails.
  static TestDatabase create();
  // A new database with nothing in it (for tests of `relay migrate` itself).
  static TestDatabase create_empty();
  // As create(), on another cluster than the shared one: `admin_url` is its maintenance database
  // (e.g. PrivateCluster::url()). That cluster must outlive the object.
  static TestDatabase create_on(const std::string& admin_url);

  TestDatabase(TestDatabase&& other) noexcept;
  TestDatabase& operator=(TestDatabase&&) = delete;
  TestDatabase(const TestDatabase&) = delete;
  TestDatabase& operator=(const TestDatabase&) = delete;
  ~TestDatabase();

  // postgresql://postgres@127.0.0.1:PORT/relay_it_<hex>
  const std::string& url() const { return url_; }
  const std::string& name() const { return name_; }
  // The cluster's maintenance database URL (.../postgres).
  const std::string& admin_url() const { return admin_url_; }

  // Runs `sql` (may hold several statements) in autocommit.
  void exec(const std::string& sql);
  // First column of the first row as text; "" for NULL and for no rows.
  std::string value(const std::string& sql);
  // SELECT count(*) FROM <table_or_where>, e.g. count("relay.dead_letter WHERE reason =
  // 'expired'").
  long long count(const std::string& table_or_where);
  // Every row, every column as text ("" for NULL).
  std::vector<std::vector<std::string>> rows(const std::string& sql);

 private:
  struct Connection;
  TestDatabase(std::string admin_url, bool migrate);

  std::vector<std::vector<std::string>> query(const std::string& sql);
  void drop() noexcept;

  std::string admin_url_;
  std::string name_;
  std::string url_;
  std::unique_ptr<Connection> conn_;
};

// The admin URL of the test cluster, read from $RELAY_TEST_PG_DIR/url. Throws with a clear message
// if the variable is unset or the file is missing (the `postgres_up` CTest fixture writes it).
std::string test_cluster_url();

}  // namespace relay::testing
