#pragma once
// RequestVerifier: one inbox source's signature scheme (config `verify`). Given a request's
// headers, its raw body and the wall-clock time, a verifier either accepts the request, saying what
// the scheme tells about its event (id, topic), or refuses it naming the check that failed. Pure:
// no I/O, no logging; every comparison of a signature is constant-time. Implementations are
// immutable after creation, so verify() is thread-safe.
//
// The schemes (one class each):
//   standard-webhooks  WebhookVerifier (webhook_verifier.h): webhook-* or svix-* headers
//   stripe             StripeVerifier (stripe_verifier.h): Stripe-Signature: t=…,v1=…
//   github             GithubVerifier (github_verifier.h): X-Hub-Signature-256: sha256=<hex>
//   shopify            ShopifyVerifier (shopify_verifier.h): X-Shopify-Hmac-Sha256: <base64>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "relay/common/duration.h"
#include "relay/common/result.h"
#include "relay/config/config.h"
#include "relay/http/message.h"

namespace relay::inbox {

// Why a request was refused; `reason` is a short fixed label (metrics), `message` says what to fix
// and never quotes a secret or a signature.
struct VerifyFailure {
  enum class Reason {
    kMissingSignature,  // a signature header (or, for standard-webhooks, id/timestamp) is absent
    kBadTimestamp,      // the signed timestamp is not a number of seconds
    kStaleTimestamp,    // outside the tolerance, in either direction
    kBadSignature,      // no signature matches any secret, or it is not in the scheme's format
    kMalformed,  // a header the scheme reads is repeated; a body the scheme reads is not JSON
    kMissingId,  // the scheme's event id is absent or empty
  };
  Reason reason;
  std::string message;
};

// The metrics label of a reason: "missing_signature", "bad_timestamp", "stale_timestamp",
// "bad_signature", "malformed", "missing_id".
const char* to_string(VerifyFailure::Reason reason);
// The HTTP status a refusal answers: 401 for the signature and timestamp checks, 400 for a
// malformed request or a missing id (the README's status table).
int http_status(VerifyFailure::Reason reason);

// What a verified request says about its event. An unset id leaves the id to the body decoder
// (inbox_request.h: webhook-id / ce-id or the envelope's), as standard-webhooks does.
struct VerifiedEvent {
  std::optional<std::string> id;
  std::string id_from;  // where the id came from, for messages: "X-GitHub-Delivery", "body id"
  std::optional<std::string> topic;
};

using Verification = std::variant<VerifiedEvent, VerifyFailure>;

class RequestVerifier {
 public:
  virtual ~RequestVerifier() = default;
  // The request's event as the scheme reads it, or why it is refused. `now` is the wall clock the
  // signed timestamp (where the scheme has one) is checked against.
  virtual Verification verify(const http::HttpHeaders& headers, std::string_view body,
                              std::chrono::system_clock::time_point now) const = 0;
};

// The verifier of `scheme` with these secrets (rotation: any may match) and timestamp tolerance.
// kInvalidArgument if `secrets` is empty or a secret is invalid for the scheme (the message names
// its position, never its value).
Result<std::unique_ptr<RequestVerifier>> make_request_verifier(
    config::VerifyScheme scheme, const std::vector<std::string>& secrets, Millis tolerance);

// Helpers shared by the schemes.

// The headers named `name` (ASCII case-insensitive): the first one's value (nullptr if none) and
// how many there are.
struct HeaderLookup {
  const std::string* value = nullptr;
  int count = 0;
};
HeaderLookup find_header(const http::HttpHeaders& headers, std::string_view name);

// The refusal for a header sent more than once: the scheme cannot tell which one is meant.
VerifyFailure repeated_header(std::string_view name, int count);

// HMAC-SHA256 of `data` under `key`: 32 raw bytes.
std::string hmac_sha256(std::string_view key, std::string_view data);
// Lower-case hex of `bytes`.
std::string to_hex(std::string_view bytes);
// Equal sizes and equal bytes, compared in constant time (CRYPTO_memcmp) for a given size.
bool same_bytes(std::string_view a, std::string_view b);

// The provider schemes' secrets, used as written: at least one, none empty. kInvalidArgument names
// which.
Status check_provider_secrets(const std::vector<std::string>& secrets);

// Unix seconds as a signed timestamp carries them (decimal digits only, at most 12), or nullopt.
std::optional<long long> parse_unix_seconds(std::string_view text);
// nullopt when `sent` (unix seconds) is within `tolerance` of `now`; otherwise kStaleTimestamp,
// naming `header` and how far off it is.
std::optional<VerifyFailure> check_tolerance(long long sent,
                                             std::chrono::system_clock::time_point now,
                                             Millis tolerance, std::string_view header);

}  // namespace relay::inbox
