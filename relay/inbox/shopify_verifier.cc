#include "relay/inbox/shopify_verifier.h"

#include "relay/common/base64.h"

namespace relay::inbox {
namespace {

constexpr std::string_view kSignature = "X-Shopify-Hmac-Sha256";
constexpr std::string_view kWebhookId = "X-Shopify-Webhook-Id";
constexpr std::string_view kTopic = "X-Shopify-Topic";

}  // namespace

Result<ShopifyVerifier> ShopifyVerifier::create(const std::vector<std::string>& secrets) {
  if (auto ok = check_provider_secrets(secrets); !ok) return ok.error();
  return ShopifyVerifier(secrets);
}

Verification ShopifyVerifier::verify(const http::HttpHeaders& headers, std::string_view body,
                                     std::chrono::system_clock::time_point /*now*/) const {
  using Reason = VerifyFailure::Reason;
  const HeaderLookup signature = find_header(headers, kSignature);
  if (signature.value == nullptr)
    return VerifyFailure{Reason::kMissingSignature, "missing X-Shopify-Hmac-Sha256 header"};
  if (signature.count > 1) return repeated_header(kSignature, signature.count);
  const auto offered = base64_decode(*signature.value);
  if (!offered || offered->size() != 32) {
    return VerifyFailure{Reason::kBadSignature,
                         "X-Shopify-Hmac-Sha256 is not the base64 of an HMAC-SHA256"};
  }
  bool matched = false;
  for (const auto& secret : secrets_) {
    matched = same_bytes(*offered, hmac_sha256(secret, body)) || matched;
  }
  if (!matched) {
    return VerifyFailure{Reason::kBadSignature,
                         "X-Shopify-Hmac-Sha256 matches no configured signing secret"};
  }
  const HeaderLookup id = find_header(headers, kWebhookId);
  if (id.count > 1) return repeated_header(kWebhookId, id.count);
  if (id.value == nullptr || id.value->empty()) {
    return VerifyFailure{Reason::kMissingId,
                         "missing event id: send an X-Shopify-Webhook-Id header"};
  }
  const HeaderLookup topic = find_header(headers, kTopic);
  if (topic.count > 1) return repeated_header(kTopic, topic.count);
  VerifiedEvent verified;
  verified.id = *id.value;
  verified.id_from = std::string(kWebhookId);
  if (topic.value != nullptr && !topic.value->empty()) verified.topic = *topic.value;
  return verified;
}

}  // namespace relay::inbox
