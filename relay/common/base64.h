#pragma once
// Strict base64 (RFC 4648 §4) and Standard Webhooks secret decoding. In common so that both config
// validation (relay check-config) and the signer use the same rules.

#include <string>
#include <string_view>

#include "relay/common/result.h"

namespace relay {

std::string base64_encode(std::string_view bytes);
// kInvalidArgument for invalid input; the message never contains the input.
Result<std::string> base64_decode(std::string_view text);

// The HMAC key bytes of a signing secret: "whsec_<base64>" is decoded, any other non-empty string
// is used as raw bytes. kInvalidArgument for an empty secret or "whsec_" followed by invalid or
// empty base64. Messages never contain the secret.
Result<std::string> decode_signing_secret(std::string_view secret);

}  // namespace relay
