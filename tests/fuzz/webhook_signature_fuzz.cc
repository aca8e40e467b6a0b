// libFuzzer target for the inbox's signature schemes (relay/inbox/*_verifier.cc): the header
// parsing a provider's request goes through (Stripe-Signature's t=/v1= list, the sha256= prefix and
// hex of X-Hub-Signature-256, the base64 of X-Shopify-Hmac-Sha256, Standard Webhooks' space-
// separated v1, list) and the JSON body Stripe's id and type and GitHub's action are read from.
//
// Input: byte 0 picks the scheme (mod 4); the rest is "<signature header>\n<id header>\n<body>"
// (missing parts are empty). Beyond "no crash" (and no ASan/UBSan report), it checks:
//  - a refusal has a message and answers 400 or 401; an accepted provider request has an id;
//  - parse_stripe_signature returns views into its input, and a timestamp exactly when it counts
//    one;
//  - the same body and id, signed correctly by an independent implementation (OpenSSL, as
//    tests/support/hmac_oracle.h does), pass the signature check: only a body- or id-level refusal
//    (malformed, missing_id) may remain.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "relay/inbox/github_verifier.h"
#include "relay/inbox/request_verifier.h"
#include "relay/inbox/shopify_verifier.h"
#include "relay/inbox/stripe_verifier.h"
#include "relay/inbox/webhook_verifier.h"
#include "tests/fuzz/fuzz_check.h"
#include "tests/support/hmac_oracle.h"

namespace {

using relay::config::VerifyScheme;
using relay::inbox::VerifyFailure;
using Reason = VerifyFailure::Reason;

constexpr long long kNowSeconds = 1'700'000'000;
const auto kNow = std::chrono::system_clock::time_point(std::chrono::seconds(kNowSeconds));
const std::string kSecret = "whsec_c2VjcmV0LWEtMDEyMzQ1Njc4OWFiY2RlZg==";
const std::string kKey = "secret-a-0123456789abcdef";  // kSecret's decoded bytes

const relay::inbox::RequestVerifier& verifier(VerifyScheme scheme) {
  static const auto* verifiers = [] {
    auto* v = new std::unique_ptr<relay::inbox::RequestVerifier>[4];
    for (int i = 0; i < 4; ++i) {
      auto made = relay::inbox::make_request_verifier(static_cast<VerifyScheme>(i),
                                                      {"other-secret", kSecret},
                                                      std::chrono::milliseconds(300'000));
      FUZZ_CHECK(made.has_value());
      v[i] = std::move(*made);
    }
    return v;
  }();
  return *verifiers[static_cast<int>(scheme)];
}

// The refusal reason, or nullopt when accepted; checks the invariants of either outcome.
std::optional<Reason> run(VerifyScheme scheme, const relay::http::HttpHeaders& headers,
                          std::string_view body) {
  const auto result = verifier(scheme).verify(headers, body, kNow);
  if (const auto* f = std::get_if<VerifyFailure>(&result)) {
    FUZZ_CHECK(!f->message.empty());
    const int status = relay::inbox::http_status(f->reason);
    FUZZ_CHECK(status == 400 || status == 401);
    FUZZ_CHECK(f->message.find(kSecret) == std::string::npos);
    return f->reason;
  }
  const auto& event = std::get<relay::inbox::VerifiedEvent>(result);
  if (scheme != VerifyScheme::kStandardWebhooks) FUZZ_CHECK(event.id && !event.id->empty());
  return std::nullopt;
}

void check_stripe_parse(std::string_view header) {
  const auto p = relay::inbox::parse_stripe_signature(header);
  auto inside = [&](std::string_view part) {
    return part.empty() || (part.data() >= header.data() &&
                            part.data() + part.size() <= header.data() + header.size());
  };
  FUZZ_CHECK(inside(p.timestamp));
  for (auto v : p.v1) FUZZ_CHECK(inside(v));
  FUZZ_CHECK(p.timestamps >= 0);
  if (p.timestamps == 0) FUZZ_CHECK(p.timestamp.empty());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const auto scheme = static_cast<VerifyScheme>(data[0] % 4);
  const std::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);
  const size_t first = input.find('\n');
  const std::string signature(input.substr(0, first));
  std::string id, body;
  if (first != std::string_view::npos) {
    const std::string_view rest = input.substr(first + 1);
    const size_t second = rest.find('\n');
    id = std::string(rest.substr(0, second));
    if (second != std::string_view::npos) body = std::string(rest.substr(second + 1));
  }
  const std::string now = std::to_string(kNowSeconds);

  // As fuzzed.
  switch (scheme) {
    case VerifyScheme::kStandardWebhooks:
      run(scheme,
          {{"webhook-id", id}, {"webhook-timestamp", now}, {"webhook-signature", signature}}, body);
      run(scheme, {{"svix-id", id}, {"svix-timestamp", signature}, {"svix-signature", signature}},
          body);
      break;
    case VerifyScheme::kStripe:
      check_stripe_parse(signature);
      run(scheme, {{"Stripe-Signature", signature}}, body);
      break;
    case VerifyScheme::kGithub:
      run(scheme,
          {{"X-Hub-Signature-256", signature},
           {"X-GitHub-Delivery", id},
           {"X-GitHub-Event", "push"}},
          body);
      break;
    case VerifyScheme::kShopify:
      run(scheme, {{"X-Shopify-Hmac-Sha256", signature}, {"X-Shopify-Webhook-Id", id}}, body);
      break;
  }

  // Signed correctly by OpenSSL: the signature check passes.
  std::optional<Reason> signed_result;
  switch (scheme) {
    case VerifyScheme::kStandardWebhooks:
      signed_result =
          run(scheme,
              {{"webhook-id", id},
               {"webhook-timestamp", now},
               {"webhook-signature",
                signature + " " + relay::testing::openssl_sign_v1(kKey, id, now, body)}},
              body);
      FUZZ_CHECK(!signed_result);
      break;
    case VerifyScheme::kStripe:
      signed_result =
          run(scheme,
              {{"Stripe-Signature", relay::testing::stripe_signature(kSecret, kNowSeconds, body)}},
              body);
      FUZZ_CHECK(!signed_result || *signed_result == Reason::kMalformed ||
                 *signed_result == Reason::kMissingId);
      break;
    case VerifyScheme::kGithub:
      signed_result = run(scheme,
                          {{"X-Hub-Signature-256", relay::testing::github_signature(kSecret, body)},
                           {"X-GitHub-Delivery", id}},
                          body);
      FUZZ_CHECK(id.empty() ? signed_result == Reason::kMissingId : !signed_result);
      break;
    case VerifyScheme::kShopify:
      signed_result =
          run(scheme,
              {{"X-Shopify-Hmac-Sha256", relay::testing::shopify_signature(kSecret, body)},
               {"X-Shopify-Webhook-Id", id}},
              body);
      FUZZ_CHECK(id.empty() ? signed_result == Reason::kMissingId : !signed_result);
      break;
  }
  return 0;
}
