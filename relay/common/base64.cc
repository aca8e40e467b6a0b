#include "relay/common/base64.h"

#include <array>
#include <cstdint>

namespace relay {
namespace {

constexpr std::string_view kAlphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

// Hand-written rather than EVP_EncodeBlock/EVP_DecodeBlock: EVP_DecodeBlock keeps the padding
// bytes as zeros in its output length and accepts leading/trailing whitespace, so a strict decoder
// would need as much code around it as this.
constexpr std::array<std::int8_t, 256> make_decode_table() {
  std::array<std::int8_t, 256> table{};
  for (auto& v : table) v = -1;
  for (size_t i = 0; i < kAlphabet.size(); ++i)
    table[static_cast<unsigned char>(kAlphabet[i])] = static_cast<std::int8_t>(i);
  return table;
}
constexpr auto kDecode = make_decode_table();

Error invalid_base64(std::string_view why) {
  return Error{ErrorCode::kInvalidArgument, std::string("invalid base64: ") + std::string(why)};
}

constexpr std::string_view kSecretPrefix = "whsec_";

}  // namespace

std::string base64_encode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    const std::uint32_t n =
        (static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[i])) << 16) |
        (static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[i + 1])) << 8) |
        static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[i + 2]));
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += kAlphabet[(n >> 6) & 63];
    out += kAlphabet[n & 63];
  }
  const size_t rest = bytes.size() - i;
  if (rest > 0) {
    std::uint32_t n = static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[i])) << 16;
    if (rest == 2) n |= static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[i + 1])) << 8;
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += rest == 2 ? kAlphabet[(n >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

// Strict RFC 4648 §4: length a multiple of 4, only the standard alphabet, '=' only as the last one
// or two characters, no whitespace. Non-zero bits under the padding are tolerated (as most decoders
// do), since they cannot change the decoded bytes.
Result<std::string> base64_decode(std::string_view text) {
  if (text.size() % 4 != 0) return invalid_base64("length is not a multiple of 4");
  size_t padding = 0;
  if (text.ends_with("==")) {
    padding = 2;
  } else if (text.ends_with('=')) {
    padding = 1;
  }
  std::string out;
  out.reserve(text.size() / 4 * 3);
  for (size_t i = 0; i < text.size(); i += 4) {
    const bool last = i + 4 == text.size();
    std::uint32_t n = 0;
    for (size_t j = 0; j < 4; ++j) {
      const char c = text[i + j];
      if (last && j >= 4 - padding) {
        n <<= 6;  // a padding position
        continue;
      }
      const auto v = kDecode[static_cast<unsigned char>(c)];
      if (v < 0)
        return invalid_base64(c == '=' ? "misplaced padding" : "character outside the alphabet");
      n = (n << 6) | static_cast<std::uint32_t>(v);
    }
    out += static_cast<char>((n >> 16) & 0xff);
    if (!last || padding < 2) out += static_cast<char>((n >> 8) & 0xff);
    if (!last || padding < 1) out += static_cast<char>(n & 0xff);
  }
  return out;
}

Result<std::string> decode_signing_secret(std::string_view secret) {
  if (secret.substr(0, kSecretPrefix.size()) == kSecretPrefix) {
    auto key = base64_decode(secret.substr(kSecretPrefix.size()));
    // The secret itself is never put into the message: messages end up in logs.
    if (!key)
      return Error{ErrorCode::kInvalidArgument,
                   "signing secret: whsec_ part is " + key.error().message};
    if (key->empty())
      return Error{ErrorCode::kInvalidArgument, "signing secret: whsec_ key is empty"};
    return std::move(*key);
  }
  if (secret.empty()) return Error{ErrorCode::kInvalidArgument, "signing secret is empty"};
  return std::string(secret);
}

}  // namespace relay
