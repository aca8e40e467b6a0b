#pragma once
// Picks the HttpSender for a subscription's endpoint: PlainHttpSender for http://, HttplibSender
// (TLS) for https://. Also the checks every sender's create() shares.

#include <memory>
#include <vector>

#include "relay/common/clock.h"
#include "relay/common/result.h"
#include "relay/config/config.h"
#include "relay/delivery/request_builder.h"
#include "relay/delivery/sender.h"
#include "relay/delivery/signer.h"

namespace relay::delivery {

// PlainHttpSender::create for an http:// endpoint, HttplibSender::create for https://; their
// errors as they return them (kInvalidArgument naming the subscription and the key).
Result<std::unique_ptr<HttpSender>> make_http_sender(const config::SubscriptionConfig& sub,
                                                     Clock& clock);

// The checks both senders make before anything else: kInvalidArgument "subscription \"<name>\":
// endpoint is not set" for an unset endpoint, or "subscription \"<name>\": signing_secret[<i>]:
// <why>" for a bad secret (never quoting it). Returns one Signer per signing secret, in order.
Result<std::vector<Signer>> check_subscription_and_make_signers(
    const config::SubscriptionConfig& sub);

// What the request builder needs of a subscription. A sender makes it once, in its constructor:
// `signers` must outlive it (the sender's own vector).
RequestContext request_context(const config::SubscriptionConfig& sub,
                               std::span<const Signer> signers);

}  // namespace relay::delivery
