#pragma once
// Matcher: which subscriptions want an event, by topic glob. Immutable after construction, so
// thread-safe.

#include <string_view>
#include <vector>

#include "relay/config/config.h"

namespace relay::pipeline {

class Matcher {
 public:
  // Keeps pointers into `subscriptions`, which must outlive the Matcher.
  explicit Matcher(const std::vector<config::SubscriptionConfig>& subscriptions);
  // Indexes (into the subscriptions vector) of every subscription with a topic glob matching
  // `topic`, each once, in config order.
  std::vector<size_t> match(std::string_view topic) const;

 private:
  const std::vector<config::SubscriptionConfig>& subscriptions_;
};

}  // namespace relay::pipeline
