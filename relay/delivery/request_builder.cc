#include "relay/delivery/request_builder.h"

#include <fmt/format.h>
#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <nlohmann/json.hpp>
#include <string_view>

#include "relay/common/check.h"
#include "relay/common/http_header.h"
#include "relay/common/time_format.h"
#include "relay/delivery/envelope.h"

namespace relay::delivery {
namespace {

// CloudEvents HTTP binding §3.1.3.2: space, '"', '%' and every byte outside printable ASCII
// (U+0021..U+007E) are percent-encoded; UTF-8 is encoded byte by byte. This also makes CR/LF in
// an app-controlled key or topic harmless.
std::string percent_encode(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (unsigned char c : value) {
    if (c <= 0x20 || c >= 0x7f || c == '"' || c == '%') {
      out += fmt::format("%{:02X}", c);
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

// The app's extra headers from outbox.headers (a JSON object of strings). Anything malformed is
// skipped, never fatal: one bad row must not stop delivery of the event. A header the
// subscription sets (same name, any case) is skipped too: the operator's value wins.
void append_app_headers(std::string_view headers_json, HeaderList subscription_headers,
                        std::vector<std::pair<std::string, std::string>>& headers) {
  try {
    const auto json =
        nlohmann::json::parse(headers_json, /*cb=*/nullptr, /*allow_exceptions=*/false);
    if (!json.is_object()) return;  // also covers a parse failure (json is then "discarded")
    for (const auto& [name, value] : json.items()) {
      if (!value.is_string()) continue;
      const auto& text = value.get_ref<const std::string&>();
      if (!is_http_token(name) || is_relay_reserved_header(name) || !is_http_field_value(text))
        continue;
      const bool set_by_subscription =
          std::any_of(subscription_headers.begin(), subscription_headers.end(),
                      [&](const auto& h) { return iequals_ascii(h.first, name); });
      if (set_by_subscription) continue;
      headers.emplace_back(name, text);
    }
  } catch (const nlohmann::json::exception&) {
    // Not expected with allow_exceptions=false; the library-edge rule says we catch anyway.
  }
}

// Webhook headers, the body's signature and the relay-* headers every format sends; `id` is the
// event id, or the batch id for a batch.
void append_delivery_headers(std::string_view id, std::string_view body,
                             std::chrono::system_clock::time_point now,
                             const RequestContext& context,
                             std::vector<std::pair<std::string, std::string>>& h) {
  const long long timestamp =
      std::chrono::floor<std::chrono::seconds>(now.time_since_epoch()).count();
  h.emplace_back("Idempotency-Key", id);
  h.emplace_back("webhook-id", id);
  h.emplace_back("webhook-timestamp", std::to_string(timestamp));
  if (!context.signers.empty()) {
    // Standard Webhooks rotation: one "v1,<sig>" per secret, space-separated, in config order.
    std::string signature;
    for (const Signer& signer : context.signers) {
      if (!signature.empty()) signature += ' ';
      signature += signer.sign(id, timestamp, body);
    }
    h.emplace_back("webhook-signature", std::move(signature));
  }
}

void append_relay_headers(int attempt, const RequestContext& context,
                          std::vector<std::pair<std::string, std::string>>& h) {
  h.emplace_back("relay-attempt", std::to_string(attempt));
  h.emplace_back("relay-subscription", context.subscription);
  // The subscription's headers (validated at config load: token names, no CR/LF/NUL, never relay's
  // own). Re-checked here so a hand-built SubscriptionConfig cannot inject.
  for (const auto& [name, value] : context.subscription_headers) {
    if (is_http_token(name) && !is_relay_reserved_header(name) && is_http_field_value(value))
      h.emplace_back(name, value);
  }
}

// The CloudEvents binary-mode attributes (binary format only: the other formats carry them in the
// body).
void append_ce_headers(const Event& event, const std::string& subscription,
                       std::vector<std::pair<std::string, std::string>>& h) {
  h.emplace_back("ce-specversion", "1.0");
  h.emplace_back("ce-id", percent_encode(event.event_id));
  h.emplace_back("ce-type", percent_encode(event.topic));
  h.emplace_back("ce-source", percent_encode("relay/" + subscription));
  h.emplace_back("ce-time", format_rfc3339(event.created_at, 3));  // "2024-01-02T03:04:05.678Z"
  if (event.key) h.emplace_back("ce-subject", percent_encode(*event.key));
}

// A batch's webhook-id / Idempotency-Key: "batch_" + the first 16 bytes of SHA-256 over its event
// ids (newline-separated, in order), hex. The same events in the same order give the same id, so a
// batch retried unchanged is deduplicated like a single event.
std::string batch_id(std::span<const BatchItem> items) {
  std::string ids;
  for (const BatchItem& item : items) {
    ids += item.event->event_id;
    ids += '\n';
  }
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned int length = 0;
  RELAY_CHECK(
      EVP_Digest(ids.data(), ids.size(), digest.data(), &length, EVP_sha256(), nullptr) == 1,
      "SHA-256 failed");
  std::string out = "batch_";
  for (unsigned int i = 0; i < 16 && i < length; ++i) out += fmt::format("{:02x}", digest[i]);
  return out;
}

}  // namespace

OutgoingRequest build_request(const Event& event, const std::string& subscription, int attempt,
                              std::chrono::system_clock::time_point now,
                              std::span<const Signer> signers, HeaderList subscription_headers) {
  return build_request(event, attempt, now,
                       RequestContext{.subscription = subscription,
                                      .format = model::Format::kBinary,
                                      .signers = signers,
                                      .subscription_headers = subscription_headers});
}

OutgoingRequest build_request(const Event& event, int attempt,
                              std::chrono::system_clock::time_point now,
                              const RequestContext& context) {
  OutgoingRequest req;
  switch (context.format) {
    case model::Format::kBinary:
      // content_type comes from the outbox row; a value that could split the header block is
      // replaced.
      req.content_type = is_http_field_value(event.content_type) && !event.content_type.empty()
                             ? event.content_type
                             : "application/octet-stream";
      req.body = event.payload;
      break;
    case model::Format::kCloudEventsJson:
      req.content_type = kCloudEventsJsonContentType;
      req.body = encode_cloudevents_json(event, attempt, context.subscription);
      break;
    case model::Format::kProtobuf:
      req.content_type = kProtobufContentType;
      req.body = encode_protobuf_event(event, attempt);
      break;
  }
  auto& h = req.headers;
  append_delivery_headers(event.event_id, req.body, now, context, h);
  if (context.format == model::Format::kBinary) append_ce_headers(event, context.subscription, h);
  append_relay_headers(attempt, context, h);
  // The app's headers stay HTTP headers in every format, so a consumer reads them the same way
  // whatever the format (the envelopes also carry them, which is what a batch relies on).
  append_app_headers(event.headers_json, context.subscription_headers, h);
  return req;
}

OutgoingRequest build_batch_request(std::span<const BatchItem> items,
                                    std::chrono::system_clock::time_point now,
                                    const RequestContext& context) {
  RELAY_CHECK(!items.empty(), "build_batch_request: no items");
  RELAY_CHECK(context.format != model::Format::kBinary,
              "build_batch_request: binary format cannot carry a batch");
  OutgoingRequest req;
  if (context.format == model::Format::kProtobuf) {
    req.content_type = kProtobufBatchContentType;
    req.body = encode_protobuf_batch(items);
  } else {
    req.content_type = kCloudEventsBatchContentType;
    req.body = encode_cloudevents_batch(items, context.subscription);
  }
  int attempt = 1;
  for (const BatchItem& item : items) attempt = std::max(attempt, item.attempt);
  // App headers differ per event, so in a batch they travel only inside the envelopes.
  append_delivery_headers(batch_id(items), req.body, now, context, req.headers);
  append_relay_headers(attempt, context, req.headers);
  return req;
}

}  // namespace relay::delivery
