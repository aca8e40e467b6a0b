#pragma once
// The router: turns claimed work into tasks. An outbox event fans out to every subscription whose
// topic globs match it (one part each; an event nobody subscribes to is dead-lettered as
// no_subscription); a scheduled retry goes back to its own subscription. Within a subscription the
// lane is chosen by the event's key, so a key's events always meet the same lane (and KeyOrder).
// Claimer thread only.

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "relay/model/work_items.h"
#include "relay/pipeline/matcher.h"
#include "relay/pipeline/subscription.h"
#include "relay/pipeline/task.h"

namespace relay::pipeline {

class Router {
 public:
  // `subscriptions` (with their lanes) and `config` must outlive the router; `record` takes the
  // result of an event that goes to no lane.
  Router(const std::vector<config::SubscriptionConfig>& config,
         const std::vector<std::unique_ptr<Subscription>>& subscriptions,
         std::function<void(TaskResult&&)> record);

  // `claim` numbers the claim the work came from.
  void route(model::ClaimedEvent&& claimed, std::uint64_t claim);
  void route(model::ClaimedDelivery&& claimed, std::uint64_t claim);

 private:
  void enqueue(Subscription& sub, Task&& task);

  const Matcher matcher_;
  const std::vector<std::unique_ptr<Subscription>>& subscriptions_;
  const std::function<void(TaskResult&&)> record_;
  std::uint64_t handed_out_ = 0;  // outbox events routed so far: Task::handed_out
};

}  // namespace relay::pipeline
