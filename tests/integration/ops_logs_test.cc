// Integration: what relay logs. A consumer outage logs breaker state changes, not one line per
// failed request; signing secrets and the database password never appear in logs, /status,
// /metrics or CLI output.

#include <httplib.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <csignal>
#include <fstream>
#include <sstream>

#include "tests/integration/test_config.h"
#include "tests/support/fake_consumer.h"
#include "tests/support/relay_process.h"
#include "tests/support/temp_dir.h"
#include "tests/support/test_database.h"
#include "tests/support/wait.h"

using namespace std::chrono_literals;
using namespace relay::testing;

namespace {

int count_lines_containing(const std::string& text, const std::string& needle) {
  std::istringstream in(text);
  std::string line;
  int n = 0;
  while (std::getline(in, line)) n += line.find(needle) != std::string::npos ? 1 : 0;
  return n;
}

std::string base64(const std::string& in) {
  static const char* kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const unsigned v = (static_cast<unsigned char>(in[i]) << 16) |
                       (static_cast<unsigned char>(in[i + 1]) << 8) |
                       static_cast<unsigned char>(in[i + 2]);
    for (int s = 18; s >= 0; s -= 6) out += kAlphabet[(v >> s) & 63];
  }
  if (i < in.size()) {
    unsigned v = static_cast<unsigned char>(in[i]) << 16;
    if (i + 1 < in.size()) v |= static_cast<unsigned char>(in[i + 1]) << 8;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += i + 1 < in.size() ? kAlphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

}  // namespace

TEST_CASE("a consumer outage logs breaker state changes, not one line per failed request",
          "[integration][ops][logs]") {
  auto db = TestDatabase::create();
  std::atomic<bool> down{true};
  std::atomic<int> failed{0};
  FakeConsumer consumer{[&](const ReceivedRequest&) {
    if (down) {
      ++failed;
      return Reply{503};
    }
    return Reply{200};
  }};
  TestRelayConfig cfg;
  cfg.subscriptions = {{.name = "s",
                        .topics = {"*"},
                        .endpoint = consumer.url(),
                        .max_attempts = 1000,
                        .initial_backoff = "10ms",
                        .max_backoff = "20ms",
                        .max_in_flight = 4,
                        .extra = "    circuit_breaker: { failure_threshold: 3, open_for: 20ms, "
                                 "max_open_for: 20ms }\n"}};
  RelayProcess relay(to_yaml(cfg), {}, {{"DATABASE_URL", db.url()}});
  db.exec("SELECT relay.publish('t', 'k' || i, '{}'::jsonb) FROM generate_series(1, 50) i");
  // Many open periods, each ending in a failed probe.
  REQUIRE(wait_until([&] { return failed.load() >= 60; }, 60s));
  down = false;
  REQUIRE(wait_until(
      [&] { return db.count("relay.outbox") == 0 && db.count("relay.delivery") == 0; }, 60s));
  relay.signal(SIGTERM);
  REQUIRE(relay.wait_exit(60s) == 0);

  const std::string log = relay.log();
  INFO(log);
  const int breaker_lines = count_lines_containing(log, "breaker");
  // Opened once and closed once at the info level; the probes in between are debug lines.
  CHECK(count_lines_containing(log, "breaker opened") >= 1);
  CHECK(count_lines_containing(log, "breaker closed") >= 1);
  CHECK(breaker_lines <= 6);
  CHECK(breaker_lines * 10 < failed.load());
  // No line per failed request: their error text is "HTTP 503" (a bare "503" also matches a
  // duration such as was_open_for=2.503s).
  CHECK(count_lines_containing(log, "HTTP 503") == 0);
}

TEST_CASE("secrets never appear in logs, /status, /metrics or CLI output",
          "[integration][ops][logs][secrets]") {
  auto db = TestDatabase::create();
  const std::string password = "S3cretPassw0rd";
  const std::string secret_b64 = base64("TopSecretSigningKey-9f8e7d-relay");
  const std::string signing_secret = "whsec_" + secret_b64;
  // A role with a password (the test cluster trusts loopback, so any password logs in).
  const std::string role = "relay_u_" + db.name().substr(db.name().size() - 8);
  db.exec(fmt::format("CREATE ROLE {} LOGIN SUPERUSER PASSWORD '{}'", role, password));
  std::string url = db.url();  // postgresql://postgres@127.0.0.1:PORT/db
  REQUIRE(url.find("postgres@") != std::string::npos);
  url.replace(url.find("postgres@"), 9, role + ":" + password + "@");

  std::atomic<int> seen{0};
  FakeConsumer consumer{[&](const ReceivedRequest& r) {
    ++seen;
    if (r.headers.count("ce-type") && r.headers.at("ce-type") == "t.bad") return Reply{400, "no"};
    return Reply{r.headers.at("relay-attempt") == "1" ? 503 : 200};
  }};
  const int ops_port = FakeConsumer::unused_port();
  TestRelayConfig cfg;
  cfg.subscriptions = {{.name = "s",
                        .topics = {"*"},
                        .endpoint = consumer.url(),
                        .max_attempts = 5,
                        .extra = fmt::format("    signing_secret: \"{}\"\n"
                                             "    circuit_breaker: {{ failure_threshold: 2, "
                                             "open_for: 50ms, max_open_for: 50ms }}\n",
                                             signing_secret)}};
  cfg.extra =
      fmt::format("ops:\n  listen: 127.0.0.1:{}\nlog:\n  level: debug\n  format: json\n", ops_port);
  RelayProcess relay(to_yaml(cfg), {}, {{"DATABASE_URL", url}});
  db.exec(
      "SELECT relay.publish('t.ok', 'k' || i, '{}'::jsonb) FROM generate_series(1, 20) i;"
      "SELECT relay.publish('t.bad', 'b' || i, '{}'::jsonb) FROM generate_series(1, 3) i;");
  REQUIRE(wait_until(
      [&] { return db.count("relay.outbox") == 0 && db.count("relay.delivery") == 0; }, 60s));
  CHECK(db.count("relay.dead_letter") == 3);
  // The signature header proves the secret was in use.
  CHECK(consumer.requests().front().headers.count("webhook-signature") == 1);

  std::string everything;
  httplib::Client ops("127.0.0.1", ops_port);
  for (const char* path : {"/status", "/metrics", "/readyz", "/healthz"}) {
    auto res = ops.Get(path);
    REQUIRE(res);
    everything += res->body;
  }
  std::string out;
  const EnvVars env{{"DATABASE_URL", url}};
  CHECK(RelayProcess::run_cli({"status", "--config", relay.config_path()}, &out, 60s, env) == 0);
  everything += out;
  CHECK(RelayProcess::run_cli({"status", "--config", relay.config_path(), "--output", "json"}, &out,
                              60s, env) == 0);
  everything += out;
  CHECK(RelayProcess::run_cli({"check-config", "--config", relay.config_path()}, &out, 60s, env) ==
        0);
  everything += out;
  CHECK(RelayProcess::run_cli({"dlq", "list", "--config", relay.config_path()}, &out, 60s, env) ==
        0);
  everything += out;

  // Broken files that mention the secrets: errors must point at them without quoting them.
  TempDir dir{"relay-secrets."};
  const std::string broken = dir.path() + "/broken.yaml";
  {
    std::ofstream f(broken);
    f << "database:\n  url: postgresql://" << role << ":" << password
      << "@127.0.0.1:1/nodb\n  bogus: 1\n"
      << "subscriptions:\n  - name: s\n    topics: [\"*\"]\n    endpoint: http://127.0.0.1:1/\n"
      << "    signing_secret: " << signing_secret << "!!\n"
      << "  - name: t\n    topics: [\"*\"]\n    endpoint: http://127.0.0.1:1/\n"
      << "    signing_secret: [" << signing_secret << "]\n";
  }
  CHECK(RelayProcess::run_cli({"check-config", "--config", broken}, &out, 60s) == 2);
  everything += out;
  INFO(out);
  CHECK(RelayProcess::run_cli({"run", "--config", broken}, &out, 60s) != 0);
  everything += out;
  // A database that refuses: the error names host and port, not the password.
  {
    std::ofstream f(broken);
    f << "database:\n  url: postgresql://" << role << ":" << password
      << "@127.0.0.1:1/nodb\nsubscriptions: []\n";
  }
  CHECK(RelayProcess::run_cli({"status", "--config", broken}, &out, 60s) != 0);
  everything += out;
  CHECK(RelayProcess::run_cli({"migrate", "--config", broken}, &out, 60s) != 0);
  everything += out;

  relay.signal(SIGTERM);
  REQUIRE(relay.wait_exit(60s) == 0);
  const std::string log = relay.log();
  everything += log;
  CHECK(log.size() > 2000);  // it did log plenty (debug, json)
  CHECK(log.find("\"level\":\"debug\"") != std::string::npos);

  CHECK(everything.find(password) == std::string::npos);
  CHECK(everything.find(secret_b64) == std::string::npos);
  CHECK(everything.find(signing_secret) == std::string::npos);
  CHECK(everything.find("TopSecretSigningKey") == std::string::npos);
  if (everything.find(password) != std::string::npos ||
      everything.find(secret_b64) != std::string::npos) {
    FAIL(everything);
  }
  try {
    db.exec(fmt::format("DROP ROLE IF EXISTS {}", role));
  } catch (...) {
  }
}
