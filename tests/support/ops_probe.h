#pragma once
// OpsProbe: a client for relay's ops listener (/healthz, /readyz, /status, /metrics) in
// integration tests, and a reader for single samples of the Prometheus text format.
// Not thread-safe; one owner.

#include <httplib.h>

#include <optional>
#include <sstream>
#include <string>
#include <utility>

namespace relay::testing {

class OpsProbe {
 public:
  // 127.0.0.1:port, with short timeouts so a probe against a stuck relay fails instead of hanging.
  explicit OpsProbe(int port) : client_("127.0.0.1", port) {
    client_.set_connection_timeout(2);
    client_.set_read_timeout(5);
  }

  // {status, body}; {0, ""} when nothing answered.
  std::pair<int, std::string> get(const std::string& path) {
    auto res = client_.Get(path.c_str());
    if (!res) return {0, ""};
    return {res->status, res->body};
  }

  // The /metrics text, or "" unless it answered 200.
  std::string metrics() {
    auto [status, body] = get("/metrics");
    return status == 200 ? body : std::string();
  }

  // The value of the sample whose name-and-labels part is exactly `series` (prometheus-cpp writes
  // labels in alphabetical order), or nullopt if absent.
  static std::optional<double> sample(const std::string& text, const std::string& series) {
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
      if (line.size() > series.size() && line.compare(0, series.size(), series) == 0 &&
          line[series.size()] == ' ') {
        return std::stod(line.substr(series.size() + 1));
      }
    }
    return std::nullopt;
  }

 private:
  httplib::Client client_;
};

}  // namespace relay::testing
