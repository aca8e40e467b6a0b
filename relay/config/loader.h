#pragma once
// load_config(): reads relay.yaml, interpolates ${VAR} / ${VAR:-default} from the environment,
// and validates every key. Thread-compatible (reads the environment through the given function).

#include <functional>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "relay/config/config.h"

namespace relay::config {

// Looks a variable up; nullopt when unset. Production passes a getenv wrapper.
using EnvLookup = std::function<std::optional<std::string>(const std::string&)>;
EnvLookup process_env();

// Returns the Config, or every problem found (never just the first): unreadable file, YAML syntax
// errors, unknown keys, duplicate keys, wrong types, out-of-range numbers, bad durations, missing
// required keys, unset variables without a default. Each error names file, line, column and key.
// `database.url` is not required here; the caller checks it after applying overrides.
std::variant<Config, std::vector<ConfigError>> load_config(const std::string& path,
                                                           const EnvLookup& env);

// Same, from text already in memory (`path` is only used in messages). For tests.
std::variant<Config, std::vector<ConfigError>> parse_config(const std::string& text,
                                                            const std::string& path,
                                                            const EnvLookup& env);

// Every key path load_config() accepts, sections included, in file order: "database",
// "database.url", ..., "subscriptions[].retry.max_attempts", "ops.listen". List items are written
// "[]". Keys rejected as not supported in this version are not listed. Built from the tables the
// parser walks, so it cannot drift from them; the JSON Schema test compares against it.
std::vector<std::string> known_config_keys();

}  // namespace relay::config
