#pragma once
// What one delivery attempt came to. A failure is an outcome, not an error: it is the normal path.

#include <optional>
#include <string>

#include "relay/common/duration.h"

namespace relay::delivery {

struct DeliveryOutcome {
  enum class Kind {
    kDelivered,  // 2xx
    kRetryable,  // 408, 425, 429, 5xx, 3xx, timeout, connection refused/reset
    kFinal,      // any other 4xx: dead letter non_retryable_status
  };
  Kind kind = Kind::kRetryable;
  int status = 0;                     // HTTP status; 0 when no response (timeout, refused)
  std::string error;                  // human-readable cause, e.g. "connection refused", "HTTP 503"
  std::string response_snippet;       // body, truncated to max_response_bytes
  std::optional<Millis> retry_after;  // from a Retry-After header, already capped by max_backoff
};

const char* to_string(DeliveryOutcome::Kind kind);

}  // namespace relay::delivery
