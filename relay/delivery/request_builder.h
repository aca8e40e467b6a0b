#pragma once
// Builds the HTTP request relay sends for one event to one subscription (binary mode: body = the
// payload bytes, attributes as headers). Pure; unit-tested.

#include <chrono>
#include <optional>
#include <span>
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

using HeaderList = std::span<const std::pair<std::string, std::string>>;

// Headers: Idempotency-Key, webhook-id (both = event_id), webhook-timestamp (attempt time, unix
// seconds), webhook-signature when `signers` is not empty (one "v1,<sig>" per signer, in order,
// space-separated: secret rotation), ce-specversion 1.0, ce-id, ce-type (topic),
// ce-source ("relay/<subscription>"), ce-time (created_at, RFC 3339 UTC), ce-subject (key, when
// set), relay-attempt, relay-subscription; then `subscription_headers` (the subscription's
// `headers`), then the event's app headers. Neither may set relay's own headers; when both set the
// same name (case-insensitive) the subscription's value wins and the app's is dropped.
OutgoingRequest build_request(const Event& event, const std::string& subscription, int attempt,
                              std::chrono::system_clock::time_point now,
                              std::span<const Signer> signers,
                              HeaderList subscription_headers = {});

}  // namespace relay::delivery
