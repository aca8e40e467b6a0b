#pragma once
// WebhookVerifier: checks a request's Standard Webhooks signature (webhook-id, webhook-timestamp,
// webhook-signature) against a source's secrets, and its timestamp against a tolerance (replay
// protection). Several secrets may be configured (rotation): a request is accepted when any of its
// "v1,<base64>" signatures matches the signature computed with any secret. Comparisons are
// constant-time. Thread-safe (immutable after create()).

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "relay/common/duration.h"
#include "relay/common/result.h"
#include "relay/delivery/signer.h"

namespace relay::inbox {

// Why a request was refused; `reason` is a short fixed label (metrics), `message` says what to fix.
struct VerifyFailure {
  enum class Reason {
    kMissingSignature,  // webhook-id, webhook-timestamp or webhook-signature absent
    kBadTimestamp,      // webhook-timestamp is not a number of seconds
    kStaleTimestamp,    // outside the tolerance, in either direction
    kBadSignature,      // no v1 signature matches any secret
  };
  Reason reason;
  std::string message;
};

// The metrics label of a reason: "missing_signature", "bad_timestamp", "stale_timestamp",
// "bad_signature".
const char* to_string(VerifyFailure::Reason reason);

class WebhookVerifier {
 public:
  // kInvalidArgument if `secrets` is empty or a secret is invalid (message names its position,
  // never its value).
  static Result<WebhookVerifier> create(const std::vector<std::string>& secrets, Millis tolerance);

  // nullopt when the signature is valid and the timestamp within the tolerance of `now`. Absent
  // headers are passed as nullptr.
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
