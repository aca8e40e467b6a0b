// What PlainHttpSender does beyond HttplibSender's cases (httplib_sender_test.cc runs those against
// both): the request's bytes, keep-alive connections the consumer closes, the whole-request
// deadline, chunked and oversized bodies, Connection: close, malformed responses, and the factory.
// The consumers here are raw sockets on 127.0.0.1 (port 0), served one connection at a time by
// RawServer, whose destructor stops and joins its thread.
#include "relay/delivery/plain_http_sender.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "relay/common/version.h"
#include "relay/delivery/http_sender_factory.h"
#include "relay/delivery/httplib_sender.h"
#include "tests/support/wait.h"
#include "tests/unit/delivery/sender_test_helpers.h"

using namespace std::chrono_literals;
using relay::ErrorCode;
using relay::Event;
using relay::ManualClock;
using relay::config::SubscriptionConfig;
using relay::delivery::DeliveryOutcome;
using relay::delivery::HttplibSender;
using relay::delivery::make_http_sender;
using relay::delivery::PlainHttpSender;
using relay::delivery::testing::sample_event;
using relay::delivery::testing::subscription;
using relay::testing::wait_until;
using Kind = relay::delivery::DeliveryOutcome::Kind;

namespace {

// A TCP listener on 127.0.0.1:<ephemeral>; its thread accepts one connection at a time and runs
// the handler on it, then closes it. Handlers end when the peer closes or stopping() is true.
class RawServer {
 public:
  using Handler = std::function<void(RawServer& server, int fd, int connection)>;

  explicit RawServer(Handler handler) : handler_(std::move(handler)) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (listen_fd_ < 0 || ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
        ::listen(listen_fd_, 8) != 0 ||
        ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      return;
    }
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { run(); });
  }
  ~RawServer() {
    {
      std::lock_guard lock(stop_mu_);
      stopping_ = true;
    }
    stop_cv_.notify_all();
    if (thread_.joinable()) thread_.join();
    if (listen_fd_ >= 0) ::close(listen_fd_);
  }
  RawServer(const RawServer&) = delete;
  RawServer& operator=(const RawServer&) = delete;

  bool running() const { return port_ > 0; }
  int port() const { return port_; }
  std::string url(const std::string& path = "/") const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }
  bool stopping() const { return stopping_; }
  // Paces a handler that trickles bytes: waits up to `pace`, and returns at once (true) when the
  // server is stopping.
  bool wait_stopping(std::chrono::milliseconds pace) {
    std::unique_lock lock(stop_mu_);
    return stop_cv_.wait_for(lock, pace, [&] { return stopping_.load(); });
  }
  int connections() const { return connections_; }
  int requests() const { return requests_; }
  int closed() const { return closed_; }  // connections the server has closed
  std::vector<std::string> seen() {
    std::lock_guard lock(mu_);
    return seen_;
  }

  // Reads one request (head and Content-Length body). nullopt when the peer closed or the server
  // is stopping.
  std::optional<std::string> read_request(int fd) {
    std::string in;
    std::size_t need = std::string::npos;
    char buf[4096];
    while (need == std::string::npos || in.size() < need) {
      pollfd p{.fd = fd, .events = POLLIN, .revents = 0};
      if (stopping_) return std::nullopt;
      if (::poll(&p, 1, 50) <= 0) continue;
      const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) return std::nullopt;
      in.append(buf, static_cast<std::size_t>(n));
      const auto end = in.find("\r\n\r\n");
      if (need == std::string::npos && end != std::string::npos) {
        std::size_t length = 0;
        const auto cl = in.find("Content-Length: ");
        if (cl != std::string::npos && cl < end) length = std::stoul(in.substr(cl + 16));
        need = end + 4 + length;
      }
    }
    ++requests_;
    std::lock_guard lock(mu_);
    seen_.push_back(in);
    return in;
  }
  static bool write_all(int fd, std::string_view bytes) {
    while (!bytes.empty()) {
      const ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      bytes.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }

 private:
  void run() {
    int count = 0;
    while (!stopping_) {
      pollfd p{.fd = listen_fd_, .events = POLLIN, .revents = 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      ++connections_;
      handler_(*this, fd, ++count);
      ::close(fd);
      ++closed_;
    }
  }

  Handler handler_;
  int listen_fd_ = -1;
  int port_ = -1;
  std::atomic<bool> stopping_{false};
  std::mutex stop_mu_;
  std::condition_variable stop_cv_;
  std::atomic<int> connections_{0};
  std::atomic<int> requests_{0};
  std::atomic<int> closed_{0};
  std::mutex mu_;
  std::vector<std::string> seen_;
  std::thread thread_;
};

constexpr std::string_view kOk = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";

// Answers every request on a connection with `response`, keeping it open.
RawServer::Handler answer_all(std::string response) {
  return [response](RawServer& server, int fd, int) {
    while (server.read_request(fd)) {
      if (!RawServer::write_all(fd, response)) return;
    }
  };
}

std::unique_ptr<PlainHttpSender> make_sender(const SubscriptionConfig& sub, ManualClock& clock) {
  auto sender = PlainHttpSender::create(sub, clock);
  if (!sender) FAIL("create failed: " << sender.error().message);
  return std::move(*sender);
}

}  // namespace

TEST_CASE("plain sender: the request is one POST with Host, Accept, User-Agent and no Expect",
          "[delivery]") {
  RawServer server(answer_all(std::string(kOk)));
  REQUIRE(server.running());
  ManualClock clock;
  auto sender = make_sender(subscription(server.url("/hooks?tenant=acme")), clock);

  CHECK(sender->send(sample_event(), 1).kind == Kind::kDelivered);

  const auto seen = server.seen();
  REQUIRE(seen.size() == 1);
  const std::string& req = seen[0];
  CHECK(req.rfind("POST /hooks?tenant=acme HTTP/1.1\r\nHost: 127.0.0.1:" +
                      std::to_string(server.port()) + "\r\n",
                  0) == 0);
  CHECK_THAT(req, Catch::Contains("\r\nAccept: */*\r\n"));
  CHECK_THAT(req,
             Catch::Contains(std::string("\r\nUser-Agent: relay/") + relay::kVersion + "\r\n"));
  CHECK_THAT(req, Catch::Contains("\r\nContent-Type: application/json\r\n"));
  CHECK_THAT(req, Catch::Contains("\r\nContent-Length: 12\r\n"));
  CHECK_THAT(req, Catch::Contains("\r\nIdempotency-Key: " + sample_event().event_id + "\r\n"));
  CHECK_THAT(req, !Catch::Contains("Expect"));
  CHECK(req.substr(req.size() - 16) ==
        "\r\n\r\n"
        R"({"order":17})");
}

TEST_CASE("plain sender: requests reuse one keep-alive connection", "[delivery]") {
  RawServer server(answer_all(std::string(kOk)));
  REQUIRE(server.running());
  ManualClock clock;
  auto sender = make_sender(subscription(server.url()), clock);

  for (int i = 1; i <= 5; ++i) CHECK(sender->send(sample_event(), i).kind == Kind::kDelivered);

  CHECK(server.requests() == 5);
  CHECK(server.connections() == 1);
  CHECK(sender->connections_opened() == 1);
}

TEST_CASE("plain sender: a keep-alive connection the consumer closed while idle is replaced",
          "[delivery]") {
  // Every connection answers one request, then the consumer closes it (without saying so).
  RawServer server([](RawServer& s, int fd, int) {
    if (s.read_request(fd)) RawServer::write_all(fd, kOk);
  });
  REQUIRE(server.running());
  ManualClock clock;
  auto sender = make_sender(subscription(server.url()), clock);

  CHECK(sender->send(sample_event(), 1).kind == Kind::kDelivered);
  REQUIRE(wait_until([&] { return server.closed() == 1; }, 60s));
  const auto outcome = sender->send(sample_event(), 2);

  CHECK(outcome.kind == Kind::kDelivered);
  CHECK(server.requests() == 2);  // the consumer saw each request once
  CHECK(server.connections() == 2);
  CHECK(sender->connections_opened() == 2);
}

TEST_CASE("plain sender: a reused connection closed without a response is retried once",
          "[delivery]") {
  // Connection 1 answers the first request and drops the second unanswered; later connections
  // answer everything.
  RawServer server([](RawServer& s, int fd, int connection) {
    if (!s.read_request(fd)) return;
    RawServer::write_all(fd, kOk);
    if (connection == 1) {
      s.read_request(fd);
      return;
    }
    while (s.read_request(fd)) RawServer::write_all(fd, kOk);
  });
  REQUIRE(server.running());
  ManualClock clock;
  auto sender = make_sender(subscription(server.url()), clock);

  CHECK(sender->send(sample_event(), 1).kind == Kind::kDelivered);
  const auto outcome = sender->send(sample_event(), 2);

  CHECK(outcome.kind == Kind::kDelivered);
  CHECK(outcome.status == 200);
  CHECK(server.requests() == 3);  // the second request twice: dropped, then answered
  CHECK(sender->connections_opened() == 2);
}

TEST_CASE("plain sender: a new connection closed without a response is the outcome", "[delivery]") {
  RawServer server([](RawServer& s, int fd, int) { s.read_request(fd); });
  REQUIRE(server.running());
  ManualClock clock;
  auto sender = make_sender(subscription(server.url()), clock);

  const auto outcome = sender->send(sample_event(), 1);

  CHECK(outcome.kind == Kind::kRetryable);
  CHECK(outcome.status == 0);
  CHECK(outcome.error == "connection closed or reset before a complete response");
  CHECK(server.requests() == 1);
  CHECK(sender->connections_opened() == 1);
}

TEST_CASE("plain sender: one deadline for the whole request, however the consumer trickles",
          "[delivery]") {
  // A head, then one body byte every 100 ms: each read makes progress, none of them waits long.
  RawServer server([](RawServer& s, int fd, int) {
    if (!s.read_request(fd)) return;
    if (!RawServer::write_all(fd, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")) return;
    while (RawServer::write_all(fd, "x") && !s.wait_stopping(100ms)) {
    }
  });
  REQUIRE(server.running());
  ManualClock clock;
  auto sub = subscription(server.url());
  sub.timeout = 500ms;
  auto sender = make_sender(sub, clock);

  const auto started = std::chrono::steady_clock::now();
  const auto outcome = sender->send(sample_event(), 1);
  const auto took = std::chrono::steady_clock::now() - started;

  CHECK(outcome.kind == Kind::kRetryable);
  CHECK(outcome.status == 0);
  CHECK(outcome.error == "timeout: no response within 500ms");
  // The trickle would take 100 s; per-read timeouts would never fire. Upper bound only, with
  // room for a loaded machine.
  CHECK(took < 500ms + 1500ms);
}

TEST_CASE("plain sender: a chunked response is read, cut to max_response_bytes, and kept alive",
          "[delivery]") {
  RawServer server(
      answer_all("HTTP/1.1 400 Bad Request\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "a\r\nbad reques\r\n12;ext=1\r\nt: missing field x\r\n0\r\nTrailer: y\r\n\r\n"));
  REQUIRE(server.running());
  ManualClock clock;
  auto sender = make_sender(subscription(server.url()), clock);  // max_response_bytes 16

  const auto outcome = sender->send(sample_event(), 1);

  CHECK(outcome.kind == Kind::kFinal);
  CHECK(outcome.status == 400);
  CHECK(outcome.error == "HTTP 400");
  CHECK(outcome.response_snippet == "bad request: mis");
  CHECK(sender->send(sample_event(), 2).status == 400);
  CHECK(sender->connections_opened() == 1);
}

TEST_CASE("plain sender: a body beyond the drain bound closes the connection, status kept",
          "[delivery]") {
  const std::size_t length = 16 + PlainHttpSender::kDrainBytes + 256 * 1024;
  RawServer server([length](RawServer& s, int fd, int) {
    while (s.read_request(fd)) {
      if (!RawServer::write_all(
              fd, "HTTP/1.1 422 Unprocessable\r\nContent-Length: " + std::to_string(length) +
                      "\r\n\r\n" + std::string(length, 'b'))) {
        return;
      }
    }
  });
  REQUIRE(server.running());
  ManualClock clock;
  auto sender = make_sender(subscription(server.url()), clock);

  const auto outcome = sender->send(sample_event(), 1);
  CHECK(outcome.kind == Kind::kFinal);
  CHECK(outcome.status == 422);
  CHECK(outcome.response_snippet == std::string(16, 'b'));
  const auto next = sender->send(sample_event(), 2);

  CHECK(next.status == 422);
  CHECK(sender->connections_opened() == 2);
}

TEST_CASE("plain sender: Connection: close and read-until-close responses end the connection",
          "[delivery]") {
  const std::string response =
      GENERATE(std::string("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"),
               std::string("HTTP/1.1 200 OK\r\n\r\nok"), std::string("HTTP/1.0 200 OK\r\n\r\nok"));
  INFO(response);
  // Says it closes; does close after a while, but only once the sender has moved on.
  RawServer server([&response](RawServer& s, int fd, int) {
    if (!s.read_request(fd) || !RawServer::write_all(fd, response)) return;
    if (response.find("Length") != std::string::npos) s.read_request(fd);  // keeps it open
  });
  REQUIRE(server.running());
  ManualClock clock;
  auto sender = make_sender(subscription(server.url()), clock);

  const auto first = sender->send(sample_event(), 1);
  const auto second = sender->send(sample_event(), 2);

  CHECK(first.kind == Kind::kDelivered);
  CHECK(first.response_snippet == "ok");
  CHECK(second.kind == Kind::kDelivered);
  CHECK(server.requests() == 2);
  CHECK(sender->connections_opened() == 2);
}

TEST_CASE("plain sender: a malformed response is retryable and closes the connection",
          "[delivery]") {
  RawServer server(answer_all("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nBad Header\r\n\r\nok"));
  REQUIRE(server.running());
  ManualClock clock;
  auto sender = make_sender(subscription(server.url()), clock);

  const auto outcome = sender->send(sample_event(), 1);
  CHECK(outcome.kind == Kind::kRetryable);
  CHECK(outcome.status == 0);
  CHECK(outcome.error == "invalid HTTP response: bad header line");
  sender->send(sample_event(), 2);
  CHECK(sender->connections_opened() == 2);
}

TEST_CASE("plain sender: interim 100 Continue is skipped and Retry-After read", "[delivery]") {
  RawServer server(
      answer_all("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 429 Too Many\r\nretry-after: 9\r\n"
                 "Content-Length: 0\r\n\r\n"));
  REQUIRE(server.running());
  ManualClock clock;
  auto sender = make_sender(subscription(server.url()), clock);

  const auto outcome = sender->send(sample_event(), 1);
  CHECK(outcome.kind == Kind::kRetryable);
  CHECK(outcome.status == 429);
  REQUIRE(outcome.retry_after.has_value());
  CHECK(*outcome.retry_after == 9s);
}

TEST_CASE("plain sender: after stop() a send makes no connection", "[delivery]") {
  RawServer server(answer_all(std::string(kOk)));
  REQUIRE(server.running());
  ManualClock clock;
  auto sender = make_sender(subscription(server.url()), clock);
  CHECK(sender->send(sample_event(), 1).kind == Kind::kDelivered);

  sender->stop();
  const auto outcome = sender->send(sample_event(), 2);

  CHECK(outcome.kind == Kind::kRetryable);
  CHECK(outcome.error == "request canceled");
  CHECK(server.requests() == 1);
}

TEST_CASE("make_http_sender picks the plain sender for http:// and httplib for https://",
          "[delivery]") {
  ManualClock clock;
  auto plain = make_http_sender(subscription("http://example.com/h"), clock);
  REQUIRE(plain.has_value());
  CHECK(dynamic_cast<PlainHttpSender*>(plain->get()) != nullptr);
  auto tls = make_http_sender(subscription("https://example.com/h"), clock);
  REQUIRE(tls.has_value());
  CHECK(dynamic_cast<HttplibSender*>(tls->get()) != nullptr);

  SubscriptionConfig unset;
  unset.name = "billing";
  const auto no_endpoint = make_http_sender(unset, clock);
  REQUIRE_FALSE(no_endpoint.has_value());
  CHECK(no_endpoint.error().code == ErrorCode::kInvalidArgument);
  CHECK(no_endpoint.error().message == "subscription \"billing\": endpoint is not set");
  for (const char* url : {"http://example.com/", "https://example.com/"}) {
    auto sub = subscription(url);
    sub.signing_secrets = {"whsec_!!!"};
    const auto bad = make_http_sender(sub, clock);
    REQUIRE_FALSE(bad.has_value());
    CHECK(bad.error().message == HttplibSender::create(sub, clock).error().message);
  }
  auto https = subscription("https://example.com/");
  https.tls.ca_file = "/nonexistent/relay-test/ca.pem";
  CHECK_FALSE(make_http_sender(https, clock).has_value());
  CHECK_FALSE(PlainHttpSender::create(subscription("https://example.com/"), clock).has_value());
}
