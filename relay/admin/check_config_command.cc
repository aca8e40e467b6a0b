#include "relay/admin/commands.h"
#include "relay/config/loader.h"

namespace relay::admin {

int run_check_config(const std::string& path, std::ostream& out, std::ostream& err) {
  auto loaded = config::load_config(path, config::process_env());
  if (auto* errors = std::get_if<std::vector<config::ConfigError>>(&loaded)) {
    for (const auto& e : *errors) err << e.to_string() << "\n";
    err << errors->size() << (errors->size() == 1 ? " error" : " errors") << " in " << path << "\n";
    return 2;
  }
  const auto& cfg = std::get<config::Config>(loaded);
  out << path << ": ok (" << cfg.subscriptions.size()
      << (cfg.subscriptions.size() == 1 ? " subscription)" : " subscriptions)") << "\n";
  return 0;
}

}  // namespace relay::admin
