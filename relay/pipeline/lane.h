#pragma once
// Lane: one connection to a subscription's endpoint and the thread that uses it, one request at a
// time. The router fills its queue; the lane settles each task (attempt.h), in batches when the
// subscription batches (batcher.h), and hands every outcome to the recorder.

#include <functional>
#include <memory>
#include <stop_token>
#include <thread>

#include "relay/common/bounded_queue.h"
#include "relay/common/clock.h"
#include "relay/delivery/sender.h"
#include "relay/pipeline/batcher.h"
#include "relay/pipeline/dispatch_stats.h"
#include "relay/pipeline/drain.h"
#include "relay/pipeline/in_flight_credit.h"
#include "relay/pipeline/key_order.h"
#include "relay/pipeline/subscription.h"
#include "relay/pipeline/task.h"

namespace relay::pipeline {

struct Lane {
  // `capacity` holds every item that can be in flight, so the router never blocks on a push.
  Lane(size_t capacity, std::unique_ptr<delivery::HttpSender> sender,
       const config::SubscriptionConfig& config)
      : queue(capacity),
        sender(std::move(sender)),
        key_order(config.ordering, config.on_dead_letter) {}

  BoundedQueue<Task> queue;
  LaneBell bell;  // rung on every push for a batch subscription
  std::unique_ptr<delivery::HttpSender> sender;
  KeyOrder key_order;   // lane thread only
  std::jthread thread;  // last: joined before the rest
};

// What a lane's thread needs besides its lane. All outlive the lane's thread.
struct LaneContext {
  Clock& clock;
  DispatchStats& stats;
  const Drain& drain;
  const InFlightCredit& credit;
  std::int64_t max_payload_bytes;
  std::function<void(TaskResult&&)> record;  // hands a result to the recorder; never blocks long
};

// The lane's thread: runs until its queue is closed and drained (shutdown) or `stop`.
void run_lane(Subscription& sub, Lane& lane, const LaneContext& context, std::stop_token stop);

}  // namespace relay::pipeline
