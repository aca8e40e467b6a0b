#pragma once
// StripeVerifier: Stripe's webhook signatures (config `verify: stripe`).
//   Stripe-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>…][,v0=…]
// Each v1 is the lower-case hex HMAC-SHA256 of "<t>.<raw body>" keyed with the endpoint secret
// exactly as Stripe shows it (the whole "whsec_…" string; Stripe does not base64-decode it). A
// request is accepted when any v1 matches any configured secret (rotation on both sides) and t is
// within the tolerance of now. The event id is the body's "id" (evt_…), the topic its "type".
// Thread-safe (immutable after create()).

#include <string>
#include <string_view>
#include <vector>

#include "relay/inbox/request_verifier.h"

namespace relay::inbox {

// The parts of a Stripe-Signature header: comma-separated key=value items, spaces around items
// ignored; items other than t and v1 (v0, future schemes) and items without '=' are skipped.
struct StripeSignature {
  std::string_view timestamp;        // the t= value; empty when there is none
  int timestamps = 0;                // how many t= items there are
  std::vector<std::string_view> v1;  // every v1= value, in order
};
StripeSignature parse_stripe_signature(std::string_view header);

class StripeVerifier final : public RequestVerifier {
 public:
  // kInvalidArgument if `secrets` is empty or one is empty (named by position).
  static Result<StripeVerifier> create(const std::vector<std::string>& secrets, Millis tolerance);

  // Refusals: Stripe-Signature absent or without v1 (missing_signature), repeated (malformed), t
  // absent, repeated or not a number (bad_timestamp), t outside the tolerance (stale_timestamp),
  // no v1 matching (bad_signature); then a body that is not a JSON object (malformed) or has no
  // non-empty string "id" (missing_id).
  Verification verify(const http::HttpHeaders& headers, std::string_view body,
                      std::chrono::system_clock::time_point now) const override;

 private:
  StripeVerifier(std::vector<std::string> secrets, Millis tolerance)
      : secrets_(std::move(secrets)), tolerance_(tolerance) {}

  std::vector<std::string> secrets_;
  Millis tolerance_;
};

}  // namespace relay::inbox
