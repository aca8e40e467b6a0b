#pragma once
// ShopifyVerifier: Shopify's webhook signatures (config `verify: shopify`).
//   X-Shopify-Hmac-Sha256: <base64 HMAC-SHA256(secret, raw body)>
// The secret (the app's client secret) is used exactly as written; any configured secret may match
// (rotation). Shopify signs no timestamp: replays are bounded only by the inbox's dedupe window.
// The event id is X-Shopify-Webhook-Id (the delivery id Shopify documents for detecting duplicate
// deliveries: the same on every retry), the topic X-Shopify-Topic ("orders/create").
// Thread-safe (immutable after create()).

#include <string>
#include <string_view>
#include <vector>

#include "relay/inbox/request_verifier.h"

namespace relay::inbox {

class ShopifyVerifier final : public RequestVerifier {
 public:
  // kInvalidArgument if `secrets` is empty or one is empty (named by position).
  static Result<ShopifyVerifier> create(const std::vector<std::string>& secrets);

  // Refusals: X-Shopify-Hmac-Sha256 absent (missing_signature), repeated (malformed), not base64
  // of 32 bytes or matching no secret (bad_signature); then X-Shopify-Webhook-Id absent or empty
  // (missing_id), it or X-Shopify-Topic repeated (malformed). `now` is unused.
  Verification verify(const http::HttpHeaders& headers, std::string_view body,
                      std::chrono::system_clock::time_point now) const override;

 private:
  explicit ShopifyVerifier(std::vector<std::string> secrets) : secrets_(std::move(secrets)) {}
  std::vector<std::string> secrets_;
};

}  // namespace relay::inbox
