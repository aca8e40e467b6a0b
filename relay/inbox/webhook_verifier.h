#pragma once
// WebhookVerifier: checks a request's Standard Webhooks signature (webhook-id, webhook-timestamp,
// webhook-signature) against a source's secrets, and its timestamp against a tolerance (replay
// protection). Several secrets may be configured (rotation): a request is accepted when any of its
// "v1,<base64>" signatures matches the signature computed with any secret. Comparisons are
// constant-time. The `verify: standard-webhooks` scheme (request_verifier.h); Svix-powered senders'
// svix-id, svix-timestamp and svix-signature are read as aliases (inbox_request.h's
// signature_headers). Thread-safe (immutable after create()).

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "relay/common/duration.h"
#include "relay/common/result.h"
#include "relay/delivery/signer.h"
#include "relay/inbox/request_verifier.h"

namespace relay::inbox {

class WebhookVerifier final : public RequestVerifier {
 public:
  // kInvalidArgument if `secrets` is empty or a secret is invalid (message names its position,
  // never its value).
  static Result<WebhookVerifier> create(const std::vector<std::string>& secrets, Millis tolerance);

  // The webhook-* headers, else the svix-* ones (never a mix): a repeated one is malformed, then
  // as the overload below. The id is left to the body decoder (VerifiedEvent::id unset).
  Verification verify(const http::HttpHeaders& headers, std::string_view body,
                      std::chrono::system_clock::time_point now) const override;

  // nullopt when the signature is valid and the timestamp within the tolerance of `now`. Absent
  // headers are passed as nullptr. Refusals: missing_signature, bad_timestamp, stale_timestamp,
  // bad_signature.
  std::optional<VerifyFailure> verify(const std::string* id, const std::string* timestamp,
                                      const std::string* signature, std::string_view body,
                                      std::chrono::system_clock::time_point now) const;

 private:
  WebhookVerifier(std::vector<delivery::Signer> signers, Millis tolerance)
      : signers_(std::move(signers)), tolerance_(tolerance) {}

  std::vector<delivery::Signer> signers_;
  Millis tolerance_;
};

}  // namespace relay::inbox
