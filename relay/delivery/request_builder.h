#pragma once
// Builds the HTTP request relay sends for one event, or one batch of events, to one subscription,
// in the subscription's format (binary, cloudevents-json, protobuf; the bodies of the last two
// come from relay/delivery/envelope.h). Pure; thread-safe; unit-tested.

#include <chrono>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "relay/common/event.h"
#include "relay/delivery/sender.h"
#include "relay/delivery/signer.h"
#include "relay/model/modes.h"

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

// "binary" | "cloudevents-json" | "protobuf"; anything else (not accepted by the loader) = kBinary.

// What build_request/build_batch_request need to know about the subscription.
struct RequestContext {
  std::string subscription;  // its name (ce-source, relay-subscription)
  model::Format format = model::Format::kBinary;
  std::span<const Signer> signers;       // may be empty: unsigned
  HeaderList subscription_headers = {};  // the subscription's `headers`
};

// One event in the subscription's format. binary: as build_request above. cloudevents-json: a
// structured CloudEvents 1.0 document (application/cloudevents+json). protobuf: relay.v1.Event
// (application/x-protobuf). Every format carries the same HTTP headers (Idempotency-Key, webhook-*,
// relay-*, the subscription's, then the app's); the ce-* headers are sent in binary mode only.
// The signature covers the exact body sent. The envelopes also carry the app's headers inside
// (CloudEvents `relayheaders`, protobuf `headers`), so a receiver may read them from either.
OutgoingRequest build_request(const Event& event, int attempt,
                              std::chrono::system_clock::time_point now,
                              const RequestContext& context);

// One request carrying `items` (non-empty, in order): application/cloudevents-batch+json for
// kCloudEventsJson, relay.v1.EventBatch for kProtobuf (Content-Type
// "application/x-protobuf; messageType=relay.v1.EventBatch"). webhook-id and Idempotency-Key name
// the batch: "batch_" + 32 hex digits of SHA-256 over its event ids in order, so a batch retried
// unchanged keeps its id. The signature covers the whole body; relay-attempt is the highest attempt
// among the items. No app headers: they differ per event and travel inside the envelopes.
// REQUIRES: format != kBinary (the config loader refuses `batch` with `format: binary`).
OutgoingRequest build_batch_request(std::span<const BatchItem> items,
                                    std::chrono::system_clock::time_point now,
                                    const RequestContext& context);

}  // namespace relay::delivery
