#pragma once
// Standard Webhooks signatures computed the way a consumer would, with OpenSSL's one-shot HMAC()
// and EVP_EncodeBlock: independent of relay's Signer and base64, so tests can check relay's
// signatures (and sign requests to relay's inbox) against them. Header-only; link OpenSSL::Crypto.

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <stdexcept>
#include <string>

namespace relay::testing {

// Standard base64 (with padding) of `bytes`.
inline std::string openssl_base64(const std::string& bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(bytes.data()),
                                static_cast<int>(bytes.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

// "v1,<base64 HMAC-SHA256(key, id.timestamp.body)>".
inline std::string openssl_sign_v1(const std::string& key, const std::string& id,
                                   const std::string& timestamp, const std::string& body) {
  const std::string content = id + "." + timestamp + "." + body;
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
           reinterpret_cast<const unsigned char*>(content.data()), content.size(), mac,
           &len) == nullptr) {
    throw std::runtime_error("OpenSSL HMAC failed");
  }
  return "v1," + openssl_base64(std::string(reinterpret_cast<const char*>(mac), len));
}

inline std::string openssl_sign_v1(const std::string& key, const std::string& id,
                                   long long timestamp, const std::string& body) {
  return openssl_sign_v1(key, id, std::to_string(timestamp), body);
}

}  // namespace relay::testing
