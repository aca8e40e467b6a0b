#include "relay/inbox/webhook_verifier.h"

#include <fmt/format.h>
#include <openssl/crypto.h>

#include <charconv>

namespace relay::inbox {
namespace {

// Standard Webhooks timestamps are unix seconds; anything longer than this is not one.
constexpr size_t kMaxTimestampDigits = 12;

std::optional<long long> parse_seconds(std::string_view text) {
  if (text.empty() || text.size() > kMaxTimestampDigits) return std::nullopt;
  long long value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || value < 0) return std::nullopt;
  return value;
}

bool same_bytes(std::string_view a, std::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace

const char* to_string(VerifyFailure::Reason reason) {
  switch (reason) {
    case VerifyFailure::Reason::kMissingSignature:
      return "missing_signature";
    case VerifyFailure::Reason::kBadTimestamp:
      return "bad_timestamp";
    case VerifyFailure::Reason::kStaleTimestamp:
      return "stale_timestamp";
    case VerifyFailure::Reason::kBadSignature:
      return "bad_signature";
  }
  return "bad_signature";
}

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
  const auto seconds = parse_seconds(*timestamp);
  if (!seconds) {
    return VerifyFailure{Reason::kBadTimestamp, "webhook-timestamp is not a unix time in seconds"};
  }
  // Compare in milliseconds since the epoch: 12 digits of seconds fit (10^15 ms), whereas a
  // system_clock time_point counts nanoseconds and overflows from 9223372037 s on, before the
  // signature is even checked.
  const Millis sent = std::chrono::duration_cast<Millis>(std::chrono::seconds(*seconds));
  const Millis skew = std::chrono::floor<Millis>(now.time_since_epoch()) - sent;
  if (skew > tolerance_) {
    return VerifyFailure{Reason::kStaleTimestamp,
                         fmt::format("webhook-timestamp is {} old; the tolerance is {}",
                                     format_duration(skew), format_duration(tolerance_))};
  }
  if (-skew > tolerance_) {
    return VerifyFailure{Reason::kStaleTimestamp,
                         fmt::format("webhook-timestamp is {} in the future; the tolerance is {}",
                                     format_duration(-skew), format_duration(tolerance_))};
  }
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

}  // namespace relay::inbox
