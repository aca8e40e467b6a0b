// relay_config_keys: prints every key path relay.yaml accepts, one per line
// ("subscriptions[].name"). Used by check_schema.py to compare schema/relay.schema.json with the
// parser's own key tables.

#include <iostream>

#include "relay/config/loader.h"

int main() {
  for (const std::string& key : relay::config::known_config_keys()) std::cout << key << '\n';
  return std::cout.good() ? 0 : 1;
}
