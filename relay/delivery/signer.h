#pragma once
// Standard Webhooks signing: webhook-signature = "v1,<base64 HMAC-SHA256(secret,
// id.timestamp.body)>".

#include <string>
#include <string_view>

#include "relay/common/result.h"

namespace relay::delivery {

class Signer {
 public:
  // `secret` is "whsec_<base64>" (the base64 part is decoded to the key bytes) or any other string,
  // used as raw key bytes. Returns kInvalidArgument for an empty secret, or "whsec_" followed by
  // invalid or empty base64. Messages never contain the secret.
  static Result<Signer> create(std::string_view secret);

  // "v1,<base64>" for the given id, unix-seconds timestamp and body.
  std::string sign(std::string_view id, long long timestamp, std::string_view body) const;

 private:
  explicit Signer(std::string key) : key_(std::move(key)) {}
  std::string key_;
};

}  // namespace relay::delivery
