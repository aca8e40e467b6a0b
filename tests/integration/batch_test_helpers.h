#pragma once
// What the batch tests share: reading the events out of a batch request as a consumer would
// (a JSON array of CloudEvents, or a relay.v1.EventBatch), and the subscription keys of a batch
// subscription.

#include <fmt/format.h>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "relay/delivery/envelope.h"
#include "tests/support/fake_consumer.h"

namespace relay::testing {

// One event as it was found in a batch body.
struct BatchEvent {
  std::string id;
  std::string key;  // "" when the event has none
  int k = -1;       // from the payload {"k": .., "n": ..}, when present
  int n = -1;
  int attempt = 0;  // relayattempt / Event.attempt; 0 when absent
};

inline std::string content_type_of(const ReceivedRequest& r) {
  return r.headers.count("content-type") ? r.headers.at("content-type") : "";
}

inline void read_batch_payload(const nlohmann::json& data, BatchEvent& e) {
  if (data.is_object() && data.contains("k")) e.k = data["k"].get<int>();
  if (data.is_object() && data.contains("n")) e.n = data["n"].get<int>();
}

// The events of one batch request, in body order. Fails the test on anything but a batch body.
inline std::vector<BatchEvent> events_of(const ReceivedRequest& r) {
  std::vector<BatchEvent> out;
  const std::string content_type = content_type_of(r);
  if (content_type == "application/cloudevents-batch+json") {
    const auto body = nlohmann::json::parse(r.body);
    REQUIRE(body.is_array());
    for (const auto& ce : body) {
      BatchEvent e;
      e.id = ce.at("id").get<std::string>();
      if (ce.contains("subject")) e.key = ce["subject"].get<std::string>();
      if (ce.contains("data")) read_batch_payload(ce["data"], e);
      if (ce.contains("relayattempt")) e.attempt = ce["relayattempt"].get<int>();
      out.push_back(std::move(e));
    }
  } else if (content_type.rfind("application/x-protobuf", 0) == 0) {
    auto batch = relay::delivery::decode_protobuf_batch(r.body);
    REQUIRE(batch.has_value());
    for (const auto& d : *batch) {
      BatchEvent e;
      e.id = d.id;
      e.key = d.key.value_or("");
      read_batch_payload(nlohmann::json::parse(d.payload), e);
      e.attempt = d.attempt;
      out.push_back(std::move(e));
    }
  } else {
    FAIL("not a batch request: Content-Type \"" << content_type << "\"");
  }
  return out;
}

// "    format: F\n    batch: {...}\n": the subscription keys of a batch subscription.
inline std::string batch_keys(const std::string& format, int max_events, long long max_bytes,
                              const std::string& linger) {
  return fmt::format("    format: {}\n    batch: {{ max_events: {}, max_bytes: {}, linger: {} }}\n",
                     format, max_events, max_bytes, linger);
}

}  // namespace relay::testing
