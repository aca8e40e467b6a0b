#include "relay/inbox/webhook_verifier.h"

#include <fmt/format.h>

namespace relay::inbox {
namespace {

// The Standard Webhooks header names and their Svix aliases.
constexpr std::string_view kNames[3] = {"webhook-id", "webhook-timestamp", "webhook-signature"};
constexpr std::string_view kSvixNames[3] = {"svix-id", "svix-timestamp", "svix-signature"};

}  // namespace

Result<WebhookVerifier> WebhookVerifier::create(const std::vector<std::string>& secrets,
                                                Millis tolerance) {
  if (secrets.empty())
    return Error{ErrorCode::kInvalidArgument, "a signed inbox source needs a signing secret"};
  std::vector<delivery::Signer> signers;
  for (size_t i = 0; i < secrets.size(); ++i) {
    auto signer = delivery::Signer::create(secrets[i]);
    if (!signer) {
      return Error{ErrorCode::kInvalidArgument,
                   fmt::format("signing secret {}: {}", i, signer.error().message)};
    }
    signers.push_back(std::move(*signer));
  }
  return WebhookVerifier(std::move(signers), tolerance);
}

std::optional<VerifyFailure> WebhookVerifier::verify(
    const std::string* id, const std::string* timestamp, const std::string* signature,
    std::string_view body, std::chrono::system_clock::time_point now) const {
  using Reason = VerifyFailure::Reason;
  if (id == nullptr || timestamp == nullptr || signature == nullptr) {
    return VerifyFailure{
        Reason::kMissingSignature,
        "missing webhook-id, webhook-timestamp or webhook-signature header (or their "
        "svix-* aliases)"};
  }
  const auto seconds = parse_unix_seconds(*timestamp);
  if (!seconds) {
    return VerifyFailure{Reason::kBadTimestamp, "webhook-timestamp is not a unix time in seconds"};
  }
  if (auto stale = check_tolerance(*seconds, now, tolerance_, "webhook-timestamp")) return stale;
  // Compute each expected signature once, then compare it with every v1 entry offered.
  std::vector<std::string> expected;
  expected.reserve(signers_.size());
  for (const auto& signer : signers_) expected.push_back(signer.sign(*id, *seconds, body));
  std::string_view rest = *signature;
  while (!rest.empty()) {
    const size_t space = rest.find(' ');
    const std::string_view entry = rest.substr(0, space);
    rest = space == std::string_view::npos ? std::string_view() : rest.substr(space + 1);
    if (entry.rfind("v1,", 0) != 0) continue;  // other schemes (v1a) are not ours to check
    for (const auto& e : expected) {
      if (same_bytes(entry, e)) return std::nullopt;
    }
  }
  return VerifyFailure{Reason::kBadSignature,
                       "no webhook-signature entry matches a configured signing secret"};
}

Verification WebhookVerifier::verify(const http::HttpHeaders& headers, std::string_view body,
                                     std::chrono::system_clock::time_point now) const {
  HeaderLookup found[3];
  for (int i = 0; i < 3; ++i) found[i] = find_header(headers, kNames[i]);
  const std::string_view* names = kNames;
  // Any webhook-* header means the sender speaks the standard's names: never mix in svix-*.
  if (found[0].count == 0 && found[1].count == 0 && found[2].count == 0) {
    for (int i = 0; i < 3; ++i) found[i] = find_header(headers, kSvixNames[i]);
    names = kSvixNames;
  }
  for (int i = 0; i < 3; ++i) {
    if (found[i].count > 1) return repeated_header(names[i], found[i].count);
  }
  if (auto failure = verify(found[0].value, found[1].value, found[2].value, body, now)) {
    return *failure;
  }
  return VerifiedEvent{};
}

}  // namespace relay::inbox
