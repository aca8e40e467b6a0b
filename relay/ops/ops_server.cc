#include "relay/ops/ops_server.h"

#include <array>
#include <string_view>

#include "relay/ops/status_page.h"

namespace relay::ops {
namespace {

// Probes and scrapes are small and few: a small pool, short timeouts, no long keep-alive.
http::HttpServerLimits ops_limits() {
  http::HttpServerLimits limits;
  limits.workers = 2;
  limits.max_queued_connections = 16;
  limits.max_connections = 64;
  limits.read_timeout = std::chrono::seconds(5);
  limits.write_timeout = std::chrono::seconds(5);
  limits.idle_timeout = std::chrono::seconds(2);
  limits.max_body_bytes = 1024;
  return limits;
}

http::HttpResponse text(int status, const std::string& body) {
  return {.status = status,
          .headers = {{"Content-Type", "text/plain; charset=utf-8"}},
          .body = body + "\n"};
}

// The methods cpp-httplib (the ops listener's server before relay/http) knew; any other got 400,
// and these got 404 on every path but the GET (and HEAD) routes. Kept so that clients see the same.
bool is_known_method(std::string_view method) {
  constexpr std::array<std::string_view, 10> kKnown = {
      "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "PRI"};
  for (std::string_view m : kKnown) {
    if (m == method) return true;
  }
  return false;
}

// The status page may load nothing but itself: its inline style and script, and fetch() of /status
// and /metrics on the same origin. No external script, style, font, image or frame, so an
// air-gapped host shows it whole and an injected reference could not phone out. 'unsafe-inline'
// is what a self-contained page needs; the page writes data only through textContent.
constexpr const char* kStatusPagePolicy =
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'";

http::HttpResponse status_page() {
  return {.status = 200,
          .headers = {{"Content-Type", "text/html; charset=utf-8"},
                      {"Content-Security-Policy", kStatusPagePolicy},
                      {"X-Content-Type-Options", "nosniff"},
                      {"Referrer-Policy", "no-referrer"},
                      {"Cache-Control", "no-store"}},
          .body = std::string(status_page_html())};
}

}  // namespace

Result<std::unique_ptr<OpsServer>> OpsServer::start(const std::string& listen,
                                                    OpsCallbacks callbacks) {
  std::unique_ptr<OpsServer> ops(new OpsServer(std::move(callbacks)));
  const OpsServer* self = ops.get();
  auto server = http::HttpServer::start(
      listen, ops_limits(), [self](const http::HttpRequest& r) { return self->handle(r); },
      ops->clock_, "ops");
  if (!server) return server.error();
  ops->server_ = std::move(*server);
  return ops;
}

OpsServer::~OpsServer() {
  if (server_) server_->stop();
}

http::HttpResponse OpsServer::handle(const http::HttpRequest& request) const {
  if (!is_known_method(request.method)) return {.status = 400};
  if (request.method != "GET" && request.method != "HEAD") return {.status = 404};
  const std::string_view path = request.path();
  if (path == "/") return status_page();
  if (path == "/healthz") {
    const std::string why = callbacks_.health ? callbacks_.health() : "";
    return text(why.empty() ? 200 : 503, why.empty() ? "ok" : why);
  }
  if (path == "/readyz") {
    const std::string why = callbacks_.readiness ? callbacks_.readiness() : "";
    return text(why.empty() ? 200 : 503, why.empty() ? "ready" : why);
  }
  if (path == "/status") {
    return {.status = 200,
            .headers = {{"Content-Type", "application/json"}},
            .body = callbacks_.status_json ? callbacks_.status_json() : "{}"};
  }
  if (path == "/metrics") {
    if (!callbacks_.metrics_text) return {.status = 404};
    return {.status = 200,
            .headers = {{"Content-Type", "text/plain; version=0.0.4; charset=utf-8"}},
            .body = callbacks_.metrics_text()};
  }
  return {.status = 404};
}

}  // namespace relay::ops
