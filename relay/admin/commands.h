#pragma once
// Admin commands as library functions writing to streams, so tests and the CLI share them.
// Each returns the process exit code: 0 success, 1 runtime failure, 2 usage or config error.

#include <ostream>
#include <string>

namespace relay::admin {

// `relay migrate`: applies pending migrations, or with `status_only` lists applied and pending.
int run_migrate(const std::string& database_url, bool status_only, std::ostream& out, std::ostream& err);

// `relay check-config`: prints "<path>: ok" or every error as file:line:col: key: message.
int run_check_config(const std::string& path, std::ostream& out, std::ostream& err);

}  // namespace relay::admin
