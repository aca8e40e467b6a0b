#pragma once
// Standard Webhooks signatures computed the way a consumer would, with OpenSSL's one-shot HMAC()
// and EVP_EncodeBlock: independent of relay's Signer and base64, so tests can check relay's
// signatures (and sign requests to relay's inbox) against them. Also the providers' formats the
// inbox verifies (Stripe, GitHub, Shopify), built the way each provider documents them.
// Header-only; link OpenSSL::Crypto.

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cstdio>
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

// Raw HMAC-SHA256(key, data) bytes, from OpenSSL's one-shot HMAC().
inline std::string openssl_hmac_sha256(const std::string& key, const std::string& data) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
           reinterpret_cast<const unsigned char*>(data.data()), data.size(), mac,
           &len) == nullptr) {
    throw std::runtime_error("OpenSSL HMAC failed");
  }
  return std::string(reinterpret_cast<const char*>(mac), len);
}

// Lower-case hex, with snprintf (not relay's to_hex).
inline std::string printf_hex(const std::string& bytes) {
  std::string out;
  char two[3];
  for (unsigned char c : bytes) {
    std::snprintf(two, sizeof two, "%02x", c);
    out += two;
  }
  return out;
}

// Stripe-Signature: "t=<ts>,v1=<hex HMAC-SHA256(secret, "<ts>.<body>")>", the secret used as
// written (whsec_… included, not decoded).
inline std::string stripe_signature(const std::string& secret, long long ts,
                                    const std::string& body) {
  const std::string t = std::to_string(ts);
  return "t=" + t + ",v1=" + printf_hex(openssl_hmac_sha256(secret, t + "." + body));
}

// X-Hub-Signature-256: "sha256=<hex HMAC-SHA256(secret, body)>".
inline std::string github_signature(const std::string& secret, const std::string& body) {
  return "sha256=" + printf_hex(openssl_hmac_sha256(secret, body));
}

// X-Shopify-Hmac-Sha256: base64 HMAC-SHA256(secret, body).
inline std::string shopify_signature(const std::string& secret, const std::string& body) {
  return openssl_base64(openssl_hmac_sha256(secret, body));
}

}  // namespace relay::testing
