// `relay migrate` against a real PostgreSQL: creates the schema, is idempotent, is safe to run
// concurrently, reports status; and the installed schema accepts relay.publish.

#include "relay/store/migrations.h"

#include <catch2/catch.hpp>
#include <cctype>
#include <chrono>
#include <future>
#include <sstream>
#include <string>
#include <vector>

#include "tests/support/fake_consumer.h"
#include "tests/support/relay_process.h"
#include "tests/support/temp_dir.h"
#include "tests/support/test_database.h"

using namespace std::chrono_literals;
using relay::testing::EnvVars;
using relay::testing::FakeConsumer;
using relay::testing::RelayProcess;
using relay::testing::TempDir;
using relay::testing::TestDatabase;

namespace {

constexpr const char* kConfig = R"(database:
  url: ${DATABASE_URL}
subscriptions:
  - name: s
    topics: ["*"]
    endpoint: http://127.0.0.1:9/events
)";

// ${DATABASE_URL} points at a port nobody listens on: the command must use --database-url.
EnvVars unreachable_database_env() {
  return {{"DATABASE_URL", "postgresql://postgres@127.0.0.1:" +
                               std::to_string(FakeConsumer::unused_port()) + "/nowhere"}};
}

int migrate(const std::string& config, const std::string& url, std::string* output,
            const std::vector<std::string>& extra = {}) {
  std::vector<std::string> args{"migrate", "--config", config, "--database-url", url};
  args.insert(args.end(), extra.begin(), extra.end());
  return RelayProcess::run_cli(args, output, 120s, unreachable_database_env());
}

// The exact --status output for a database where every embedded migration is `state`: one line
// per migration, in order, "<state>  <file name>".
std::string status_lines(const std::string& state) {
  std::string out;
  for (const auto& m : relay::store::embedded_migrations()) out += state + "  " + m.name + "\n";
  return out;
}

// "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx", lowercase hex.
bool is_lowercase_uuid(const std::string& s) {
  if (s.size() != 36) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    const bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    const char c = s[i];
    if (dash ? c != '-' : !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

// Arrange step: a migrated database (the test fails here, with relay's output, if it cannot be).
void migrate_ok(const std::string& config, const std::string& url) {
  std::string output;
  const int rc = migrate(config, url, &output);
  INFO(output);
  REQUIRE(rc == 0);
}

bool table_exists(TestDatabase& db, const std::string& table) {
  return db.value("SELECT to_regclass('" + table + "') IS NOT NULL") == "t";
}

}  // namespace

TEST_CASE("relay migrate creates the relay schema on an empty database", "[integration]") {
  auto db = TestDatabase::create_empty();
  TempDir dir;
  const std::string config = dir.write("relay.yaml", kConfig);

  std::string output;
  const int rc = migrate(config, db.url(), &output);

  INFO(output);
  REQUIRE(rc == 0);
  for (const char* table : {"relay.outbox", "relay.delivery", "relay.dead_letter", "relay.inbox",
                            "relay.schema_migrations"}) {
    CAPTURE(table);
    CHECK(table_exists(db, table));
  }
  CHECK(db.count("relay.schema_migrations") ==
        static_cast<long long>(relay::store::embedded_migrations().size()));
}

TEST_CASE("a second relay migrate applies nothing", "[integration]") {
  auto db = TestDatabase::create_empty();
  TempDir dir;
  const std::string config = dir.write("relay.yaml", kConfig);
  migrate_ok(config, db.url());
  const auto recorded =
      db.rows("SELECT version::text, applied_at::text FROM relay.schema_migrations ORDER BY 1");

  std::string second;
  const int rc = migrate(config, db.url(), &second);

  INFO(second);
  REQUIRE(rc == 0);
  CHECK(db.rows("SELECT version::text, applied_at::text FROM relay.schema_migrations ORDER BY 1") ==
        recorded);
}

TEST_CASE("two relay migrate started at once both succeed and record each version once",
          "[integration]") {
  auto db = TestDatabase::create_empty();
  TempDir dir;
  const std::string config = dir.write("relay.yaml", kConfig);

  auto run = [&] {
    std::string output;
    const int rc = migrate(config, db.url(), &output);
    return std::make_pair(rc, output);
  };
  auto a = std::async(std::launch::async, run);
  auto b = std::async(std::launch::async, run);
  const auto [rc_a, out_a] = a.get();
  const auto [rc_b, out_b] = b.get();

  INFO("first:\n" << out_a << "\nsecond:\n" << out_b);
  CHECK(rc_a == 0);
  CHECK(rc_b == 0);
  CHECK(db.count("relay.schema_migrations") ==
        static_cast<long long>(relay::store::embedded_migrations().size()));
  CHECK(db.value("SELECT count(*) - count(DISTINCT version) FROM relay.schema_migrations") == "0");
}

TEST_CASE("relay migrate --status lists every migration as pending, then as applied",
          "[integration]") {
  auto db = TestDatabase::create_empty();
  TempDir dir;
  const std::string config = dir.write("relay.yaml", kConfig);
  REQUIRE(relay::store::embedded_migrations().size() >= 4);

  std::string before;
  const int rc_before = migrate(config, db.url(), &before, {"--status"});
  INFO(before);
  REQUIRE(rc_before == 0);
  CHECK(before == status_lines("pending"));

  migrate_ok(config, db.url());
  std::string after;
  const int rc_after = migrate(config, db.url(), &after, {"--status"});
  INFO(after);
  REQUIRE(rc_after == 0);
  CHECK(after == status_lines("applied"));
  CHECK(db.count("relay.schema_migrations") ==
        static_cast<long long>(relay::store::embedded_migrations().size()));
}

TEST_CASE("after relay migrate relay.publish returns an event id and stores the event",
          "[integration]") {
  auto db = TestDatabase::create_empty();
  TempDir dir;
  const std::string config = dir.write("relay.yaml", kConfig);
  migrate_ok(config, db.url());

  const std::string id = db.value(R"(SELECT relay.publish('t', 'k', '{"a":1}'::jsonb)::text)");

  CHECK(is_lowercase_uuid(id));
  CHECK(db.count("relay.outbox WHERE event_id::text = '" + id +
                 "' AND topic = 't' AND key = 'k'") == 1);
}
