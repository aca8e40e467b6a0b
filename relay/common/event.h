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
  // Set only by a source that hands out events before their deliver_after (the WAL source streams
  // every insert at commit): the pipeline parks such an event in relay.delivery until then.
  std::optional<std::chrono::system_clock::time_point> deliver_after;
};

}  // namespace relay
