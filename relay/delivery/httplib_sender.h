#pragma once
// HttplibSender: HttpSender over one cpp-httplib client: one keep-alive connection with
// TCP_NODELAY, so one request at a time. Not thread-safe except stop(); give each lane its own.
//
// https:// endpoints verify the server's certificate chain and host name (subjectAltName DNS or
// IP) against tls.ca_file, or OpenSSL's default store when it is empty; tls.verify: false turns
// verification off (one warning per subscription). tls.cert_file/key_file add a client certificate
// (mTLS). A TLS failure is a kRetryable outcome with cause kTlsVerification or kTlsHandshake and
// an error text that names the likely fix: it usually needs the operator, and the events wait.

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "relay/common/clock.h"
#include "relay/common/endpoint.h"
#include "relay/common/result.h"
#include "relay/config/config.h"
#include "relay/delivery/request_builder.h"
#include "relay/delivery/sender.h"
#include "relay/delivery/signer.h"

namespace httplib {
class ClientImpl;
class SSLClient;
enum class Error;
}  // namespace httplib

namespace relay::delivery {

class HttplibSender final : public HttpSender {
 public:
  // Returns kInvalidArgument, with a message naming the subscription and the key, for an unset
  // endpoint (the config loader parses it), a bad signing secret, or (https) a tls.ca_file without
  // a PEM certificate, a tls.cert_file/key_file that cannot be loaded or do not match. Never
  // includes file contents or secrets. Reads the TLS files; makes no connection.
  static Result<std::unique_ptr<HttplibSender>> create(const config::SubscriptionConfig& sub,
                                                       Clock& clock);
  ~HttplibSender() override;
  HttplibSender(const HttplibSender&) = delete;
  HttplibSender& operator=(const HttplibSender&) = delete;

  DeliveryOutcome send(const Event& event, int attempt) override;
  DeliveryOutcome send_batch(std::span<const BatchItem> items) override;
  void stop() override;

  // What OpenSSL saw of the TLS handshake during one send. Defined in the .cc, public only so that
  // the OpenSSL callback there can name it.
  struct HandshakeTrace;

 private:
  DeliveryOutcome post(OutgoingRequest request);
  // The outcome for a failed send on a TLS connection, or nullopt if TLS was not the cause.
  std::optional<DeliveryOutcome> tls_failure(httplib::Error err) const;

  HttplibSender(const config::SubscriptionConfig& sub, Clock& clock, const Endpoint& endpoint,
                std::unique_ptr<httplib::ClientImpl> client, httplib::SSLClient* tls,
                std::unique_ptr<HandshakeTrace> trace, std::vector<Signer> signers);

  const config::SubscriptionConfig sub_;
  Clock& clock_;
  const std::string host_;
  const std::string path_;
  // https:// only; written by an OpenSSL callback on the sending thread during client_->send.
  // Declared before client_ so that it outlives the TLS context that points to it.
  const std::unique_ptr<HandshakeTrace> trace_;
  std::unique_ptr<httplib::ClientImpl> client_;
  httplib::SSLClient* const tls_;      // client_ itself for https://, else null
  const std::vector<Signer> signers_;  // one per signing secret, in config order
  // Made once here rather than per request (it copies the subscription's headers).
  const RequestContext context_;
};

}  // namespace relay::delivery
