#pragma once
// Pure rules that turn an HTTP exchange into a DeliveryOutcome. No I/O; unit-tested.

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "relay/delivery/outcome.h"

namespace relay::delivery {

// 2xx delivered; 408, 425, 429, 5xx and 3xx (redirects are not followed) retryable; other 4xx and
// anything else final.
DeliveryOutcome::Kind classify_status(int status);

// Parses a Retry-After value: delta-seconds ("120") or an HTTP-date ("Wed, 21 Oct 2015 07:28:00
// GMT", relative to `now`). Returns nullopt for anything unparseable; a date in the past is 0.
std::optional<Millis> parse_retry_after(std::string_view value,
                                        std::chrono::system_clock::time_point now);

// How a request failed without an HTTP response (both senders map their errors onto these).
enum class TransportFailure {
  kConnect,         // refused, unreachable, or the host did not resolve
  kConnectTimeout,  // no connection within connect_timeout
  kReadTimeout,     // no complete response within timeout
  kReadClosed,      // the peer closed or reset the connection before a complete response
  kWriteTimeout,    // the request could not be written within timeout
  kWriteClosed,     // the peer closed or reset the connection while the request was written
  kCanceled,        // stop() aborted the request
};

// A kRetryable outcome with status 0 and the error text for `failure`, e.g. "connection refused or
// host unreachable", "timeout: no response within 5s".
DeliveryOutcome transport_failure(TransportFailure failure, Millis timeout, Millis connect_timeout);

// A kRetryable outcome with status 0 and `error` as its text.
DeliveryOutcome retryable_failure(std::string error);

// What is known about a request to an https:// endpoint that TLS made fail, in plain values.
struct TlsFailure {
  enum class Stage {
    kLoadingCa,     // the CA bundle (tls.ca_file or the system store) could not be loaded
    kHandshake,     // the handshake failed, or the server ended it with an alert
    kVerification,  // the handshake finished but the server's certificate did not verify
  };
  Stage stage = Stage::kHandshake;
  std::string host;                 // as in the endpoint
  std::string ca_file;              // tls.ca_file; empty = the system store
  bool client_certificate = false;  // tls.cert_file is set
  // kVerification: OpenSSL's verify result text ("unable to get local issuer certificate",
  // "hostname mismatch", ...); empty when the chain verified and only the name check failed.
  std::string verify_error;
  std::string
      ssl_error;  // OpenSSL's reason for the failure, e.g. "wrong version number"; may be ""
  bool peer_alert = false;  // ssl_error is an alert the server sent
  // The server asked for a client certificate in a handshake made for this request.
  bool certificate_requested = false;
  // The request failed after the handshake (on write or read) with no HTTP answer.
  bool after_handshake = false;
};

// A kRetryable outcome (status 0) with cause kTlsVerification (kVerification) or kTlsHandshake
// (the rest), and an error text that starts with "TLS: ", says what failed and names the config key
// that usually fixes it, e.g. "TLS: server certificate verification failed (unable to get local
// issuer certificate); check that tls.ca_file \"/etc/relay/ca.pem\" is the CA that signed it".
DeliveryOutcome classify_tls_failure(const TlsFailure& failure);

}  // namespace relay::delivery
