#include <algorithm>

#include "relay/admin/commands.h"
#include "relay/store/migrations.h"

namespace relay::admin {

int run_migrate(const std::string& database_url, bool status_only, std::ostream& out,
                std::ostream& err) {
  if (status_only) {
    auto status = store::migration_status(database_url);
    if (!status) {
      err << "relay migrate: " << status.error().message << "\n";
      return 1;
    }
    for (const auto& m : store::embedded_migrations()) {
      const bool applied = std::find(status->applied.begin(), status->applied.end(), m.version) !=
                           status->applied.end();
      out << (applied ? "applied  " : "pending  ") << m.name << "\n";
    }
    // Versions in the database that this binary doesn't know: a newer relay migrated it.
    for (int v : status->applied) {
      bool known = false;
      for (const auto& m : store::embedded_migrations()) known = known || m.version == v;
      if (!known)
        out << "applied  " << v << " (unknown to this relay version: the database is newer)\n";
    }
    return 0;
  }
  auto applied = store::migrate(database_url, out);
  if (!applied) {
    err << "relay migrate: " << applied.error().message << "\n";
    return 1;
  }
  if (applied->empty()) out << "schema is up to date\n";
  return 0;
}

}  // namespace relay::admin
