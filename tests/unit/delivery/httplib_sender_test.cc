// Both HTTP senders, HttplibSender and PlainHttpSender, against real cpp-httplib servers on
// 127.0.0.1 (port 0): the same cases, the same outcomes. Every server a test starts is stopped and
// joined by LoopbackServer's destructor. TLS-only cases use HttplibSender; cases for what only
// PlainHttpSender does are in plain_http_sender_test.cc.
#include "relay/common/version.h"
#include "relay/delivery/httplib_sender.h"

#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>
#include <type_traits>

#include "relay/delivery/plain_http_sender.h"
#include "tests/unit/delivery/sender_test_helpers.h"

using namespace std::chrono_literals;
using relay::Clock;
using relay::ErrorCode;
using relay::Event;
using relay::ManualClock;
using relay::Millis;
using relay::SystemClock;
using relay::config::SubscriptionConfig;
using relay::delivery::DeliveryOutcome;
using relay::delivery::HttplibSender;
using relay::delivery::PlainHttpSender;
using relay::delivery::Signer;
using relay::delivery::testing::sample_event;
using relay::delivery::testing::subscription;
using Kind = relay::delivery::DeliveryOutcome::Kind;

namespace {

// A cpp-httplib server on 127.0.0.1:<ephemeral>, listening on its own thread from construction
// to destruction.
class LoopbackServer {
 public:
  explicit LoopbackServer(const std::function<void(httplib::Server&)>& routes) {
    routes(server_);
    server_.set_keep_alive_timeout(1);  // so stop() does not wait out an idle keep-alive socket
    port_ = server_.bind_to_any_port("127.0.0.1");
    if (port_ <= 0) return;
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    // listen_after_bind sets is_running() before its accept loop; wait for that, bounded.
    SystemClock clock;
    const auto deadline = clock.now() + 10s;
    while (!server_.is_running() && clock.now() < deadline) std::this_thread::yield();
  }
  ~LoopbackServer() {
    server_.stop();
    if (thread_.joinable()) thread_.join();
  }
  LoopbackServer(const LoopbackServer&) = delete;
  LoopbackServer& operator=(const LoopbackServer&) = delete;

  bool running() const { return port_ > 0 && server_.is_running(); }
  std::string url(const std::string& path = "/") const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }

 private:
  httplib::Server server_;
  int port_ = -1;
  std::thread thread_;
};

// A gate a handler waits on until the test opens it; also reports that a request arrived.
class Gate {
 public:
  void enter_and_wait() {
    std::unique_lock lock(mu_);
    entered_ = true;
    cv_.notify_all();
    cv_.wait(lock, [&] { return open_; });
  }
  bool wait_entered(std::chrono::seconds limit) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, limit, [&] { return entered_; });
  }
  void open() {
    std::lock_guard lock(mu_);
    open_ = true;
    cv_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool entered_ = false;
  bool open_ = false;
};

// Opens the gate when it goes out of scope, before the server it is declared after is stopped
// (the server's worker cannot finish while its handler is parked on the gate).
struct OpenOnExit {
  Gate& gate;
  ~OpenOnExit() { gate.open(); }
};

// A loopback port with nothing listening: bound, then closed.
int closed_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = 0;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  socklen_t len = sizeof addr;
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  ::close(fd);
  return ntohs(addr.sin_port);
}


template <typename Sender>
std::unique_ptr<Sender> make_sender(const SubscriptionConfig& sub, Clock& clock) {
  auto sender = Sender::create(sub, clock);
  if (!sender) FAIL("create failed: " << sender.error().message);
  return std::move(*sender);
}

}  // namespace

TEMPLATE_TEST_CASE("a 200 is delivered and the consumer sees the contract headers and body",
                   "[delivery]", HttplibSender, PlainHttpSender) {
  std::mutex mu;
  httplib::Request seen;
  LoopbackServer server([&](httplib::Server& s) {
    s.Post("/hooks", [&](const httplib::Request& req, httplib::Response& res) {
      std::lock_guard lock(mu);
      seen = req;
      res.status = 200;
    });
  });
  REQUIRE(server.running());
  ManualClock clock;  // wall time 1700000000
  auto sub = subscription(server.url("/hooks?tenant=acme"));
  sub.signing_secrets = {"raw-secret"};
  auto sender = make_sender<TestType>(sub, clock);

  const auto outcome = sender->send(sample_event(), 1);

  CHECK(outcome.kind == Kind::kDelivered);
  CHECK(outcome.status == 200);
  CHECK(outcome.error.empty());
  std::lock_guard lock(mu);
  CHECK(seen.body == R"({"order":17})");
  CHECK(seen.get_param_value("tenant") == "acme");
  CHECK(seen.get_header_value("Content-Type") == "application/json");
  CHECK(seen.get_header_value("Idempotency-Key") == sample_event().event_id);
  CHECK(seen.get_header_value("webhook-timestamp") == "1700000000");
  CHECK(seen.get_header_value("webhook-signature") ==
        Signer::create("raw-secret")->sign(sample_event().event_id, 1700000000, R"({"order":17})"));
  CHECK(seen.get_header_value("ce-type") == "order.paid");
  CHECK(seen.get_header_value("relay-attempt") == "1");
  CHECK(seen.get_header_value("User-Agent") == std::string("relay/") + relay::kVersion);
}

TEMPLATE_TEST_CASE("a 503 with Retry-After is retryable after that many seconds", "[delivery]",
                   HttplibSender, PlainHttpSender) {
  LoopbackServer server([](httplib::Server& s) {
    s.Post("/", [](const httplib::Request&, httplib::Response& res) {
      res.status = 503;
      res.set_header("Retry-After", "7");
    });
  });
  REQUIRE(server.running());
  ManualClock clock;
  auto sender = make_sender<TestType>(subscription(server.url()), clock);

  const auto outcome = sender->send(sample_event(), 1);

  CHECK(outcome.kind == Kind::kRetryable);
  CHECK(outcome.status == 503);
  CHECK(outcome.error == "HTTP 503");
  REQUIRE(outcome.retry_after.has_value());
  CHECK(*outcome.retry_after == 7s);
}

TEMPLATE_TEST_CASE("a Retry-After is reported as sent (the retry policy caps it)", "[delivery]",
                   HttplibSender, PlainHttpSender) {
  LoopbackServer server([](httplib::Server& s) {
    s.Post("/", [](const httplib::Request&, httplib::Response& res) {
      res.status = 429;
      res.set_header("Retry-After", "86400");
    });
  });
  REQUIRE(server.running());
  ManualClock clock;
  auto sender = make_sender<TestType>(subscription(server.url()), clock);  // max_backoff 60s

  const auto outcome = sender->send(sample_event(), 1);

  CHECK(outcome.kind == Kind::kRetryable);
  REQUIRE(outcome.retry_after.has_value());
  CHECK(*outcome.retry_after == 86400s);
}

TEMPLATE_TEST_CASE("a 400 is final and keeps only max_response_bytes of a large body", "[delivery]",
                   HttplibSender, PlainHttpSender) {
  const std::string body = "bad request: " + std::string(200'000, 'x');
  LoopbackServer server([&](httplib::Server& s) {
    s.Post("/", [&](const httplib::Request&, httplib::Response& res) {
      res.status = 400;
      res.set_content(body, "text/plain");
    });
  });
  REQUIRE(server.running());
  ManualClock clock;
  auto sender = make_sender<TestType>(subscription(server.url()), clock);  // max_response_bytes 16

  const auto outcome = sender->send(sample_event(), 1);

  CHECK(outcome.kind == Kind::kFinal);
  CHECK(outcome.status == 400);
  CHECK(outcome.error == "HTTP 400");
  CHECK(outcome.response_snippet == body.substr(0, 16));
  CHECK_FALSE(outcome.retry_after.has_value());
  // The rest of the body was drained, so the keep-alive connection is still usable.
  CHECK(sender->send(sample_event(), 2).status == 400);
  if constexpr (std::is_same_v<TestType, PlainHttpSender>) {
    CHECK(sender->connections_opened() == 1);
  }
}

TEMPLATE_TEST_CASE("a 302 is retryable and not followed", "[delivery]", HttplibSender,
                   PlainHttpSender) {
  std::atomic<int> followed{0};
  LoopbackServer server([&](httplib::Server& s) {
    s.Post("/", [](const httplib::Request&, httplib::Response& res) {
      res.set_redirect("/elsewhere", 302);
    });
    s.Post("/elsewhere", [&](const httplib::Request&, httplib::Response& res) {
      ++followed;
      res.status = 200;
    });
    s.Get("/elsewhere", [&](const httplib::Request&, httplib::Response& res) {
      ++followed;
      res.status = 200;
    });
  });
  REQUIRE(server.running());
  ManualClock clock;
  auto sender = make_sender<TestType>(subscription(server.url()), clock);

  const auto outcome = sender->send(sample_event(), 1);

  CHECK(outcome.kind == Kind::kRetryable);
  CHECK(outcome.status == 302);
  CHECK(followed.load() == 0);
}

TEMPLATE_TEST_CASE("connection refused is retryable with no status", "[delivery]", HttplibSender,
                   PlainHttpSender) {
  ManualClock clock;
  auto sender = make_sender<TestType>(
      subscription("http://127.0.0.1:" + std::to_string(closed_port()) + "/"), clock);

  const auto outcome = sender->send(sample_event(), 1);

  CHECK(outcome.kind == Kind::kRetryable);
  CHECK(outcome.status == 0);
  CHECK_THAT(outcome.error, Catch::Contains("connection"));
}

TEMPLATE_TEST_CASE("a consumer slower than the timeout gives a retryable timeout", "[delivery]",
                   HttplibSender, PlainHttpSender) {
  Gate gate;
  LoopbackServer server([&](httplib::Server& s) {
    s.Post("/", [&](const httplib::Request&, httplib::Response& res) {
      gate.enter_and_wait();
      res.status = 200;
    });
  });
  OpenOnExit open_on_exit{gate};
  REQUIRE(server.running());
  SystemClock clock;  // the sender tells a timeout from a reset by elapsed time: needs real time
  auto sub = subscription(server.url());
  sub.timeout = 200ms;
  auto sender = make_sender<TestType>(sub, clock);

  const auto outcome = sender->send(sample_event(), 1);

  CHECK(outcome.kind == Kind::kRetryable);
  CHECK(outcome.status == 0);
  CHECK_THAT(outcome.error, Catch::Contains("timeout"));
}

TEMPLATE_TEST_CASE("stop() aborts an in-flight send, which returns retryable", "[delivery]",
                   HttplibSender, PlainHttpSender) {
  Gate gate;
  LoopbackServer server([&](httplib::Server& s) {
    s.Post("/", [&](const httplib::Request&, httplib::Response& res) {
      gate.enter_and_wait();
      res.status = 200;
    });
  });
  OpenOnExit open_on_exit{gate};
  REQUIRE(server.running());
  SystemClock clock;
  auto sub = subscription(server.url());
  sub.timeout = 60s;  // the test would hang for a minute if stop() did nothing
  auto sender = make_sender<TestType>(sub, clock);
  DeliveryOutcome outcome;
  std::thread sending([&] { outcome = sender->send(sample_event(), 1); });

  const bool arrived = gate.wait_entered(10s);
  sender->stop();
  sending.join();

  CHECK(arrived);
  CHECK(outcome.kind == Kind::kRetryable);
  CHECK(outcome.status == 0);
}

TEMPLATE_TEST_CASE("create refuses a subscription without an endpoint, naming it", "[delivery]",
                   HttplibSender, PlainHttpSender) {
  // The loader parses endpoints (tests/unit/common/endpoint_test.cc); only code can leave it unset.
  ManualClock clock;
  SubscriptionConfig sub;
  sub.name = "billing";
  const auto sender = TestType::create(sub, clock);
  REQUIRE_FALSE(sender.has_value());
  CHECK(sender.error().code == ErrorCode::kInvalidArgument);
  CHECK(sender.error().message == "subscription \"billing\": endpoint is not set");
}

TEST_CASE("create accepts http(s) endpoints with and without port and path", "[delivery]") {
  ManualClock clock;
  for (const char* good :
       {"http://example.com", "HTTP://example.com/", "http://example.com:8080",
        "http://127.0.0.1:9/hooks/in?x=1&y=%20", "http://[::1]:8080/h", "http://a-b.example_c/x",
        "https://example.com", "HTTPS://example.com:8443/hooks?x=1", "https://[::1]/h"}) {
    INFO("endpoint \"" << good << "\"");
    CHECK(HttplibSender::create(subscription(good), clock).has_value());
  }
  for (const char* good :
       {"http://example.com", "HTTP://example.com/", "http://example.com:8080",
        "http://127.0.0.1:9/hooks/in?x=1&y=%20", "http://[::1]:8080/h", "http://a-b.example_c/x"}) {
    INFO("endpoint \"" << good << "\"");
    CHECK(PlainHttpSender::create(subscription(good), clock).has_value());
  }
}

TEMPLATE_TEST_CASE("create rejects a whsec_ secret that is not base64", "[delivery]", HttplibSender,
                   PlainHttpSender) {
  ManualClock clock;
  auto sub = subscription("http://example.com/");
  sub.signing_secrets = {"whsec_!!!"};
  const auto sender = TestType::create(sub, clock);
  REQUIRE_FALSE(sender.has_value());
  CHECK(sender.error().code == ErrorCode::kInvalidArgument);
  CHECK_THAT(sender.error().message, Catch::Contains("billing"));
}

TEST_CASE("an https endpoint without tls settings is created with no files and no connection",
          "[delivery]") {
  ManualClock clock;
  auto sub = subscription("https://hooks.example.com/in");
  CHECK(HttplibSender::create(sub, clock).has_value());
  sub.tls.verify = false;  // warns once; still a valid sender
  CHECK(HttplibSender::create(sub, clock).has_value());
}

TEST_CASE("create rejects a tls.ca_file it cannot read, naming the subscription and the key",
          "[delivery]") {
  ManualClock clock;
  auto sub = subscription("https://hooks.example.com/");
  sub.tls.ca_file = "/nonexistent/relay-test/ca.pem";
  const auto sender = HttplibSender::create(sub, clock);
  REQUIRE_FALSE(sender.has_value());
  CHECK(sender.error().code == ErrorCode::kInvalidArgument);
  CHECK(sender.error().message ==
        "subscription \"billing\": tls.ca_file \"/nonexistent/relay-test/ca.pem\": cannot be "
        "read (No such file or directory)");
}
