#include "relay/inbox/request_verifier.h"

#include <fmt/format.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <charconv>

#include "relay/common/check.h"
#include "relay/common/http_header.h"
#include "relay/inbox/github_verifier.h"
#include "relay/inbox/shopify_verifier.h"
#include "relay/inbox/stripe_verifier.h"
#include "relay/inbox/webhook_verifier.h"

namespace relay::inbox {
namespace {

// Signed timestamps are unix seconds; anything longer than this is not one.
constexpr size_t kMaxTimestampDigits = 12;

template <typename V>
Result<std::unique_ptr<RequestVerifier>> boxed(Result<V> v) {
  if (!v) return v.error();
  return std::unique_ptr<RequestVerifier>(std::make_unique<V>(std::move(*v)));
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
    case VerifyFailure::Reason::kMalformed:
      return "malformed";
    case VerifyFailure::Reason::kMissingId:
      return "missing_id";
  }
  return "bad_signature";
}

int http_status(VerifyFailure::Reason reason) {
  return reason == VerifyFailure::Reason::kMalformed || reason == VerifyFailure::Reason::kMissingId
             ? 400
             : 401;
}

Result<std::unique_ptr<RequestVerifier>> make_request_verifier(
    config::VerifyScheme scheme, const std::vector<std::string>& secrets, Millis tolerance) {
  switch (scheme) {
    case config::VerifyScheme::kStandardWebhooks:
      return boxed(WebhookVerifier::create(secrets, tolerance));
    case config::VerifyScheme::kStripe:
      return boxed(StripeVerifier::create(secrets, tolerance));
    case config::VerifyScheme::kGithub:
      return boxed(GithubVerifier::create(secrets));
    case config::VerifyScheme::kShopify:
      return boxed(ShopifyVerifier::create(secrets));
  }
  return Error{ErrorCode::kInvalidArgument, "unknown verify scheme"};
}

HeaderLookup find_header(const http::HttpHeaders& headers, std::string_view name) {
  HeaderLookup found;
  for (const auto& [n, v] : headers) {
    if (!iequals_ascii(n, name)) continue;
    if (found.value == nullptr) found.value = &v;
    ++found.count;
  }
  return found;
}

VerifyFailure repeated_header(std::string_view name, int count) {
  return VerifyFailure{
      VerifyFailure::Reason::kMalformed,
      fmt::format("the request carries {} {} headers; send exactly one", count, name)};
}

std::string hmac_sha256(std::string_view key, std::string_view data) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  const unsigned char* result =
      HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
           reinterpret_cast<const unsigned char*>(data.data()), data.size(), mac, &len);
  RELAY_CHECK(result != nullptr && len == 32, "HMAC-SHA256 failed");
  return std::string(reinterpret_cast<const char*>(mac), len);
}

std::string to_hex(std::string_view bytes) {
  constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (const char c : bytes) {
    const auto b = static_cast<unsigned char>(c);
    out += kDigits[b >> 4];
    out += kDigits[b & 0x0f];
  }
  return out;
}

bool same_bytes(std::string_view a, std::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::optional<long long> parse_unix_seconds(std::string_view text) {
  if (text.empty() || text.size() > kMaxTimestampDigits) return std::nullopt;
  long long value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || value < 0) return std::nullopt;
  return value;
}

Status check_provider_secrets(const std::vector<std::string>& secrets) {
  if (secrets.empty())
    return Error{ErrorCode::kInvalidArgument, "a signed inbox source needs a signing secret"};
  for (size_t i = 0; i < secrets.size(); ++i) {
    if (secrets[i].empty())
      return Error{ErrorCode::kInvalidArgument, fmt::format("signing secret {} is empty", i)};
  }
  return {};
}

std::optional<VerifyFailure> check_tolerance(long long sent,
                                             std::chrono::system_clock::time_point now,
                                             Millis tolerance, std::string_view header) {
  // Compare in milliseconds since the epoch: 12 digits of seconds fit (10^15 ms), whereas a
  // system_clock time_point counts nanoseconds and overflows from 9223372037 s on, before the
  // signature is even checked.
  const Millis sent_ms = std::chrono::duration_cast<Millis>(std::chrono::seconds(sent));
  const Millis skew = std::chrono::floor<Millis>(now.time_since_epoch()) - sent_ms;
  if (skew > tolerance) {
    return VerifyFailure{VerifyFailure::Reason::kStaleTimestamp,
                         fmt::format("{} is {} old; the tolerance is {}", header,
                                     format_duration(skew), format_duration(tolerance))};
  }
  if (-skew > tolerance) {
    return VerifyFailure{VerifyFailure::Reason::kStaleTimestamp,
                         fmt::format("{} is {} in the future; the tolerance is {}", header,
                                     format_duration(-skew), format_duration(tolerance))};
  }
  return std::nullopt;
}

}  // namespace relay::inbox
