#pragma once
// Event: one outbox row as relay carries it from the Source to Delivery. Plain data.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

namespace relay {

struct Event {
  std::int64_t outbox_id = 0;  // relay.outbox.id: per-key order in table mode
  std::string event_id;        // uuid text: the idempotency key
  std::string topic;
  std::optional<std::string> key;  // ordering key; nullopt = unordered
  std::string payload;             // raw bytes
  std::string content_type = "application/json";
  std::string headers_json = "{}";  // the app's extra headers (jsonb as text)
  std::chrono::system_clock::time_point created_at{};
  std::optional<std::chrono::system_clock::time_point> expires_at;
};

}  // namespace relay
