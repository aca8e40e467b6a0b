// OpsServer: the routes, statuses, content types and bodies of /healthz, /readyz, /status and
// /metrics (as cpp-httplib served them before relay/http), through handle() and over loopback.
#include "relay/ops/ops_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <string>
#include <tuple>

using relay::ErrorCode;
using relay::http::HttpRequest;
using relay::http::HttpResponse;
using relay::ops::OpsCallbacks;
using relay::ops::OpsServer;

namespace {

HttpRequest request(std::string method, std::string target) {
  HttpRequest r;
  r.method = std::move(method);
  r.target = std::move(target);
  r.version = "HTTP/1.1";
  return r;
}

const std::string* content_type(const HttpResponse& r) {
  for (const auto& [n, v] : r.headers) {
    if (n == "Content-Type") return &v;
  }
  return nullptr;
}

OpsCallbacks callbacks(std::string health, std::string readiness, bool metrics = true) {
  OpsCallbacks cb;
  cb.health = [health] { return health; };
  cb.readiness = [readiness] { return readiness; };
  cb.status_json = [] { return std::string(R"({"ok":true})"); };
  if (metrics) cb.metrics_text = [] { return std::string("relay_up 1\n"); };
  return cb;
}

std::unique_ptr<OpsServer> start(OpsCallbacks cb) {
  auto server = OpsServer::start("127.0.0.1:0", std::move(cb));
  REQUIRE(server.has_value());
  return std::move(server).value();
}

// One request over loopback; the raw response bytes (the server closes: Connection: close).
std::string exchange(int port, const std::string& bytes) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  REQUIRE(::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL) ==
          static_cast<ssize_t>(bytes.size()));
  std::string got;
  char buf[4096];
  while (true) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    got.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return got;
}

}  // namespace

TEST_CASE("healthz and readyz answer 200 or 503 with the reason as text", "[ops]") {
  auto ok = start(callbacks("", ""));
  HttpResponse r = ok->handle(request("GET", "/healthz"));
  CHECK(r.status == 200);
  CHECK(r.body == "ok\n");
  CHECK(*content_type(r) == "text/plain; charset=utf-8");
  r = ok->handle(request("GET", "/readyz"));
  CHECK(r.status == 200);
  CHECK(r.body == "ready\n");
  CHECK(*content_type(r) == "text/plain; charset=utf-8");

  auto bad = start(callbacks("wedged", "database unavailable"));
  r = bad->handle(request("GET", "/healthz"));
  CHECK(r.status == 503);
  CHECK(r.body == "wedged\n");
  r = bad->handle(request("GET", "/readyz?verbose"));
  CHECK(r.status == 503);
  CHECK(r.body == "database unavailable\n");
}

TEST_CASE("status is JSON and metrics the Prometheus text format, or 404 without one", "[ops]") {
  auto server = start(callbacks("", ""));
  HttpResponse r = server->handle(request("GET", "/status"));
  CHECK(r.status == 200);
  CHECK(r.body == R"({"ok":true})");
  CHECK(*content_type(r) == "application/json");
  r = server->handle(request("GET", "/metrics"));
  CHECK(r.status == 200);
  CHECK(r.body == "relay_up 1\n");
  CHECK(*content_type(r) == "text/plain; version=0.0.4; charset=utf-8");

  auto without = start(callbacks("", "", /*metrics=*/false));
  r = without->handle(request("GET", "/metrics"));
  CHECK(r.status == 404);
  CHECK(r.body.empty());
  CHECK(content_type(r) == nullptr);
}

TEST_CASE("other paths and methods get 404, unknown methods 400, all with empty bodies", "[ops]") {
  auto server = start(callbacks("", ""));
  for (const auto& [method, target, status] :
       {std::tuple{"GET", "/nope", 404}, std::tuple{"POST", "/", 404},
        std::tuple{"GET", "/index.html", 404}, std::tuple{"POST", "/healthz", 404},
        std::tuple{"PUT", "/metrics", 404}, std::tuple{"DELETE", "/status", 404},
        std::tuple{"OPTIONS", "/readyz", 404}, std::tuple{"BREW", "/healthz", 400},
        std::tuple{"get", "/healthz", 400}}) {
    INFO(method << " " << target);
    const HttpResponse r = server->handle(request(method, target));
    CHECK(r.status == status);
    CHECK(r.body.empty());
  }
  // HEAD is GET without the body (the server drops it).
  CHECK(server->handle(request("HEAD", "/healthz")).status == 200);
}

const std::string* header(const HttpResponse& r, const std::string& name) {
  for (const auto& [n, v] : r.headers) {
    if (n == name) return &v;
  }
  return nullptr;
}

TEST_CASE("GET / is the self-contained status page, whose policy forbids any external load",
          "[ops]") {
  auto server = start(callbacks("", ""));
  const HttpResponse r = server->handle(request("GET", "/"));
  REQUIRE(r.status == 200);
  CHECK(*content_type(r) == "text/html; charset=utf-8");
  CHECK(r.body.rfind("<!doctype html>", 0) == 0);
  CHECK(r.body.find("</html>") != std::string::npos);
  // It reads the two documents it shows, by relative path (same origin).
  CHECK(r.body.find(R"(get("status"))") != std::string::npos);
  CHECK(r.body.find(R"(get("metrics"))") != std::string::npos);
  const std::string* csp = header(r, "Content-Security-Policy");
  REQUIRE(csp != nullptr);
  CHECK(csp->find("default-src 'none'") != std::string::npos);
  CHECK(csp->find("connect-src 'self'") != std::string::npos);
  CHECK(csp->find("http") == std::string::npos);  // no host is allowed anywhere
  REQUIRE(header(r, "X-Content-Type-Options") != nullptr);
  // Nothing to fetch from elsewhere: no URL but the SVG namespace name, no src=, no url(), no
  // @import.
  std::string body = r.body;
  const std::string svg_ns = "http://www.w3.org/2000/svg";
  for (auto at = body.find(svg_ns); at != std::string::npos; at = body.find(svg_ns))
    body.erase(at, svg_ns.size());
  for (const char* banned : {"http://", "https://", "//cdn", "src=", "url(", "@import"}) {
    INFO(banned);
    CHECK(body.find(banned) == std::string::npos);
  }
  CHECK(server->handle(request("GET", "/?refresh=1")).status == 200);
  CHECK(server->handle(request("HEAD", "/")).status == 200);
}

TEST_CASE("the ops server answers over loopback and names a bad address", "[ops]") {
  auto server = start(callbacks("", ""));
  const std::string got =
      exchange(server->port(), "GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
  CHECK(got.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
  CHECK(got.find("Content-Type: text/plain; charset=utf-8\r\n") != std::string::npos);
  CHECK(got.substr(got.size() - 5) == "\r\nok\n");

  auto bad = OpsServer::start("nope", {});
  REQUIRE_FALSE(bad.has_value());
  CHECK(bad.error().code == ErrorCode::kInvalidArgument);
  CHECK_THAT(bad.error().message, Catch::Contains("nope"));
}
