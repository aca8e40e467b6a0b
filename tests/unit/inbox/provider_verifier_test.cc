// The inbox's signature schemes behind RequestVerifier (config `verify`): Standard Webhooks with
// the svix-* aliases, Stripe, GitHub and Shopify. Requests are signed by tests/support/
// hmac_oracle.h (OpenSSL's one-shot HMAC, snprintf hex, EVP_EncodeBlock base64), not by relay's
// code, and where a provider publishes a worked example (secret, body, signature) it is used byte
// for byte.

#include <catch2/catch.hpp>

#include "relay/inbox/github_verifier.h"
#include "relay/inbox/request_verifier.h"
#include "relay/inbox/shopify_verifier.h"
#include "relay/inbox/stripe_verifier.h"
#include "relay/inbox/webhook_verifier.h"
#include "tests/support/hmac_oracle.h"

using namespace std::chrono_literals;
using namespace relay::inbox;
using relay::config::VerifyScheme;
using relay::http::HttpHeaders;
using Reason = VerifyFailure::Reason;

namespace {

constexpr long long kTs = 1'700'000'000;
const auto kNow = std::chrono::system_clock::time_point(std::chrono::seconds(kTs));

std::unique_ptr<RequestVerifier> make(VerifyScheme scheme, std::vector<std::string> secrets) {
  auto v = make_request_verifier(scheme, secrets, 300'000ms);
  REQUIRE(v.has_value());
  return std::move(*v);
}

// The refusal's reason, or nullopt when the request is accepted.
std::optional<Reason> refusal(const RequestVerifier& v, const HttpHeaders& headers,
                              const std::string& body,
                              std::chrono::system_clock::time_point now = kNow) {
  const auto r = v.verify(headers, body, now);
  if (const auto* f = std::get_if<VerifyFailure>(&r)) return f->reason;
  return std::nullopt;
}

VerifiedEvent accepted(const RequestVerifier& v, const HttpHeaders& headers,
                       const std::string& body, std::chrono::system_clock::time_point now = kNow) {
  auto r = v.verify(headers, body, now);
  if (const auto* f = std::get_if<VerifyFailure>(&r)) FAIL(f->message);
  return std::get<VerifiedEvent>(r);
}

const std::string kStripeBody =
    R"({"id":"evt_1NG8Du2eZvKYlo2CUI79vXWy","object":"event","type":"customer.created",)"
    R"("data":{"object":{"id":"cus_9s6XKzkNRiz8i3","customer":"cus_9s6XKzkNRiz8i3"}}})";
// Stripe shows endpoint secrets as whsec_ + letters and digits; relay must use the whole string
// as the key. This one is not even valid base64 after the prefix.
const std::string kStripeSecret = "whsec_test_secret_1234";

}  // namespace

// --- Standard Webhooks and Svix ---

TEST_CASE("Svix's published verification example is accepted with its svix-* headers", "[inbox]") {
  // https://docs.svix.com/receiving/verifying-payloads/how — the example secret, headers and
  // payload, byte for byte.
  const auto v = make(VerifyScheme::kStandardWebhooks, {"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"});
  const HttpHeaders headers = {
      {"svix-id", "msg_p5jXN8AQM9LWM0D4loKWxJek"},
      {"svix-timestamp", "1614265330"},
      {"svix-signature", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="}};
  const std::string payload = R"({"test": 2432232314})";
  const auto at = std::chrono::system_clock::time_point(std::chrono::seconds(1614265330));
  const VerifiedEvent e = accepted(*v, headers, payload, at);
  CHECK_FALSE(e.id.has_value());  // the decoder reads svix-id
  CHECK(refusal(*v, headers, payload + " ", at) == Reason::kBadSignature);
  CHECK(refusal(*v, headers, payload, at + 301s) == Reason::kStaleTimestamp);
}

TEST_CASE("a repeated Standard Webhooks header is malformed, whichever set is used", "[inbox]") {
  const auto v = make(VerifyScheme::kStandardWebhooks, {"k"});
  const std::string sig = relay::testing::openssl_sign_v1("k", "m1", kTs, "{}");
  const HttpHeaders good = {
      {"webhook-id", "m1"}, {"webhook-timestamp", std::to_string(kTs)}, {"webhook-signature", sig}};
  CHECK_FALSE(refusal(*v, good, "{}"));
  HttpHeaders twice = good;
  twice.emplace_back("Webhook-Id", "m2");
  CHECK(refusal(*v, twice, "{}") == Reason::kMalformed);
  const HttpHeaders svix_twice = {{"svix-id", "m1"},
                                  {"svix-timestamp", std::to_string(kTs)},
                                  {"svix-signature", sig},
                                  {"svix-signature", sig}};
  CHECK(refusal(*v, svix_twice, "{}") == Reason::kMalformed);
  CHECK(http_status(Reason::kMalformed) == 400);
  CHECK(http_status(Reason::kBadSignature) == 401);
}

// --- Stripe ---

TEST_CASE("stripe: a signature in Stripe's documented header layout is accepted", "[inbox]") {
  // Header layout from https://docs.stripe.com/webhooks#verify-manually:
  //   Stripe-Signature: t=1492774577,v1=5257a869…,v0=6ffbb59b…
  // Stripe publishes no secret and body for that example, so the v1 here is computed by the
  // oracle; the v0 (test-mode legacy scheme) is copied from the example and must be ignored.
  const auto v = make(VerifyScheme::kStripe, {kStripeSecret});
  const std::string header = relay::testing::stripe_signature(kStripeSecret, kTs, kStripeBody) +
                             ",v0=6ffbb59b2300aae63f272406069a9788598b792a944a07aba816edb039989a39";
  const VerifiedEvent e = accepted(*v, {{"Stripe-Signature", header}}, kStripeBody);
  CHECK(e.id == "evt_1NG8Du2eZvKYlo2CUI79vXWy");
  CHECK(e.topic == "customer.created");
}

TEST_CASE("stripe: the whsec_ secret is the key as written, not base64-decoded", "[inbox]") {
  const std::string secret = "whsec_c2VjcmV0LWtleQ==";  // valid base64 after the prefix
  const auto v = make(VerifyScheme::kStripe, {secret});
  const std::string decoded_key = "secret-key";
  CHECK_FALSE(refusal(
      *v, {{"Stripe-Signature", relay::testing::stripe_signature(secret, kTs, kStripeBody)}},
      kStripeBody));
  CHECK(refusal(
            *v,
            {{"Stripe-Signature", relay::testing::stripe_signature(decoded_key, kTs, kStripeBody)}},
            kStripeBody) == Reason::kBadSignature);
}

TEST_CASE("stripe: any v1 may match any secret (rotation on both sides)", "[inbox]") {
  const auto v = make(VerifyScheme::kStripe, {"whsec_old", "whsec_new"});
  const std::string t = std::to_string(kTs);
  const std::string sig_other = relay::testing::stripe_signature("whsec_other", kTs, kStripeBody);
  const std::string sig_new = relay::testing::stripe_signature("whsec_new", kTs, kStripeBody);
  const std::string sig_old = relay::testing::stripe_signature("whsec_old", kTs, kStripeBody);
  // "t=…,v1=<other>,v1=<new>": the second v1 matches the second secret.
  const std::string two = sig_other + "," + sig_new.substr(sig_new.find("v1="));
  CHECK_FALSE(refusal(*v, {{"Stripe-Signature", two}}, kStripeBody));
  CHECK_FALSE(refusal(*v, {{"Stripe-Signature", sig_old}}, kStripeBody));
  CHECK(refusal(*v, {{"Stripe-Signature", sig_other}}, kStripeBody) == Reason::kBadSignature);
}

TEST_CASE("stripe: wrong secret, tampered body, bad or stale t and repeats are refused",
          "[inbox]") {
  const auto v = make(VerifyScheme::kStripe, {kStripeSecret});
  auto sig = [&](long long ts, const std::string& body = kStripeBody) {
    return relay::testing::stripe_signature(kStripeSecret, ts, body);
  };
  CHECK(
      refusal(*v,
              {{"Stripe-Signature", relay::testing::stripe_signature("whsec_x", kTs, kStripeBody)}},
              kStripeBody) == Reason::kBadSignature);
  CHECK(refusal(*v, {{"Stripe-Signature", sig(kTs)}}, kStripeBody + "\n") == Reason::kBadSignature);
  CHECK(refusal(*v, {{"Stripe-Signature", sig(kTs - 301)}}, kStripeBody) ==
        Reason::kStaleTimestamp);
  CHECK(refusal(*v, {{"Stripe-Signature", sig(kTs + 301)}}, kStripeBody) ==
        Reason::kStaleTimestamp);
  CHECK_FALSE(refusal(*v, {{"Stripe-Signature", sig(kTs - 300)}}, kStripeBody));
  const std::string v1_only = sig(kTs).substr(sig(kTs).find("v1="));
  CHECK(refusal(*v, {{"Stripe-Signature", v1_only}}, kStripeBody) == Reason::kBadTimestamp);
  CHECK(refusal(*v, {{"Stripe-Signature", "t=soon," + v1_only}}, kStripeBody) ==
        Reason::kBadTimestamp);
  CHECK(refusal(*v, {{"Stripe-Signature", "t=1,t=2," + v1_only}}, kStripeBody) ==
        Reason::kBadTimestamp);
  CHECK(refusal(*v, {{"Stripe-Signature", "t=" + std::to_string(kTs)}}, kStripeBody) ==
        Reason::kMissingSignature);
  CHECK(refusal(*v, {}, kStripeBody) == Reason::kMissingSignature);
  CHECK(refusal(*v, {{"Stripe-Signature", sig(kTs)}, {"stripe-signature", sig(kTs)}},
                kStripeBody) == Reason::kMalformed);
  // Upper-case hex and spaces around items are tolerated.
  std::string upper = sig(kTs);
  for (size_t i = upper.find("v1=") + 3; i < upper.size(); ++i)
    upper[i] = static_cast<char>(std::toupper(static_cast<unsigned char>(upper[i])));
  CHECK_FALSE(refusal(*v, {{"Stripe-Signature", upper}}, kStripeBody));
}

TEST_CASE("stripe: a signed body without an id, or not JSON, is refused with 400", "[inbox]") {
  const auto v = make(VerifyScheme::kStripe, {kStripeSecret});
  auto check = [&](const std::string& body, Reason expected) {
    INFO(body);
    const auto r = v->verify(
        {{"Stripe-Signature", relay::testing::stripe_signature(kStripeSecret, kTs, body)}}, body,
        kNow);
    REQUIRE(std::holds_alternative<VerifyFailure>(r));
    CHECK(std::get<VerifyFailure>(r).reason == expected);
    CHECK(http_status(expected) == 400);
  };
  check(R"({"type":"customer.created"})", Reason::kMissingId);
  check(R"({"id":"","type":"x"})", Reason::kMissingId);
  check(R"({"id":42})", Reason::kMissingId);
  check("id=evt_1", Reason::kMalformed);
  check(R"(["evt_1"])", Reason::kMalformed);
}

TEST_CASE("stripe: parse_stripe_signature keeps t and every v1, skipping the rest", "[inbox]") {
  const auto p = parse_stripe_signature(" t=12 , v1=aa,v0=bb,junk,v1=cc,=,v1=");
  CHECK(p.timestamp == "12");
  CHECK(p.timestamps == 1);
  CHECK(p.v1 == std::vector<std::string_view>{"aa", "cc", ""});
  CHECK(parse_stripe_signature("").timestamps == 0);
}

// --- GitHub ---

TEST_CASE("github: GitHub's published test vector is accepted", "[inbox]") {
  // https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries ("Testing the
  // webhook payload validation"): secret "It's a Secret to Everybody", payload "Hello, World!".
  const auto v = make(VerifyScheme::kGithub, {"It's a Secret to Everybody"});
  const HttpHeaders headers = {
      {"X-Hub-Signature-256",
       "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"},
      {"X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"},
      {"X-GitHub-Event", "ping"}};
  const VerifiedEvent e = accepted(*v, headers, "Hello, World!");
  CHECK(e.id == "72d3162e-cc78-11e3-81ab-4c9367dc0958");
  CHECK(e.topic == "ping");  // not JSON: no action
  CHECK(refusal(*v, headers, "Hello, World?") == Reason::kBadSignature);
  // The oracle agrees with the published signature.
  CHECK(relay::testing::github_signature("It's a Secret to Everybody", "Hello, World!") ==
        headers[0].second);
}

TEST_CASE("github: the topic is X-GitHub-Event plus the body's action", "[inbox]") {
  const auto v = make(VerifyScheme::kGithub, {"old", "new"});
  const std::string body = R"({"action":"opened","number":7})";
  const VerifiedEvent e =
      accepted(*v,
               {{"X-Hub-Signature-256", relay::testing::github_signature("new", body)},
                {"X-GitHub-Delivery", "d-1"},
                {"X-GitHub-Event", "pull_request"}},
               body);
  CHECK(e.topic == "pull_request.opened");
  CHECK(e.id_from == "X-GitHub-Delivery");
  // The old secret still verifies (rotation); no event header: no topic.
  const VerifiedEvent old =
      accepted(*v,
               {{"X-Hub-Signature-256", relay::testing::github_signature("old", body)},
                {"X-GitHub-Delivery", "d-1"}},
               body);
  CHECK_FALSE(old.topic.has_value());
}

TEST_CASE("github: wrong secret, tampered body, SHA-1 only, repeats and no delivery id",
          "[inbox]") {
  const auto v = make(VerifyScheme::kGithub, {"s3cret"});
  const std::string body = R"({"zen":"Keep it logically awesome."})";
  const std::string sig = relay::testing::github_signature("s3cret", body);
  const HttpHeaders ok = {{"X-Hub-Signature-256", sig}, {"X-GitHub-Delivery", "d-1"}};
  CHECK_FALSE(refusal(*v, ok, body));
  CHECK(refusal(*v,
                {{"X-Hub-Signature-256", relay::testing::github_signature("other", body)},
                 {"X-GitHub-Delivery", "d-1"}},
                body) == Reason::kBadSignature);
  CHECK(refusal(*v, ok, body + " ") == Reason::kBadSignature);
  CHECK(refusal(*v, {{"X-Hub-Signature-256", sig.substr(7)}, {"X-GitHub-Delivery", "d-1"}},
                body) == Reason::kBadSignature);  // no sha256= prefix
  CHECK(refusal(*v, {{"X-Hub-Signature", "sha1=0123"}, {"X-GitHub-Delivery", "d-1"}}, body) ==
        Reason::kMissingSignature);
  CHECK(refusal(*v,
                {{"X-Hub-Signature-256", sig},
                 {"x-hub-signature-256", sig},
                 {"X-GitHub-Delivery", "d-1"}},
                body) == Reason::kMalformed);
  CHECK(refusal(*v, {{"X-Hub-Signature-256", sig}}, body) == Reason::kMissingId);
  CHECK(refusal(*v, {{"X-Hub-Signature-256", sig}, {"X-GitHub-Delivery", ""}}, body) ==
        Reason::kMissingId);
  CHECK(refusal(
            *v,
            {{"X-Hub-Signature-256", sig}, {"X-GitHub-Delivery", "a"}, {"X-GitHub-Delivery", "b"}},
            body) == Reason::kMalformed);
  // A signature check comes first: a bad signature without an id is a 401, not a 400.
  CHECK(refusal(*v, {{"X-Hub-Signature-256", "sha256=00"}}, body) == Reason::kBadSignature);
}

// --- Shopify ---

TEST_CASE("shopify: a base64 HMAC of the body with the client secret is accepted", "[inbox]") {
  const auto v = make(VerifyScheme::kShopify, {"old-secret", "hush"});
  const std::string body = R"({"id":820982911946154508,"email":"jon@example.com"})";
  const VerifiedEvent e =
      accepted(*v,
               {{"X-Shopify-Hmac-Sha256", relay::testing::shopify_signature("hush", body)},
                {"X-Shopify-Webhook-Id", "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043"},
                {"X-Shopify-Event-Id", "98880550-7158-44d4-b7cd-2c97c8a091b5"},
                {"X-Shopify-Topic", "orders/create"}},
               body);
  CHECK(e.id == "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043");
  CHECK(e.topic == "orders/create");
}

TEST_CASE("shopify: wrong secret, tampered body, not base64, repeats and no webhook id",
          "[inbox]") {
  const auto v = make(VerifyScheme::kShopify, {"hush"});
  const std::string body = R"({"id":1})";
  const std::string sig = relay::testing::shopify_signature("hush", body);
  const HttpHeaders ok = {{"X-Shopify-Hmac-Sha256", sig}, {"X-Shopify-Webhook-Id", "w-1"}};
  CHECK_FALSE(refusal(*v, ok, body));
  CHECK(refusal(*v,
                {{"X-Shopify-Hmac-Sha256", relay::testing::shopify_signature("x", body)},
                 {"X-Shopify-Webhook-Id", "w-1"}},
                body) == Reason::kBadSignature);
  CHECK(refusal(*v, ok, body + " ") == Reason::kBadSignature);
  CHECK(refusal(*v, {{"X-Shopify-Hmac-Sha256", "not base64!"}, {"X-Shopify-Webhook-Id", "w"}},
                body) == Reason::kBadSignature);
  CHECK(refusal(*v,
                {{"X-Shopify-Hmac-Sha256", relay::testing::openssl_base64("short")},
                 {"X-Shopify-Webhook-Id", "w"}},
                body) == Reason::kBadSignature);
  CHECK(refusal(*v, {{"X-Shopify-Webhook-Id", "w-1"}}, body) == Reason::kMissingSignature);
  CHECK(refusal(*v,
                {{"X-Shopify-Hmac-Sha256", sig},
                 {"X-Shopify-Hmac-Sha256", sig},
                 {"X-Shopify-Webhook-Id", "w-1"}},
                body) == Reason::kMalformed);
  CHECK(refusal(*v, {{"X-Shopify-Hmac-Sha256", sig}}, body) == Reason::kMissingId);
  CHECK(refusal(*v,
                {{"X-Shopify-Hmac-Sha256", sig},
                 {"X-Shopify-Webhook-Id", "w-1"},
                 {"X-Shopify-Topic", "a"},
                 {"X-Shopify-Topic", "b"}},
                body) == Reason::kMalformed);
}

TEST_CASE("every scheme needs a secret, and messages never quote one", "[inbox]") {
  for (auto scheme : {VerifyScheme::kStandardWebhooks, VerifyScheme::kStripe, VerifyScheme::kGithub,
                      VerifyScheme::kShopify}) {
    INFO(relay::config::to_string(scheme));
    CHECK_FALSE(make_request_verifier(scheme, {}, 1000ms).has_value());
    auto bad = make_request_verifier(scheme, {"topsecret-value", ""}, 1000ms);
    REQUIRE_FALSE(bad.has_value());
    CHECK(bad.error().message.find("signing secret 1") != std::string::npos);
    CHECK(bad.error().message.find("topsecret") == std::string::npos);
    // A refusal's message names the check, never the secret.
    const auto v = make(scheme, {"topsecret-value"});
    const auto r = v->verify({{"Stripe-Signature", "t=1,v1=00"},
                              {"X-Hub-Signature-256", "sha256=00"},
                              {"X-Shopify-Hmac-Sha256", "AA=="},
                              {"webhook-id", "m"},
                              {"webhook-timestamp", std::to_string(kTs)},
                              {"webhook-signature", "v1,AA=="}},
                             "{}", kNow);
    REQUIRE(std::holds_alternative<VerifyFailure>(r));
    CHECK(std::get<VerifyFailure>(r).message.find("topsecret") == std::string::npos);
  }
}
