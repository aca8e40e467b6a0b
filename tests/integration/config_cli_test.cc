// Integration: `relay check-config` and `relay run` against broken config files: exit code 2 and
// an error naming file:line:col and the key, for every kind of mistake, all reported at once.

#include <catch2/catch.hpp>

#include "tests/support/relay_process.h"
#include "tests/support/temp_dir.h"

using namespace relay::testing;

namespace {

struct CliResult {
  int code;
  std::string output;
};

CliResult check_config(const std::string& yaml, const EnvVars& env = {}) {
  TempDir dir;
  const std::string path = dir.write("relay.yaml", yaml);
  std::string out;
  const int code = RelayProcess::run_cli({"check-config", "--config", path}, &out,
                                         std::chrono::seconds(30), env);
  return {code, out};
}

const char* const kValidSubscription = R"(subscriptions:
  - name: billing
    topics: ["order.*"]
    endpoint: http://127.0.0.1:8080/events
)";

}  // namespace

TEST_CASE("check-config accepts a valid file and exits 0", "[integration][config]") {
  auto r = check_config(std::string("database:\n  url: postgresql://x@127.0.0.1/db\n") +
                        kValidSubscription);
  INFO(r.output);
  CHECK(r.code == 0);
}

TEST_CASE("check-config names file, line, column and key for each kind of error and exits 2",
          "[integration][config]") {
  struct Case {
    const char* what;
    std::string yaml;
    std::string expect_position;  // "relay.yaml:L:C"
    std::string expect_key;
  };
  const std::vector<Case> cases = {
      {"unknown key", std::string("source:\n  batch_sise: 10\n") + kValidSubscription,
       "relay.yaml:2:3", "source.batch_sise"},
      {"duplicate key",
       std::string("source:\n  batch_size: 10\n  batch_size: 20\n") + kValidSubscription,
       "relay.yaml:3:3", "source.batch_size"},
      {"wrong type", std::string("source:\n  batch_size: [1]\n") + kValidSubscription,
       "relay.yaml:2:15", "source.batch_size"},
      {"out of range", std::string("source:\n  batch_size: 0\n") + kValidSubscription,
       "relay.yaml:2:15", "source.batch_size"},
      {"bad duration", std::string("source:\n  poll_interval: 5x\n") + kValidSubscription,
       "relay.yaml:2:18", "source.poll_interval"},
      {"missing required key",
       "subscriptions:\n  - name: billing\n    endpoint: http://127.0.0.1:8080/e\n",
       "relay.yaml:2:5", "subscriptions[0].topics"},
      {"unset variable",
       std::string("database:\n  url: ${RELAY_TEST_SURELY_UNSET_VAR}\n") + kValidSubscription,
       "relay.yaml:2:8", "database.url"},
  };
  for (const auto& c : cases) {
    SECTION(c.what) {
      auto r = check_config(c.yaml);
      INFO(r.output);
      CHECK(r.code == 2);
      CHECK(r.output.find(c.expect_position) != std::string::npos);
      CHECK(r.output.find(c.expect_key) != std::string::npos);
    }
  }
}

TEST_CASE("check-config reports every error of a file at once", "[integration][config]") {
  auto r = check_config(
      "source:\n  batch_size: -1\n  poll_interval: soon\nsubscriptions:\n  - name: Bad Name\n    "
      "topics: []\n"
      "    endpoint: ftp://x\n");
  INFO(r.output);
  CHECK(r.code == 2);
  for (const char* key : {"source.batch_size", "source.poll_interval", "subscriptions[0].name",
                          "subscriptions[0].topics", "subscriptions[0].endpoint"}) {
    CHECK(r.output.find(key) != std::string::npos);
  }
}

TEST_CASE("relay run refuses a broken config with exit 2 before touching the database",
          "[integration][config]") {
  TempDir dir;
  const std::string path =
      dir.write("relay.yaml", "source:\n  mode: wal\n" + std::string(kValidSubscription));
  std::string out;
  const int code = RelayProcess::run_cli(
      {"run", "--config", path, "--database-url", "postgresql://x@127.0.0.1:1/db"}, &out,
      std::chrono::seconds(30));
  INFO(out);
  CHECK(code == 2);
  CHECK(out.find("source.mode") != std::string::npos);
}

TEST_CASE("a missing config file and an unknown command are usage errors (exit 2)",
          "[integration][config]") {
  std::string out;
  CHECK(RelayProcess::run_cli({"check-config", "--config", "/nonexistent/relay.yaml"}, &out) == 2);
  CHECK(out.find("/nonexistent/relay.yaml") != std::string::npos);
  CHECK(RelayProcess::run_cli({"frobnicate"}, &out) == 2);
  CHECK(RelayProcess::run_cli({"run"}, &out) == 2);  // --config missing
}
