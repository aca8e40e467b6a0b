#include "relay/admin/commands.h"
#include "relay/config/loader.h"

namespace relay::admin {

int run_check_config(const std::string& path, std::ostream& out, std::ostream& err) {
  auto loaded = config::load_config(path, config::process_env());
  if (auto* errors = std::get_if<std::vector<config::ConfigError>>(&loaded)) {
    for (const auto& e : *errors) err << e.to_string() << "\n";
    err << errors->size() << (errors->size() == 1 ? " error" : " errors") << " in "
        << config::escape_control_characters(path) << "\n";
    return 2;
  }
  const auto& cfg = std::get<config::Config>(loaded);
  // The inbox's push subscriptions (inbox:<source>) are counted with the inbox, not here.
  std::size_t subscriptions = 0;
  for (const auto& s : cfg.subscriptions) subscriptions += s.inbox_source.empty() ? 1 : 0;
  out << config::escape_control_characters(path) << ": ok (" << subscriptions
      << (subscriptions == 1 ? " subscription" : " subscriptions");
  if (cfg.inbox) {
    const std::size_t sources = cfg.inbox->sources.size();
    out << ", inbox with " << sources << (sources == 1 ? " source" : " sources");
  }
  out << ")\n";
  return 0;
}

}  // namespace relay::admin
