#include "relay/delivery/signer.h"

#include <catch2/catch.hpp>

#include "relay/common/base64.h"

using relay::base64_encode;
using relay::ErrorCode;
using relay::delivery::Signer;

TEST_CASE("signer reproduces the published Standard Webhooks test vector for a whsec_ secret",
          "[delivery]") {
  // The example from the Standard Webhooks reference libraries, re-verified independently with:
  //   python3 -c 'import hmac,hashlib,base64;
  //   k=base64.b64decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
  //     print(base64.b64encode(hmac.new(k, b"msg_p5jXN8AQM9LWM0D4loKWxJek.1614265330.{\"test\":
  //     2432232314}", hashlib.sha256).digest()))'
  //   -> g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=
  auto signer = Signer::create("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
  REQUIRE(signer.has_value());
  CHECK(signer->sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, R"({"test": 2432232314})") ==
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
}

TEST_CASE("signer uses a secret without the whsec_ prefix as raw key bytes", "[delivery]") {
  // printf '%s' 'evt-1.1700000000.hello' | openssl dgst -sha256 -hmac 'raw-secret' -binary | base64
  //   -> oIYlNKXr2D72zh7OqsgQghZESKNBTBEzj0XTKWuo7vM=  (python3 hmac agrees)
  auto signer = Signer::create("raw-secret");
  REQUIRE(signer.has_value());
  CHECK(signer->sign("evt-1", 1700000000, "hello") ==
        "v1,oIYlNKXr2D72zh7OqsgQghZESKNBTBEzj0XTKWuo7vM=");
}

TEST_CASE("a whsec_ secret signs with its decoded bytes, not its text", "[delivery]") {
  auto decoded = Signer::create("whsec_" + base64_encode("raw-secret"));
  auto raw = Signer::create("raw-secret");
  REQUIRE(decoded.has_value());
  REQUIRE(raw.has_value());
  CHECK(decoded->sign("evt-1", 1700000000, "hello") == raw->sign("evt-1", 1700000000, "hello"));
}

TEST_CASE("signatures change with the id, the timestamp and the body", "[delivery]") {
  auto signer = Signer::create("raw-secret");
  REQUIRE(signer.has_value());
  const auto base = signer->sign("evt-1", 1700000000, "hello");
  CHECK(signer->sign("evt-2", 1700000000, "hello") != base);
  CHECK(signer->sign("evt-1", 1700000001, "hello") != base);
  CHECK(signer->sign("evt-1", 1700000000, "hellO") != base);
}

TEST_CASE("a whsec_ secret with invalid base64 or no key is rejected without echoing it",
          "[delivery]") {
  for (const char* bad : {"whsec_not base64!", "whsec_abc", "whsec_"}) {
    INFO("secret \"" << bad << "\"");
    const auto signer = Signer::create(bad);
    REQUIRE_FALSE(signer.has_value());
    CHECK(signer.error().code == ErrorCode::kInvalidArgument);
    const std::string key_text = std::string(bad).substr(6);
    if (!key_text.empty()) CHECK(signer.error().message.find(key_text) == std::string::npos);
  }
}

TEST_CASE("an empty signing secret is rejected", "[delivery]") {
  const auto signer = Signer::create("");
  REQUIRE_FALSE(signer.has_value());
  CHECK(signer.error().code == ErrorCode::kInvalidArgument);
}
