#pragma once
// Plain structs for relay.yaml. One field per config key, named as the key. Defaults here are the
// documented defaults; load_config() fills in what the file sets and validates ranges.

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "relay/common/duration.h"

namespace relay::config {

struct DatabaseConfig {
  std::string url;  // required unless --database-url or DATABASE_URL is given
};

struct SourceConfig {
  std::string mode = "table";  // only "table" in this version
  int batch_size = 500;        // events per claim, 1..10000
  Millis poll_interval{1000};  // safety-net poll when no wake-up arrives, 10ms..1h
  Millis lease{60'000};        // how long a claim is held before another relay may take it, 1s..1h
};

struct RetryConfig {
  int max_attempts = 12;        // 1..1000, counting the first attempt
  Millis initial_backoff{500};  // 1ms..1h
  Millis max_backoff{600'000};  // >= initial_backoff, ..7d
  Millis max_age{86'400'000};   // give up on an event failing for longer than this, 1s..30d
};

struct CircuitBreakerConfig {
  int failure_threshold = 5;  // consecutive retryable failures that open the breaker, 1..1000
  Millis open_for{30'000};    // first open period, 10ms..1h
  Millis max_open_for{
      600'000};  // open periods double on repeated trips up to this, >= open_for, ..24h
};

// Token bucket per subscription: at most `events_per_second` on average, bursts up to `burst`.
struct RateLimitConfig {
  double events_per_second = 0;  // 0.001..1e6
  int burst = 1;                 // 1..1e6; defaults to max(1, ceil(events_per_second)) when omitted
};

struct SubscriptionConfig {
  std::string name;                 // required, [a-z0-9_.-]+, unique
  std::vector<std::string> topics;  // required, non-empty list of globs
  std::string endpoint;             // required, http:// URL
  std::string format = "binary";    // only "binary" in this version
  Millis timeout{5000};             // whole-request timeout, 1ms..10m
  Millis connect_timeout{2000};     // TCP connect timeout, 1ms..1m
  int max_in_flight = 64;           // concurrent requests to this endpoint, 1..4096
  RetryConfig retry;
  // Key "signing_secret": one string or a list (rotation: one signature per secret, in this order).
  // Each is "whsec_<base64>" or raw. Empty = unsigned (a single empty string also means unsigned).
  std::vector<std::string> signing_secrets;
  // Key "headers": extra request headers (name -> value) in file order. Names are HTTP tokens and
  // never relay's own headers; values have no CR/LF/NUL. Values may be secrets: never log them.
  std::vector<std::pair<std::string, std::string>> headers;
  std::int64_t max_response_bytes = 4096;  // response body kept for the dead letter, 0..1MiB
  std::string ordering = "per_key";        // per_key | none
  std::string on_dead_letter =
      "skip";  // skip | block: what a key's later events do when its head is dead-lettered
  CircuitBreakerConfig circuit_breaker;
  std::optional<RateLimitConfig> rate_limit;  // absent: unlimited
};

struct OpsConfig {
  std::string listen;  // "host:port" for /metrics /healthz /readyz /status; empty = no ops
                       // listener; port 0 = any
};

struct LimitsConfig {
  std::int64_t max_payload_bytes = 1'048'576;  // 1..64MiB
};

struct LogConfig {
  std::string level = "info";   // debug | info | warn | error
  std::string format = "text";  // text | json
};

struct Config {
  std::string path;  // the file it was loaded from, for messages
  DatabaseConfig database;
  SourceConfig source;
  std::vector<SubscriptionConfig> subscriptions;  // at least one
  LimitsConfig limits;
  LogConfig log;
  OpsConfig ops;
  Millis shutdown_timeout{25'000};  // 0..10m
};

// One problem found in a config file. line/column are 1-based; 0 when the problem has no place in
// the file (e.g. the file cannot be read).
struct ConfigError {
  std::string file;
  int line = 0;
  int column = 0;
  std::string key_path;  // dotted, with list indexes: "subscriptions[0].retry.max_attempts"
  std::string message;
  // "relay.yaml:12:5: subscriptions[0].timeout: invalid duration \"5x\" ..."
  std::string to_string() const;
};

}  // namespace relay::config
