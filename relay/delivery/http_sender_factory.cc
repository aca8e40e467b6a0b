#include "relay/delivery/http_sender_factory.h"

#include <fmt/format.h>

#include <utility>

#include "relay/delivery/httplib_sender.h"
#include "relay/delivery/plain_http_sender.h"

namespace relay::delivery {

Result<std::vector<Signer>> check_subscription_and_make_signers(
    const config::SubscriptionConfig& sub) {
  // The config loader parsed the endpoint (common/endpoint.h); only a config built in code can
  // lack one.
  if (sub.endpoint.host.empty()) {
    return Error{ErrorCode::kInvalidArgument,
                 fmt::format("subscription \"{}\": endpoint is not set", sub.name)};
  }
  std::vector<Signer> signers;
  for (std::size_t i = 0; i < sub.signing_secrets.size(); ++i) {
    auto created = Signer::create(sub.signing_secrets[i]);
    if (!created) {
      return Error{ErrorCode::kInvalidArgument,
                   fmt::format("subscription \"{}\": signing_secret[{}]: {}", sub.name, i,
                               created.error().message)};
    }
    signers.push_back(std::move(*created));
  }
  return signers;
}

RequestContext request_context(const config::SubscriptionConfig& sub,
                               std::span<const Signer> signers) {
  return RequestContext{.subscription = sub.name,
                        .format = sub.format,
                        .signers = signers,
                        .subscription_headers = sub.headers};
}

Result<std::unique_ptr<HttpSender>> make_http_sender(const config::SubscriptionConfig& sub,
                                                     Clock& clock) {
  if (sub.endpoint.tls) {
    auto sender = HttplibSender::create(sub, clock);
    if (!sender) return sender.error();
    return std::unique_ptr<HttpSender>(std::move(*sender));
  }
  auto sender = PlainHttpSender::create(sub, clock);
  if (!sender) return sender.error();
  return std::unique_ptr<HttpSender>(std::move(*sender));
}

}  // namespace relay::delivery
