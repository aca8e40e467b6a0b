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

namespace {

// Every line check-config prints is "<dir>/relay.yaml:LINE:COL: key: problem" or the closing
// "N error(s) in <path>": nothing from the file can start a line of its own.
void check_lines_are_errors(const std::string& output) {
  size_t start = 0;
  while (start < output.size()) {
    const size_t end = output.find('\n', start);
    const std::string line = output.substr(start, end - start);
    start = end == std::string::npos ? output.size() : end + 1;
    INFO(line);
    const size_t in = line.find(" in ");
    if (in != std::string::npos && line.find_first_not_of("0123456789") == line.find(' ') &&
        (line.find(" error in ") == line.find(' ') || line.find(" errors in ") == line.find(' '))) {
      continue;  // the count
    }
    const size_t at = line.find("relay.yaml:");
    REQUIRE(at != std::string::npos);
    size_t i = at + 11;
    const size_t line_digits = line.find_first_not_of("0123456789", i) - i;
    i += line_digits;
    CHECK(line_digits > 0);
    CHECK(line.substr(i, 1) == ":");
    const size_t col_digits = line.find_first_not_of("0123456789", i + 1) - (i + 1);
    CHECK(col_digits > 0);
    CHECK(line.substr(i + 1 + col_digits, 2) == ": ");
  }
}

}  // namespace

TEST_CASE("check-config escapes control characters, so a value cannot forge an error line",
          "[integration][config]") {
  TempDir dir;
  const std::string path = dir.write(
      "relay.yaml", std::string("log: {level: \"a\\nfake.yaml:1:1: log.level: injected\"}\n"
                                "\"b\\rfake.yaml:2:2\": 1\n") +
                        kValidSubscription);
  std::string out;
  const int code =
      RelayProcess::run_cli({"check-config", "--config", path}, &out, std::chrono::seconds(30));
  INFO(out);
  CHECK(code == 2);
  CHECK(out.find('\r') == std::string::npos);
  CHECK(out.find("a\\nfake.yaml:1:1: log.level: injected") != std::string::npos);
  CHECK(out.find("b\\rfake.yaml:2:2") != std::string::npos);
  check_lines_are_errors(out);
}

TEST_CASE("check-config gives file-level problems the file:line:col: (document): shape",
          "[integration][config]") {
  struct Case {
    const char* what;
    std::string yaml;
    std::string expect;
  };
  const std::vector<Case> cases = {
      {"empty file", "", "relay.yaml:1:1: (document): the file is empty"},
      {"syntax error", "log: {level: [\n", "(document): YAML syntax error"},
      {"several documents", std::string(kValidSubscription) + "---\nlog: {level: info}\n",
       "relay.yaml:6:1: (document): more than one YAML document"},
      {"not a map", "- a\n- b\n", "relay.yaml:1:1: (document): expected a map"},
  };
  for (const auto& c : cases) {
    SECTION(c.what) {
      auto r = check_config(c.yaml);
      INFO(r.output);
      CHECK(r.code == 2);
      CHECK(r.output.find(c.expect) != std::string::npos);
      check_lines_are_errors(r.output);
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
      dir.write("relay.yaml", "source:\n  mode: queue\n" + std::string(kValidSubscription));
  std::string out;
  const int code = RelayProcess::run_cli(
      {"run", "--config", path, "--database-url", "postgresql://x@127.0.0.1:1/db"}, &out,
      std::chrono::seconds(30));
  INFO(out);
  CHECK(code == 2);
  CHECK(out.find("source.mode") != std::string::npos);
}

TEST_CASE("check-config and run agree: an endpoint with credentials fails both, at its key",
          "[integration][config]") {
  const std::string yaml =
      "subscriptions:\n  - name: billing\n    topics: [\"order.*\"]\n"
      "    endpoint: http://user:pwSecret@127.0.0.1:8080/events\n";
  auto check = check_config(yaml);
  INFO(check.output);
  CHECK(check.code == 2);
  CHECK(
      check.output.find("relay.yaml:4:15: subscriptions[0].endpoint: must not carry credentials") !=
      std::string::npos);
  TempDir dir;
  const std::string path = dir.write("relay.yaml", yaml);
  std::string out;
  const int code = RelayProcess::run_cli(
      {"run", "--config", path, "--database-url", "postgresql://x@127.0.0.1:1/db"}, &out,
      std::chrono::seconds(30));
  INFO(out);
  CHECK(code == 2);
  CHECK(out.find("relay.yaml:4:15: subscriptions[0].endpoint: must not carry credentials") !=
        std::string::npos);
  CHECK(check.output.find("pwSecret") == std::string::npos);
  CHECK(out.find("pwSecret") == std::string::npos);
}

TEST_CASE("a missing config file and an unknown command are usage errors (exit 2)",
          "[integration][config]") {
  std::string out;
  CHECK(RelayProcess::run_cli({"check-config", "--config", "/nonexistent/relay.yaml"}, &out) == 2);
  CHECK(out.find("/nonexistent/relay.yaml") != std::string::npos);
  CHECK(RelayProcess::run_cli({"frobnicate"}, &out) == 2);
  CHECK(RelayProcess::run_cli({"run"}, &out) == 2);  // --config missing
}

TEST_CASE("check-config checks inbox sources' verify, key_from and topic_from at file:line:col",
          "[integration][config][inbox]") {
  const std::string head =
      "database:\n  url: postgresql://x@127.0.0.1/db\n"
      "inbox:\n  listen: 127.0.0.1:0\n  sources:\n";
  // Valid: each provider scheme, its secret as written (not whsec_ base64), a pointer and a header.
  auto ok = check_config(head +
                         "    - {name: st, verify: stripe, signing_secret: whsec_not!b64, "
                         "key_from: \"body:/data/object/customer\"}\n"
                         "    - {name: gh, verify: github, signing_secret: s, topic_from: X-Kind}\n"
                         "    - {name: sh, verify: shopify, signing_secret: s}\n");
  INFO(ok.output);
  CHECK(ok.code == 0);
  auto bad = check_config(head +
                          "    - name: a\n"
                          "      verify: paypal\n"
                          "      signing_secret: s\n"
                          "    - name: b\n"
                          "      verify: github\n"
                          "      signing_secret: s\n"
                          "      key_from: body:customer\n"
                          "      topic_from: \"Bad Header\"\n");
  INFO(bad.output);
  CHECK(bad.code == 2);
  CHECK(bad.output.find("relay.yaml:7:15: inbox.sources[0].verify: invalid value \"paypal\"") !=
        std::string::npos);
  CHECK(bad.output.find("relay.yaml:12:17: inbox.sources[1].key_from:") != std::string::npos);
  CHECK(bad.output.find("relay.yaml:13:19: inbox.sources[1].topic_from:") != std::string::npos);
  // "s" is a valid secret for both schemes: no error about it.
  CHECK(bad.output.find("signing_secret") == std::string::npos);
}
