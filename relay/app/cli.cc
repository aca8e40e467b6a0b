#include "relay/app/cli.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <iostream>
#include <set>
#include <string>

#include "relay/admin/commands.h"
#include "relay/admin/format.h"
#include "relay/app/relay_runner.h"
#include "relay/common/clock.h"
#include "relay/common/version.h"
#include "relay/config/loader.h"

namespace relay::app {

const char* const kUsage = R"(usage: relay <command> [options]

commands:
  run           --config relay.yaml [--database-url URL]   run the sidecar
  migrate       --config relay.yaml [--database-url URL] [--status]
                                    apply sql/ migrations (idempotent); --status lists them
  check-config  --config relay.yaml  validate; exit 2 with file:line:col on error
  dlq list      [filters] [--limit N] [--after ID] [--output table|json]
  dlq show      ID [--output table|json]
  dlq replay    ID... | --all [filters] [--limit N]  [--dry-run] [--yes]
  dlq purge     ID... | --all [filters] | --older-than DUR  [--limit N] [--dry-run] [--yes]
  dlq stats     [filters] [--output table|json]
  status        [--ops-url http://HOST:PORT] [--output table|json]
                                    backlog, retries, dead letters, breakers
  version                            print the version

dlq filters (all must hold):
  --subscription NAME   --topic GLOB (* and ?)   --reason REASON   --key KEY
  --since WHEN  --until WHEN   WHEN is a duration meaning "ago" (30m, 2h, 7d) or an RFC 3339
                               timestamp (2024-05-01T12:00:00Z)

dlq and status take --config relay.yaml and --database-url URL like migrate. The database URL
comes from --database-url, else database.url in the config, else $DATABASE_URL. Bulk replay and
purge print what they will touch and need --yes (a terminal asks instead); Ctrl-C stops them
between two batches of 500, each batch all-or-nothing.
Exit codes: 0 success, 1 runtime failure, 2 usage or config error, 130 interrupted.
)";

namespace {

const std::set<std::string> kDlqActions = {"list", "show", "replay", "purge", "stats"};

bool takes_filters(const std::string& a) {
  return a == "list" || a == "stats" || a == "replay" || a == "purge";
}

// Points a --flag at the field it sets, if `action` accepts it.
std::optional<std::string>* dlq_value_flag(admin::DlqOptions& d, const std::string& flag) {
  const std::string& a = d.action;
  if (takes_filters(a)) {
    if (flag == "--subscription") return &d.subscription;
    if (flag == "--topic") return &d.topic;
    if (flag == "--reason") return &d.reason;
    if (flag == "--key") return &d.key;
    if (flag == "--since") return &d.since;
    if (flag == "--until") return &d.until;
  }
  if (flag == "--limit" && (a == "list" || a == "replay" || a == "purge")) return &d.limit;
  if (flag == "--after" && a == "list") return &d.after;
  if (flag == "--older-than" && a == "purge") return &d.older_than;
  return nullptr;
}

bool* dlq_switch(admin::DlqOptions& d, const std::string& flag) {
  const bool bulk = d.action == "replay" || d.action == "purge";
  if (flag == "--all" && bulk) return &d.all;
  if (flag == "--yes" && bulk) return &d.yes;
  if (flag == "-y" && bulk) return &d.yes;
  if (flag == "--dry-run" && bulk) return &d.dry_run;
  return nullptr;
}

bool validate_dlq(const admin::DlqOptions& d, std::string& error) {
  const std::string cmd = "'relay dlq " + d.action + "'";
  const bool filtered = d.subscription || d.topic || d.reason || d.key || d.since || d.until;
  if (d.action == "show") {
    if (d.ids.size() != 1) {
      error = cmd + " needs exactly one dead letter id";
      return false;
    }
    return true;
  }
  if (d.action == "list" || d.action == "stats") {
    if (!d.ids.empty()) {
      error = cmd + " takes no ids (use 'relay dlq show ID')";
      return false;
    }
    return true;
  }
  const bool bulk = d.all || d.older_than;
  if (bulk && !d.ids.empty()) {
    error = cmd + ": give dead letter ids or " +
            (d.action == "purge" ? "--all/--older-than" : "--all") + ", not both";
    return false;
  }
  if (!bulk && d.ids.empty()) {
    error = cmd + " needs dead letter ids, or " +
            (d.action == "purge" ? "--all or --older-than DUR" : "--all") +
            " [filters] to select them";
    return false;
  }
  if (!bulk && (filtered || d.limit)) {
    error = cmd + ": filters and --limit select rows only with " +
            (d.action == "purge" ? "--all/--older-than" : "--all");
    return false;
  }
  return true;
}

}  // namespace

std::optional<CommandLine> parse_command_line(const std::vector<std::string>& args,
                                              std::string& error) {
  CommandLine cl;
  if (args.empty()) {
    error = "missing command";
    return std::nullopt;
  }
  cl.command = args[0];
  if (cl.command == "--help" || cl.command == "-h") cl.command = "help";
  if (cl.command == "--version") cl.command = "version";
  if (cl.command != "run" && cl.command != "migrate" && cl.command != "check-config" &&
      cl.command != "dlq" && cl.command != "status" && cl.command != "version" &&
      cl.command != "help") {
    error = "unknown command '" + cl.command + "'";
    return std::nullopt;
  }
  size_t first = 1;
  std::string name = cl.command;
  if (cl.command == "dlq") {
    if (args.size() < 2 || args[1] == "--help" || args[1] == "-h") {
      if (args.size() >= 2) {
        cl.command = "help";
        return cl;
      }
      error = "'relay dlq' needs an action: list, show, replay, purge or stats";
      return std::nullopt;
    }
    if (kDlqActions.count(args[1]) == 0) {
      error = "unknown action 'relay dlq " + args[1] +
              "' (expected list, show, replay, purge or stats)";
      return std::nullopt;
    }
    cl.dlq.action = args[1];
    name = "dlq " + cl.dlq.action;
    first = 2;
  }
  for (size_t i = first; i < args.size(); ++i) {
    std::string a = args[i];
    std::optional<std::string> inline_value;
    if (a.rfind("--", 0) == 0 && a.find('=') != std::string::npos) {
      inline_value = a.substr(a.find('=') + 1);
      a = a.substr(0, a.find('='));
    }
    auto value = [&](const std::string& flag) -> std::optional<std::string> {
      if (inline_value) return inline_value;
      if (i + 1 >= args.size()) {
        error = flag + " needs a value";
        return std::nullopt;
      }
      return args[++i];
    };
    std::optional<std::string>* target = cl.command == "dlq" ? dlq_value_flag(cl.dlq, a) : nullptr;
    bool* on = cl.command == "dlq" ? dlq_switch(cl.dlq, a) : nullptr;
    if (a == "--help" || a == "-h") {
      cl.command = "help";
      return cl;
    } else if (a == "--config" || a == "-c") {
      auto v = value(a);
      if (!v) return std::nullopt;
      cl.config_path = *v;
    } else if (a == "--database-url") {
      auto v = value(a);
      if (!v) return std::nullopt;
      cl.database_url = *v;
    } else if (a == "--status" && cl.command == "migrate" && !inline_value) {
      cl.status = true;
    } else if (a == "--output" &&
               (cl.command == "status" ||
                (cl.command == "dlq" && cl.dlq.action != "replay" && cl.dlq.action != "purge"))) {
      auto v = value(a);
      if (!v) return std::nullopt;
      if (*v != "table" && *v != "json") {
        error = "--output must be table or json, not '" + *v + "'";
        return std::nullopt;
      }
      (cl.command == "status" ? cl.output : cl.dlq.output) = *v;
    } else if (a == "--ops-url" && cl.command == "status") {
      auto v = value(a);
      if (!v) return std::nullopt;
      cl.ops_url = *v;
    } else if (target != nullptr) {
      auto v = value(a);
      if (!v) return std::nullopt;
      *target = *v;
    } else if (on != nullptr && !inline_value) {
      *on = true;
    } else if (cl.command == "dlq" &&
               (cl.dlq.action == "show" || cl.dlq.action == "replay" || cl.dlq.action == "purge") &&
               !a.empty() && a[0] != '-') {
      cl.dlq.ids.push_back(a);
    } else {
      error = "unknown option '" + args[i] + "' for 'relay " + name + "'";
      return std::nullopt;
    }
  }
  const bool needs_config = cl.command == "run" || cl.command == "check-config";
  if (needs_config && cl.config_path.empty()) {
    error = "'relay " + cl.command + "' needs --config FILE";
    return std::nullopt;
  }
  if (cl.command == "dlq" && !validate_dlq(cl.dlq, error)) return std::nullopt;
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

// libpq waits forever for a server that accepts TCP but never answers (a hung host, a black-holed
// address behind a proxy). Every connection relay opens gets database.connect_timeout through
// PGCONNECT_TIMEOUT; a connect_timeout in the URL, or a non-empty PGCONNECT_TIMEOUT already in the
// environment, wins. Called before any thread starts (setenv is not thread-safe).
void default_connect_timeout(Millis timeout) {
  const char* given = std::getenv("PGCONNECT_TIMEOUT");
  if (given != nullptr && *given != '\0') return;
  const long long seconds = (timeout.count() + 999) / 1000;
  ::setenv("PGCONNECT_TIMEOUT", std::to_string(seconds).c_str(), /*overwrite=*/1);
}

// SIGINT during `relay dlq`: the bulk loop finishes its batch and stops. The handler only sets a
// lock-free atomic (async-signal-safe); SA_RESETHAND makes a second Ctrl-C end the process at once,
// which is still safe: each batch is one transaction.
std::atomic<bool> g_interrupted{false};
static_assert(std::atomic<bool>::is_always_lock_free);

extern "C" void on_sigint(int) { g_interrupted.store(true); }

void catch_sigint() {
  struct sigaction sa {};
  sa.sa_handler = on_sigint;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESETHAND;  // and no SA_RESTART: a confirmation prompt's read() returns
  sigaction(SIGINT, &sa, nullptr);
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
  if (cl->command == "check-config")
    return admin::run_check_config(cl->config_path, std::cout, std::cerr);

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
    std::cerr << "relay: no database URL: set database.url in the config, pass --database-url, or "
                 "set DATABASE_URL\n";
    return 2;
  }
  default_connect_timeout(cfg ? cfg->database.connect_timeout
                              : config::DatabaseConfig{}.connect_timeout);
  if (cl->command == "migrate") return admin::run_migrate(url, cl->status, std::cout, std::cerr);
  if (cl->command == "dlq" || cl->command == "status") {
    admin::Console console{.out = std::cout,
                           .err = std::cerr,
                           .in = std::cin,
                           .in_is_terminal = isatty(STDIN_FILENO) == 1,
                           .err_is_terminal = isatty(STDERR_FILENO) == 1,
                           .now = SystemClock().wall_now(),
                           .interrupted = &g_interrupted};
    // RELAY_NOW pins "now" for rendered relative times and --since/--until (a testing aid).
    if (const char* pinned = std::getenv("RELAY_NOW"); pinned != nullptr && *pinned != '\0') {
      auto t = admin::parse_timestamp(pinned);
      if (!t) {
        std::cerr << "relay: RELAY_NOW: " << t.error().message << "\n";
        return 2;
      }
      console.now = *t;
    }
    if (cl->command == "status") {
      return admin::run_status(
          url, {.ops_url = cl->ops_url, .output = cl->output, .config = cfg ? &*cfg : nullptr},
          console);
    }
    // Only bulk work stops politely; Ctrl-C ends a list or show at once.
    if (cl->dlq.action == "replay" || cl->dlq.action == "purge") catch_sigint();
    return admin::run_dlq(url, cl->dlq, console);
  }
  return run_relay(*cfg, url);
}

}  // namespace relay::app
