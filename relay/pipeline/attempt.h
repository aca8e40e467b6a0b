#pragma once
// The attempt stage: what becomes of tasks a lane takes. First the checks that settle a task
// without a request (shutdown, too large, expired, waiting behind its key); then, for the tasks
// that may go together, one attempt: breaker admission, a rate-limit token per event, one request
// (one event, or a batch), and one retry decision that applies to each of them. Lane thread only.

#include <optional>
#include <span>
#include <vector>

#include "relay/common/backoff.h"
#include "relay/common/clock.h"
#include "relay/delivery/sender.h"
#include "relay/model/work_items.h"
#include "relay/pipeline/dispatch_stats.h"
#include "relay/pipeline/drain.h"
#include "relay/pipeline/key_order.h"
#include "relay/pipeline/subscription.h"
#include "relay/pipeline/task.h"

namespace relay::pipeline {

class Attempt {
 public:
  // Everything must outlive it. `max_payload_bytes` is limits.max_payload_bytes.
  Attempt(Subscription& sub, delivery::HttpSender& sender, KeyOrder& key_order, const Drain& drain,
          DispatchStats& stats, Clock& clock, std::int64_t max_payload_bytes);

  // The outcome that settles `task` without a request, or nullopt when it may be sent.
  std::optional<model::PartOutcome> settle_unsent(const Task& task);
  // Sends `tasks` (non-empty, each passed settle_unsent) as one request: a batch when the
  // subscription batches (`closed_by` says what closed it), else the one event. Returns one
  // outcome per task, in order.
  std::vector<model::PartOutcome> run(std::span<const Task> tasks,
                                      DispatchStats::BatchClose closed_by);

 private:
  // Every task gets `part` (with its own attempt count): nothing was attempted.
  std::vector<model::PartOutcome> settle_all(std::span<const Task> tasks,
                                             const model::PartOutcome& part);
  std::vector<model::PartOutcome> settled(std::span<const Task> tasks,
                                          std::vector<model::PartOutcome> parts);

  Subscription& sub_;
  delivery::HttpSender& sender_;
  KeyOrder& key_order_;
  const Drain& drain_;
  DispatchStats& stats_;
  Clock& clock_;
  const std::int64_t max_payload_bytes_;
  Backoff backoff_;
};

}  // namespace relay::pipeline
