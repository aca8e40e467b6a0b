#pragma once
// OpsServer: relay's operations listener (ops.listen): GET /healthz, /readyz, /status and /metrics.
// It owns one cpp-httplib server thread and only calls the callbacks it is given, so it depends on
// no other component. Thread-safe: the callbacks run on the server's worker threads.

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "relay/common/result.h"

namespace httplib {
class Server;
}

namespace relay::ops {

struct OpsCallbacks {
  // The process loop is alive and not wedged. Empty string = healthy, else why not.
  std::function<std::string()> health;
  // Ready to work: database reachable, schema current, config loaded. Empty string = ready.
  std::function<std::string()> readiness;
  // The /status JSON document.
  std::function<std::string()> status_json;
  // The /metrics body in the Prometheus text exposition format (0.0.4). Unset: 404.
  std::function<std::string()> metrics_text;
};

class OpsServer {
 public:
  // Binds `listen` ("host:port"; port 0 picks a free one). kInvalidArgument for a bad address,
  // kUnavailable if it cannot bind.
  static Result<std::unique_ptr<OpsServer>> start(const std::string& listen,
                                                  OpsCallbacks callbacks);
  ~OpsServer();  // stops the listener and joins its thread
  OpsServer(const OpsServer&) = delete;
  OpsServer& operator=(const OpsServer&) = delete;

  int port() const { return port_; }

 private:
  OpsServer() = default;
  OpsCallbacks callbacks_;
  std::unique_ptr<httplib::Server> server_;
  int port_ = 0;
  std::thread thread_;  // last: joined before the server goes
};

}  // namespace relay::ops
