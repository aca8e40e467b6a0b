#include "relay/pipeline/matcher.h"

#include "relay/common/glob.h"

namespace relay::pipeline {

Matcher::Matcher(const std::vector<config::SubscriptionConfig>& subscriptions)
    : subscriptions_(subscriptions) {}

std::vector<size_t> Matcher::match(std::string_view topic) const {
  std::vector<size_t> out;
  for (size_t i = 0; i < subscriptions_.size(); ++i) {
    for (const auto& pattern : subscriptions_[i].topics) {
      if (glob_match(pattern, topic)) {
        out.push_back(i);
        break;
      }
    }
  }
  return out;
}

}  // namespace relay::pipeline
