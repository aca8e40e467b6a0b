// HttpServer against a raw socket client on 127.0.0.1, so each test controls exactly which bytes
// arrive and when (down to one byte at a time). Waits are condition waits with generous deadlines;
// nothing asserts on elapsed time.
#include "relay/http/http_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include "relay/common/clock.h"
#include "relay/common/http_header.h"
#include "tests/support/wait.h"

using namespace std::chrono_literals;
using relay::ErrorCode;
using relay::SystemClock;
using relay::http::HttpRequest;
using relay::http::HttpResponse;
using relay::http::HttpServer;
using relay::http::HttpServerLimits;
using relay::testing::wait_until;

namespace {

constexpr auto kDeadline = 10s;  // generous: only a broken server waits this long
// For tests with many sockets, or that wait on several steps of the server in turn.
constexpr auto kLongDeadline = 60s;

struct RawResponse {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;

  const std::string* header(std::string_view name) const {
    for (const auto& [n, v] : headers) {
      if (relay::iequals_ascii(n, name)) return &v;
    }
    return nullptr;
  }
  bool closes() const {
    const auto* c = header("Connection");
    return c != nullptr && relay::iequals_ascii(*c, "close");
  }
};

// A blocking TCP client for 127.0.0.1 that reads with deadlines.
class RawClient {
 public:
  explicit RawClient(int port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    const int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  ~RawClient() { ::close(fd_); }
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;

  bool connected() const { return connected_; }

  bool send(std::string_view bytes) {
    while (!bytes.empty()) {
      const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      bytes.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }

  // Waits up to `timeout` for input; true if bytes (or EOF) are ready.
  bool readable_within(std::chrono::milliseconds timeout) {
    if (!buf_.empty()) return true;
    pollfd p{.fd = fd_, .events = POLLIN, .revents = 0};
    return ::poll(&p, 1, static_cast<int>(timeout.count())) > 0;
  }

  // One response (an interim 1xx, or one to HEAD when !with_body, has no body). nullopt on EOF,
  // reset or the deadline.
  std::optional<RawResponse> read_response(std::chrono::milliseconds timeout = kDeadline,
                                           bool with_body = true) {
    const auto deadline = clock_.now() + timeout;
    size_t head_end;
    while ((head_end = buf_.find("\r\n\r\n")) == std::string::npos) {
      if (!fill(deadline)) return std::nullopt;
    }
    RawResponse r;
    std::string_view head = std::string_view(buf_).substr(0, head_end + 2);
    const size_t eol = head.find("\r\n");
    const std::string_view status_line = head.substr(0, eol);
    if (status_line.substr(0, 9) != "HTTP/1.1 ") return std::nullopt;
    r.status = std::stoi(std::string(status_line.substr(9, 3)));
    head.remove_prefix(eol + 2);
    while (!head.empty()) {
      const size_t e = head.find("\r\n");
      const std::string_view line = head.substr(0, e);
      const size_t colon = line.find(':');
      std::string_view value = line.substr(colon + 1);
      while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
      r.headers.emplace_back(std::string(line.substr(0, colon)), std::string(value));
      head.remove_prefix(e + 2);
    }
    buf_.erase(0, head_end + 4);
    if (r.status >= 200 && with_body) {
      const auto* cl = r.header("Content-Length");
      const size_t length = cl != nullptr ? std::stoul(*cl) : 0;
      while (buf_.size() < length) {
        if (!fill(deadline)) return std::nullopt;
      }
      r.body = buf_.substr(0, length);
      buf_.erase(0, length);
    }
    return r;
  }

  // True once the server has closed the connection (EOF or reset), discarding what arrives.
  bool wait_closed(std::chrono::milliseconds timeout = kDeadline) {
    const auto deadline = clock_.now() + timeout;
    while (true) {
      buf_.clear();
      const int got = fill_once(deadline);
      if (got <= 0) return got == 0;
    }
  }

  // Bytes received but not consumed as a response.
  const std::string& unread() const { return buf_; }

 private:
  // >0 bytes read, 0 EOF/reset, -1 deadline.
  int fill_once(SystemClock::TimePoint deadline) {
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - clock_.now());
    if (left.count() <= 0) return -1;
    pollfd p{.fd = fd_, .events = POLLIN, .revents = 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) return -1;
    char chunk[4096];
    const ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
    if (n <= 0) return 0;
    buf_.append(chunk, static_cast<size_t>(n));
    return static_cast<int>(n);
  }
  bool fill(SystemClock::TimePoint deadline) { return fill_once(deadline) > 0; }

  SystemClock clock_;
  int fd_ = -1;
  bool connected_ = false;
  std::string buf_;
};

// Answers "<method> <target> <body>" and counts calls.
struct EchoHandler {
  std::atomic<int> calls{0};
  HttpResponse operator()(const HttpRequest& req) {
    ++calls;
    return HttpResponse{.status = 200,
                        .headers = {{"Content-Type", "text/plain"}},
                        .body = req.method + " " + req.target + " " + req.body};
  }
};

// A handler that blocks until open() or until the server stops (then answers 503).
class GatedHandler {
 public:
  HttpResponse operator()(const HttpRequest& req) {
    std::unique_lock lock(mu_);
    ++entered_;
    cv_.notify_all();
    const bool opened = cv_.wait(lock, req.stop, [&] { return open_; });
    return HttpResponse{.status = opened ? 200 : 503, .headers = {}, .body = req.target};
  }
  void open() {
    std::lock_guard lock(mu_);
    open_ = true;
    cv_.notify_all();
  }
  int entered() {
    std::lock_guard lock(mu_);
    return entered_;
  }

 private:
  std::mutex mu_;
  std::condition_variable_any cv_;
  int entered_ = 0;
  bool open_ = false;
};

std::string get(std::string_view target, std::string_view extra_headers = "") {
  return fmt::format("GET {} HTTP/1.1\r\nHost: test\r\n{}\r\n", target, extra_headers);
}

std::string post(std::string_view target, std::string_view body) {
  return fmt::format("POST {} HTTP/1.1\r\nHost: test\r\nContent-Length: {}\r\n\r\n{}", target,
                     body.size(), body);
}

// A server with `limits` on 127.0.0.1:0 running `handler` (which must outlive it).
template <typename Handler>
std::unique_ptr<HttpServer> start_server(Handler& handler, HttpServerLimits limits = {}) {
  static SystemClock clock;
  auto server = HttpServer::start(
      "127.0.0.1:0", limits, [&handler](const HttpRequest& r) { return handler(r); }, clock);
  REQUIRE(server.has_value());
  return std::move(server).value();
}

// The status of the one response the server sends to `request` on a fresh connection.
int status_for(HttpServer& server, std::string_view request) {
  RawClient client(server.port());
  REQUIRE(client.send(request));
  const auto response = client.read_response();
  REQUIRE(response);
  CHECK(response->closes());
  CHECK(client.wait_closed());
  return response->status;
}

}  // namespace

TEST_CASE("a keep-alive connection carries several requests in turn", "[http]") {
  EchoHandler handler;
  auto server = start_server(handler);
  RawClient client(server->port());
  for (int i = 0; i < 3; ++i) {
    REQUIRE(client.send(post("/inbox/a?n=" + std::to_string(i), "body" + std::to_string(i))));
    const auto response = client.read_response();
    REQUIRE(response);
    CHECK(response->status == 200);
    CHECK(response->body == "POST /inbox/a?n=" + std::to_string(i) + " body" + std::to_string(i));
    CHECK_FALSE(response->closes());
    CHECK(response->header("Date") != nullptr);
  }
  CHECK(server->stats().connections_accepted == 1);
  CHECK(server->stats().requests == 3);
}

TEST_CASE("pipelined requests in one segment are all answered in order", "[http]") {
  EchoHandler handler;
  auto server = start_server(handler);
  RawClient client(server->port());
  // The extra CRLF after the first body is tolerated (RFC 9112 §2.2).
  REQUIRE(client.send(post("/one", "1") + "\r\n" + get("/two") + post("/three", "333")));
  std::vector<std::string> bodies;
  for (int i = 0; i < 3; ++i) {
    const auto response = client.read_response();
    REQUIRE(response);
    CHECK(response->status == 200);
    bodies.push_back(response->body);
  }
  CHECK(bodies == std::vector<std::string>{"POST /one 1", "GET /two ", "POST /three 333"});
}

TEST_CASE("the handler sees method, target, headers, body and peer", "[http]") {
  std::mutex mu;
  std::optional<HttpRequest> seen;
  auto handler = [&](const HttpRequest& r) {
    std::lock_guard lock(mu);
    seen = r;
    return HttpResponse{.status = 202, .headers = {{"X-Reply", "yes"}}, .body = ""};
  };
  auto server = start_server(handler);
  RawClient client(server->port());
  REQUIRE(client.send(
      "PUT /inbox/src?x=1 HTTP/1.1\r\nHost: test\r\nwebhook-id:   msg_1  \r\nContent-Length: "
      "5\r\n\r\nhello"));
  const auto response = client.read_response();
  REQUIRE(response);
  CHECK(response->status == 202);
  CHECK(*response->header("X-Reply") == "yes");
  CHECK(*response->header("Content-Length") == "0");
  std::lock_guard lock(mu);
  REQUIRE(seen);
  CHECK(seen->method == "PUT");
  CHECK(seen->target == "/inbox/src?x=1");
  CHECK(seen->path() == "/inbox/src");
  CHECK(seen->version == "HTTP/1.1");
  REQUIRE(seen->header("WEBHOOK-ID") != nullptr);
  CHECK(*seen->header("WEBHOOK-ID") == "msg_1");
  CHECK(seen->header("absent") == nullptr);
  CHECK(seen->body == "hello");
  CHECK(seen->peer.rfind("127.0.0.1:", 0) == 0);
}

TEST_CASE("routing is the handler's job: any method and path reaches it", "[http]") {
  EchoHandler handler;
  auto server = start_server(handler);
  RawClient client(server->port());
  REQUIRE(client.send("DELETE /nowhere HTTP/1.1\r\nHost: t\r\n\r\n"));
  const auto response = client.read_response();
  REQUIRE(response);
  CHECK(response->status == 200);
  CHECK(response->body == "DELETE /nowhere ");
}

TEST_CASE("HEAD gets the headers of the response but no body", "[http]") {
  EchoHandler handler;
  auto server = start_server(handler);
  RawClient client(server->port());
  REQUIRE(client.send("HEAD /h HTTP/1.1\r\nHost: t\r\n\r\n" + get("/after")));
  // The HEAD response announces 8 bytes ("HEAD /h ") but sends none: the next bytes on the wire
  // are the second response.
  const auto head = client.read_response(kDeadline, /*with_body=*/false);
  REQUIRE(head);
  CHECK(*head->header("Content-Length") == "8");
  REQUIRE(client.readable_within(kDeadline));
  const auto next = client.read_response();
  REQUIRE(next);
  CHECK(next->body == "GET /after ");
}

TEST_CASE("a Content-Length over max_body_bytes gets 413 before the body is read", "[http]") {
  EchoHandler handler;
  auto server = start_server(handler, {.max_body_bytes = 16});
  RawClient client(server->port());
  REQUIRE(client.send("POST /big HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n0123456789"));
  const auto response = client.read_response();
  REQUIRE(response);
  CHECK(response->status == 413);
  CHECK(response->closes());
  CHECK(client.wait_closed());
  CHECK(handler.calls == 0);
  CHECK(server->stats().payload_too_large == 1);
}

TEST_CASE("a body exactly at max_body_bytes is accepted", "[http]") {
  EchoHandler handler;
  auto server = start_server(handler, {.max_body_bytes = 4});
  RawClient client(server->port());
  REQUIRE(client.send(post("/b", "abcd")));
  const auto response = client.read_response();
  REQUIRE(response);
  CHECK(response->status == 200);
  CHECK(response->body == "POST /b abcd");
}

TEST_CASE("too many header lines get 431", "[http]") {
  EchoHandler handler;
  auto server = start_server(handler, {.max_headers = 3});
  RawClient within(server->port());  // Host, A and B: exactly max_headers
  REQUIRE(within.send(get("/", "A: 1\r\nB: 2\r\n")));
  const auto ok = within.read_response();
  REQUIRE(ok);
  CHECK(ok->status == 200);
  CHECK(status_for(*server, get("/", "A: 1\r\nB: 2\r\nC: 3\r\n")) == 431);
  CHECK(handler.calls == 1);
  CHECK(server->stats().headers_too_large == 1);
}

TEST_CASE("a head over max_header_bytes gets 431 without waiting for its end", "[http]") {
  EchoHandler handler;
  auto server = start_server(handler, {.max_header_bytes = 256});
  RawClient client(server->port());
  // No terminating empty line: the server must not wait for one once the bound is passed.
  REQUIRE(client.send("GET / HTTP/1.1\r\nHost: t\r\nX-Big: " + std::string(400, 'a')));
  const auto response = client.read_response();
  REQUIRE(response);
  CHECK(response->status == 431);
  CHECK(client.wait_closed());
  CHECK(handler.calls == 0);
}

TEST_CASE("malformed requests get 400 and the connection is closed", "[http]") {
  EchoHandler handler;
  auto server = start_server(handler);
  const char* garbage[] = {
      "GARBAGE\r\n\r\n",
      "GET  / HTTP/1.1\r\nHost: t\r\n\r\n",                           // double space
      "GET / HTTP/1.1\nHost: t\n\n",                                  // bare LF
      "GET / HTTP/1.1\r\nHost: t\r\nX: a\rb\r\n\r\n",                 // bare CR in a value
      "GET / HTTP/1.1\r\nHost: t\r\nX: a\r\n  folded\r\n\r\n",        // obs-fold
      "GET / HTTP/1.1\r\nHost: t\r\nBad Name: v\r\n\r\n",             // space in a name
      "GET / HTTP/1.1\r\nHost: t\r\nNoColon\r\n\r\n",                 // no colon
      "GET / HTTP/1.1\r\n\r\n",                                       // no Host
      "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",                 // two Hosts
      "GET http://x/ HTTP/1.1\r\nHost: t\r\n\r\n",                    // not origin-form
      "GET / HTTX/1.1\r\nHost: t\r\n\r\n",                            // not a version
      "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: -1\r\n\r\n",     // negative
      "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1x\r\n\r\n",     // not a number
      "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1, 1\r\n\r\nx",  // a list
      "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxy",
  };
  for (const char* request : garbage) {
    INFO(request);
    CHECK(status_for(*server, request) == 400);
  }
  CHECK(handler.calls == 0);
  CHECK(server->stats().bad_request == std::size(garbage));
}

TEST_CASE("identical repeated Content-Length headers are accepted", "[http]") {
  EchoHandler handler;
  auto server = start_server(handler);
  RawClient client(server->port());
  REQUIRE(
      client.send("POST /d HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\nContent-Length: "
                  "2\r\n\r\nok"));
  const auto response = client.read_response();
  REQUIRE(response);
  CHECK(response->body == "POST /d ok");
}

TEST_CASE("unsupported versions, transfer codings and expectations get 505, 411 and 417",
          "[http]") {
  EchoHandler handler;
  auto server = start_server(handler);
  CHECK(status_for(*server, "GET / HTTP/2.0\r\nHost: t\r\n\r\n") == 505);
  CHECK(status_for(*server,
                   "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"
                   "0\r\n\r\n") == 411);
  CHECK(status_for(*server, "POST / HTTP/1.1\r\nHost: t\r\nExpect: tea\r\n\r\n") == 417);
  CHECK(handler.calls == 0);
  const auto stats = server->stats();
  CHECK(stats.version_not_supported == 1);
  CHECK(stats.length_required == 1);
  CHECK(stats.expectation_failed == 1);
}

TEST_CASE("Expect: 100-continue gets 100 Continue before the body is sent", "[http]") {
  EchoHandler handler;
  auto server = start_server(handler);
  RawClient client(server->port());
  REQUIRE(client.send(
      "POST /e HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n"));
  const auto interim = client.read_response();
  REQUIRE(interim);
  CHECK(interim->status == 100);
  REQUIRE(client.send("data"));
  const auto response = client.read_response();
  REQUIRE(response);
  CHECK(response->status == 200);
  CHECK(response->body == "POST /e data");
}

TEST_CASE("Expect: 100-continue with a too large body gets 413 and no 100", "[http]") {
  EchoHandler handler;
  auto server = start_server(handler, {.max_body_bytes = 8});
  RawClient client(server->port());
  REQUIRE(client.send(
      "POST /e HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 9\r\n\r\n"));
  const auto response = client.read_response();
  REQUIRE(response);
  CHECK(response->status == 413);
  CHECK(client.wait_closed());
}

TEST_CASE("Connection: close, HTTP/1.0 and max_requests_per_connection end the connection",
          "[http]") {
  EchoHandler handler;
  auto server = start_server(handler, {.max_requests_per_connection = 2});
  SECTION("Connection: close") {
    RawClient client(server->port());
    REQUIRE(client.send(get("/", "Connection: close\r\n")));
    const auto response = client.read_response();
    REQUIRE(response);
    CHECK(response->status == 200);
    CHECK(response->closes());
    CHECK(client.wait_closed());
  }
  SECTION("HTTP/1.0 closes unless it asks for keep-alive") {
    RawClient client(server->port());
    REQUIRE(client.send("GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
    const auto first = client.read_response();
    REQUIRE(first);
    CHECK(*first->header("Connection") == "keep-alive");
    REQUIRE(client.send("GET /b HTTP/1.0\r\n\r\n"));
    const auto second = client.read_response();
    REQUIRE(second);
    CHECK(second->closes());
    CHECK(client.wait_closed());
  }
  SECTION("the last allowed request is answered with Connection: close") {
    RawClient client(server->port());
    REQUIRE(client.send(get("/1") + get("/2") + get("/3")));
    const auto first = client.read_response();
    const auto second = client.read_response();
    REQUIRE(first);
    REQUIRE(second);
    CHECK_FALSE(first->closes());
    CHECK(second->closes());
    CHECK(client.wait_closed());
    CHECK(handler.calls == 2);  // the third was never read as a request
  }
}

TEST_CASE("a handler that throws gets 500 and the connection stays usable", "[http]") {
  auto handler = [](const HttpRequest& r) -> HttpResponse {
    if (r.target == "/throw") throw std::runtime_error("boom");
    return HttpResponse{.status = 200, .headers = {}, .body = "fine"};
  };
  auto server = start_server(handler);
  RawClient client(server->port());
  REQUIRE(client.send(get("/throw")));
  const auto failed = client.read_response();
  REQUIRE(failed);
  CHECK(failed->status == 500);
  REQUIRE(client.send(get("/ok")));
  const auto ok = client.read_response();
  REQUIRE(ok);
  CHECK(ok->body == "fine");
  CHECK(server->stats().handler_errors == 1);
}

TEST_CASE("invalid statuses and server-managed headers from the handler are not sent", "[http]") {
  auto handler = [](const HttpRequest& r) {
    return HttpResponse{.status = r.target == "/bad" ? 42 : 200,
                        .headers = {{"Content-Length", "999"},
                                    {"Connection", "close"},
                                    {"Bad Name", "x"},
                                    {"X-Injected", "a\r\nEvil: 1"}},
                        .body = "ab"};
  };
  auto server = start_server(handler);
  RawClient client(server->port());
  REQUIRE(client.send(get("/ok")));
  const auto ok = client.read_response();
  REQUIRE(ok);
  CHECK(*ok->header("Content-Length") == "2");
  CHECK_FALSE(ok->closes());
  CHECK(ok->header("Evil") == nullptr);
  CHECK(ok->header("X-Injected") == nullptr);
  REQUIRE(client.send(get("/bad")));
  const auto bad = client.read_response();
  REQUIRE(bad);
  CHECK(bad->status == 500);
}

TEST_CASE("a connection that sends nothing is closed silently after idle_timeout", "[http]") {
  EchoHandler handler;
  auto server = start_server(handler, {.idle_timeout = 200ms});
  RawClient client(server->port());
  CHECK(client.wait_closed());
  CHECK(client.unread().empty());
  CHECK(server->stats().idle_closed == 1);
}

TEST_CASE("a body that does not arrive within read_timeout gets 408", "[http]") {
  EchoHandler handler;
  auto server = start_server(handler, {.read_timeout = 300ms});
  RawClient client(server->port());
  REQUIRE(client.send("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc"));
  const auto response = client.read_response();
  REQUIRE(response);
  CHECK(response->status == 408);
  CHECK(client.wait_closed());
  CHECK(handler.calls == 0);
  CHECK(server->stats().body_timeouts == 1);
}

TEST_CASE("a client that does not read its response is closed after write_timeout", "[http]") {
  auto handler = [](const HttpRequest&) {
    return HttpResponse{.status = 200, .headers = {}, .body = std::string(64 << 20, 'r')};
  };
  auto server = start_server(handler, {.write_timeout = 300ms});
  RawClient client(server->port());
  REQUIRE(client.send(get("/huge")));  // and never read: 64 MiB cannot fit in socket buffers
  REQUIRE(wait_until([&] { return server->stats().write_timeouts == 1; }, kDeadline));
  CHECK(client.wait_closed());
}

TEST_CASE("a slowloris client is cut off at read_timeout and never holds the only worker",
          "[http]") {
  EchoHandler handler;
  auto server = start_server(handler, {.workers = 1, .read_timeout = 300ms});
  // 120 bytes at one per 50 ms would take 6 s: far longer than read_timeout, so an answer before
  // the last byte proves the timeout is a deadline and not per recv().
  const std::string trickle = "POST /slow HTTP/1.1\r\nHost: t\r\nX-Pad: " + std::string(84, 'p') +
                              "\r\nContent-Length: 0\r\n\r\n";
  REQUIRE(trickle.size() >= 120);
  RawClient slow(server->port());
  size_t sent = 0;
  bool answered = false;
  bool normal_request_served_meanwhile = false;
  while (sent < trickle.size()) {
    if (!slow.send(trickle.substr(sent, 1))) break;  // the server may have closed already
    ++sent;
    if (sent == 2) {
      // While the trickler holds a connection, a normal client is served by the one worker.
      RawClient other(server->port());
      REQUIRE(other.send(get("/during")));
      const auto response = other.read_response();
      normal_request_served_meanwhile = response && response->status == 200;
    }
    // Pacing of the trickle, not a wait for the server: returns early if the server answers.
    if (slow.readable_within(50ms)) {  // ok-sleep: one byte per 50 ms is the attack's pace
      answered = true;
      break;
    }
  }
  CHECK(normal_request_served_meanwhile);
  REQUIRE(answered);
  CHECK(sent < trickle.size());
  const auto response = slow.read_response();
  REQUIRE(response);
  CHECK(response->status == 408);
  CHECK(slow.wait_closed());
  CHECK(server->stats().head_timeouts == 1);

  RawClient after(server->port());
  REQUIRE(after.send(get("/after")));
  const auto ok = after.read_response();
  REQUIRE(ok);
  CHECK(ok->status == 200);
  CHECK(handler.calls == 2);  // /during and /after; never /slow
}

TEST_CASE("when the workers are busy and the queue is full a request gets 503 with Retry-After",
          "[http]") {
  GatedHandler handler;
  auto server = start_server(handler, {.workers = 1, .max_queued_connections = 1});
  RawClient first(server->port());
  REQUIRE(first.send(get("/first")));
  REQUIRE(wait_until([&] { return handler.entered() == 1; }, kDeadline));
  RawClient second(server->port());  // waits in the queue
  REQUIRE(second.send(get("/second")));
  REQUIRE(wait_until([&] { return server->stats().requests == 2; }, kDeadline));
  RawClient third(server->port());  // finds the queue full
  REQUIRE(third.send(get("/third")));
  const auto rejected = third.read_response();
  REQUIRE(rejected);
  CHECK(rejected->status == 503);
  REQUIRE(rejected->header("Retry-After") != nullptr);
  CHECK(*rejected->header("Retry-After") == "1");
  CHECK(third.wait_closed());
  CHECK(server->stats().rejected_queue_full == 1);

  handler.open();
  const auto r1 = first.read_response();
  const auto r2 = second.read_response();
  REQUIRE(r1);
  REQUIRE(r2);
  CHECK(r1->status == 200);
  CHECK(r2->status == 200);
  CHECK(r2->body == "/second");
}

TEST_CASE("with max_queued_connections 0 a request waits only for an idle worker", "[http]") {
  GatedHandler handler;
  auto server = start_server(handler, {.workers = 1, .max_queued_connections = 0});
  RawClient first(server->port());
  REQUIRE(first.send(get("/first")));
  REQUIRE(wait_until([&] { return handler.entered() == 1; }, kDeadline));
  RawClient second(server->port());
  REQUIRE(second.send(get("/second")));
  const auto rejected = second.read_response();
  REQUIRE(rejected);
  CHECK(rejected->status == 503);
  handler.open();
  const auto ok = first.read_response();
  REQUIRE(ok);
  CHECK(ok->status == 200);
}

// Connects `n` clients that send nothing and waits until the server has taken `seen_after`
// connections in all (accepted or refused at accept).
std::vector<std::unique_ptr<RawClient>> connect_idle(HttpServer& server, int n,
                                                     std::uint64_t seen_after) {
  std::vector<std::unique_ptr<RawClient>> clients;
  for (int i = 0; i < n; ++i) {
    clients.push_back(std::make_unique<RawClient>(server.port()));
    REQUIRE(clients.back()->connected());
  }
  REQUIRE(wait_until(
      [&] {
        const auto stats = server.stats();
        return stats.connections_accepted + stats.connections_rejected >= seen_after;
      },
      kLongDeadline));
  return clients;
}

TEST_CASE("at max_connections a new connection closes the longest-idle one instead of a 503",
          "[http]") {
  EchoHandler handler;
  // idle_timeout far beyond the test, so only eviction closes anything.
  auto server = start_server(handler, {.max_connections = 8, .idle_timeout = 10min});
  // 11 idle sockets for 8 slots: the 9th..11th each evict the oldest (accept order is FIFO).
  auto idle = connect_idle(*server, 11, 11);
  CHECK(server->stats().connections_rejected == 0);
  CHECK(server->stats().idle_evicted == 3);

  RawClient real(server->port());  // evicts idle[3]
  REQUIRE(real.send(post("/inbox/a", "{}")));
  const auto response = real.read_response(kLongDeadline);
  REQUIRE(response);
  CHECK(response->status == 200);
  CHECK_FALSE(response->closes());

  for (int i = 0; i < 4; ++i) {
    INFO("evicted idle client " << i);
    CHECK_FALSE(idle[i]->read_response(kLongDeadline));  // closed silently: EOF, no 503
  }
  for (int i = 4; i < 11; ++i) {
    INFO("idle client still open " << i);
    CHECK_FALSE(idle[i]->readable_within(0ms));  // no bytes, no EOF
  }
  const auto stats = server->stats();
  CHECK(stats.idle_evicted == 4);
  CHECK(stats.connections_accepted == 12);
  CHECK(stats.connections_rejected == 0);
  CHECK(stats.idle_closed == 0);
  CHECK(handler.calls == 1);
}

TEST_CASE("a keep-alive connection idle since its last response is evicted after older idle ones",
          "[http]") {
  EchoHandler handler;
  auto server = start_server(handler, {.max_connections = 3, .idle_timeout = 10min});
  auto idle = connect_idle(*server, 3, 3);
  // idle[0] is the oldest connection but has just been used: idle[1] has been idle longest.
  REQUIRE(idle[0]->send(get("/used")));
  const auto used = idle[0]->read_response(kLongDeadline);
  REQUIRE(used);
  REQUIRE(used->status == 200);

  RawClient next(server->port());
  REQUIRE(next.send(get("/next")));
  const auto response = next.read_response(kLongDeadline);
  REQUIRE(response);
  CHECK(response->status == 200);
  CHECK_FALSE(idle[1]->read_response(kLongDeadline));
  CHECK_FALSE(idle[0]->readable_within(0ms));
  CHECK_FALSE(idle[2]->readable_within(0ms));
  CHECK(server->stats().idle_evicted == 1);
  REQUIRE(idle[0]->send(get("/again")));  // the used connection is still served
  const auto again = idle[0]->read_response(kLongDeadline);
  REQUIRE(again);
  CHECK(again->status == 200);
}

// Lowers this process's RLIMIT_NOFILE soft limit so that exactly `free_fds` more descriptors can
// be opened (the lowest free numbers are taken first, so the limit is where the count of free
// numbers below it reaches `free_fds`), and restores it at scope exit. ok() is false if that
// cannot be set.
class FdBudget {
 public:
  explicit FdBudget(int free_fds) {
    ::getrlimit(RLIMIT_NOFILE, &saved_);
    std::vector<int> listed;
    for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
      listed.push_back(std::stoi(entry.path().filename().string()));
    }
    std::vector<int> open;
    for (const int fd : listed) {
      if (::fcntl(fd, F_GETFD) != -1) open.push_back(fd);  // not the listing's own, closed by now
    }
    std::sort(open.begin(), open.end());
    int limit = 0;
    for (int free = 0; free < free_fds; ++limit) {
      if (!std::binary_search(open.begin(), open.end(), limit)) ++free;
    }
    rlimit lowered = saved_;
    lowered.rlim_cur = static_cast<rlim_t>(limit);
    ok_ = lowered.rlim_cur <= saved_.rlim_cur && ::setrlimit(RLIMIT_NOFILE, &lowered) == 0;
  }
  ~FdBudget() { ::setrlimit(RLIMIT_NOFILE, &saved_); }
  FdBudget(const FdBudget&) = delete;
  FdBudget& operator=(const FdBudget&) = delete;
  bool ok() const { return ok_; }

 private:
  rlimit saved_{};
  bool ok_ = false;
};

TEST_CASE("when accept runs out of descriptors the longest-idle connection makes room", "[http]") {
  EchoHandler handler;
  auto server = start_server(handler, {.idle_timeout = 10min});  // max_connections 1024: far off
  auto idle = connect_idle(*server, 3, 3);
  // Every code path the test and the server take while the process is out of descriptors runs
  // once first: UBSan's first check of a virtual call (Clock::wall_now in a worker) needs a pipe.
  REQUIRE(idle[2]->send(get("/warm-up")));
  const auto warm_up = idle[2]->read_response(kLongDeadline);
  REQUIRE(warm_up);
  REQUIRE(warm_up->status == 200);
  {
    // The real client's socket takes the last free descriptor, so the server's accept() fails
    // with EMFILE. The six sockets of the idle connections stay open throughout.
    FdBudget budget(1);
    REQUIRE(budget.ok());
    RawClient real(server->port());
    REQUIRE(real.connected());
    REQUIRE(real.send(get("/real")));
    const auto response = real.read_response(kLongDeadline);
    REQUIRE(response);
    CHECK(response->status == 200);
  }
  CHECK_FALSE(idle[0]->read_response(kLongDeadline));  // closed silently
  CHECK_FALSE(idle[1]->readable_within(0ms));
  CHECK_FALSE(idle[2]->readable_within(0ms));
  CHECK(server->stats().idle_evicted == 1);
  CHECK(server->stats().connections_rejected == 0);
}

TEST_CASE("when every connection is busy a new one gets 503 at accept and none is evicted",
          "[http]") {
  GatedHandler handler;
  auto server = start_server(handler, {.max_connections = 2, .idle_timeout = 10min});
  // Busy 1: its request is with the handler.
  RawClient handled(server->port());
  REQUIRE(handled.send(get("/handled")));
  REQUIRE(wait_until([&] { return handler.entered() == 1; }, kLongDeadline));
  // Busy 2: mid-request. The 100 Continue proves the server has read the head.
  RawClient half(server->port());
  REQUIRE(half.send(
      "POST /half HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n"));
  const auto interim = half.read_response(kLongDeadline);
  REQUIRE(interim);
  REQUIRE(interim->status == 100);

  RawClient refused(server->port());
  const auto rejected = refused.read_response(kLongDeadline);
  REQUIRE(rejected);
  CHECK(rejected->status == 503);
  REQUIRE(rejected->header("Retry-After") != nullptr);
  CHECK(*rejected->header("Retry-After") == "1");
  CHECK(server->stats().connections_rejected == 1);
  CHECK(server->stats().idle_evicted == 0);

  handler.open();
  REQUIRE(half.send("body"));
  const auto ok_half = half.read_response(kLongDeadline);
  REQUIRE(ok_half);
  CHECK(ok_half->status == 200);
  CHECK(ok_half->body == "/half");
  const auto ok_handled = handled.read_response(kLongDeadline);
  REQUIRE(ok_handled);
  CHECK(ok_handled->status == 200);
}

TEST_CASE("stop() with a handler running and clients connected returns and closes them", "[http]") {
  GatedHandler handler;  // never opened: it returns only because the stop token fires
  auto server = start_server(handler, {.workers = 2});
  RawClient busy(server->port());
  REQUIRE(busy.send(get("/busy")));
  REQUIRE(wait_until([&] { return handler.entered() == 1; }, kDeadline));
  RawClient idle(server->port());
  RawClient half(server->port());
  REQUIRE(half.send("POST / HTTP/1.1\r\nHost: t\r\nContent-"));
  REQUIRE(wait_until([&] { return server->stats().connections_accepted == 3; }, kDeadline));

  server->stop();

  const auto answer = busy.read_response();  // the in-progress handler's answer is delivered
  REQUIRE(answer);
  CHECK(answer->status == 503);
  CHECK(answer->closes());
  CHECK(busy.wait_closed());
  CHECK(idle.wait_closed());
  CHECK(half.wait_closed());
  CHECK(idle.unread().empty());
  RawClient late(server->port());  // the listener is gone
  CHECK_FALSE(late.connected());
  server->stop();  // idempotent
}

TEST_CASE("start names the address when it cannot listen", "[http]") {
  EchoHandler handler;
  auto first = start_server(handler);
  SystemClock clock;
  const std::string taken = "127.0.0.1:" + std::to_string(first->port());
  auto in_use = HttpServer::start(
      taken, {}, [](const HttpRequest&) { return HttpResponse{}; }, clock);
  REQUIRE_FALSE(in_use.has_value());
  CHECK(in_use.error().code == ErrorCode::kUnavailable);
  CHECK_THAT(in_use.error().message, Catch::Contains(taken));

  for (const char* bad : {"nope", "127.0.0.1:99999", "::1:80", "[::1]80", ":80"}) {
    INFO(bad);
    auto r = HttpServer::start(
        bad, {}, [](const HttpRequest&) { return HttpResponse{}; }, clock);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code == ErrorCode::kInvalidArgument);
    CHECK_THAT(r.error().message, Catch::Contains(bad));
  }
  auto bad_limits = HttpServer::start(
      "127.0.0.1:0", {.workers = 0}, [](const HttpRequest&) { return HttpResponse{}; }, clock);
  REQUIRE_FALSE(bad_limits.has_value());
  CHECK(bad_limits.error().code == ErrorCode::kInvalidArgument);
}

TEST_CASE("the server listens on IPv6 loopback", "[http]") {
  SystemClock clock;
  auto server = HttpServer::start(
      "[::1]:0", {},
      [](const HttpRequest& r) {
        return HttpResponse{.status = 200, .headers = {}, .body = r.peer};
      },
      clock);
  REQUIRE(server.has_value());
  const int fd = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in6 addr{};
  addr.sin6_family = AF_INET6;
  addr.sin6_port = htons(static_cast<uint16_t>((*server)->port()));
  addr.sin6_addr = in6addr_loopback;
  REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  const std::string request = get("/v6");
  REQUIRE(::send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
          static_cast<ssize_t>(request.size()));
  std::string got;
  char buf[1024];
  REQUIRE(wait_until(
      [&] {
        const ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n > 0) got.append(buf, static_cast<size_t>(n));
        return got.find("[::1]:") != std::string::npos;
      },
      kDeadline));
  ::close(fd);
}

// Hand-run: ./relay_unit_http "[.bench]". One keep-alive client, sequential requests, a trivial
// handler; prints requests/s and latency percentiles. Asserts nothing about speed.
TEST_CASE("benchmark: keep-alive requests per second on loopback", "[.bench]") {
  auto handler = [](const HttpRequest&) {
    return HttpResponse{.status = 200, .headers = {}, .body = "ok"};
  };
  auto server = start_server(handler, {.max_requests_per_connection = 1'000'000});
  RawClient client(server->port());
  const std::string request = post("/inbox/bench", std::string(256, 'x'));
  constexpr int kRequests = 20'000;
  SystemClock clock;
  std::vector<double> micros;
  micros.reserve(kRequests);
  const auto begin = clock.now();
  for (int i = 0; i < kRequests; ++i) {
    const auto t0 = clock.now();
    REQUIRE(client.send(request));
    const auto response = client.read_response();
    REQUIRE(response);
    micros.push_back(std::chrono::duration<double, std::micro>(clock.now() - t0).count());
  }
  const double seconds = std::chrono::duration<double>(clock.now() - begin).count();
  std::sort(micros.begin(), micros.end());
  std::printf("requests=%d seconds=%.3f rps=%.0f p50_us=%.1f p99_us=%.1f max_us=%.1f\n", kRequests,
              seconds, kRequests / seconds, micros[kRequests / 2], micros[kRequests * 99 / 100],
              micros.back());
}
