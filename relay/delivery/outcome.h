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
  // Why a failure without an HTTP status happened, when the cause needs the operator rather than
  // time (a CA, certificate or host name to fix). Such failures are still kRetryable: the events
  // wait, the breaker opens, and they go out once the configuration is fixed.
  enum class Cause {
    kNone,
    kTlsVerification,  // the server's certificate chain or host name did not verify
    kTlsHandshake,     // any other TLS failure: protocol, client certificate refused, bad CA file
  };
  Kind kind = Kind::kRetryable;
  int status = 0;                     // HTTP status; 0 when no response (timeout, refused)
  std::string error;                  // human-readable cause, e.g. "connection refused", "HTTP 503"
  std::string response_snippet;       // body, truncated to max_response_bytes
  std::optional<Millis> retry_after;  // from a Retry-After header, as sent (clamped to 100 years)
  Cause cause = Cause::kNone;
};

const char* to_string(DeliveryOutcome::Kind kind);
const char* to_string(DeliveryOutcome::Cause cause);  // "none", "tls_verification", "tls_handshake"

}  // namespace relay::delivery
