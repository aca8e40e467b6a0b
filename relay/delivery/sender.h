#pragma once
// HttpSender: sends one event to one subscription endpoint and reports the outcome. The seam
// between relay and the network (tests and the pipeline use it through this interface).

#include <span>

#include "relay/common/event.h"
#include "relay/delivery/outcome.h"

namespace relay::delivery {

// One event of a batch and the attempt number it is on (events of one batch may have been tried a
// different number of times before).
struct BatchItem {
  const Event* event = nullptr;
  int attempt = 1;
};

class HttpSender {
 public:
  virtual ~HttpSender() = default;
  // Blocks for at most the subscription's timeout (plus connect timeout). Never throws.
  // `attempt` is 1 for the first try.
  virtual DeliveryOutcome send(const Event& event, int attempt) = 0;
  // Sends `items` (non-empty, in order) as one batch request; the outcome applies to every item.
  virtual DeliveryOutcome send_batch(std::span<const BatchItem> items) = 0;
  // Aborts an in-flight send from another thread (shutdown); the send returns kRetryable.
  virtual void stop() = 0;
};

}  // namespace relay::delivery
