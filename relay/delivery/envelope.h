#pragma once
// Envelopes: the request bodies of the `cloudevents-json` and `protobuf` subscription formats
// (single events and batches), and the decoders the inbox uses to read them back. Pure functions;
// thread-safe. Decoders never throw: every library exception is caught and returned as an Error.
//
// cloudevents-json: a structured CloudEvents 1.0 document (application/cloudevents+json):
//   specversion "1.0", id (event id), source "relay/<subscription>", type (topic), time
//   (created_at, RFC 3339 UTC, microseconds), subject (key, when set), datacontenttype (the event's
//   content type), `data` = the payload inline (byte for byte) when the content type is JSON
//   (application/json or */*+json) and the payload is valid JSON, else `data_base64`; extension
//   attributes `relayattempt` (integer) and `relayheaders` (the app headers as a JSON object
//   serialized into a string; only when there are any).
//   A batch is a JSON array of such documents (application/cloudevents-batch+json).
// protobuf: relay.v1.Event (proto/relay/v1/event.proto) as application/x-protobuf; a batch is a
//   relay.v1.EventBatch sent as kProtobufBatchContentType.

#include <chrono>
#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "relay/common/event.h"
#include "relay/common/result.h"
#include "relay/delivery/sender.h"

namespace relay::delivery {

inline constexpr std::string_view kCloudEventsJsonContentType = "application/cloudevents+json";
inline constexpr std::string_view kCloudEventsBatchContentType =
    "application/cloudevents-batch+json";
inline constexpr std::string_view kProtobufContentType = "application/x-protobuf";
// The same media type with a parameter naming the message, so a receiver can tell an EventBatch
// from an Event without guessing from the bytes.
inline constexpr std::string_view kProtobufBatchContentType =
    "application/x-protobuf; messageType=relay.v1.EventBatch";

// Decoder bounds: inputs beyond them are rejected with kInvalidArgument before any large
// allocation. kMaxEnvelopeBytes and kMaxEnvelopeEvents match the largest batch relay can be
// configured to send (batch.max_bytes, batch.max_events).
inline constexpr std::size_t kMaxEnvelopeBytes = 64 * 1024 * 1024;
inline constexpr std::size_t kMaxEnvelopeEvents = 10'000;
inline constexpr std::size_t kMaxJsonDepth = 1'000;  // nesting of objects/arrays in a JSON body

// One event read from an envelope.
struct DecodedEvent {
  std::string id;                  // CloudEvents `id` / Event.id; never empty
  std::string topic;               // CloudEvents `type` / Event.topic; never empty
  std::optional<std::string> key;  // CloudEvents `subject` / Event.key
  std::string payload;             // the data bytes (decoded from data_base64 when so sent)
  std::string content_type;        // `datacontenttype` / Event.content_type
  std::vector<std::pair<std::string, std::string>> headers;         // the app's headers, in order
  std::optional<std::chrono::system_clock::time_point> created_at;  // `time` / Event.created_at
  std::string source;  // CloudEvents `source` ("relay/<subscription>"); empty for protobuf
  int attempt = 0;     // `relayattempt` / Event.attempt; 0 when absent
};

// --- Encoders (relay's sending side). Never fail: bytes that cannot be carried inline are sent as
// data_base64; strings that are not valid UTF-8 (never the case for PostgreSQL text) have the bad
// bytes replaced by U+FFFD in the JSON formats.

// One structured CloudEvents document for `event`, on attempt `attempt`, sent by `subscription`.
std::string encode_cloudevents_json(const Event& event, int attempt, std::string_view subscription);
// A JSON array of encode_cloudevents_json documents, one per item, in order.
std::string encode_cloudevents_batch(std::span<const BatchItem> items,
                                     std::string_view subscription);
// A serialized relay.v1.Event / relay.v1.EventBatch.
std::string encode_protobuf_event(const Event& event, int attempt);
std::string encode_protobuf_batch(std::span<const BatchItem> items);

// --- Decoders (the inbox side). Each returns kInvalidArgument with a message that names what is
// wrong and where ("event 3: missing required attribute \"id\"", "data_base64: invalid base64",
// "body is not JSON: ...", "specversion is \"0.3\", expected \"1.0\""). Messages never contain the
// payload.

// A structured CloudEvents 1.0 JSON document. Requires specversion "1.0" and non-empty string id,
// source and type; `time` when present must be RFC 3339; at most one of data / data_base64.
// Without datacontenttype the content type is "application/json" (CloudEvents JSON format §3.1).
Result<DecodedEvent> decode_cloudevents_json(std::string_view body);
// A JSON array of such documents (1..kMaxEnvelopeEvents elements).
Result<std::vector<DecodedEvent>> decode_cloudevents_batch(std::string_view body);
// A serialized relay.v1.Event; requires non-empty id and topic.
Result<DecodedEvent> decode_protobuf_event(std::string_view body);
// A serialized relay.v1.EventBatch (1..kMaxEnvelopeEvents events).
Result<std::vector<DecodedEvent>> decode_protobuf_batch(std::string_view body);

// Picks the decoder from the request's Content-Type (media type compared case-insensitively;
// parameters other than protobuf's messageType are ignored): application/cloudevents+json,
// application/cloudevents-batch+json, application/x-protobuf (an Event, or an EventBatch with
// messageType=relay.v1.EventBatch). Any other type: kInvalidArgument "unsupported content type".
// A single event comes back as a vector of one.
Result<std::vector<DecodedEvent>> decode_envelope(std::string_view content_type,
                                                  std::string_view body);

}  // namespace relay::delivery
