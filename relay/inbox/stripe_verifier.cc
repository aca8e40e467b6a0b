#include "relay/inbox/stripe_verifier.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

namespace relay::inbox {
namespace {

constexpr std::string_view kHeader = "Stripe-Signature";

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

std::string lower_ascii(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

}  // namespace

StripeSignature parse_stripe_signature(std::string_view header) {
  StripeSignature parsed;
  std::string_view rest = header;
  while (true) {
    const size_t comma = rest.find(',');
    const std::string_view item = trim(rest.substr(0, comma));
    const size_t eq = item.find('=');
    if (eq != std::string_view::npos) {
      const std::string_view key = item.substr(0, eq);
      const std::string_view value = item.substr(eq + 1);
      if (key == "t") {
        if (parsed.timestamps++ == 0) parsed.timestamp = value;
      } else if (key == "v1") {
        parsed.v1.push_back(value);
      }
    }
    if (comma == std::string_view::npos) break;
    rest.remove_prefix(comma + 1);
  }
  return parsed;
}

Result<StripeVerifier> StripeVerifier::create(const std::vector<std::string>& secrets,
                                              Millis tolerance) {
  if (auto ok = check_provider_secrets(secrets); !ok) return ok.error();
  return StripeVerifier(secrets, tolerance);
}

Verification StripeVerifier::verify(const http::HttpHeaders& headers, std::string_view body,
                                    std::chrono::system_clock::time_point now) const {
  using Reason = VerifyFailure::Reason;
  const HeaderLookup header = find_header(headers, kHeader);
  if (header.value == nullptr)
    return VerifyFailure{Reason::kMissingSignature, "missing Stripe-Signature header"};
  if (header.count > 1) return repeated_header(kHeader, header.count);
  const StripeSignature signature = parse_stripe_signature(*header.value);
  if (signature.timestamps == 0)
    return VerifyFailure{Reason::kBadTimestamp, "Stripe-Signature has no t= timestamp"};
  if (signature.timestamps > 1) {
    return VerifyFailure{Reason::kBadTimestamp,
                         fmt::format("Stripe-Signature has {} t= timestamps; one is expected",
                                     signature.timestamps)};
  }
  const auto seconds = parse_unix_seconds(signature.timestamp);
  if (!seconds) {
    return VerifyFailure{Reason::kBadTimestamp,
                         "Stripe-Signature's t= is not a unix time in seconds"};
  }
  if (auto stale = check_tolerance(*seconds, now, tolerance_, "Stripe-Signature's t=")) {
    return *stale;
  }
  if (signature.v1.empty())
    return VerifyFailure{Reason::kMissingSignature, "Stripe-Signature has no v1= signature"};
  // The signed payload is the timestamp exactly as sent, a dot, and the raw body.
  std::string signed_payload;
  signed_payload.reserve(signature.timestamp.size() + 1 + body.size());
  signed_payload.append(signature.timestamp).append(".").append(body);
  bool matched = false;
  for (const auto& secret : secrets_) {
    const std::string expected = to_hex(hmac_sha256(secret, signed_payload));
    for (const auto offered : signature.v1) {
      // Hex digits compare case-insensitively; lower-casing the offered value reveals nothing.
      matched = same_bytes(lower_ascii(offered), expected) || matched;
    }
  }
  if (!matched) {
    return VerifyFailure{Reason::kBadSignature,
                         "no Stripe-Signature v1 signature matches a configured signing secret"};
  }
  const auto json = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (!json.is_object()) {
    return VerifyFailure{Reason::kMalformed,
                         "the body is not a JSON object; a Stripe event is one"};
  }
  VerifiedEvent event;
  event.id_from = "the body's \"id\"";
  const auto id = json.find("id");
  if (id == json.end() || !id->is_string() || id->get_ref<const std::string&>().empty()) {
    return VerifyFailure{Reason::kMissingId,
                         "missing event id: the body has no \"id\" string (Stripe's evt_…)"};
  }
  event.id = id->get<std::string>();
  const auto type = json.find("type");
  if (type != json.end() && type->is_string()) event.topic = type->get<std::string>();
  return event;
}

}  // namespace relay::inbox
