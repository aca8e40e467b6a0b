#pragma once
// GithubVerifier: GitHub's webhook signatures (config `verify: github`).
//   X-Hub-Signature-256: sha256=<lower-case hex HMAC-SHA256(secret, raw body)>
// The secret is used exactly as written. Any configured secret may match (rotation). GitHub signs
// no timestamp: a captured delivery can be replayed, and only the inbox's dedupe on
// X-GitHub-Delivery (for inbox.retention after processing) turns a replay into a duplicate. The
// legacy SHA-1 X-Hub-Signature is not accepted. The event id is X-GitHub-Delivery; the topic is
// X-GitHub-Event, plus "." and the body's "action" when the body is a JSON object with a string
// action ("pull_request.opened"). Thread-safe (immutable after create()).

#include <string>
#include <string_view>
#include <vector>

#include "relay/inbox/request_verifier.h"

namespace relay::inbox {

class GithubVerifier final : public RequestVerifier {
 public:
  // kInvalidArgument if `secrets` is empty or one is empty (named by position).
  static Result<GithubVerifier> create(const std::vector<std::string>& secrets);

  // Refusals: X-Hub-Signature-256 absent (missing_signature), repeated (malformed), not
  // "sha256=<hex>" or matching no secret (bad_signature); then X-GitHub-Delivery absent or empty
  // (missing_id), X-GitHub-Delivery or X-GitHub-Event repeated (malformed). `now` is unused.
  Verification verify(const http::HttpHeaders& headers, std::string_view body,
                      std::chrono::system_clock::time_point now) const override;

 private:
  explicit GithubVerifier(std::vector<std::string> secrets) : secrets_(std::move(secrets)) {}
  std::vector<std::string> secrets_;
};

}  // namespace relay::inbox
