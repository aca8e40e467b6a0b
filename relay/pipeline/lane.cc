#include "relay/pipeline/lane.h"

#include "relay/pipeline/attempt.h"

namespace relay::pipeline {

void run_lane(Subscription& sub, Lane& lane, const LaneContext& context, std::stop_token stop) {
  Attempt attempt(sub, *lane.sender, lane.key_order, context.drain, context.stats, context.clock,
                  context.max_payload_bytes);
  auto may_send = [&](const Task& task) {
    auto settled = attempt.settle_unsent(task);
    if (!settled) return true;
    context.record(result_of(task, sub.name(), std::move(*settled)));
    return false;
  };
  auto record_all = [&](std::span<const Task> tasks, std::vector<model::PartOutcome>&& parts) {
    for (size_t i = 0; i < tasks.size(); ++i)
      context.record(result_of(tasks[i], sub.name(), std::move(parts[i])));
  };

  if (!sub.batched()) {
    while (auto task = lane.queue.pop(stop)) {
      if (!may_send(*task)) continue;
      const std::span<const Task> one(&*task, 1);
      record_all(one, attempt.run(one, DispatchStats::BatchClose::kMaxEvents));
    }
    return;
  }
  Batcher batcher(*sub.config().batch, sub.name(), context.clock);
  // Linger only while more can come: with no credit left the claimer takes nothing until outcomes
  // (this batch's among them) are recorded.
  auto may_linger = [&] { return !context.drain.draining && !context.credit.exhausted(); };
  while (auto batch = batcher.next(lane.queue, lane.bell, may_send, may_linger, stop,
                                   context.drain.stop.get_token())) {
    record_all(batch->tasks, attempt.run(batch->tasks, batch->closed_by));
  }
}

}  // namespace relay::pipeline
