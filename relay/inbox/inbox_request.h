#pragma once
// Reading events out of a POST /inbox/{source} request. Pure functions; thread-safe.
//
// Formats, told apart by Content-Type:
//  - application/cloudevents+json, application/cloudevents-batch+json, application/x-protobuf
//    (relay.v1.Event or EventBatch): envelopes, read with delivery/envelope.h. Ids, topics, keys,
//    payloads and app headers come from the envelope.
//  - anything else: binary mode, as relay's own sender and plain Standard Webhooks senders send.
//    The body is the payload; Content-Type its content type; the id is webhook-id (or its alias
//    svix-id, see SignatureHeaders), else ce-id;
//    ce-type is the topic and ce-subject the key (both percent-decoded, CloudEvents HTTP binding).
//    A provider scheme (stripe, github, shopify) gives the id and topic instead (EventMapping), and
//    its requests are always read in binary mode. A source's key_from / topic_from then override
//    the key and topic of a binary-mode request (an envelope carries its own per event).
//
// App headers kept (relay.inbox.headers, and forwarded again when relay pushes the event): every
// header that is not relay's own (webhook-*, svix-*, ce-*, relay-*, Idempotency-Key, framing), not
// a provider's signature (Stripe-Signature, X-Hub-Signature, X-Hub-Signature-256,
// X-Shopify-Hmac-Sha256: they authenticate this hop and are worthless once verified), not
// about this hop's transport (Accept*, User-Agent, Keep-Alive, Expect, Via, Forwarded,
// X-Forwarded-*, Proxy-*...) and not a credential (Authorization, Cookie): those belong to the hop,
// not to the event, and a credential must not be stored or passed on to the app's endpoint.

#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "relay/config/config.h"
#include "relay/http/message.h"
#include "relay/store/inbox_store.h"

namespace relay::inbox {

// The Standard Webhooks signature headers of a request. Svix-powered senders send the same values
// as svix-id, svix-timestamp and svix-signature; those are accepted as aliases. The set is chosen
// as a whole, never mixed: if the request carries any webhook-id, webhook-timestamp or
// webhook-signature header, the webhook-* set is used (the standard's names win when a sender
// sends both), otherwise the svix-* set. Absent headers are nullptr. Pointers into `request`.
struct SignatureHeaders {
  const std::string* id = nullptr;
  const std::string* timestamp = nullptr;
  const std::string* signature = nullptr;
};
SignatureHeaders signature_headers(const http::HttpRequest& request);

// Bound on an event id (webhook-id, svix-id, ce-id or envelope id), in bytes.
inline constexpr size_t kMaxEventIdBytes = 512;

// A request refused before anything was stored. `reason` is a fixed metrics label.
struct Rejection {
  int status = 400;
  const char* reason = "malformed";  // malformed | missing_id | payload_too_large | ...
  std::string message;               // for the response body: what is wrong, never the payload
};

using DecodedRequest = std::variant<std::vector<store::InboxEvent>, Rejection>;

// How a source maps a request to its event beyond the decoder's defaults.
struct EventMapping {
  // A provider scheme's verified id and topic (request_verifier.h's VerifiedEvent). With an id the
  // request is read in binary mode whatever its Content-Type.
  std::optional<std::string> id;
  std::string id_from;  // names the id's origin in messages
  std::optional<std::string> topic;
  // The source's key_from / topic_from, or nullptr. A header, or a JSON Pointer into the body:
  // a string is taken as is, a number or boolean as its JSON text; absent (a missing header, a
  // pointer that resolves to nothing) or null leaves the default (ce-subject / the scheme's topic,
  // else none); an object or array is refused.
  const config::FieldFrom* key_from = nullptr;
  const config::FieldFrom* topic_from = nullptr;
};

// The events of `request` for `source` (one, or several for a batch envelope). Rejections: 400
// "malformed" (undecodable envelope, bad percent-encoding, text that is not UTF-8; with a
// key_from/topic_from pointer: a body that is not JSON, a value that is an object or array; a
// key_from/topic_from header sent twice), 400 "missing_id" (no webhook-id/ce-id, or an empty or
// too long id), 413 "payload_too_large" (a payload over max_payload_bytes).
DecodedRequest decode_request(const std::string& source, const http::HttpRequest& request,
                              std::int64_t max_payload_bytes, const EventMapping& mapping = {});

// True for an envelope content type (see above); the media type is compared case-insensitively.
bool is_envelope_content_type(std::string_view content_type);

// True if `s` is valid UTF-8 with no NUL byte (what a PostgreSQL text column accepts).
bool is_storable_text(std::string_view s);

}  // namespace relay::inbox
