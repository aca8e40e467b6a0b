#pragma once
// What the sender tests (httplib_sender_test.cc, plain_http_sender_test.cc) share: one
// subscription and one event, so that both senders are held to the same inputs.

#include <chrono>
#include <string>

#include "relay/common/endpoint.h"
#include "relay/config/config.h"
#include "relay/common/event.h"

namespace relay::delivery::testing {

inline config::SubscriptionConfig subscription(const std::string& endpoint) {
  using namespace std::chrono_literals;
  config::SubscriptionConfig sub;
  sub.name = "billing";
  sub.topics = {"order.*"};
  sub.endpoint = parse_endpoint(endpoint).value();
  sub.timeout = 5s;
  sub.connect_timeout = 2s;
  sub.retry.max_backoff = 60s;
  sub.max_response_bytes = 16;
  return sub;
}

inline Event sample_event() {
  Event e;
  e.event_id = "0b9e7a8c-6c3f-4d1e-9a57-3f0c2b1d4e5f";
  e.topic = "order.paid";
  e.key = "order-17";
  e.payload = R"({"order":17})";
  return e;
}

}  // namespace relay::delivery::testing
