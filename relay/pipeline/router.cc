#include "relay/pipeline/router.h"

#include <fmt/format.h>

#include <algorithm>
#include <string>

#include "relay/common/check.h"
#include "relay/pipeline/lane.h"

namespace relay::pipeline {

Router::Router(const std::vector<config::SubscriptionConfig>& config,
               const std::vector<std::unique_ptr<Subscription>>& subscriptions,
               std::function<void(TaskResult&&)> record)
    : matcher_(config), subscriptions_(subscriptions), record_(std::move(record)) {}

void Router::route(model::ClaimedEvent&& claimed, std::uint64_t claim) {
  auto shared = std::make_shared<const Event>(std::move(claimed.event));
  const std::uint64_t handed_out = ++handed_out_;
  const std::vector<size_t> matched = matcher_.match(shared->topic);
  if (matched.empty()) {
    // Dead-letter it rather than drop it: an unmatched topic is usually a typo in the config or
    // the app, and an operator can replay it once it is fixed.
    TaskResult r;
    r.outbox_id = shared->outbox_id;
    r.handed_out = handed_out;
    r.key = shared->key;
    r.part.kind = model::PartOutcome::Kind::kDeadLetter;
    r.part.subscription = "(none)";
    r.part.reason = model::DeadLetterReason::kNoSubscription;
    r.part.last_error = fmt::format("no subscription matches topic \"{}\"", shared->topic);
    record_(std::move(r));
    return;
  }
  for (size_t index : matched) {
    Subscription& sub = *subscriptions_[index];
    Task t;
    t.event = shared;
    t.parts_total = static_cast<int>(matched.size());
    t.claim = claim;
    t.handed_out = handed_out;
    t.held = std::find(claimed.held_for.begin(), claimed.held_for.end(), sub.name()) !=
             claimed.held_for.end();
    enqueue(sub, std::move(t));
  }
}

void Router::route(model::ClaimedDelivery&& claimed, std::uint64_t claim) {
  for (const auto& sub : subscriptions_) {
    if (sub->name() != claimed.subscription) continue;
    Task t;
    t.delivery_id = claimed.delivery_id;
    t.attempts_before = claimed.attempts;
    t.first_failed_at = claimed.first_failed_at;
    t.claim = claim;
    t.event = std::make_shared<const Event>(std::move(claimed.event));
    enqueue(*sub, std::move(t));
    return;
  }
  // The claim only returns rows of our subscriptions.
  RELAY_CHECK(false, "claimed a delivery row for an unknown subscription");
}

void Router::enqueue(Subscription& sub, Task&& task) {
  const std::string& by = task.event->key ? *task.event->key : task.event->event_id;
  Lane& lane = *sub.lanes[std::hash<std::string>{}(by) % sub.lanes.size()];
  // Lane queues hold every item that can be in flight, so this does not block.
  std::stop_source never;
  RELAY_CHECK(lane.queue.push(task, never.get_token()), "lane queue closed while claiming");
  if (sub.batched()) lane.bell.ring();  // it may be lingering for more
}

}  // namespace relay::pipeline
