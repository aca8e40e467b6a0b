#include "relay/delivery/httplib_sender.h"

#include <fmt/format.h>
#include <httplib.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <exception>
#include <mutex>
#include <set>
#include <string_view>
#include <utility>

#include "relay/common/log.h"
#include "relay/common/version.h"
#include "relay/delivery/classify.h"
#include "relay/delivery/http_sender_factory.h"
#include "relay/delivery/request_builder.h"

namespace relay::delivery {

// Reset before each send on a TLS connection. A new connection's handshake happens inside
// client_->send; with TLS 1.3 the server judges our client certificate only after our side of the
// handshake is done, so its verdict (an alert) may arrive on a later read, or be lost when the
// connection is reset while we write. What the handshake showed lets us name the cause anyway.
struct HttplibSender::HandshakeTrace {
  bool certificate_requested = false;  // the server sent a CertificateRequest
  std::string alert;                   // a fatal alert the server sent, e.g. "unknown CA"
};

namespace {

// OpenSSL 3.0 names TLS 1.3's newer alerts "unknown"; the one a refused client sees most is 116.
std::string alert_text(int code) {
  if (code == 116) return "certificate required";
  const std::string text = SSL_alert_desc_string_long(code);
  return text == "unknown" ? fmt::format("alert {}", code) : text;
}

// SSL_CTX message callback: records what the server sent (write_p == 0) into the HandshakeTrace.
void trace_message(int write_p, int, int content_type, const void* buf, size_t len, SSL*,
                   void* arg) {
  if (write_p != 0 || arg == nullptr || len == 0) return;
  auto* trace = static_cast<HttplibSender::HandshakeTrace*>(arg);
  const auto* bytes = static_cast<const unsigned char*>(buf);
  if (content_type == SSL3_RT_HANDSHAKE && bytes[0] == SSL3_MT_CERTIFICATE_REQUEST) {
    trace->certificate_requested = true;
  } else if (content_type == SSL3_RT_ALERT && len == 2 && bytes[0] == SSL3_AL_FATAL) {
    trace->alert = alert_text(bytes[1]);
  }
}

// httplib reports a read timeout and a peer that closed or reset the connection both as
// Error::Read (Write likewise), so the time the request took tells them apart.
DeliveryOutcome transport_failure(httplib::Error err, Clock::Duration elapsed, Millis timeout,
                                  Millis connect_timeout) {
  const bool timed_out = elapsed >= timeout * 9 / 10;
  const auto failure = [&](TransportFailure f) {
    return delivery::transport_failure(f, timeout, connect_timeout);
  };
  switch (err) {
    case httplib::Error::Connection:
      return failure(TransportFailure::kConnect);
    case httplib::Error::ConnectionTimeout:
      return failure(TransportFailure::kConnectTimeout);
    case httplib::Error::Read:
      return failure(timed_out ? TransportFailure::kReadTimeout : TransportFailure::kReadClosed);
    case httplib::Error::Write:
      return failure(timed_out ? TransportFailure::kWriteTimeout : TransportFailure::kWriteClosed);
    case httplib::Error::Canceled:
      return failure(TransportFailure::kCanceled);
    default:
      return retryable_failure("http client error: " + httplib::to_string(err));
  }
}

// One OpenSSL error taken from this thread's queue.
struct SslError {
  std::string reason;       // OpenSSL's text, e.g. "wrong version number"; "" if none was queued
  bool peer_alert = false;  // the server ended the handshake with a TLS alert
};

// Takes (and clears) this thread's OpenSSL error queue, where cpp-httplib leaves the cause of a
// failed handshake or a received alert. Prefers the first error from the TLS layer.
SslError take_ssl_error() {
  SslError first;
  bool have_ssl = false;
  while (const unsigned long e = ERR_get_error()) {
    const bool from_ssl = ERR_GET_LIB(e) == ERR_LIB_SSL;
    if (have_ssl || (!first.reason.empty() && !from_ssl)) continue;
    const char* reason = ERR_reason_error_string(e);
    if (ERR_SYSTEM_ERROR(e)) {
      first.reason = std::strerror(ERR_GET_REASON(e));  // the reason of a system error is errno
    } else {
      first.reason = reason != nullptr ? reason : fmt::format("OpenSSL error {:#x}", e);
    }
    // Alerts from the peer are reported as SSL_AD_REASON_OFFSET + the alert number.
    first.peer_alert = from_ssl && ERR_GET_REASON(e) >= SSL_AD_REASON_OFFSET;
    have_ssl = from_ssl;
  }
  return first;
}

// Loading a PEM file must never prompt for a pass phrase on the terminal: an encrypted key is
// reported as a load failure instead.
int no_passphrase(char*, int, int, void*) { return 0; }

Error tls_file_error(const config::SubscriptionConfig& sub, std::string_view key,
                     const std::string& path, std::string_view problem) {
  std::string reason = take_ssl_error().reason;
  return Error{ErrorCode::kInvalidArgument,
               fmt::format("subscription \"{}\": tls.{} \"{}\": {}{}", sub.name, key, path, problem,
                           reason.empty() ? "" : " (" + reason + ")")};
}

// The CA bundle is read here, at start-up, so that a wrong file is a start-up error rather than a
// failure on every request.
Status check_ca_file(const config::SubscriptionConfig& sub) {
  const std::string& path = sub.tls.ca_file;
  ERR_clear_error();
  BIO* bio = BIO_new_file(path.c_str(), "r");
  if (bio == nullptr) return tls_file_error(sub, "ca_file", path, "cannot be read");
  int certificates = 0;
  while (X509* cert = PEM_read_bio_X509(bio, nullptr, no_passphrase, nullptr)) {
    X509_free(cert);
    ++certificates;
  }
  BIO_free(bio);
  ERR_clear_error();  // the loop always ends on a "no start line" error at the end of the file
  if (certificates == 0) {
    return tls_file_error(sub, "ca_file", path, "holds no PEM certificate");
  }
  return {};
}

void warn_verification_off_once(const std::string& subscription) {
  // A subscription has one sender per lane; one warning per subscription is enough.
  static std::mutex mu;
  static std::set<std::string> warned;
  std::lock_guard lock(mu);
  if (!warned.insert(subscription).second) return;
  const Logger log("delivery");
  log.warn(
      "TLS certificate verification is off (tls.verify: false): anyone on the network path "
      "can impersonate the endpoint",
      {{"subscription", subscription}});
}

// Applies sub.tls to a new TLS client: trust store, host name check, client certificate, and the
// handshake trace.
Status configure_tls(const config::SubscriptionConfig& sub, const std::string& host,
                     httplib::SSLClient& client, HttplibSender::HandshakeTrace& trace) {
  SSL_CTX* ctx = client.ssl_context();
  if (ctx == nullptr) {
    return Error{ErrorCode::kInternal,
                 fmt::format("subscription \"{}\": cannot create a TLS context", sub.name)};
  }
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_default_passwd_cb(ctx, no_passphrase);
  SSL_CTX_set_msg_callback(ctx, trace_message);
  SSL_CTX_set_msg_callback_arg(ctx, &trace);
  if (!sub.tls.verify) {
    client.enable_server_certificate_verification(false);
    warn_verification_off_once(sub.name);
  } else {
    if (!sub.tls.ca_file.empty()) {
      if (auto ok = check_ca_file(sub); !ok) return ok.error();
      // Given a path, cpp-httplib trusts that file only; without one it loads OpenSSL's default
      // store (on Debian /usr/lib/ssl/cert.pem -> /etc/ssl/certs/ca-certificates.crt, or
      // $SSL_CERT_FILE / $SSL_CERT_DIR) when the first connection is made.
      client.set_ca_cert_path(sub.tls.ca_file);
    }
    // cpp-httplib 0.11 checks the name itself after the handshake, but only reports "failed";
    // asking OpenSSL to check it too puts "hostname mismatch" or "IP address mismatch" in the
    // verify result, which becomes the error text.
    X509_VERIFY_PARAM* param = SSL_CTX_get0_param(ctx);
    if (X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str()) != 1) {
      X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
      X509_VERIFY_PARAM_set1_host(param, host.c_str(), host.size());
    }
    ERR_clear_error();  // set1_ip_asc queues an error for a name that is not an IP address
  }
  if (sub.tls.cert_file.empty() != sub.tls.key_file.empty()) {
    return Error{ErrorCode::kInvalidArgument,
                 fmt::format("subscription \"{}\": tls.cert_file and tls.key_file must be set "
                             "together",
                             sub.name)};
  }
  if (!sub.tls.cert_file.empty()) {
    ERR_clear_error();
    if (SSL_CTX_use_certificate_chain_file(ctx, sub.tls.cert_file.c_str()) != 1) {
      return tls_file_error(sub, "cert_file", sub.tls.cert_file,
                            "cannot load a PEM certificate from it");
    }
    EVP_PKEY* key = nullptr;
    if (BIO* bio = BIO_new_file(sub.tls.key_file.c_str(), "r")) {
      key = PEM_read_bio_PrivateKey(bio, nullptr, no_passphrase, nullptr);
      BIO_free(bio);
    }
    if (key == nullptr) {
      return tls_file_error(sub, "key_file", sub.tls.key_file,
                            "cannot load an unencrypted PEM private key from it");
    }
    const bool matches = SSL_CTX_use_PrivateKey(ctx, key) == 1;  // checks it against the cert
    EVP_PKEY_free(key);
    if (!matches || SSL_CTX_check_private_key(ctx) != 1) {
      ERR_clear_error();
      return Error{ErrorCode::kInvalidArgument,
                   fmt::format("subscription \"{}\": tls.key_file \"{}\" is not the private key "
                               "of tls.cert_file \"{}\"",
                               sub.name, sub.tls.key_file, sub.tls.cert_file)};
    }
  }
  return {};
}

}  // namespace

Result<std::unique_ptr<HttplibSender>> HttplibSender::create(const config::SubscriptionConfig& sub,
                                                             Clock& clock) {
  auto checked = check_subscription_and_make_signers(sub);
  if (!checked) return checked.error();
  std::vector<Signer> signers = std::move(*checked);
  const Endpoint& endpoint = sub.endpoint;
  std::unique_ptr<httplib::ClientImpl> client;
  httplib::SSLClient* tls = nullptr;
  std::unique_ptr<HandshakeTrace> trace;
  if (endpoint.tls) {
    auto tls_client = std::make_unique<httplib::SSLClient>(endpoint.host, endpoint.port);
    trace = std::make_unique<HandshakeTrace>();
    if (auto ok = configure_tls(sub, endpoint.host, *tls_client, *trace); !ok) return ok.error();
    tls = tls_client.get();
    client = std::move(tls_client);
  } else {
    client = std::make_unique<httplib::ClientImpl>(endpoint.host, endpoint.port);
  }
  client->set_keep_alive(true);
  client->set_tcp_nodelay(true);  // without it every request waits ~40 ms on Nagle + delayed ACK
  client->set_follow_location(false);  // Standard Webhooks: a redirect is a failure, never followed
  client->set_connection_timeout(sub.connect_timeout);  // also bounds the TLS handshake
  // cpp-httplib 0.11 has no whole-request deadline, only per-socket-operation timeouts: a consumer
  // that trickles bytes slower than `timeout` apart can keep one request going longer than
  // `timeout`. Each wait is still bounded, and stop() aborts the request at shutdown.
  client->set_read_timeout(sub.timeout);
  client->set_write_timeout(sub.timeout);
  return std::unique_ptr<HttplibSender>(new HttplibSender(
      sub, clock, endpoint, std::move(client), tls, std::move(trace), std::move(signers)));
}

HttplibSender::HttplibSender(const config::SubscriptionConfig& sub, Clock& clock,
                             const Endpoint& endpoint, std::unique_ptr<httplib::ClientImpl> client,
                             httplib::SSLClient* tls, std::unique_ptr<HandshakeTrace> trace,
                             std::vector<Signer> signers)
    : sub_(sub),
      clock_(clock),
      host_(endpoint.host),
      path_(endpoint.path),
      trace_(std::move(trace)),
      client_(std::move(client)),
      tls_(tls),
      signers_(std::move(signers)),
      context_(request_context(sub, signers_)) {}

HttplibSender::~HttplibSender() = default;

void HttplibSender::stop() { client_->stop(); }

DeliveryOutcome HttplibSender::send(const Event& event, int attempt) {
  return post(build_request(event, attempt, clock_.wall_now(), context_));
}

DeliveryOutcome HttplibSender::send_batch(std::span<const BatchItem> items) {
  return post(build_batch_request(items, clock_.wall_now(), context_));
}

std::optional<DeliveryOutcome> HttplibSender::tls_failure(httplib::Error err) const {
  const SslError ssl = take_ssl_error();
  TlsFailure f;
  f.host = host_;
  f.ca_file = sub_.tls.ca_file;
  f.client_certificate = !sub_.tls.cert_file.empty();
  f.ssl_error = ssl.reason;
  f.certificate_requested = trace_->certificate_requested;
  if (!trace_->alert.empty()) {
    // The alert itself says more than the error OpenSSL queued for it.
    f.ssl_error = "alert: " + trace_->alert;
    f.peer_alert = true;
  }
  switch (err) {
    case httplib::Error::SSLLoadingCerts:
      f.stage = TlsFailure::Stage::kLoadingCa;
      break;
    case httplib::Error::SSLConnection:
      f.stage = TlsFailure::Stage::kHandshake;
      f.peer_alert = f.peer_alert || ssl.peer_alert;
      break;
    case httplib::Error::SSLServerVerification: {
      f.stage = TlsFailure::Stage::kVerification;
      const long result = tls_->get_openssl_verify_result();
      if (result != X509_V_OK) f.verify_error = X509_verify_cert_error_string(result);
      break;
    }
    case httplib::Error::Read:
    case httplib::Error::Write:
      // With TLS 1.3 the server checks the client certificate after the client has finished its
      // side of the handshake: a refusal arrives as an alert on the first read, or as a reset
      // while the request is still being written. The trace covers this send's handshake only.
      if (!f.peer_alert && !f.certificate_requested) return std::nullopt;
      f.stage = TlsFailure::Stage::kHandshake;
      f.after_handshake = true;
      break;
    default:
      return std::nullopt;
  }
  return classify_tls_failure(f);
}

DeliveryOutcome HttplibSender::post(OutgoingRequest out) {
  try {
    httplib::Request req;
    req.method = "POST";
    req.path = path_;
    for (auto& [name, value] : out.headers) req.headers.emplace(std::move(name), std::move(value));
    req.headers.emplace("Content-Type", std::move(out.content_type));
    req.headers.emplace("User-Agent", std::string("relay/") + kVersion);  // as PlainHttpSender's
    req.body = std::move(out.body);

    // Keep the head of the body for the dead letter and drain the rest: returning false would
    // cancel the request (and turn a 200 into a failure), and throwing from a receiver breaks
    // cpp-httplib 0.11's in-flight accounting (#1498).
    const size_t limit = static_cast<size_t>(std::max<std::int64_t>(sub_.max_response_bytes, 0));
    std::string snippet;
    req.content_receiver = [&snippet, limit](const char* data, size_t len, std::uint64_t,
                                             std::uint64_t) {
      if (snippet.size() < limit) snippet.append(data, std::min(len, limit - snippet.size()));
      return true;
    };

    httplib::Response res;
    httplib::Error err = httplib::Error::Success;
    const auto started = clock_.now();
    // OpenSSL reports a failure's cause in a per-thread queue: start from an empty one.
    if (tls_ != nullptr) {
      ERR_clear_error();
      *trace_ = HandshakeTrace{};
    }
    if (!client_->send(req, res, err)) {
      if (tls_ != nullptr) {
        if (auto failure = tls_failure(err)) return *failure;
      }
      return transport_failure(err, clock_.now() - started, sub_.timeout, sub_.connect_timeout);
    }

    DeliveryOutcome outcome;
    outcome.kind = classify_status(res.status);
    outcome.status = res.status;
    if (outcome.kind != DeliveryOutcome::Kind::kDelivered)
      outcome.error = fmt::format("HTTP {}", res.status);
    outcome.response_snippet = std::move(snippet);
    if (res.has_header("Retry-After")) {
      // The retry policy caps it by max_backoff (pipeline/retry_policy.h).
      outcome.retry_after =
          parse_retry_after(res.get_header_value("Retry-After"), clock_.wall_now());
    }
    return outcome;
  } catch (const std::bad_alloc&) {
    throw;  // fatal by policy (STYLE.md §4)
  } catch (const std::exception& e) {
    // cpp-httplib is not documented to throw here; this is the library-edge net.
    return retryable_failure(std::string("http client exception: ") + e.what());
  }
}

}  // namespace relay::delivery
