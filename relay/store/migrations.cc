#include "relay/store/migrations.h"

#include <fmt/format.h>

#include <algorithm>
#include <set>

#include "relay/store/transaction.h"

namespace relay::store {
namespace {

// Session-level advisory lock key ("relay" in ASCII) held while migrating, so two relays starting
// at once apply each file exactly once: the second waits, then finds nothing pending.
constexpr long long kMigrationLockKey = 0x72656c6179;

constexpr const char* kBootstrapSql = R"(
  CREATE SCHEMA IF NOT EXISTS relay;
  CREATE TABLE IF NOT EXISTS relay.schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
  );
)";

Result<std::set<int>> applied_versions(pqxx::connection& conn) {
  return run_transaction(conn, [](pqxx::work& txn) {
    std::set<int> out;
    // to_regclass: a database that was never migrated has no table yet; that is "nothing applied".
    auto exists = txn.exec("SELECT to_regclass('relay.schema_migrations') IS NOT NULL");
    if (!exists[0][0].as<bool>()) return out;
    for (const auto& row : txn.exec("SELECT version FROM relay.schema_migrations"))
      out.insert(row[0].as<int>());
    return out;
  });
}

}  // namespace

Result<std::vector<int>> migrate(const std::string& database_url, std::ostream& out) {
  auto conn = connect(database_url);
  if (!conn) return conn.error();
  pqxx::connection& c = **conn;

  auto locked = run_nontransaction(c, [](pqxx::nontransaction& tx) {
    tx.exec_params("SELECT pg_advisory_lock($1)", kMigrationLockKey);
  });
  if (!locked) return locked.error();

  std::vector<int> applied_now;
  auto finish = [&](Result<std::vector<int>> r) -> Result<std::vector<int>> {
    // The lock is session-level: release it explicitly (closing the connection would too).
    (void)run_nontransaction(c, [](pqxx::nontransaction& tx) {
      tx.exec_params("SELECT pg_advisory_unlock($1)", kMigrationLockKey);
    });
    return r;
  };

  auto boot = run_transaction(c, [](pqxx::work& txn) { txn.exec(kBootstrapSql); });
  if (!boot) return finish(boot.error());
  auto done = applied_versions(c);
  if (!done) return finish(done.error());

  for (const Migration& m : embedded_migrations()) {
    if (done->count(m.version) != 0) continue;
    auto r = run_transaction(c, [&](pqxx::work& txn) {
      txn.exec(m.sql);
      txn.exec_params("INSERT INTO relay.schema_migrations (version, name) VALUES ($1, $2)",
                      m.version, m.name);
    });
    if (!r) {
      return finish(
          Error{r.error().code, fmt::format("migration {} failed: {}", m.name, r.error().message)});
    }
    out << "applied " << m.name << "\n";
    applied_now.push_back(m.version);
  }
  return finish(applied_now);
}

Result<MigrationStatus> migration_status(const std::string& database_url) {
  auto conn = connect(database_url);
  if (!conn) return conn.error();
  auto done = applied_versions(**conn);
  if (!done) return done.error();
  MigrationStatus status;
  status.applied.assign(done->begin(), done->end());
  for (const Migration& m : embedded_migrations()) {
    if (done->count(m.version) == 0) status.pending.push_back(m.version);
  }
  return status;
}

}  // namespace relay::store
