// Integration: Standard Webhooks signing with two secrets (rotation) and per-subscription custom
// headers, checked by a consumer that verifies each signature with its own HMAC (OpenSSL's
// one-shot HMAC() and EVP_EncodeBlock, not relay's Signer).

#include <catch2/catch.hpp>
#include <csignal>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

#include "tests/integration/test_config.h"
#include "tests/support/fake_consumer.h"
#include "tests/support/hmac_oracle.h"
#include "tests/support/relay_process.h"
#include "tests/support/test_database.h"
#include "tests/support/wait.h"

using namespace std::chrono_literals;
using namespace relay::testing;

namespace {

std::string b64(const std::string& bytes) { return openssl_base64(bytes); }

std::string expected_signature(const std::string& key, const std::string& id, const std::string& ts,
                               const std::string& body) {
  return openssl_sign_v1(key, id, ts, body);
}

std::vector<std::string> split_spaces(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  for (std::string part; in >> part;) out.push_back(part);
  return out;
}

std::string hex(const std::string& bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out += kDigits[c >> 4];
    out += kDigits[c & 15];
  }
  return out;
}

}  // namespace

TEST_CASE("two signing secrets sign every attempt twice and custom headers are sent",
          "[integration][signing]") {
  auto db = TestDatabase::create();
  const std::string new_key = "new-key-0123456789abcdef-0123456789";  // the whsec_ secret's bytes
  const std::string new_secret = "whsec_" + b64(new_key);
  const std::string old_secret = "old raw secret \xc3\xa9";  // raw, non-ASCII
  const std::string token = "tok-9f8e7d6c5b4a";
  // Non-ASCII body: UTF-8 text, then bytes that are not UTF-8, and a NUL.
  const std::string body =
      std::string("{\"name\":\"J\xc3\xbcrgen \xe2\x82\xac\"}") + std::string("\x00\xff\xfe\x80", 4);

  struct Check {
    std::string id, ts;
    bool sig_new = false, sig_old = false, two = false, auth = false, tenant = false, app = false,
         body = false;
  };
  std::mutex mu;
  std::vector<Check> checks;
  FakeConsumer consumer{[&](const ReceivedRequest& r) {
    Check c;
    auto header = [&](const std::string& name) {
      auto it = r.headers.find(name);
      return it == r.headers.end() ? std::string("<missing>") : it->second;
    };
    c.id = header("webhook-id");
    c.ts = header("webhook-timestamp");
    const auto sigs = split_spaces(header("webhook-signature"));
    c.two = sigs.size() == 2;
    if (c.two) {
      c.sig_new = sigs[0] == expected_signature(new_key, c.id, c.ts, r.body);
      c.sig_old = sigs[1] == expected_signature(old_secret, c.id, c.ts, r.body);
    }
    c.auth = header("authorization") == "Bearer " + token;
    c.tenant = header("x-tenant") == "acme";  // the subscription's value beats the event's
    c.app = header("x-app") == "1";
    c.body = r.body == body;
    const bool first = header("relay-attempt") == "1";
    std::lock_guard lock(mu);
    checks.push_back(c);
    return Reply{first ? 503 : 200};  // a retry is signed again, with its own timestamp
  }};

  TestRelayConfig cfg;
  cfg.subscriptions = {{.name = "signed",
                        .topics = {"*"},
                        .endpoint = consumer.url(),
                        .extra = "    signing_secret:\n"
                                 "      - ${SECRET_NEW}\n"
                                 "      - ${SECRET_OLD}\n"
                                 "    headers:\n"
                                 "      Authorization: \"Bearer ${API_TOKEN}\"\n"
                                 "      X-Tenant: acme\n"}};
  cfg.extra = "log:\n  level: debug\n";
  RelayProcess relay(to_yaml(cfg), {},
                     {{"DATABASE_URL", db.url()},
                      {"SECRET_NEW", new_secret},
                      {"SECRET_OLD", old_secret},
                      {"API_TOKEN", token}});
  db.exec(fmt::format(
      "SELECT relay.publish('t', 'k' || i, decode('{}', 'hex'), 'application/octet-stream', "
      "'{{\"X-Tenant\": \"from-app\", \"X-App\": \"1\"}}'::jsonb) FROM generate_series(1, 3) i",
      hex(body)));
  REQUIRE(wait_until(
      [&] { return db.count("relay.outbox") == 0 && db.count("relay.delivery") == 0; }, 60s));
  CHECK(db.count("relay.dead_letter") == 0);

  relay.signal(SIGTERM);
  REQUIRE(relay.wait_exit(60s) == 0);
  const std::string log = relay.log();
  CHECK(log.find(token) == std::string::npos);
  CHECK(log.find(b64(new_key)) == std::string::npos);

  std::lock_guard lock(mu);
  REQUIRE(checks.size() == 6);  // 3 events x (503, then 200)
  for (const Check& c : checks) {
    INFO("event " << c.id << " timestamp " << c.ts);
    CHECK(c.two);
    CHECK(c.sig_new);
    CHECK(c.sig_old);
    CHECK(c.auth);
    CHECK(c.tenant);
    CHECK(c.app);
    CHECK(c.body);
  }
}
