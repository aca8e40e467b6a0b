#include "relay/delivery/classify.h"

#include <catch2/catch.hpp>

using namespace std::chrono_literals;
using relay::Millis;
using relay::delivery::classify_status;
using relay::delivery::DeliveryOutcome;
using relay::delivery::parse_retry_after;
using Kind = relay::delivery::DeliveryOutcome::Kind;

namespace {

// Sun, 06 Nov 1994 08:49:37 GMT as a system_clock instant (784111777 unix seconds).
const std::chrono::system_clock::time_point kRfcExampleDate =
    std::chrono::sys_days{std::chrono::year{1994} / 11 / 6} + 8h + 49min + 37s;

}  // namespace

TEST_CASE("classify_status sorts every status class by the delivery contract", "[delivery]") {
  struct Row {
    int status;
    Kind kind;
  };
  const Row rows[] = {
      {200, Kind::kDelivered}, {201, Kind::kDelivered}, {204, Kind::kDelivered},
      {299, Kind::kDelivered}, {300, Kind::kRetryable}, {301, Kind::kRetryable},
      {302, Kind::kRetryable}, {308, Kind::kRetryable}, {408, Kind::kRetryable},
      {425, Kind::kRetryable}, {429, Kind::kRetryable}, {500, Kind::kRetryable},
      {502, Kind::kRetryable}, {503, Kind::kRetryable}, {504, Kind::kRetryable},
      {599, Kind::kRetryable}, {400, Kind::kFinal},     {401, Kind::kFinal},
      {403, Kind::kFinal},     {404, Kind::kFinal},     {409, Kind::kFinal},
      {410, Kind::kFinal},     {413, Kind::kFinal},     {422, Kind::kFinal},
      {499, Kind::kFinal},     {100, Kind::kFinal},     {101, Kind::kFinal},
      {199, Kind::kFinal},     {0, Kind::kFinal},       {-1, Kind::kFinal},
      {99, Kind::kFinal},      {600, Kind::kFinal},     {999, Kind::kFinal},
  };
  for (const auto& row : rows) {
    INFO("status " << row.status);
    CHECK(classify_status(row.status) == row.kind);
  }
}

TEST_CASE("outcome kinds have stable names for rows and metrics", "[delivery]") {
  CHECK(std::string(to_string(Kind::kDelivered)) == "delivered");
  CHECK(std::string(to_string(Kind::kRetryable)) == "retryable");
  CHECK(std::string(to_string(Kind::kFinal)) == "final");
}

TEST_CASE("Retry-After in delta-seconds is returned as that many seconds", "[delivery]") {
  const auto now = kRfcExampleDate;
  CHECK(parse_retry_after("7", now) == Millis(7000));
  CHECK(parse_retry_after("0", now) == Millis(0));
  CHECK(parse_retry_after("120", now) == Millis(120'000));
  CHECK(parse_retry_after(" 3 ", now) == Millis(3000));  // optional whitespace around a field value
}

TEST_CASE("Retry-After as an IMF-fixdate is the time from now until that date", "[delivery]") {
  CHECK(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", kRfcExampleDate - 90s) ==
        Millis(90'000));
  // A fractional second before the date rounds up: retrying early is the wrong direction.
  CHECK(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", kRfcExampleDate - 1500ms) ==
        Millis(1500));
  CHECK(parse_retry_after("Mon, 07 Nov 1994 08:49:37 GMT", kRfcExampleDate) == Millis(86'400'000));
  CHECK(parse_retry_after("Thu, 29 Feb 2024 00:00:00 GMT",
                          std::chrono::sys_days{std::chrono::year{2024} / 2 / 28}) ==
        Millis(86'400'000));
}

TEST_CASE("Retry-After with a date in the past or now means retry now", "[delivery]") {
  CHECK(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", kRfcExampleDate) == Millis(0));
  CHECK(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", kRfcExampleDate + 250ms) == Millis(0));
  CHECK(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", kRfcExampleDate + 24h * 365 * 30) ==
        Millis(0));
}

TEST_CASE("an unparseable Retry-After is ignored", "[delivery]") {
  const auto now = kRfcExampleDate;
  for (const char* garbage : {"", " ", "soon", "-5", "+5", "1.5", "5s", "0x10", "7 7",
                              "Sun, 06 Nov 1994 08:49:37 UTC",    // not GMT
                              "Sunday, 06-Nov-94 08:49:37 GMT",   // obsolete RFC 850 form
                              "Sun Nov  6 08:49:37 1994",         // obsolete asctime form
                              "Sun, 31 Feb 1994 08:49:37 GMT",    // no such day
                              "Sun, 06 Foo 1994 08:49:37 GMT",    // no such month
                              "Sun, 06 Nov 1994 24:49:37 GMT",    // no such hour
                              "Xyz, 06 Nov 1994 08:49:37 GMT",    // no such weekday
                              "Sun, 6 Nov 1994 08:49:37 GMT"}) {  // day must be two digits
    INFO("value \"" << garbage << "\"");
    CHECK_FALSE(parse_retry_after(garbage, now).has_value());
  }
}

TEST_CASE("a huge Retry-After saturates instead of overflowing", "[delivery]") {
  const auto now = kRfcExampleDate;
  const auto huge = parse_retry_after("99999999999999999999999999999999999999", now);
  REQUIRE(huge.has_value());
  CHECK(*huge > Millis(0));
  CHECK(*huge >= std::chrono::duration_cast<Millis>(24h * 365 * 99));  // clamped at about 100 years
  const auto far_date = parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", now);
  REQUIRE(far_date.has_value());
  CHECK(*far_date == *huge);  // the same clamp, and no nanosecond overflow on the way
}

// ---- TLS failures ---------------------------------------------------------------------------

namespace {

using relay::delivery::classify_tls_failure;
using relay::delivery::TlsFailure;
using Cause = relay::delivery::DeliveryOutcome::Cause;
using Stage = relay::delivery::TlsFailure::Stage;

TlsFailure tls_failure(Stage stage) {
  TlsFailure f;
  f.stage = stage;
  f.host = "hooks.example.com";
  return f;
}

}  // namespace

TEST_CASE("every TLS failure is retryable with no status and a TLS cause", "[delivery]") {
  for (Stage stage : {Stage::kLoadingCa, Stage::kHandshake, Stage::kVerification}) {
    const auto outcome = classify_tls_failure(tls_failure(stage));
    CHECK(outcome.kind == Kind::kRetryable);
    CHECK(outcome.status == 0);
    CHECK(outcome.cause ==
          (stage == Stage::kVerification ? Cause::kTlsVerification : Cause::kTlsHandshake));
    CHECK_THAT(outcome.error, Catch::StartsWith("TLS: "));
  }
}

TEST_CASE("an untrusted chain names the verify error and tls.ca_file", "[delivery]") {
  auto f = tls_failure(Stage::kVerification);
  f.verify_error = "unable to get local issuer certificate";
  f.ca_file = "/etc/relay/ca.pem";
  CHECK(classify_tls_failure(f).error ==
        "TLS: server certificate verification failed (unable to get local issuer certificate); "
        "check that tls.ca_file \"/etc/relay/ca.pem\" is the CA that signed the server's "
        "certificate");

  f.ca_file.clear();  // the system store
  CHECK(classify_tls_failure(f).error ==
        "TLS: server certificate verification failed (unable to get local issuer certificate); "
        "the system CA store does not trust it: set tls.ca_file to the CA that signed the "
        "server's certificate");
}

TEST_CASE("a host name mismatch says which host, from OpenSSL or from the name check alone",
          "[delivery]") {
  auto f = tls_failure(Stage::kVerification);
  f.verify_error = "hostname mismatch";
  CHECK(classify_tls_failure(f).error ==
        "TLS: server certificate does not match host \"hooks.example.com\" (hostname mismatch); "
        "the endpoint must use a name or IP address listed in the certificate's subjectAltName");
  f.verify_error.clear();  // the chain verified, cpp-httplib's own name check failed
  CHECK_THAT(classify_tls_failure(f).error,
             Catch::StartsWith("TLS: server certificate does not match host "
                               "\"hooks.example.com\"; "));
}

TEST_CASE("an expired certificate is a verification failure, not a host name one", "[delivery]") {
  auto f = tls_failure(Stage::kVerification);
  f.verify_error = "certificate has expired";
  f.ca_file = "/ca.pem";
  CHECK_THAT(classify_tls_failure(f).error,
             Catch::StartsWith("TLS: server certificate verification failed (certificate has "
                               "expired); check that tls.ca_file"));
}

TEST_CASE("a refused handshake points at the client certificate settings", "[delivery]") {
  auto f = tls_failure(Stage::kHandshake);
  f.peer_alert = true;
  f.ssl_error = "alert: certificate required";
  f.certificate_requested = true;
  CHECK(classify_tls_failure(f).error ==
        "TLS: the server refused the handshake (alert: certificate required); the server requires "
        "a client certificate: set tls.cert_file and tls.key_file");

  f.client_certificate = true;
  f.ssl_error = "alert: unknown CA";
  CHECK(classify_tls_failure(f).error ==
        "TLS: the server refused the handshake (alert: unknown CA); check that the server trusts "
        "tls.cert_file and that it has not expired");

  f.client_certificate = false;
  f.certificate_requested = false;
  f.ssl_error = "alert: handshake failure";
  CHECK_THAT(classify_tls_failure(f).error,
             Catch::EndsWith("if the server requires a client certificate, set tls.cert_file and "
                             "tls.key_file"));
}

TEST_CASE("a connection closed right after the server asked for a certificate is a refusal",
          "[delivery]") {
  // TLS 1.3: the verdict on our certificate can be lost in a reset while the request is written.
  auto f = tls_failure(Stage::kHandshake);
  f.after_handshake = true;
  f.certificate_requested = true;
  const auto outcome = classify_tls_failure(f);
  CHECK(outcome.cause == Cause::kTlsHandshake);
  CHECK(outcome.error ==
        "TLS: the server refused the handshake (the connection closed right after the server "
        "asked for a client certificate); the server requires a client certificate: set "
        "tls.cert_file and tls.key_file");
}

TEST_CASE("a peer that does not speak TLS is named as such", "[delivery]") {
  auto f = tls_failure(Stage::kHandshake);
  f.ssl_error = "wrong version number";
  CHECK(classify_tls_failure(f).error ==
        "TLS: handshake failed (wrong version number); is the endpoint serving HTTPS on this "
        "port?");
  f.ssl_error = "sslv3 alert handshake failure";  // not a "not TLS" error: no hint
  CHECK(classify_tls_failure(f).error == "TLS: handshake failed (sslv3 alert handshake failure)");
  f.ssl_error.clear();
  CHECK_THAT(classify_tls_failure(f).error,
             Catch::StartsWith("TLS: handshake did not complete (connection closed or timed out"));
}

TEST_CASE("a CA bundle that cannot be loaded names which one", "[delivery]") {
  auto f = tls_failure(Stage::kLoadingCa);
  f.ca_file = "/etc/relay/ca.pem";
  CHECK(classify_tls_failure(f).error == "TLS: cannot load tls.ca_file \"/etc/relay/ca.pem\"");
  f.ca_file.clear();
  f.ssl_error = "no such file";
  CHECK(classify_tls_failure(f).error == "TLS: cannot load the system CA store (no such file)");
}

TEST_CASE("causes have stable names for metrics", "[delivery]") {
  using relay::delivery::to_string;
  CHECK(std::string(to_string(Cause::kNone)) == "none");
  CHECK(std::string(to_string(Cause::kTlsVerification)) == "tls_verification");
  CHECK(std::string(to_string(Cause::kTlsHandshake)) == "tls_handshake");
}
