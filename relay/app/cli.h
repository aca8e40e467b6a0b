#pragma once
// argv -> a command. Pure, so it is easy to test and to keep every usage error in one place.

#include <optional>
#include <string>
#include <vector>

#include "relay/admin/commands.h"

namespace relay::app {

struct CommandLine {
  std::string command;  // run | migrate | check-config | dlq | status | version | help
  std::string config_path;
  std::string database_url;      // --database-url, empty if not given
  bool status = false;           // migrate --status
  admin::DlqOptions dlq;         // command == "dlq": dlq.action and its flags
  std::string ops_url;           // status --ops-url
  std::string output = "table";  // status --output
};

// Returns the command, or nullopt with a message in `error` (exit code 2).
std::optional<CommandLine> parse_command_line(const std::vector<std::string>& args,
                                              std::string& error);

extern const char* const kUsage;

// Entry point for every command; returns the exit code.
int run_cli(const std::vector<std::string>& args);

}  // namespace relay::app
