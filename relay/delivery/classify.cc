#include "relay/delivery/classify.h"

#include <fmt/format.h>

#include <array>
#include <cctype>
#include <cstdint>
#include <utility>

#include "relay/common/duration.h"
#include "relay/common/time_format.h"

namespace relay::delivery {
namespace {

// Retry-After values are clamped to this before any arithmetic, so a hostile or buggy consumer
// cannot overflow a deadline; the retry policy caps the result by max_backoff
// (pipeline/retry_policy.h).
constexpr std::int64_t kMaxRetryAfterSeconds = 100LL * 365 * 86'400;

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool all_digits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!std::isdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

}  // namespace

const char* to_string(DeliveryOutcome::Cause cause) {
  switch (cause) {
    case DeliveryOutcome::Cause::kNone:
      return "none";
    case DeliveryOutcome::Cause::kTlsVerification:
      return "tls_verification";
    case DeliveryOutcome::Cause::kTlsHandshake:
      return "tls_handshake";
  }
  return "unknown";
}

const char* to_string(DeliveryOutcome::Kind kind) {
  switch (kind) {
    case DeliveryOutcome::Kind::kDelivered:
      return "delivered";
    case DeliveryOutcome::Kind::kRetryable:
      return "retryable";
    case DeliveryOutcome::Kind::kFinal:
      return "final";
  }
  return "unknown";
}

DeliveryOutcome retryable_failure(std::string error) {
  DeliveryOutcome outcome;
  outcome.kind = DeliveryOutcome::Kind::kRetryable;
  outcome.status = 0;
  outcome.error = std::move(error);
  return outcome;
}

DeliveryOutcome transport_failure(TransportFailure failure, Millis timeout,
                                  Millis connect_timeout) {
  switch (failure) {
    case TransportFailure::kConnect:
      return retryable_failure("connection refused or host unreachable");
    case TransportFailure::kConnectTimeout:
      return retryable_failure(
          fmt::format("connect timeout after {}", format_duration(connect_timeout)));
    case TransportFailure::kReadTimeout:
      return retryable_failure(
          fmt::format("timeout: no response within {}", format_duration(timeout)));
    case TransportFailure::kReadClosed:
      return retryable_failure("connection closed or reset before a complete response");
    case TransportFailure::kWriteTimeout:
      return retryable_failure(
          fmt::format("timeout while sending the request ({})", format_duration(timeout)));
    case TransportFailure::kWriteClosed:
      return retryable_failure("connection closed or reset while sending the request");
    case TransportFailure::kCanceled:
      return retryable_failure("request canceled");
  }
  return retryable_failure("http client error");
}

DeliveryOutcome::Kind classify_status(int status) {
  using Kind = DeliveryOutcome::Kind;
  if (status >= 200 && status <= 299) return Kind::kDelivered;
  // 3xx: we never follow redirects (Standard Webhooks), but a redirect is usually a deploy or
  // misconfiguration that an operator fixes, so it should not dead-letter at once.
  if (status >= 300 && status <= 399) return Kind::kRetryable;
  if (status >= 500 && status <= 599) return Kind::kRetryable;
  if (status == 408 || status == 425 || status == 429) return Kind::kRetryable;
  return Kind::kFinal;  // other 4xx, 1xx, and anything that is not an HTTP status
}

std::optional<Millis> parse_retry_after(std::string_view value,
                                        std::chrono::system_clock::time_point now) {
  value = trim(value);
  if (all_digits(value)) {
    std::int64_t seconds = 0;
    for (char c : value) {
      seconds = seconds * 10 + (c - '0');
      if (seconds > kMaxRetryAfterSeconds) {
        seconds = kMaxRetryAfterSeconds;
        break;
      }
    }
    return std::chrono::duration_cast<Millis>(std::chrono::seconds{seconds});
  }
  const auto date = parse_http_date(value);  // IMF-fixdate only
  if (!date) return std::nullopt;
  // Compare in seconds first: a date thousands of years away does not fit in `now`'s nanoseconds.
  const auto ahead = *date - std::chrono::floor<std::chrono::seconds>(now);
  if (ahead.count() > kMaxRetryAfterSeconds) {
    return std::chrono::duration_cast<Millis>(std::chrono::seconds{kMaxRetryAfterSeconds});
  }
  if (ahead.count() <= 0) return Millis{0};
  // Round up: retrying a few hundred microseconds before the date the consumer named is early.
  return std::chrono::ceil<Millis>(*date - now);
}

namespace {

bool contains(std::string_view text, std::string_view part) {
  return text.find(part) != std::string_view::npos;
}

std::string tls_verification_message(const TlsFailure& f) {
  if (f.verify_error.empty() || contains(f.verify_error, "hostname mismatch") ||
      contains(f.verify_error, "IP address mismatch")) {
    return fmt::format(
        "TLS: server certificate does not match host \"{}\"{}; the endpoint must use a name or "
        "IP address listed in the certificate's subjectAltName",
        f.host, f.verify_error.empty() ? "" : " (" + f.verify_error + ")");
  }
  const std::string hint =
      f.ca_file.empty()
          ? "the system CA store does not trust it: set tls.ca_file to the CA that signed the "
            "server's certificate"
          : fmt::format(
                "check that tls.ca_file \"{}\" is the CA that signed the server's "
                "certificate",
                f.ca_file);
  return fmt::format("TLS: server certificate verification failed ({}); {}", f.verify_error, hint);
}

std::string tls_handshake_message(const TlsFailure& f) {
  if (f.stage == TlsFailure::Stage::kLoadingCa) {
    return f.ca_file.empty() ? fmt::format("TLS: cannot load the system CA store{}",
                                           f.ssl_error.empty() ? "" : " (" + f.ssl_error + ")")
                             : fmt::format("TLS: cannot load tls.ca_file \"{}\"{}", f.ca_file,
                                           f.ssl_error.empty() ? "" : " (" + f.ssl_error + ")");
  }
  if (f.peer_alert || (f.after_handshake && f.certificate_requested)) {
    // The server refused us, by an alert or by closing the connection just after asking for our
    // certificate; with a client certificate in play that is nearly always about it.
    const std::string detail =
        f.peer_alert
            ? f.ssl_error
            : "the connection closed right after the server asked for a client certificate";
    std::string hint;
    if (f.client_certificate) {
      hint = "check that the server trusts tls.cert_file and that it has not expired";
    } else if (f.certificate_requested) {
      hint = "the server requires a client certificate: set tls.cert_file and tls.key_file";
    } else {
      hint = "if the server requires a client certificate, set tls.cert_file and tls.key_file";
    }
    return fmt::format("TLS: the server refused the handshake ({}); {}", detail, hint);
  }
  if (f.ssl_error.empty()) {
    return "TLS: handshake did not complete (connection closed or timed out during the handshake)";
  }
  // OpenSSL's words for "the other side does not speak TLS", e.g. plain HTTP on that port.
  const bool not_tls = contains(f.ssl_error, "wrong version number") ||
                       contains(f.ssl_error, "packet length too long") ||
                       contains(f.ssl_error, "record layer failure") ||
                       contains(f.ssl_error, "http request");
  return fmt::format("TLS: handshake failed ({}){}", f.ssl_error,
                     not_tls ? "; is the endpoint serving HTTPS on this port?" : "");
}

}  // namespace

DeliveryOutcome classify_tls_failure(const TlsFailure& failure) {
  DeliveryOutcome outcome;
  outcome.kind = DeliveryOutcome::Kind::kRetryable;
  outcome.status = 0;
  if (failure.stage == TlsFailure::Stage::kVerification) {
    outcome.cause = DeliveryOutcome::Cause::kTlsVerification;
    outcome.error = tls_verification_message(failure);
  } else {
    outcome.cause = DeliveryOutcome::Cause::kTlsHandshake;
    outcome.error = tls_handshake_message(failure);
  }
  return outcome;
}

}  // namespace relay::delivery
