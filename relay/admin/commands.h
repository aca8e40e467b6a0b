#pragma once
// Admin commands as library functions writing to streams, so tests and the CLI share them.
// Each returns the process exit code: 0 success, 1 runtime failure, 2 usage or config error, and
// kExitInterrupted when SIGINT stopped a bulk operation between two batches.

#include <atomic>
#include <chrono>
#include <istream>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "relay/config/config.h"

namespace relay::admin {

inline constexpr int kExitInterrupted = 130;  // 128 + SIGINT, as a shell reports it

// What a command talks to. Not thread-safe; `interrupted` may be set from a signal handler.
struct Console {
  std::ostream& out;             // results (tables, JSON)
  std::ostream& err;             // errors, confirmation prompts, progress
  std::istream& in;              // answers to confirmation prompts
  bool in_is_terminal = false;   // a person can answer a prompt
  bool err_is_terminal = false;  // progress lines are shown
  // "Now" for relative times ("5m ago") and for --since/--until durations: the wall clock, or
  // $RELAY_NOW when set (a testing aid that pins rendered times).
  std::chrono::system_clock::time_point now{};
  const std::atomic<bool>* interrupted = nullptr;  // set on SIGINT: bulk work stops after its batch
};

// `relay migrate`: applies pending migrations, or with `status_only` lists applied and pending.
int run_migrate(const std::string& database_url, bool status_only, std::ostream& out,
                std::ostream& err);

// `relay check-config`: prints "<path>: ok" or every error as file:line:col: key: message.
int run_check_config(const std::string& path, std::ostream& out, std::ostream& err);

// `relay dlq ...`, as typed; run_dlq() validates values (bad ones exit 2).
struct DlqOptions {
  std::string action;            // list | show | replay | purge | stats
  std::vector<std::string> ids;  // show (one), replay and purge by id
  bool all = false;              // replay/purge --all
  bool yes = false;              // bulk: no confirmation
  bool dry_run = false;          // replay/purge: only report
  std::string output = "table";  // table | json (list, show, stats)
  std::optional<std::string> subscription, topic, reason, key, since, until, older_than;
  std::optional<std::string> limit;  // list: page size (default 50); bulk: at most this many rows
  std::optional<std::string> after;  // list: ids greater than this (paging)
};
int run_dlq(const std::string& database_url, const DlqOptions& options, Console& console);

// `relay status`.
struct StatusOptions {
  // --ops-url; when empty, http://<ops.listen> from `config` (0.0.0.0 and :: become loopback).
  std::string ops_url;
  std::string output = "table";            // table | json
  const config::Config* config = nullptr;  // optional: lists configured subscriptions, ops.listen
};
int run_status(const std::string& database_url, const StatusOptions& options, Console& console);

}  // namespace relay::admin
