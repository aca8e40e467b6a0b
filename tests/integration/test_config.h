#pragma once
// Builds relay.yaml text for integration tests: small backoffs and short leases so failure paths
// finish in seconds, without sleeping in the test.

#include <fmt/format.h>

#include <string>
#include <vector>

namespace relay::testing {

struct TestSubscription {
  std::string name;
  std::vector<std::string> topics;
  std::string endpoint;
  int max_attempts = 5;
  std::string initial_backoff = "20ms";
  std::string max_backoff = "200ms";
  std::string timeout =
      "30s";  // a loaded machine may stall a request for seconds: no spurious retry
  int max_in_flight = 8;
  std::string extra;  // more subscription keys, YAML lines indented by 4 spaces
};

struct TestRelayConfig {
  std::vector<TestSubscription> subscriptions;
  int batch_size = 100;
  std::string poll_interval = "200ms";
  std::string lease = "10s";
  std::string shutdown_timeout = "10s";
  std::string source_extra;  // more source keys, YAML lines indented by 2 spaces
  std::string extra;         // appended verbatim (top-level keys)
};

inline std::string to_yaml(const TestRelayConfig& c) {
  std::string out = fmt::format(
      "database:\n  url: ${{DATABASE_URL}}\n"
      "source:\n  batch_size: {}\n  poll_interval: {}\n  lease: {}\n{}"
      "shutdown_timeout: {}\n"
      "subscriptions:\n",
      c.batch_size, c.poll_interval, c.lease, c.source_extra, c.shutdown_timeout);
  for (const auto& s : c.subscriptions) {
    std::string topics;
    for (size_t i = 0; i < s.topics.size(); ++i)
      topics += fmt::format("{}\"{}\"", i ? ", " : "", s.topics[i]);
    out += fmt::format(
        "  - name: {}\n    topics: [{}]\n    endpoint: {}\n    timeout: {}\n    max_in_flight: {}\n"
        "    retry: {{ max_attempts: {}, initial_backoff: {}, max_backoff: {} }}\n",
        s.name, topics, s.endpoint, s.timeout, s.max_in_flight, s.max_attempts, s.initial_backoff,
        s.max_backoff);
    out += s.extra;
  }
  out += c.extra;
  return out;
}

}  // namespace relay::testing
