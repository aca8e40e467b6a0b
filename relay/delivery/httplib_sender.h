#pragma once
// HttplibSender: HttpSender over one cpp-httplib Client: one keep-alive connection with
// TCP_NODELAY, so one request at a time. Not thread-safe except stop(); give each lane its own.

#include <memory>
#include <optional>
#include <vector>

#include "relay/common/clock.h"
#include "relay/common/result.h"
#include "relay/config/config.h"
#include "relay/delivery/request_builder.h"
#include "relay/delivery/sender.h"
#include "relay/delivery/signer.h"

namespace httplib {
class Client;
}

namespace relay::delivery {

class HttplibSender final : public HttpSender {
 public:
  // Returns kInvalidArgument for an endpoint that is not an http:// URL or a bad signing secret.
  static Result<std::unique_ptr<HttplibSender>> create(const config::SubscriptionConfig& sub,
                                                       Clock& clock);
  ~HttplibSender() override;
  HttplibSender(const HttplibSender&) = delete;
  HttplibSender& operator=(const HttplibSender&) = delete;

  DeliveryOutcome send(const Event& event, int attempt) override;
  DeliveryOutcome send_batch(std::span<const BatchItem> items) override;
  void stop() override;

 private:
  RequestContext context() const;
  DeliveryOutcome post(OutgoingRequest request);

  HttplibSender(const config::SubscriptionConfig& sub, Clock& clock, std::string path,
                std::unique_ptr<httplib::Client> client, std::vector<Signer> signers);

  const config::SubscriptionConfig sub_;
  Clock& clock_;
  const std::string path_;
  std::unique_ptr<httplib::Client> client_;
  const std::vector<Signer> signers_;  // one per signing secret, in config order
};

}  // namespace relay::delivery
