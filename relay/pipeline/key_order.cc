#include "relay/pipeline/key_order.h"

namespace relay::pipeline {

bool KeyOrder::orders(const Task& task) const {
  return ordering_ == model::Ordering::kPerKey && task.event->key.has_value();
}

bool KeyOrder::must_wait(const Task& task) {
  if (!orders(task)) return false;
  auto it = held_.find(*task.event->key);
  const bool wait = task.held || (it != held_.end() && it->second == task.claim);
  if (wait) held_[*task.event->key] = task.claim;
  return wait;
}

void KeyOrder::settled(const Task& task, const model::PartOutcome& part) {
  using Kind = model::PartOutcome::Kind;
  if (!orders(task)) return;
  const bool lets_key_go =
      part.kind == Kind::kDelivered ||
      (part.kind == Kind::kDeadLetter && on_dead_letter_ == model::OnDeadLetter::kSkip);
  if (!lets_key_go) held_[*task.event->key] = task.claim;
}

}  // namespace relay::pipeline
