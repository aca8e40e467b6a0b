// Integration: POST /inbox/{source} on the real binary. Every rejection answers its status and
// stores nothing; a valid event is stored once however often and however concurrently it is sent;
// signatures rotate; binary mode and both envelopes are read; metrics count each outcome; a client
// trickling its request does not hold a worker; idle sockets cannot fill the server.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <cerrno>
#include <csignal>
#include <thread>
#include <vector>

#include "relay/common/event.h"
#include "relay/delivery/envelope.h"
#include "tests/integration/inbox_test_helpers.h"
#include "tests/support/fake_consumer.h"
#include "tests/support/ops_probe.h"
#include "tests/support/relay_process.h"
#include "tests/support/test_database.h"
#include "tests/support/wait.h"

using namespace std::chrono_literals;
using namespace relay::testing;

namespace {

constexpr auto sample = &OpsProbe::sample;

// Waits until the inbox answers at all (a GET is answered 405 once it listens).
bool inbox_up(int port) {
  return wait_until([&] { return InboxClient(port).get("/inbox/x").status == 405; }, 60s);
}

// A blocking TCP connection to 127.0.0.1:port; -1 if it fails.
int connect_loopback(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// True once the peer has closed `fd` (EOF or reset); false while it is open and silent. Bytes that
// arrive are consumed and make it count as closed too: an idle socket must get nothing.
bool peer_closed(int fd) {
  char buf[512];
  const ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
  return n >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK);
}

// Raises this process's RLIMIT_NOFILE soft limit to the hard limit for its lifetime; relay started
// meanwhile inherits it. The default soft limit (often 1024) is below what a test with over a
// thousand sockets needs on each side.
class FdLimitRaised {
 public:
  FdLimitRaised() {
    getrlimit(RLIMIT_NOFILE, &saved_);
    rlimit raised = saved_;
    raised.rlim_cur = saved_.rlim_max;
    setrlimit(RLIMIT_NOFILE, &raised);
  }
  ~FdLimitRaised() { setrlimit(RLIMIT_NOFILE, &saved_); }
  FdLimitRaised(const FdLimitRaised&) = delete;
  FdLimitRaised& operator=(const FdLimitRaised&) = delete;

  rlim_t soft() const {
    rlimit now{};
    getrlimit(RLIMIT_NOFILE, &now);
    return now.rlim_cur;
  }

 private:
  rlimit saved_{};
};

}  // namespace

TEST_CASE("every inbox rejection answers its status, stores nothing, and is counted",
          "[integration][inbox]") {
  auto db = TestDatabase::create();
  const int port = FakeConsumer::unused_port();
  const int ops_port = FakeConsumer::unused_port();
  RelayProcess relay(
      inbox_yaml(port, {{.name = "signed", .secrets = {kSecretA}}, {.name = "open"}}, "",
                 fmt::format("limits:\n  max_payload_bytes: 1024\n"
                             "ops:\n  listen: 127.0.0.1:{}\n",
                             ops_port)),
      {}, {{"DATABASE_URL", db.url()}});
  REQUIRE(inbox_up(port));
  InboxClient client(port);
  const std::string body = R"({"amount":42})";
  const long long now = unix_now();

  // 401: wrong key, no signature at all, stale timestamps both ways, a timestamp that is no number.
  auto wrong_key = client.post("/inbox/signed", body, signed_headers(kKeyB, "evt-1", body));
  CHECK(wrong_key.status == 401);
  CHECK(client.post("/inbox/signed", body, {{"webhook-id", "evt-1"}}).status == 401);
  auto old = client.post("/inbox/signed", body, signed_headers(kKeyA, "evt-1", body, now - 600));
  CHECK(old.status == 401);
  CHECK(old.body.find("old") != std::string::npos);
  auto future = client.post("/inbox/signed", body, signed_headers(kKeyA, "evt-1", body, now + 600));
  CHECK(future.status == 401);
  CHECK(future.body.find("future") != std::string::npos);
  auto h = signed_headers(kKeyA, "evt-1", body);
  h[1].second = "soon";
  CHECK(client.post("/inbox/signed", body, h).status == 401);
  // A timestamp past what nanoseconds hold (9223372037 s) is stale, not a crash (issue 13, item 1).
  auto far = client.post(
      "/inbox/signed", "{}",
      {{"webhook-id", "a"}, {"webhook-timestamp", "9223372037"}, {"webhook-signature", "v1,x"}});
  CHECK(far.status == 401);
  CHECK(far.body.find("webhook-timestamp") != std::string::npos);
  // A signature over a different body (tampered payload).
  CHECK(client.post("/inbox/signed", body + " ", signed_headers(kKeyA, "evt-1", body)).status ==
        401);

  // 404 unknown source and unknown path; 405 other methods.
  CHECK(client.post("/inbox/nobody", body, signed_headers(kKeyA, "evt-1", body)).status == 404);
  CHECK(client.post("/elsewhere", body, {}).status == 404);
  auto get = client.get("/inbox/signed");
  CHECK(get.status == 405);
  CHECK(get.header("allow") == "POST");

  // 413: a payload over limits.max_payload_bytes, signed correctly.
  const std::string big(2000, 'x');
  CHECK(client.post("/inbox/signed", big, signed_headers(kKeyA, "evt-big", big)).status == 413);
  CHECK(client.post("/inbox/open", big, {{"webhook-id", "evt-big"}}).status == 413);

  // 400: a malformed envelope, no id at all, an empty id, a broken %-escape.
  CHECK(client
            .post("/inbox/open", "{not json", {{"webhook-id", "evt-2"}},
                  "application/cloudevents+json")
            .status == 400);
  CHECK(client.post("/inbox/open", "\x01\x02garbage", {}, "application/x-protobuf").status == 400);
  auto no_id = client.post("/inbox/open", body, {});
  CHECK(no_id.status == 400);
  CHECK(no_id.body.find("webhook-id") != std::string::npos);
  CHECK(client.post("/inbox/open", body, {{"webhook-id", ""}}).status == 400);
  CHECK(client.post("/inbox/open", body, {{"ce-id", "bad%zz"}}).status == 400);

  CHECK(db.count("relay.inbox") == 0);
  CHECK(db.count("relay.delivery") == 0);

  // The same client, a valid request: stored (so the checks above could have seen a row).
  auto ok = client.post("/inbox/signed", body, signed_headers(kKeyA, "evt-1", body));
  CHECK(ok.status == 200);
  CHECK(ok.header("relay-duplicate") == "false");
  CHECK(db.count("relay.inbox") == 1);

  OpsProbe ops(ops_port);
  const std::string m = ops.metrics();
  auto rejected = [&](const char* reason, const char* source) {
    return sample(m, fmt::format("relay_inbox_rejected_total{{reason=\"{}\",source=\"{}\"}}",
                                 reason, source))
        .value_or(-1);
  };
  CHECK(rejected("bad_signature", "signed") == 2);
  CHECK(rejected("missing_signature", "signed") == 1);
  CHECK(rejected("stale_timestamp", "signed") == 3);
  CHECK(rejected("bad_timestamp", "signed") == 1);
  CHECK(rejected("unknown_source", "_unknown") == 2);
  CHECK(rejected("method_not_allowed", "signed") == 1);
  CHECK(rejected("payload_too_large", "signed") == 1);
  CHECK(rejected("payload_too_large", "open") == 1);
  CHECK(rejected("malformed", "open") == 3);
  CHECK(rejected("missing_id", "open") == 2);
  CHECK(sample(m, "relay_inbox_received_total{source=\"signed\"}") == 1);
  CHECK(sample(m, "relay_inbox_duplicates_total{source=\"signed\"}") == 0);
}

TEST_CASE("the same event posted 100 times at once is stored once and answered 200 every time",
          "[integration][inbox]") {
  auto db = TestDatabase::create();
  const int port = FakeConsumer::unused_port();
  const int ops_port = FakeConsumer::unused_port();
  // Queue room for every request: this test is about dedupe, not about load shedding.
  RelayProcess relay(
      inbox_yaml(port, {{.name = "pay", .secrets = {kSecretA}}}, "  max_queued_connections: 200\n",
                 fmt::format("ops:\n  listen: 127.0.0.1:{}\n", ops_port)),
      {}, {{"DATABASE_URL", db.url()}});
  REQUIRE(inbox_up(port));

  const std::string body = R"({"order":7})";
  const Headers headers = signed_headers(kKeyA, "msg_2LhQx7", body);
  constexpr int kPosts = 100;
  std::atomic<int> ok{0}, fresh{0}, duplicate{0}, ready{0};
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  for (int i = 0; i < kPosts; ++i) {
    threads.emplace_back([&] {
      InboxClient client(port);
      ++ready;
      while (!go.load()) std::this_thread::yield();
      auto r = client.post("/inbox/pay", body, headers);
      if (r.status == 200) ++ok;
      if (r.header("relay-duplicate") == "false") ++fresh;
      if (r.header("relay-duplicate") == "true") ++duplicate;
    });
  }
  while (ready.load() < kPosts) std::this_thread::yield();
  go = true;
  for (auto& t : threads) t.join();

  CHECK(ok == kPosts);
  CHECK(fresh == 1);
  CHECK(duplicate == kPosts - 1);
  CHECK(db.count("relay.inbox") == 1);
  CHECK(db.value("SELECT event_id || ' ' || source FROM relay.inbox") == "msg_2LhQx7 pay");

  OpsProbe ops(ops_port);
  const std::string m = ops.metrics();
  CHECK(sample(m, "relay_inbox_received_total{source=\"pay\"}") == 1);
  CHECK(sample(m, "relay_inbox_duplicates_total{source=\"pay\"}") == kPosts - 1);
}

TEST_CASE("a source with two secrets accepts a signature made with either; unsigned needs none",
          "[integration][inbox]") {
  auto db = TestDatabase::create();
  const int port = FakeConsumer::unused_port();
  RelayProcess relay(
      inbox_yaml(port, {{.name = "rot", .secrets = {kSecretA, kSecretB}}, {.name = "open"}}), {},
      {{"DATABASE_URL", db.url()}});
  REQUIRE(inbox_up(port));
  InboxClient client(port);
  const std::string body = "{}";

  CHECK(client.post("/inbox/rot", body, signed_headers(kKeyA, "a", body)).status == 200);
  CHECK(client.post("/inbox/rot", body, signed_headers(kKeyB, "b", body)).status == 200);
  // A sender mid-rotation sends several signatures: one match is enough; other schemes are skipped.
  auto h = signed_headers(kKeyB, "c", body);
  h[2].second = "v1a,ed25519stuff v1,AAAA " + h[2].second;
  CHECK(client.post("/inbox/rot", body, h).status == 200);
  CHECK(client.post("/inbox/rot", body, signed_headers("other-key", "d", body)).status == 401);
  CHECK(client.post("/inbox/open", body, {{"webhook-id", "e"}}).status == 200);
  CHECK(db.rows("SELECT source, event_id FROM relay.inbox ORDER BY event_id") ==
        std::vector<std::vector<std::string>>{
            {"rot", "a"}, {"rot", "b"}, {"rot", "c"}, {"open", "e"}});
}

TEST_CASE("a request signed with Svix's header names is accepted; webhook-* wins over svix-*",
          "[integration][inbox]") {
  auto db = TestDatabase::create();
  const int port = FakeConsumer::unused_port();
  RelayProcess relay(inbox_yaml(port, {{.name = "svix", .secrets = {kSecretA}}}), {},
                     {{"DATABASE_URL", db.url()}});
  REQUIRE(inbox_up(port));
  InboxClient client(port);
  const std::string body = R"({"type":"invoice.paid"})";
  const long long now = unix_now();

  // What a Svix-powered sender sends: the Standard Webhooks values under svix-* names.
  auto svix = client.post("/inbox/svix", body,
                          {{"svix-id", "msg_svix"},
                           {"svix-timestamp", std::to_string(now)},
                           {"svix-signature", sign_v1(kKeyA, "msg_svix", now, body)}});
  INFO(svix.body);
  CHECK(svix.status == 200);
  // A bad svix signature is still refused.
  CHECK(client
            .post("/inbox/svix", body,
                  {{"svix-id", "msg_bad"},
                   {"svix-timestamp", std::to_string(now)},
                   {"svix-signature", sign_v1(kKeyB, "msg_bad", now, body)}})
            .status == 401);
  // Both sets: the webhook-* headers are the ones verified (and the id taken), svix-* ignored.
  auto both = signed_headers(kKeyA, "msg_both", body, now);
  both.push_back({"svix-id", "msg_other"});
  both.push_back({"svix-timestamp", "1"});
  both.push_back({"svix-signature", "v1,AAAA"});
  CHECK(client.post("/inbox/svix", body, both).status == 200);
  auto webhook_bad = signed_headers(kKeyB, "msg_wbad", body, now);
  webhook_bad.push_back({"svix-id", "msg_wbad"});
  webhook_bad.push_back({"svix-timestamp", std::to_string(now)});
  webhook_bad.push_back({"svix-signature", sign_v1(kKeyA, "msg_wbad", now, body)});
  CHECK(client.post("/inbox/svix", body, webhook_bad).status == 401);

  // Stored under the id that was signed; the signature headers are not kept as app headers.
  CHECK(db.rows("SELECT event_id, headers::text FROM relay.inbox ORDER BY event_id") ==
        std::vector<std::vector<std::string>>{{"msg_both", "{}"}, {"msg_svix", "{}"}});
}

TEST_CASE("binary mode stores id, type, subject, content type and app headers, not credentials",
          "[integration][inbox]") {
  auto db = TestDatabase::create();
  const int port = FakeConsumer::unused_port();
  RelayProcess relay(inbox_yaml(port, {{.name = "open"}}), {}, {{"DATABASE_URL", db.url()}});
  REQUIRE(inbox_up(port));
  InboxClient client(port);

  auto r = client.post("/inbox/open", "payload bytes",
                       {{"ce-id", "id%20one"},
                        {"ce-type", "order.paid"},
                        {"ce-subject", "cust%C3%A9"},
                        {"X-Tenant", "acme"},
                        {"X-Trace", "t1"},
                        {"Authorization", "Bearer secret"},
                        {"relay-attempt", "3"}},
                       "text/plain");
  REQUIRE(r.status == 200);
  CHECK(db.rows("SELECT event_id, topic, key, convert_from(payload, 'UTF8'), content_type, "
                "headers::text, processed_at IS NULL FROM relay.inbox") ==
        std::vector<std::vector<std::string>>{{"id one", "order.paid", "cust\xC3\xA9",
                                               "payload bytes", "text/plain",
                                               R"({"x-trace": "t1", "x-tenant": "acme"})", "t"}});
  // webhook-id wins over ce-id; a key that is not UTF-8 is refused.
  CHECK(client.post("/inbox/open", "x", {{"webhook-id", "w1"}, {"ce-id", "c1"}}).status == 200);
  CHECK(db.count("relay.inbox WHERE event_id = 'w1'") == 1);
  CHECK(client.post("/inbox/open", "x", {{"webhook-id", "w2"}, {"ce-subject", "%FF"}}).status ==
        400);
  CHECK(db.count("relay.inbox") == 2);
}

TEST_CASE("cloudevents-json and protobuf envelopes are stored with the envelope's attributes",
          "[integration][inbox]") {
  auto db = TestDatabase::create();
  const int port = FakeConsumer::unused_port();
  RelayProcess relay(inbox_yaml(port, {{.name = "env", .secrets = {kSecretA}}}), {},
                     {{"DATABASE_URL", db.url()}});
  REQUIRE(inbox_up(port));
  InboxClient client(port);

  const std::string ce =
      R"({"specversion":"1.0","id":"ce-1","source":"relay/x","type":"user.created",)"
      R"("subject":"u7","datacontenttype":"application/json","data":{"n":1}})";
  auto r1 = client.post("/inbox/env", ce, signed_headers(kKeyA, "ce-1", ce),
                        "application/cloudevents+json");
  CHECK(r1.status == 200);

  relay::Event e;
  e.event_id = "pb-1";
  e.topic = "user.deleted";
  e.key = "u8";
  e.payload = std::string("\x00\x01\x02", 3);
  e.content_type = "application/octet-stream";
  e.headers_json = R"({"X-App":"yes"})";
  const std::string pb = relay::delivery::encode_protobuf_event(e, 1);
  auto r2 =
      client.post("/inbox/env", pb, signed_headers(kKeyA, "pb-1", pb), "application/x-protobuf");
  CHECK(r2.status == 200);
  // The same protobuf event again: a duplicate.
  auto r3 =
      client.post("/inbox/env", pb, signed_headers(kKeyA, "pb-1", pb), "application/x-protobuf");
  CHECK(r3.status == 200);
  CHECK(r3.header("relay-duplicate") == "true");

  CHECK(
      db.rows("SELECT event_id, topic, key, encode(payload, 'hex'), content_type FROM relay.inbox "
              "ORDER BY event_id") ==
      std::vector<std::vector<std::string>>{
          {"ce-1", "user.created", "u7", "7b226e223a317d", "application/json"},
          {"pb-1", "user.deleted", "u8", "000102", "application/octet-stream"}});
  CHECK(db.value("SELECT headers->>'x-app' FROM relay.inbox WHERE event_id = 'pb-1'") == "yes");
}

TEST_CASE("a client trickling its request byte by byte is cut off at read_timeout",
          "[integration][inbox]") {
  auto db = TestDatabase::create();
  const int port = FakeConsumer::unused_port();
  // One worker: if the trickler held it, the normal request below could not be answered.
  RelayProcess relay(inbox_yaml(port, {{.name = "open"}}, "  workers: 1\n  read_timeout: 1s\n"), {},
                     {{"DATABASE_URL", db.url()}});
  REQUIRE(inbox_up(port));

  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  timeval tv{0, 1000};  // recv below only peeks whether the server closed
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);

  // 20 s worth of request head at one byte per 50 ms; the server must give up long before.
  std::string head = "POST /inbox/open HTTP/1.1\r\nHost: x\r\nwebhook-id: slow\r\n";
  while (head.size() < 400) head += "X-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
  size_t sent = 0;
  bool closed = false;
  bool normal_answered = false;
  std::string answer;
  for (; sent < head.size() && !closed; ++sent) {
    if (send(fd, &head[sent], 1, MSG_NOSIGNAL) != 1) {
      closed = true;
      break;
    }
    char buf[256];
    const ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n > 0) answer.append(buf, static_cast<size_t>(n));
    if (n == 0) closed = true;
    if (sent == 5) {
      // While the trickle is in progress, a normal request is served by the one worker.
      normal_answered =
          InboxClient(port).post("/inbox/open", "{}", {{"webhook-id", "fast"}}).status == 200;
    }
    std::this_thread::sleep_for(50ms);  // ok-sleep: the attacker's pace, not a wait for relay
  }
  close(fd);
  CHECK(normal_answered);
  CHECK(closed);
  CHECK(sent < head.size());
  CHECK((answer.empty() || answer.rfind("HTTP/1.1 408", 0) == 0));
  CHECK(db.count("relay.inbox") == 1);
}

TEST_CASE("1,100 idle connections do not lock a signed request out of the inbox",
          "[integration][inbox]") {
  constexpr int kIdle = 1'100;            // more than the inbox's default max_connections (1,024)
  constexpr int kMaxConnections = 1'024;  // HttpServerLimits::kDefaultMaxConnections
  FdLimitRaised fd_limit;
  // Each side holds every socket: this process the client ends, relay the server ends.
  if (fd_limit.soft() < 2 * kIdle) {
    FAIL("RLIMIT_NOFILE hard limit " << fd_limit.soft() << " is too low for " << kIdle
                                     << " sockets on each side");
  }

  auto db = TestDatabase::create();
  const int port = FakeConsumer::unused_port();
  const int ops_port = FakeConsumer::unused_port();
  // idle_timeout far beyond the test: only making room may close an idle socket.
  RelayProcess relay(
      inbox_yaml(port, {{.name = "signed", .secrets = {kSecretA}}}, "  idle_timeout: 30m\n",
                 fmt::format("ops:\n  listen: 127.0.0.1:{}\n", ops_port)),
      {}, {{"DATABASE_URL", db.url()}});
  REQUIRE(inbox_up(port));

  // Sockets that connect and never send a byte, in order: the accept queue is FIFO, so relay
  // accepts them in this order and evicts the oldest first.
  std::vector<int> idle;
  for (int i = 0; i < kIdle; ++i) {
    const int fd = connect_loopback(port);
    REQUIRE(fd >= 0);
    idle.push_back(fd);
  }

  // Accepted after every idle socket, so the server is full when it arrives.
  InboxClient client(port);
  const std::string body = R"({"order":1100})";
  const auto reply = client.post("/inbox/signed", body, signed_headers(kKeyA, "evt-full", body));
  CHECK(reply.status == 200);
  CHECK(db.count("relay.inbox WHERE event_id = 'evt-full'") == 1);

  // At least kIdle + 1 - kMaxConnections idle connections made room (one more if inbox_up's
  // closed connection was still open): the oldest idle sockets were closed without an answer,
  // the newest is still open, and no connection was refused.
  constexpr int kMinEvicted = kIdle + 1 - kMaxConnections;
  CHECK(wait_until(
      [&] {
        for (int i = 0; i < kMinEvicted - 1; ++i) {
          if (!peer_closed(idle[i])) return false;
        }
        return true;
      },
      60s));
  CHECK_FALSE(peer_closed(idle.back()));
  OpsProbe ops(ops_port);
  const std::string m = ops.metrics();
  CHECK(sample(m, "relay_inbox_idle_connections_evicted_total").value_or(-1) >= kMinEvicted);
  CHECK(sample(m, "relay_inbox_server_rejected_total{reason=\"too_many_connections\"}")
            .value_or(-1) == 0);
  for (const int fd : idle) close(fd);
}
