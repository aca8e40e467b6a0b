#include "relay/app/cli.h"

#include <cstdlib>
#include <iostream>

#include "relay/admin/commands.h"
#include "relay/app/relay_runner.h"
#include "relay/common/version.h"
#include "relay/config/loader.h"

namespace relay::app {

const char* const kUsage = R"(usage: relay <command> [options]

commands:
  run           --config relay.yaml [--database-url URL]   run the sidecar
  migrate       --config relay.yaml [--database-url URL] [--status]
                                    apply sql/ migrations (idempotent); --status lists them
  check-config  --config relay.yaml  validate; exit 2 with file:line:col on error
  version                            print the version

The database URL comes from --database-url, else database.url in the config, else $DATABASE_URL.
Exit codes: 0 success, 1 runtime failure, 2 usage or config error.
)";

std::optional<CommandLine> parse_command_line(const std::vector<std::string>& args, std::string& error) {
  CommandLine cl;
  if (args.empty()) {
    error = "missing command";
    return std::nullopt;
  }
  cl.command = args[0];
  if (cl.command == "--help" || cl.command == "-h") cl.command = "help";
  if (cl.command == "--version") cl.command = "version";
  if (cl.command == "dlq" || cl.command == "status") {
    error = "'relay " + cl.command + "' is not available in this version yet";
    return std::nullopt;
  }
  if (cl.command != "run" && cl.command != "migrate" && cl.command != "check-config" && cl.command != "version" &&
      cl.command != "help") {
    error = "unknown command '" + cl.command + "'";
    return std::nullopt;
  }
  for (size_t i = 1; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&](const std::string& name) -> std::optional<std::string> {
      if (i + 1 >= args.size()) {
        error = name + " needs a value";
        return std::nullopt;
      }
      return args[++i];
    };
    if (a == "--config" || a == "-c") {
      auto v = value(a);
      if (!v) return std::nullopt;
      cl.config_path = *v;
    } else if (a.rfind("--config=", 0) == 0) {
      cl.config_path = a.substr(9);
    } else if (a == "--database-url") {
      auto v = value(a);
      if (!v) return std::nullopt;
      cl.database_url = *v;
    } else if (a.rfind("--database-url=", 0) == 0) {
      cl.database_url = a.substr(15);
    } else if (a == "--status" && cl.command == "migrate") {
      cl.status = true;
    } else {
      error = "unknown option '" + a + "' for 'relay " + cl.command + "'";
      return std::nullopt;
    }
  }
  const bool needs_config = cl.command == "run" || cl.command == "check-config";
  if (needs_config && cl.config_path.empty()) {
    error = "'relay " + cl.command + "' needs --config FILE";
    return std::nullopt;
  }
  return cl;
}

namespace {

// --database-url, else the config's database.url, else $DATABASE_URL.
std::string resolve_database_url(const CommandLine& cl, const std::string& from_config) {
  if (!cl.database_url.empty()) return cl.database_url;
  if (!from_config.empty()) return from_config;
  const char* env = std::getenv("DATABASE_URL");
  return env != nullptr ? env : "";
}

}  // namespace

int run_cli(const std::vector<std::string>& args) {
  std::string error;
  auto cl = parse_command_line(args, error);
  if (!cl) {
    std::cerr << "relay: " << error << "\n\n" << kUsage;
    return 2;
  }
  if (cl->command == "help") {
    std::cout << kUsage;
    return 0;
  }
  if (cl->command == "version") {
    std::cout << "relay " << kVersion << "\n";
    return 0;
  }
  if (cl->command == "check-config") return admin::run_check_config(cl->config_path, std::cout, std::cerr);

  std::optional<config::Config> cfg;
  if (!cl->config_path.empty()) {
    auto loaded = config::load_config(cl->config_path, config::process_env());
    if (auto* errors = std::get_if<std::vector<config::ConfigError>>(&loaded)) {
      for (const auto& e : *errors) std::cerr << e.to_string() << "\n";
      return 2;
    }
    cfg = std::get<config::Config>(std::move(loaded));
  }
  const std::string url = resolve_database_url(*cl, cfg ? cfg->database.url : "");
  if (url.empty()) {
    std::cerr << "relay: no database URL: set database.url in the config, pass --database-url, or set DATABASE_URL\n";
    return 2;
  }
  if (cl->command == "migrate") return admin::run_migrate(url, cl->status, std::cout, std::cerr);
  return run_relay(*cfg, url);
}

}  // namespace relay::app
