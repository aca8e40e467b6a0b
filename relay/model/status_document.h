#pragma once
// StatusDocument: what a running relay serves at GET /status on its ops listener and what
// `relay status` reads back from it. One type, so the writer and the reader cannot drift apart.
// Plain values; to_json/parse are pure functions and thread-safe.
//
// The JSON (field names and types are a public interface; keys are written in sorted order):
//   {"owner": "host:pid:nonce",            absent until the pipeline runs
//    "ready": true,                         the pipeline's last database call succeeded
//    "state": "running",                    or "starting" / "waiting for the database"
//    "subscriptions": [
//      {"breaker": {"consecutive_failures": 0, "open_for_ms": 10000, "reopens_in_ms": 0,
//                   "state": "closed", "trips": 0},       state: closed | open | half_open
//       "in_flight": 0,                     requests on the wire now
//       "name": "billing",
//       "rate_limit": {"tokens_available": 4.5}}],         absent when not rate limited
//    "version": "0.1.0"}

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "relay/common/result.h"
#include "relay/model/modes.h"

namespace relay::model {

struct BreakerStatus {
  BreakerState state = BreakerState::kClosed;
  std::int64_t consecutive_failures = 0;  // retryable failures in a row
  std::int64_t trips = 0;                 // times it opened
  std::int64_t open_for_ms = 0;           // length of the current (or next) open period
  std::int64_t reopens_in_ms = 0;         // open: time until the half-open probe; otherwise 0
};

struct SubscriptionStatus {
  std::string name;
  std::int64_t in_flight = 0;
  BreakerStatus breaker;
  std::optional<double> rate_tokens_available;  // rate limit tokens now; nullopt: unlimited
};

struct StatusDocument {
  std::string version;
  std::optional<std::string> owner;
  bool ready = false;
  std::string state;
  std::vector<SubscriptionStatus> subscriptions;
};

// The document as compact JSON (the bytes GET /status answers).
std::string to_json(const StatusDocument& doc);

// Reads a document written by to_json. kInvalidArgument when `json` is not JSON, not an object, or
// a field is missing or of the wrong type; the message names the field
// ("subscriptions[1].breaker.state: expected one of closed, open, half_open"). Unknown fields are
// ignored, so a newer relay may add some.
Result<StatusDocument> parse_status_document(std::string_view json);

}  // namespace relay::model
