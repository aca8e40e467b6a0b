#include "relay/common/base64.h"

#include <catch2/catch.hpp>
#include <string>

using relay::base64_decode;
using relay::base64_encode;
using relay::decode_signing_secret;
using relay::ErrorCode;

TEST_CASE("base64_encode matches the RFC 4648 test vectors", "[common]") {
  CHECK(base64_encode("") == "");
  CHECK(base64_encode("f") == "Zg==");
  CHECK(base64_encode("fo") == "Zm8=");
  CHECK(base64_encode("foo") == "Zm9v");
  CHECK(base64_encode("foob") == "Zm9vYg==");
  CHECK(base64_encode("fooba") == "Zm9vYmE=");
  CHECK(base64_encode("foobar") == "Zm9vYmFy");
  CHECK(base64_encode(std::string("\xfb\xff\xbf", 3)) ==
        "+/+/");  // the two non-alphanumeric letters
}

TEST_CASE("base64 round-trips every byte value at every padding length", "[common]") {
  std::string all;
  for (int i = 0; i < 256; ++i) all += static_cast<char>(i);
  for (size_t len : {0u, 1u, 2u, 3u, 4u, 5u, 255u, 256u}) {
    const std::string bytes = all.substr(0, len);
    const auto decoded = base64_decode(base64_encode(bytes));
    REQUIRE(decoded.has_value());
    CHECK(*decoded == bytes);
  }
}

TEST_CASE("base64_decode accepts the RFC 4648 test vectors", "[common]") {
  CHECK(base64_decode("").value() == "");
  CHECK(base64_decode("Zg==").value() == "f");
  CHECK(base64_decode("Zm8=").value() == "fo");
  CHECK(base64_decode("Zm9vYg==").value() == "foob");
  CHECK(base64_decode("Zm9vYmE=").value() == "fooba");
  CHECK(base64_decode("Zm9vYmFy").value() == "foobar");
  CHECK(base64_decode("Zh==").value() == "f");  // bits under the padding are tolerated
}

TEST_CASE("base64_decode rejects malformed input without echoing it", "[common]") {
  for (const char* bad : {"Zg", "Zg=", "Zm9vY", "Zm9v!mFy", "Zm9v YmFy", "Zm9vYmFy\n",
                          "====", "Z===", "Zg==Zg==", "Z=g=", "Zm9v-_==", "\xc3\xa9\xc3\xa9"}) {
    INFO("input \"" << bad << "\"");
    const auto decoded = base64_decode(bad);
    REQUIRE_FALSE(decoded.has_value());
    CHECK(decoded.error().code == ErrorCode::kInvalidArgument);
    CHECK_THAT(decoded.error().message, Catch::StartsWith("invalid base64"));
    CHECK_THAT(decoded.error().message, !Catch::Contains(bad));
  }
}

TEST_CASE("decode_signing_secret decodes whsec_ secrets and keeps others as raw bytes",
          "[common]") {
  CHECK(decode_signing_secret("whsec_" + base64_encode("key bytes")).value() == "key bytes");
  CHECK(decode_signing_secret("raw-secret").value() == "raw-secret");
  CHECK_FALSE(decode_signing_secret("").has_value());
  CHECK_FALSE(decode_signing_secret("whsec_").has_value());
  const auto bad = decode_signing_secret("whsec_s3cr3t!");
  REQUIRE_FALSE(bad.has_value());
  CHECK_THAT(bad.error().message, !Catch::Contains("s3cr3t"));
}
