#pragma once
// ${VAR} and ${VAR:-default} substitution for the scalar values of relay.yaml. Thread-compatible.

#include <string>
#include <string_view>

#include "relay/common/result.h"
#include "relay/config/loader.h"

namespace relay::config {

// Returns `text` with every reference replaced:
//   ${NAME}            -> the value of NAME; an error if NAME is unset (set but empty is fine)
//   ${NAME:-default}   -> the value of NAME, or `default` when NAME is unset or empty (as in sh)
//   $${                -> a literal "${" (the escape); any other "$" is literal
// NAME is [A-Za-z_][A-Za-z0-9_]*. `default` runs to the first "}" and is taken literally (no
// nesting). Substitution is one pass: text that comes from the environment is not scanned again.
// An empty `env` means no variable is set.
// Returns kInvalidArgument for an unterminated "${", a bad NAME, or unset variables without a
// default (all of them named in one message). Messages never quote `text` itself, which may be a
// secret.
Result<std::string> interpolate(std::string_view text, const EnvLookup& env);

}  // namespace relay::config
