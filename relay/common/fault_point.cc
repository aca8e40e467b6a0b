#include "relay/common/fault_point.h"

#include <atomic>
#include <charconv>
#include <cstdlib>
#include <string>
#include <vector>

namespace relay {
namespace {

struct Armed {
  std::string name;
  long long only_hit = 0;  // 0: every hit
  std::atomic<long long> hits{0};
};

struct Faults {
  std::string spec;
  std::vector<Armed> points;  // fixed after construction; only `hits` changes
};

// Parses "name[@n],..."; entries that do not parse are ignored (this is a test hook, not config).
Faults& faults() {
  static Faults* const parsed = [] {
    auto* f = new Faults();  // never freed: read until exit, from any thread
    const char* env = std::getenv("RELAY_FAULTS");
    f->spec = env != nullptr ? env : "";
    std::string_view rest = f->spec;
    std::vector<std::pair<std::string, long long>> entries;
    while (!rest.empty()) {
      const size_t comma = rest.find(',');
      std::string_view item = rest.substr(0, comma);
      rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
      long long nth = 0;
      if (const size_t at = item.find('@'); at != std::string_view::npos) {
        const std::string_view digits = item.substr(at + 1);
        auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), nth);
        if (ec != std::errc() || end != digits.data() + digits.size() || nth < 1) continue;
        item = item.substr(0, at);
      }
      if (!item.empty()) entries.emplace_back(std::string(item), nth);
    }
    f->points = std::vector<Armed>(entries.size());
    for (size_t i = 0; i < entries.size(); ++i) {
      f->points[i].name = entries[i].first;
      f->points[i].only_hit = entries[i].second;
    }
    return f;
  }();
  return *parsed;
}

}  // namespace

bool fault_fires(std::string_view name) {
  Faults& f = faults();
  if (f.points.empty()) return false;
  for (Armed& a : f.points) {
    if (a.name != name) continue;
    const long long hit = a.hits.fetch_add(1) + 1;
    return a.only_hit == 0 || hit == a.only_hit;
  }
  return false;
}

std::string_view armed_faults() { return faults().spec; }

}  // namespace relay
