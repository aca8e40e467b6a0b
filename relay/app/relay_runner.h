#pragma once
// `relay run`: wires the components, waits for SIGTERM/SIGINT, shuts down within
// shutdown_timeout. Returns the exit code.

#include <string>

#include "relay/config/config.h"

namespace relay::app {

int run_relay(const config::Config& config, const std::string& database_url);

}  // namespace relay::app
