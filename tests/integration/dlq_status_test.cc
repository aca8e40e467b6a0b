// Integration: `relay status` against real PostgreSQL: outbox backlog by topic, retries and dead
// letters by subscription, plus breaker and in-flight state from an ops listener (a stand-in
// serving GET /status on loopback, and an unreachable one). Table output is compared with golden
// files (RELAY_NOW pinned, rows inserted with fixed times; regenerate with RELAY_UPDATE_GOLDEN=1).

#include <httplib.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <csignal>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "tests/integration/test_config.h"
#include "tests/support/fake_consumer.h"
#include "tests/support/relay_process.h"
#include "tests/support/temp_dir.h"
#include "tests/support/test_database.h"
#include "tests/support/wait.h"

using namespace std::chrono_literals;
using namespace relay::testing;
using Json = nlohmann::json;

namespace {

constexpr const char* kPinnedNow = "2024-05-01T12:00:00Z";

struct CliRun {
  int code = -1;
  std::string output;
};

CliRun status(std::vector<std::string> args, EnvVars env = {}) {
  args.insert(args.begin(), "status");
  env.emplace("RELAY_NOW", kPinnedNow);
  CliRun r;
  r.code = RelayProcess::run_cli(args, &r.output, 60s, env);
  return r;
}

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size()))
    s.replace(at, from.size(), to);
  return s;
}

// Runs of spaces become one, so checks do not depend on column widths.
std::string squash_spaces(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c != ' ' || out.empty() || out.back() != ' ') out += c;
  }
  return out;
}

void check_golden(const std::string& name, const std::string& actual) {
  const std::string here = __FILE__;
  const std::string path = here.substr(0, here.rfind('/')) + "/golden/" + name;
  if (const char* update = std::getenv("RELAY_UPDATE_GOLDEN");
      update != nullptr && *update == '1') {
    std::ofstream(path, std::ios::binary) << actual;
  }
  INFO("golden file " << path << " (regenerate with RELAY_UPDATE_GOLDEN=1)");
  CHECK(actual == read_file(path));
}

// A backlog in every table, with fixed times relative to kPinnedNow. Leases and delays are
// relative to the database's clock, which decides what is claimed or delayed.
void insert_backlog(TestDatabase& db) {
  db.exec(R"SQL(
    INSERT INTO relay.outbox (topic, key, payload, created_at, deliver_after, lease_owner, lease_until) VALUES
      ('order.paid', '1', '{}', '2024-05-01T11:58:00Z', NULL, NULL, NULL),
      ('order.paid', '2', '{}', '2024-05-01T11:59:00Z', NULL, 'other:1:aa', now() + interval '1 hour'),
      ('order.paid', '3', '{}', '2024-05-01T11:59:30Z', NULL, NULL, NULL),
      ('order.paid', '4', '{}', '2024-05-01T10:00:00Z', now() + interval '1 hour', NULL, NULL),
      ('user.signup', 'u', '{}', '2024-05-01T11:00:00Z', NULL, NULL, NULL);
    INSERT INTO relay.delivery (outbox_id, event_id, subscription, topic, key, payload, content_type, headers,
                                created_at, attempts, first_failed_at, next_attempt_at, lease_owner, lease_until)
    VALUES
      (101, gen_random_uuid(), 'billing', 'order.paid', 'a', '{}', 'application/json', '{}', '2024-05-01T11:39:00Z',
       3, '2024-05-01T11:40:00Z', '2024-05-01T12:00:30Z', NULL, NULL),
      (102, gen_random_uuid(), 'billing', 'order.paid', 'b', '{}', 'application/json', '{}', '2024-05-01T11:49:00Z',
       1, '2024-05-01T11:50:00Z', '2024-05-01T12:05:00Z', 'other:1:aa', now() + interval '1 hour'),
      (103, gen_random_uuid(), 'search', 'user.signup', 'u', '{}', 'application/json', '{}', '2024-05-01T10:59:00Z',
       7, '2024-05-01T11:00:00Z', '2024-05-01T11:59:00Z', NULL, NULL);
    INSERT INTO relay.dead_letter (event_id, subscription, topic, key, payload, content_type, headers, created_at,
                                   reason, attempts, failed_at, replayed_at)
    VALUES
      (gen_random_uuid(), 'billing', 'order.paid', 'a', '{}', 'application/json', '{}', '2024-05-01T09:00:00Z',
       'retries_exhausted', 12, '2024-05-01T10:00:00Z', NULL),
      (gen_random_uuid(), 'billing', 'order.paid', 'a', '{}', 'application/json', '{}', '2024-05-01T09:00:00Z',
       'non_retryable_status', 1, '2024-05-01T11:00:00Z', NULL),
      (gen_random_uuid(), 'billing', 'order.paid', 'b', '{}', 'application/json', '{}', '2024-05-01T09:00:00Z',
       'non_retryable_status', 1, '2024-05-01T11:30:00Z', NULL),
      (gen_random_uuid(), 'billing', 'order.paid', 'c', '{}', 'application/json', '{}', '2024-04-01T09:00:00Z',
       'non_retryable_status', 1, '2024-04-01T10:00:00Z', '2024-04-02T10:00:00Z'),
      (gen_random_uuid(), '(none)', 'audit.log', NULL, '{}', 'application/json', '{}', '2024-05-01T07:00:00Z',
       'no_subscription', 0, '2024-05-01T08:00:00Z', NULL);
  )SQL");
}

// Serves GET /status with a fixed JSON body on 127.0.0.1, standing in for a running relay's ops
// listener. Thread-safe counters; the destructor stops the server.
class FakeOpsListener {
 public:
  explicit FakeOpsListener(std::string body) : body_(std::move(body)) {
    server_.Get("/status", [this](const httplib::Request&, httplib::Response& res) {
      ++hits_;
      res.set_content(body_, "application/json");
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    REQUIRE(port_ > 0);
    thread_ = std::thread([this] { server_.listen_after_bind(); });
  }
  ~FakeOpsListener() {
    server_.stop();
    thread_.join();
  }
  int port() const { return port_; }
  int hits() const { return hits_.load(); }

 private:
  std::string body_;
  httplib::Server server_;
  int port_ = 0;
  std::atomic<int> hits_{0};
  std::thread thread_;
};

constexpr const char* kOpsStatus = R"({
  "version": "0.1.0", "owner": "app-7:4242:9f", "ready": true, "state": "running",
  "subscriptions": [
    {"name": "billing", "breaker": {"state": "open", "consecutive_failures": 5, "trips": 3, "open_for_ms": 30000,
                                    "reopens_in_ms": 12000}, "in_flight": 0},
    {"name": "search", "breaker": {"state": "closed", "consecutive_failures": 2, "trips": 0, "open_for_ms": 0,
                                   "reopens_in_ms": 0}, "in_flight": 3,
     "rate_limit": {"tokens_available": 7.5}},
    {"name": "fresh", "breaker": {"state": "half_open", "consecutive_failures": 0, "trips": 1, "open_for_ms": 30000,
                                  "reopens_in_ms": 0}, "in_flight": 1}
  ]})";

}  // namespace

TEST_CASE(
    "dlq/status: relay status shows backlog, retries and dead letters, and says when the ops "
    "listener is unreachable",
    "[integration][dlq][status]") {
  auto db = TestDatabase::create();
  insert_backlog(db);
  const int port = FakeConsumer::unused_port();
  const std::string ops = fmt::format("http://127.0.0.1:{}", port);

  auto r = status({"--database-url", db.url(), "--ops-url", ops});
  INFO(r.output);
  CHECK(r.code == 0);  // the ops part is best effort
  CHECK(r.output.find("ops listener: not reachable at " + ops + " (breaker states unknown") !=
        std::string::npos);
  check_golden("status_ops_unreachable.txt", replace_all(r.output, std::to_string(port), "PORT"));

  auto j = Json::parse(
      status({"--database-url", db.url(), "--ops-url", ops, "--output", "json"}).output);
  CHECK(j.at("outbox").at("pending") == 5);
  CHECK(j.at("ops").at("reachable") == false);
  CHECK(j.at("ops").at("url") == ops);
  std::map<std::string, Json> subs;
  for (const auto& s : j.at("subscriptions")) subs[s.at("name").get<std::string>()] = s;
  CHECK(subs.at("billing").at("retries_pending") == 2);
  CHECK(subs.at("billing").at("retrying_now") == 1);
  CHECK(subs.at("billing").at("dead_letters") == 3);
  CHECK(subs.at("billing").at("keys_with_dead_letter") == 2);
  CHECK(subs.at("billing").at("next_attempt_at") == "2024-05-01T12:00:30.000000Z");
  CHECK(subs.at("billing").at("breaker").is_null());
  CHECK(subs.at("search").at("retries_pending") == 1);
  CHECK(subs.at("(none)").at("dead_letters") == 1);
}

TEST_CASE(
    "dlq/status: relay status shows breaker state, in-flight requests and rate limits from the ops "
    "listener",
    "[integration][dlq][status]") {
  auto db = TestDatabase::create();
  insert_backlog(db);
  FakeOpsListener ops(kOpsStatus);
  const std::string url = fmt::format("http://127.0.0.1:{}", ops.port());

  auto r = status({"--database-url", db.url(), "--ops-url", url});
  INFO(r.output);
  CHECK(r.code == 0);
  CHECK(ops.hits() == 1);
  check_golden("status_ops.txt", replace_all(r.output, std::to_string(ops.port()), "PORT"));

  auto j = Json::parse(
      status({"--database-url", db.url(), "--ops-url", url, "--output", "json"}).output);
  CHECK(j.at("ops").at("reachable") == true);
  CHECK(j.at("ops").at("owner") == "app-7:4242:9f");
  for (const auto& s : j.at("subscriptions")) {
    if (s.at("name") == "billing") {
      CHECK(s.at("breaker").at("state") == "open");
      CHECK(s.at("in_flight") == 0);
    }
    if (s.at("name") == "search") CHECK(s.at("rate_limit").at("tokens_available") == 7.5);
    if (s.at("name") == "fresh") CHECK(s.at("retries_pending") == 0);
  }
}

TEST_CASE(
    "dlq/status: relay status takes the ops URL from ops.listen in --config and lists every "
    "configured subscription",
    "[integration][dlq][status]") {
  auto db = TestDatabase::create();
  insert_backlog(db);
  FakeOpsListener ops(kOpsStatus);
  TestRelayConfig cfg;
  cfg.subscriptions = {
      {.name = "billing", .topics = {"order.*"}, .endpoint = "http://127.0.0.1:9/e"},
      {.name = "search", .topics = {"user.*", "order.paid"}, .endpoint = "http://127.0.0.1:9/e"},
      {.name = "idle", .topics = {"nothing.*"}, .endpoint = "http://127.0.0.1:9/e"}};
  cfg.extra = fmt::format("ops:\n  listen: 0.0.0.0:{}\n", ops.port());
  TempDir dir;
  const std::string path = dir.write("relay.yaml", to_yaml(cfg));

  auto r = status({"--config", path}, {{"DATABASE_URL", db.url()}});
  INFO(r.output);
  REQUIRE(r.code == 0);
  CHECK(ops.hits() == 1);  // 0.0.0.0 became 127.0.0.1
  CHECK(r.output.find(fmt::format("ops listener: http://127.0.0.1:{} (relay 0.1.0", ops.port())) !=
        std::string::npos);
  const std::string squashed = squash_spaces(r.output);
  CHECK(squashed.find(" order.paid 4 3 1 1 2m billing, search\n") != std::string::npos);
  CHECK(squashed.find(" user.signup 1 1 0 0 1h search\n") != std::string::npos);
  CHECK(squashed.find(" idle 0 - - 0 - 0 - - -\n") != std::string::npos);
}

TEST_CASE(
    "dlq/status: relay status counts the retries of a real relay delivering to a failing consumer",
    "[integration][dlq][status]") {
  auto db = TestDatabase::create();
  FakeConsumer failing{Reply{.status = 503}};
  TestRelayConfig cfg;
  cfg.subscriptions = {
      {.name = "flaky", .topics = {"*"}, .endpoint = failing.url(), .max_attempts = 1000}};
  RelayProcess relay(to_yaml(cfg), {}, {{"DATABASE_URL", db.url()}});
  db.exec("SELECT relay.publish('order.paid', 'k' || i, '{}'::jsonb) FROM generate_series(1, 5) i");
  REQUIRE(wait_until([&] { return db.count("relay.delivery WHERE subscription = 'flaky'") == 5; },
                     60s));

  std::string out;
  REQUIRE(RelayProcess::run_cli({"status", "--config", relay.config_path(), "--output", "json"},
                                &out, 60s, {{"DATABASE_URL", db.url()}}) == 0);
  INFO(out);
  const Json j = Json::parse(out);
  REQUIRE(j.at("subscriptions").size() == 1);
  CHECK(j.at("subscriptions")[0].at("name") == "flaky");
  CHECK(j.at("subscriptions")[0].at("configured") == true);
  CHECK(j.at("subscriptions")[0].at("retries_pending") == 5);
  CHECK(j.at("subscriptions")[0].at("dead_letters") == 0);
  relay.signal(SIGTERM);
  CHECK(relay.wait_exit(60s) == 0);
}

TEST_CASE("dlq/status: relay status shows the open breaker of a real relay whose consumer is down",
          "[integration][dlq][status]") {
  auto db = TestDatabase::create();
  const int ops_port = FakeConsumer::unused_port();
  const int down_port = FakeConsumer::unused_port();
  const std::string yaml = fmt::format(R"(database:
  url: ${{DATABASE_URL}}
source:
  poll_interval: 200ms
ops:
  listen: 127.0.0.1:{}
subscriptions:
  - name: payments
    topics: ["*"]
    endpoint: http://127.0.0.1:{}/events
    retry: {{ max_attempts: 1000, initial_backoff: 10ms, max_backoff: 50ms }}
    circuit_breaker: {{ failure_threshold: 2, open_for: 1m }}
)",
                                       ops_port, down_port);
  RelayProcess relay(yaml, {}, {{"DATABASE_URL", db.url()}});
  db.exec("SELECT relay.publish('order.paid', 'k' || i, '{}'::jsonb) FROM generate_series(1, 3) i");

  Json doc, sub;
  const bool open = wait_until(
      [&] {
        std::string out;
        if (RelayProcess::run_cli({"status", "--config", relay.config_path(), "--output", "json"},
                                  &out, 30s, {{"DATABASE_URL", db.url()}}) != 0) {
          return false;
        }
        doc = Json::parse(out, nullptr, false);
        if (doc.is_discarded() || !doc.at("ops").at("reachable").get<bool>()) return false;
        sub = doc.at("subscriptions").at(0);
        return sub.at("breaker").is_object() && sub.at("breaker").at("state") == "open";
      },
      60s);
  INFO(sub.dump() << "\n" << relay.log());
  REQUIRE(open);
  CHECK(sub.at("name") == "payments");
  // Each event is in one place or the other, never lost or counted twice (one snapshot).
  CHECK(doc.at("outbox").at("pending").get<int>() + sub.at("retries_pending").get<int>() == 3);

  std::string table;
  REQUIRE(RelayProcess::run_cli({"status", "--config", relay.config_path()}, &table, 30s,
                                {{"DATABASE_URL", db.url()}}) == 0);
  INFO(table);
  CHECK(squash_spaces(table).find(" open (half-open in ") != std::string::npos);
  CHECK(table.find(fmt::format("ops listener: http://127.0.0.1:{} (relay ", ops_port)) !=
        std::string::npos);
  relay.signal(SIGTERM);
  CHECK(relay.wait_exit(60s) == 0);
}

TEST_CASE("dlq/status: relay status reports an unreachable database with exit 1 and no password",
          "[integration][dlq][status]") {
  const int port = FakeConsumer::unused_port();
  std::string out;
  const int code = RelayProcess::run_cli(
      {"status", "--database-url", fmt::format("postgresql://ops:hunter2@127.0.0.1:{}/app", port)},
      &out);
  INFO(out);
  CHECK(code == 1);
  CHECK(out.find("database unreachable") != std::string::npos);
  CHECK(out.find(std::to_string(port)) != std::string::npos);
  CHECK(out.find("hunter2") == std::string::npos);
  CHECK(RelayProcess::run_cli(
            {"status", "--database-url", "postgresql://x@127.0.0.1/db", "--ops-url", "ftp://x"},
            nullptr) == 2);
}
