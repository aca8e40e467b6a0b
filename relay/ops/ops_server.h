#pragma once
// OpsServer: relay's operations listener (ops.listen): GET /healthz, /readyz, /status and /metrics,
// and the status page at / (status_page.h, which reads /status and /metrics), served by relay's
// one HTTP server (relay/http). It only calls the callbacks it is given, so it
// depends on no other component. Thread-safe: the callbacks run on the server's worker threads.

#include <functional>
#include <memory>
#include <string>

#include "relay/common/clock.h"
#include "relay/common/result.h"
#include "relay/http/http_server.h"

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
  ~OpsServer();  // stops the listener and joins its threads
  OpsServer(const OpsServer&) = delete;
  OpsServer& operator=(const OpsServer&) = delete;

  int port() const { return server_->port(); }

  // The answer to one request (what the server's handler returns); public for tests.
  http::HttpResponse handle(const http::HttpRequest& request) const;

 private:
  explicit OpsServer(OpsCallbacks callbacks) : callbacks_(std::move(callbacks)) {}
  const OpsCallbacks callbacks_;
  SystemClock clock_;
  std::unique_ptr<http::HttpServer> server_;  // last: stopped before the callbacks go
};

}  // namespace relay::ops
