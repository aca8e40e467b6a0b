#pragma once
// Forward-only SQL migrations from sql/NNNN_name.sql, embedded in the binary at build time so the
// one binary is all a deployment needs.

#include <ostream>
#include <string>
#include <vector>

#include "relay/common/result.h"

namespace relay::store {

struct Migration {
  int version = 0;   // NNNN from the file name
  std::string name;  // file name, e.g. "0001_init.sql"
  std::string sql;
};

// Every migration shipped with this binary, ordered by version.
const std::vector<Migration>& embedded_migrations();

struct MigrationStatus {
  std::vector<int> applied;  // versions recorded in relay.schema_migrations
  std::vector<int> pending;  // shipped but not applied
};

// Applies pending migrations in order, each in its own transaction, under a session advisory lock
// so that two relays migrating at once take turns. Idempotent. Reports each applied file on `out`.
// Returns the versions applied by this call; kUnavailable if the database cannot be reached.
Result<std::vector<int>> migrate(const std::string& database_url, std::ostream& out);

// Which migrations are applied and which are pending.
Result<MigrationStatus> migration_status(const std::string& database_url);

}  // namespace relay::store
