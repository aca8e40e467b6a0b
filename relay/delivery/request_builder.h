#pragma once
// Builds the HTTP request relay sends for one event to one subscription (binary mode: body = the
// payload bytes, attributes as headers). Pure; unit-tested.

#include <chrono>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "relay/common/event.h"
#include "relay/delivery/signer.h"

namespace relay::delivery {

struct OutgoingRequest {
  std::vector<std::pair<std::string, std::string>> headers;  // excluding Content-Type
  std::string content_type;
  std::string body;
};

// Headers: Idempotency-Key, webhook-id (both = event_id), webhook-timestamp (attempt time, unix
// seconds), webhook-signature when `signer` is set, ce-specversion 1.0, ce-id, ce-type (topic),
// ce-source ("relay/<subscription>"), ce-time (created_at, RFC 3339 UTC), ce-subject (key, when
// set), relay-attempt, relay-subscription.
OutgoingRequest build_request(const Event& event, const std::string& subscription, int attempt,
                              std::chrono::system_clock::time_point now,
                              const std::optional<Signer>& signer);

}  // namespace relay::delivery
