// Integration: https:// endpoints. A test PKI made with the openssl CLI (TlsFixture) and an HTTPS
// FakeConsumer on 127.0.0.1. First HttplibSender on its own (verification, host names, mTLS, the
// error texts and bad files at creation), then the relay binary: a TLS failure keeps the events
// pending (no dead letter), is counted in relay_delivery_tls_errors_total and named in
// relay.delivery.last_error, and a restart with the right settings delivers everything once.

#include <httplib.h>
#include <stdlib.h>

#include <catch2/catch.hpp>
#include <condition_variable>
#include <csignal>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "relay/common/clock.h"
#include "relay/delivery/httplib_sender.h"
#include "tests/integration/test_config.h"
#include "tests/support/fake_consumer.h"
#include "tests/support/ops_probe.h"
#include "tests/support/relay_process.h"
#include "tests/support/test_database.h"
#include "tests/support/tls_fixture.h"
#include "tests/support/wait.h"

using namespace std::chrono_literals;
using namespace relay::testing;
using relay::ErrorCode;
using relay::Event;
using relay::ManualClock;
using relay::config::SubscriptionConfig;
using relay::delivery::DeliveryOutcome;
using relay::delivery::HttplibSender;
using Cause = relay::delivery::DeliveryOutcome::Cause;
using Kind = relay::delivery::DeliveryOutcome::Kind;

namespace {

SubscriptionConfig subscription(const std::string& endpoint) {
  SubscriptionConfig sub;
  sub.name = "billing";
  sub.topics = {"*"};
  sub.endpoint = relay::parse_endpoint(endpoint).value();
  sub.timeout = 5s;
  sub.connect_timeout = 2s;
  return sub;
}

Event sample_event() {
  Event e;
  e.event_id = "6f1d2c3b-4a59-4e87-9b1a-2c3d4e5f6a7b";
  e.topic = "order.paid";
  e.key = "order-17";
  e.payload = R"({"order":17})";
  return e;
}

std::unique_ptr<HttplibSender> make_sender(const SubscriptionConfig& sub, ManualClock& clock) {
  auto sender = HttplibSender::create(sub, clock);
  if (!sender) FAIL("create failed: " << sender.error().message);
  return std::move(*sender);
}

TlsServerOptions server_tls(const TlsFixture& pki) {
  return {.cert_file = pki.server_cert(), .key_file = pki.server_key()};
}

// Sets an environment variable for the scope (OpenSSL reads SSL_CERT_FILE when it loads its
// default store) and restores the previous value.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::string& value) : name_(name) {
    if (const char* old = ::getenv(name)) old_ = old;
    ::setenv(name, value.c_str(), 1);
  }
  ~ScopedEnv() {
    if (old_) {
      ::setenv(name_, old_->c_str(), 1);
    } else {
      ::unsetenv(name_);
    }
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
  std::optional<std::string> old_;
};

std::vector<std::string> publish(TestDatabase& db, int n) {
  std::vector<std::string> ids;
  for (auto& r : db.rows(fmt::format("SELECT relay.publish('order.paid', 'k' || i, "
                                     "jsonb_build_object('i', i))::text "
                                     "FROM generate_series(1, {}) i",
                                     n))) {
    ids.push_back(r[0]);
  }
  return ids;
}

std::multiset<std::string> as_multiset(const std::vector<std::string>& v) {
  return {v.begin(), v.end()};
}

std::string tls_yaml(const std::string& keys) { return "    tls: {" + keys + "}\n"; }

// Every attempt is a real attempt (no breaker deferrals), and max_attempts is tiny: a TLS failure
// spends no attempt, so none of them may be dead-lettered however often it fails.
constexpr int kFewAttempts = 2;
const std::string kNoBreaker =
    "    circuit_breaker: { failure_threshold: 1000, open_for: 100ms, max_open_for: 100ms }\n";

}  // namespace

// ---- HttplibSender against an HTTPS consumer ------------------------------------------------

TEST_CASE("an https endpoint verified with tls.ca_file is delivered, and again by the same sender",
          "[integration][tls]") {
  TlsFixture pki;
  FakeConsumer consumer{server_tls(pki)};
  ManualClock clock;
  auto sub = subscription(consumer.url("/hooks"));
  sub.tls.ca_file = pki.ca_cert();
  auto sender = make_sender(sub, clock);

  const auto first = sender->send(sample_event(), 1);
  const auto second = sender->send(sample_event(), 2);

  CHECK(first.kind == Kind::kDelivered);
  CHECK(first.cause == Cause::kNone);
  CHECK(second.kind == Kind::kDelivered);
  REQUIRE(consumer.count() == 2);
  CHECK(consumer.requests()[0].path == "/hooks");
  CHECK(consumer.requests()[0].body == R"({"order":17})");
}

TEST_CASE("a server certificate from another CA fails verification: retryable, clear, not sent",
          "[integration][tls]") {
  TlsFixture pki;
  FakeConsumer consumer{server_tls(pki)};
  ManualClock clock;
  auto sub = subscription(consumer.url());
  sub.tls.ca_file = pki.other_ca_cert();
  auto sender = make_sender(sub, clock);

  const auto outcome = sender->send(sample_event(), 1);

  CHECK(outcome.kind == Kind::kRetryable);
  CHECK(outcome.cause == Cause::kTlsVerification);
  CHECK(outcome.status == 0);
  CHECK_THAT(outcome.error,
             Catch::StartsWith("TLS: server certificate verification failed (unable to get local "
                               "issuer certificate); check that tls.ca_file \"" +
                               pki.other_ca_cert() + "\""));
  CHECK(consumer.count() == 0);
}

TEST_CASE("without tls.ca_file the system store is used, so a private CA is not trusted",
          "[integration][tls]") {
  TlsFixture pki;
  FakeConsumer consumer{server_tls(pki)};
  ManualClock clock;
  auto sender = make_sender(subscription(consumer.url()), clock);

  const auto outcome = sender->send(sample_event(), 1);

  CHECK(outcome.cause == Cause::kTlsVerification);
  CHECK_THAT(outcome.error, Catch::Contains("system CA store does not trust it"));
  CHECK(consumer.count() == 0);
}

TEST_CASE("without tls.ca_file OpenSSL's default store ($SSL_CERT_FILE) verifies the server",
          "[integration][tls]") {
  TlsFixture pki;
  FakeConsumer consumer{server_tls(pki)};
  ManualClock clock;
  // The default store is loaded at the first handshake; pointing it at the test CA shows that an
  // endpoint without tls.ca_file really is checked against it (and not, say, left unverified).
  ScopedEnv cert_file("SSL_CERT_FILE", pki.ca_cert());
  auto sender = make_sender(subscription(consumer.url()), clock);

  const auto outcome = sender->send(sample_event(), 1);

  CHECK(outcome.kind == Kind::kDelivered);
  CHECK(consumer.count() == 1);
}

TEST_CASE("a certificate for another host name fails verification with a host name message",
          "[integration][tls]") {
  TlsFixture pki;
  FakeConsumer consumer{
      TlsServerOptions{.cert_file = pki.wrong_host_cert(), .key_file = pki.wrong_host_key()}};
  ManualClock clock;
  auto sub = subscription(consumer.url());
  sub.tls.ca_file = pki.ca_cert();  // the chain is fine: only the name is wrong
  auto sender = make_sender(sub, clock);

  const auto outcome = sender->send(sample_event(), 1);

  CHECK(outcome.kind == Kind::kRetryable);
  CHECK(outcome.cause == Cause::kTlsVerification);
  CHECK_THAT(outcome.error,
             Catch::StartsWith("TLS: server certificate does not match host \"127.0.0.1\""));
  CHECK(consumer.count() == 0);
}

TEST_CASE("a DNS name in the certificate's subjectAltName verifies", "[integration][tls]") {
  TlsFixture pki;
  FakeConsumer consumer{server_tls(pki)};
  ManualClock clock;
  auto sub = subscription("https://localhost:" + std::to_string(consumer.port()) + "/");
  sub.tls.ca_file = pki.ca_cert();
  auto sender = make_sender(sub, clock);

  CHECK(sender->send(sample_event(), 1).kind == Kind::kDelivered);
  CHECK(consumer.count() == 1);
}

TEST_CASE("tls.verify false delivers to a server no configured CA trusts", "[integration][tls]") {
  TlsFixture pki;
  FakeConsumer consumer{
      TlsServerOptions{.cert_file = pki.wrong_host_cert(), .key_file = pki.wrong_host_key()}};
  ManualClock clock;
  auto sub = subscription(consumer.url());
  sub.tls.verify = false;
  auto sender = make_sender(sub, clock);

  CHECK(sender->send(sample_event(), 1).kind == Kind::kDelivered);
  CHECK(consumer.count() == 1);
}

TEST_CASE("mTLS: a server that requires a client certificate gets it from cert_file/key_file",
          "[integration][tls]") {
  TlsFixture pki;
  FakeConsumer consumer{TlsServerOptions{.cert_file = pki.server_cert(),
                                         .key_file = pki.server_key(),
                                         .client_ca_file = pki.ca_cert()}};
  ManualClock clock;
  auto with_cert = subscription(consumer.url());
  with_cert.tls = {
      .ca_file = pki.ca_cert(), .cert_file = pki.client_cert(), .key_file = pki.client_key()};
  auto without_cert = subscription(consumer.url());
  without_cert.tls.ca_file = pki.ca_cert();

  const auto refused = make_sender(without_cert, clock)->send(sample_event(), 1);
  const auto accepted = make_sender(with_cert, clock)->send(sample_event(), 1);

  CHECK(refused.kind == Kind::kRetryable);
  CHECK(refused.cause == Cause::kTlsHandshake);
  CHECK_THAT(refused.error, Catch::StartsWith("TLS: the server refused the handshake ("));
  CHECK_THAT(refused.error, Catch::Contains("set tls.cert_file and tls.key_file"));
  CHECK(accepted.kind == Kind::kDelivered);
  CHECK(consumer.count() == 1);  // only the request with the certificate got through
}

TEST_CASE("mTLS: a client certificate the server does not accept is a handshake failure",
          "[integration][tls]") {
  TlsFixture pki;
  // The server only trusts client certificates from the other CA.
  FakeConsumer consumer{TlsServerOptions{.cert_file = pki.server_cert(),
                                         .key_file = pki.server_key(),
                                         .client_ca_file = pki.other_ca_cert()}};
  ManualClock clock;
  auto sub = subscription(consumer.url());
  sub.tls = {
      .ca_file = pki.ca_cert(), .cert_file = pki.client_cert(), .key_file = pki.client_key()};

  const auto outcome = make_sender(sub, clock)->send(sample_event(), 1);

  CHECK(outcome.kind == Kind::kRetryable);
  CHECK(outcome.cause == Cause::kTlsHandshake);
  CHECK_THAT(outcome.error, Catch::Contains("check that the server trusts tls.cert_file"));
  CHECK(consumer.count() == 0);
}

TEST_CASE("an https endpoint answered in plain HTTP is a handshake failure that says so",
          "[integration][tls]") {
  FakeConsumer plain;  // http
  ManualClock clock;
  auto sender =
      make_sender(subscription("https://127.0.0.1:" + std::to_string(plain.port()) + "/"), clock);

  const auto outcome = sender->send(sample_event(), 1);

  CHECK(outcome.kind == Kind::kRetryable);
  CHECK(outcome.cause == Cause::kTlsHandshake);
  CHECK_THAT(outcome.error, Catch::StartsWith("TLS: handshake failed ("));
  CHECK_THAT(outcome.error, Catch::Contains("is the endpoint serving HTTPS on this port?"));
  CHECK(plain.count() == 0);
}

TEST_CASE("a refused connection to an https endpoint is an ordinary transport failure",
          "[integration][tls]") {
  ManualClock clock;
  auto sender = make_sender(
      subscription("https://127.0.0.1:" + std::to_string(FakeConsumer::unused_port()) + "/"),
      clock);

  const auto outcome = sender->send(sample_event(), 1);

  CHECK(outcome.kind == Kind::kRetryable);
  CHECK(outcome.cause == Cause::kNone);
  CHECK_THAT(outcome.error, Catch::Contains("connection refused"));
}

TEST_CASE("stop() aborts an in-flight https send, which returns retryable", "[integration][tls]") {
  TlsFixture pki;
  std::mutex mu;
  std::condition_variable cv;
  bool entered = false;
  bool release = false;
  FakeConsumer consumer{server_tls(pki), [&](const ReceivedRequest&) {
                          std::unique_lock lock(mu);
                          entered = true;
                          cv.notify_all();
                          cv.wait(lock, [&] { return release; });
                          return Reply{};
                        }};
  ManualClock clock;
  auto sub = subscription(consumer.url());
  sub.tls.ca_file = pki.ca_cert();
  sub.timeout = 60s;  // the test would hang for a minute if stop() did nothing
  auto sender = make_sender(sub, clock);
  DeliveryOutcome outcome;
  std::thread sending([&] { outcome = sender->send(sample_event(), 1); });

  bool arrived = false;
  {
    std::unique_lock lock(mu);
    arrived = cv.wait_for(lock, 10s, [&] { return entered; });
  }
  sender->stop();
  sending.join();
  {
    std::lock_guard lock(mu);
    release = true;
  }
  cv.notify_all();

  CHECK(arrived);
  CHECK(outcome.kind == Kind::kRetryable);
  CHECK(outcome.status == 0);
}

TEST_CASE("bad TLS files are rejected at creation, naming the subscription, key and path",
          "[integration][tls]") {
  TlsFixture pki;
  ManualClock clock;
  const std::string secret_marker = "MC4CAQAwBQYDK2VwBCIEINOTAREALKEYBUTSECRET";
  const std::string not_pem = pki.write("not-pem.txt", "this is not a certificate\n");
  const std::string bad_key = pki.write(
      "bad.key", "-----BEGIN PRIVATE KEY-----\n" + secret_marker + "\n-----END PRIVATE KEY-----\n");
  struct Case {
    relay::config::TlsConfig tls;
    std::string key;
  };
  const std::vector<Case> cases = {
      {{.ca_file = not_pem}, "tls.ca_file \"" + not_pem + "\": holds no PEM certificate"},
      {{.ca_file = pki.write("empty.pem", "")}, "tls.ca_file"},
      {{.ca_file = "/nonexistent/ca.pem"}, "tls.ca_file \"/nonexistent/ca.pem\": cannot be read"},
      {{.cert_file = not_pem, .key_file = pki.client_key()}, "tls.cert_file \"" + not_pem + "\""},
      {{.cert_file = pki.client_cert(), .key_file = bad_key}, "tls.key_file \"" + bad_key + "\""},
      {{.cert_file = pki.client_cert(), .key_file = pki.server_key()},
       "is not the private key of tls.cert_file"},
      {{.cert_file = pki.client_cert()}, "tls.cert_file and tls.key_file must be set together"},
  };
  for (const auto& c : cases) {
    INFO("expecting: " << c.key);
    auto sub = subscription("https://127.0.0.1:8443/");
    sub.tls = c.tls;
    const auto sender = HttplibSender::create(sub, clock);
    REQUIRE_FALSE(sender.has_value());
    CHECK(sender.error().code == ErrorCode::kInvalidArgument);
    CHECK_THAT(sender.error().message, Catch::StartsWith("subscription \"billing\": "));
    CHECK_THAT(sender.error().message, Catch::Contains(c.key));
    CHECK_THAT(sender.error().message, !Catch::Contains(secret_marker));
  }
}

// ---- the relay binary ------------------------------------------------------------------------

TEST_CASE("relay delivers every event exactly once to an https consumer verified by tls.ca_file",
          "[integration][tls]") {
  TlsFixture pki;
  auto db = TestDatabase::create();
  FakeConsumer consumer{server_tls(pki)};
  TestRelayConfig cfg;
  cfg.subscriptions = {{.name = "secure",
                        .topics = {"*"},
                        .endpoint = consumer.url(),
                        .extra = tls_yaml("ca_file: " + pki.ca_cert())}};
  RelayProcess relay(to_yaml(cfg), {}, {{"DATABASE_URL", db.url()}});
  const auto ids = publish(db, 50);

  REQUIRE(wait_until(
      [&] { return db.count("relay.outbox") == 0 && consumer.successful_ids().size() >= 50; },
      60s));
  CHECK(as_multiset(consumer.received_ids()) == as_multiset(ids));  // each once, no retries
  CHECK(db.count("relay.delivery") == 0);
  CHECK(db.count("relay.dead_letter") == 0);
  relay.signal(SIGTERM);
  CHECK(relay.wait_exit(60s) == 0);
}

TEST_CASE(
    "relay keeps events for an https consumer it cannot verify and delivers them once the "
    "CA is fixed",
    "[integration][tls]") {
  TlsFixture pki;
  auto db = TestDatabase::create();
  FakeConsumer consumer{server_tls(pki)};
  const int ops_port = FakeConsumer::unused_port();
  TestRelayConfig cfg;
  cfg.subscriptions = {{.name = "secure",
                        .topics = {"*"},
                        .endpoint = consumer.url(),
                        .max_attempts = kFewAttempts,
                        .initial_backoff = "20ms",
                        .max_backoff = "100ms",
                        .extra = tls_yaml("ca_file: " + pki.other_ca_cert()) + kNoBreaker}};
  cfg.extra = fmt::format("ops:\n  listen: 127.0.0.1:{}\n", ops_port);
  const auto ids = publish(db, 20);
  const std::string tls_errors =
      R"(relay_delivery_tls_errors_total{cause="tls_verification",subscription="secure"})";
  {
    RelayProcess relay(to_yaml(cfg), {}, {{"DATABASE_URL", db.url()}});
    OpsProbe ops(ops_port);

    // Every event has failed at least twice, and each failure was the TLS verification.
    REQUIRE(wait_until(
        [&] {
          return db.count(
                     "relay.delivery WHERE attempts = 0 AND last_error LIKE "
                     "'TLS: server certificate verification failed (unable to get local "
                     "issuer certificate)%'") == 20;
        },
        60s));
    std::string metrics;
    REQUIRE(wait_until(
        [&] {
          metrics = ops.metrics();
          return OpsProbe::sample(metrics, tls_errors).value_or(0) >= 40;
        },
        60s));
    INFO(relay.log());
    CHECK(consumer.count() == 0);
    CHECK(db.count("relay.dead_letter") == 0);
    CHECK(db.count("relay.outbox") + db.count("relay.delivery") == 20);  // all still pending
    CHECK(OpsProbe::sample(
              metrics,
              R"(relay_delivery_tls_errors_total{cause="tls_handshake",subscription="secure"})") ==
          0);
    relay.signal(SIGTERM);
    REQUIRE(relay.wait_exit(60s) == 0);
  }

  // The operator fixes tls.ca_file and restarts: everything goes out, once.
  cfg.subscriptions[0].extra = tls_yaml("ca_file: " + pki.ca_cert()) + kNoBreaker;
  RelayProcess fixed(to_yaml(cfg), {}, {{"DATABASE_URL", db.url()}});
  REQUIRE(wait_until(
      [&] { return db.count("relay.delivery") == 0 && consumer.successful_ids().size() >= 20; },
      60s));
  CHECK(as_multiset(consumer.received_ids()) == as_multiset(ids));
  CHECK(db.count("relay.outbox") == 0);
  CHECK(db.count("relay.dead_letter") == 0);
}

TEST_CASE("relay keeps events for an mTLS consumer until it is given a client certificate",
          "[integration][tls]") {
  TlsFixture pki;
  auto db = TestDatabase::create();
  FakeConsumer consumer{TlsServerOptions{.cert_file = pki.server_cert(),
                                         .key_file = pki.server_key(),
                                         .client_ca_file = pki.ca_cert()}};
  TestRelayConfig cfg;
  cfg.subscriptions = {{.name = "mutual",
                        .topics = {"*"},
                        .endpoint = consumer.url(),
                        .max_attempts = kFewAttempts,
                        .initial_backoff = "20ms",
                        .max_backoff = "100ms",
                        .extra = tls_yaml("ca_file: " + pki.ca_cert()) + kNoBreaker}};
  const auto ids = publish(db, 10);
  {
    RelayProcess relay(to_yaml(cfg), {}, {{"DATABASE_URL", db.url()}});
    REQUIRE(wait_until(
        [&] {
          return db.count(
                     "relay.delivery WHERE attempts = 0 AND last_error LIKE "
                     "'TLS: the server refused the handshake%'") == 10;
        },
        60s));
    CHECK(consumer.count() == 0);
    CHECK(db.count("relay.dead_letter") == 0);
    relay.signal(SIGTERM);
    REQUIRE(relay.wait_exit(60s) == 0);
  }

  cfg.subscriptions[0].extra =
      tls_yaml(fmt::format("ca_file: {}, cert_file: {}, key_file: {}", pki.ca_cert(),
                           pki.client_cert(), pki.client_key())) +
      kNoBreaker;
  RelayProcess with_cert(to_yaml(cfg), {}, {{"DATABASE_URL", db.url()}});
  REQUIRE(wait_until(
      [&] { return db.count("relay.delivery") == 0 && consumer.successful_ids().size() >= 10; },
      60s));
  CHECK(as_multiset(consumer.received_ids()) == as_multiset(ids));
  CHECK(db.count("relay.dead_letter") == 0);
}

TEST_CASE("relay refuses to start when tls.cert_file does not hold a certificate",
          "[integration][tls]") {
  TlsFixture pki;
  auto db = TestDatabase::create();
  FakeConsumer consumer{server_tls(pki)};
  const std::string not_pem = pki.write("client-not-pem.crt", "garbage\n");
  TestRelayConfig cfg;
  cfg.subscriptions = {
      {.name = "mutual",
       .topics = {"*"},
       .endpoint = consumer.url(),
       .extra = tls_yaml(fmt::format("cert_file: {}, key_file: {}", not_pem, pki.client_key()))}};
  const auto ids = publish(db, 3);

  RelayProcess relay(to_yaml(cfg), {}, {{"DATABASE_URL", db.url()}});
  const auto code = relay.wait_exit(30s);

  INFO(relay.log());
  REQUIRE(code.has_value());
  CHECK(*code != 0);
  CHECK(db.count("relay.outbox") == 3);  // nothing claimed, nothing lost
  CHECK(consumer.count() == 0);
}
