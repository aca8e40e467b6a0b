#include "relay/ops/ops_server.h"

#include <fmt/format.h>
#include <httplib.h>

namespace relay::ops {

Result<std::unique_ptr<OpsServer>> OpsServer::start(const std::string& listen,
                                                    OpsCallbacks callbacks) {
  const auto colon = listen.rfind(':');
  if (colon == std::string::npos || colon == 0) {
    return Error{ErrorCode::kInvalidArgument,
                 fmt::format("ops.listen \"{}\" is not host:port", listen)};
  }
  std::string host = listen.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  int port = 0;
  try {
    port = std::stoi(listen.substr(colon + 1));
  } catch (const std::exception&) {
    return Error{ErrorCode::kInvalidArgument,
                 fmt::format("ops.listen \"{}\" has no valid port", listen)};
  }

  std::unique_ptr<OpsServer> ops(new OpsServer());
  ops->callbacks_ = std::move(callbacks);
  ops->server_ = std::make_unique<httplib::Server>();
  auto& srv = *ops->server_;
  // Probes and scrapes are small and few: a small pool, short timeouts, no long keep-alive.
  srv.new_task_queue = [] { return new httplib::ThreadPool(2); };
  srv.set_keep_alive_timeout(2);
  srv.set_read_timeout(5, 0);
  srv.set_write_timeout(5, 0);
  srv.set_payload_max_length(1024);
  OpsServer* self = ops.get();
  auto text = [](httplib::Response& res, int status, const std::string& body) {
    res.status = status;
    res.set_content(body + "\n", "text/plain; charset=utf-8");
  };
  srv.Get("/healthz", [self, text](const httplib::Request&, httplib::Response& res) {
    const std::string why = self->callbacks_.health ? self->callbacks_.health() : "";
    text(res, why.empty() ? 200 : 503, why.empty() ? "ok" : why);
  });
  srv.Get("/readyz", [self, text](const httplib::Request&, httplib::Response& res) {
    const std::string why = self->callbacks_.readiness ? self->callbacks_.readiness() : "";
    text(res, why.empty() ? 200 : 503, why.empty() ? "ready" : why);
  });
  srv.Get("/status", [self](const httplib::Request&, httplib::Response& res) {
    res.set_content(self->callbacks_.status_json ? self->callbacks_.status_json() : "{}",
                    "application/json");
  });
  srv.Get("/metrics", [self](const httplib::Request&, httplib::Response& res) {
    if (!self->callbacks_.metrics_text) {
      res.status = 404;
      return;
    }
    res.set_content(self->callbacks_.metrics_text(), "text/plain; version=0.0.4; charset=utf-8");
  });

  if (port == 0) {
    port = srv.bind_to_any_port(host);
    if (port < 0) return Error{ErrorCode::kUnavailable, fmt::format("cannot listen on {}", listen)};
  } else if (!srv.bind_to_port(host, port)) {
    return Error{ErrorCode::kUnavailable, fmt::format("cannot listen on {}", listen)};
  }
  ops->port_ = port;
  ops->thread_ = std::thread([self] { self->server_->listen_after_bind(); });
  return ops;
}

OpsServer::~OpsServer() {
  if (server_) server_->stop();
  if (thread_.joinable()) thread_.join();
}

}  // namespace relay::ops
