#include "relay/delivery/signer.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "relay/common/base64.h"
#include "relay/common/check.h"

namespace relay::delivery {

Result<Signer> Signer::create(std::string_view secret) {
  auto key = decode_signing_secret(secret);
  if (!key) return key.error();
  return Signer(std::move(*key));
}

std::string Signer::sign(std::string_view id, long long timestamp, std::string_view body) const {
  const std::string ts = std::to_string(timestamp);
  // Feed "id.timestamp.body" in pieces: bodies can be megabytes and need no concatenated copy.
  unsigned char mac[EVP_MAX_MD_SIZE];
  EVP_MAC* hmac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  RELAY_CHECK(hmac != nullptr, "OpenSSL has no HMAC");
  EVP_MAC_CTX* ctx = EVP_MAC_CTX_new(hmac);
  RELAY_CHECK(ctx != nullptr, "EVP_MAC_CTX_new failed");
  char digest_name[] = "SHA256";
  const OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("digest", digest_name, 0),
                               OSSL_PARAM_construct_end()};
  size_t out_len = 0;
  const bool ok =
      EVP_MAC_init(ctx, reinterpret_cast<const unsigned char*>(key_.data()), key_.size(), params) ==
          1 &&
      EVP_MAC_update(ctx, reinterpret_cast<const unsigned char*>(id.data()), id.size()) == 1 &&
      EVP_MAC_update(ctx, reinterpret_cast<const unsigned char*>("."), 1) == 1 &&
      EVP_MAC_update(ctx, reinterpret_cast<const unsigned char*>(ts.data()), ts.size()) == 1 &&
      EVP_MAC_update(ctx, reinterpret_cast<const unsigned char*>("."), 1) == 1 &&
      EVP_MAC_update(ctx, reinterpret_cast<const unsigned char*>(body.data()), body.size()) == 1 &&
      EVP_MAC_final(ctx, mac, &out_len, sizeof mac) == 1;
  EVP_MAC_CTX_free(ctx);
  EVP_MAC_free(hmac);
  // HMAC-SHA256 over memory cannot fail short of a broken OpenSSL install: a bug, not an outcome.
  RELAY_CHECK(ok, "HMAC-SHA256 failed");
  return "v1," + base64_encode(std::string_view(reinterpret_cast<const char*>(mac), out_len));
}

}  // namespace relay::delivery
