#include "relay/inbox/github_verifier.h"

#include <nlohmann/json.hpp>

namespace relay::inbox {
namespace {

constexpr std::string_view kSignature = "X-Hub-Signature-256";
constexpr std::string_view kDelivery = "X-GitHub-Delivery";
constexpr std::string_view kEvent = "X-GitHub-Event";
constexpr std::string_view kPrefix = "sha256=";

}  // namespace

Result<GithubVerifier> GithubVerifier::create(const std::vector<std::string>& secrets) {
  if (auto ok = check_provider_secrets(secrets); !ok) return ok.error();
  return GithubVerifier(secrets);
}

Verification GithubVerifier::verify(const http::HttpHeaders& headers, std::string_view body,
                                    std::chrono::system_clock::time_point /*now*/) const {
  using Reason = VerifyFailure::Reason;
  const HeaderLookup signature = find_header(headers, kSignature);
  if (signature.value == nullptr) {
    return VerifyFailure{Reason::kMissingSignature,
                         "missing X-Hub-Signature-256 header (the SHA-1 X-Hub-Signature is not "
                         "accepted)"};
  }
  if (signature.count > 1) return repeated_header(kSignature, signature.count);
  const std::string_view value = *signature.value;
  if (value.substr(0, kPrefix.size()) != kPrefix) {
    return VerifyFailure{Reason::kBadSignature, "X-Hub-Signature-256 does not start with sha256="};
  }
  std::string offered(value.substr(kPrefix.size()));
  for (char& c : offered) {
    if (c >= 'A' && c <= 'F') c = static_cast<char>(c - 'A' + 'a');
  }
  bool matched = false;
  for (const auto& secret : secrets_) {
    matched = same_bytes(offered, to_hex(hmac_sha256(secret, body))) || matched;
  }
  if (!matched) {
    return VerifyFailure{Reason::kBadSignature,
                         "X-Hub-Signature-256 matches no configured signing secret"};
  }
  const HeaderLookup delivery = find_header(headers, kDelivery);
  if (delivery.count > 1) return repeated_header(kDelivery, delivery.count);
  if (delivery.value == nullptr || delivery.value->empty()) {
    return VerifyFailure{Reason::kMissingId, "missing event id: send an X-GitHub-Delivery header"};
  }
  const HeaderLookup event = find_header(headers, kEvent);
  if (event.count > 1) return repeated_header(kEvent, event.count);
  VerifiedEvent verified;
  verified.id = *delivery.value;
  verified.id_from = std::string(kDelivery);
  if (event.value != nullptr && !event.value->empty()) {
    std::string topic = *event.value;
    // The action (opened, closed, …) is only in the body; form-encoded deliveries have none here.
    const auto json = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
    if (json.is_object()) {
      const auto action = json.find("action");
      if (action != json.end() && action->is_string()) {
        topic += '.';
        topic += action->get_ref<const std::string&>();
      }
    }
    verified.topic = std::move(topic);
  }
  return verified;
}

}  // namespace relay::inbox
