#include "relay/config/loader.h"

#include <algorithm>
#include <catch2/catch.hpp>
#include <initializer_list>
#include <map>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace {

using namespace std::chrono_literals;
using relay::Millis;
using relay::config::Config;
using relay::config::ConfigError;
using relay::config::EnvLookup;
using relay::config::known_config_keys;
using relay::config::load_config;
using relay::config::parse_config;
using relay::config::SubscriptionConfig;
using relay::config::VerifyScheme;

EnvLookup env_of(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

// Joins lines with "\n", so line N of the document is the Nth string.
std::string yaml(std::initializer_list<std::string_view> lines) {
  std::string out;
  for (std::string_view line : lines) {
    out += line;
    out += '\n';
  }
  return out;
}

std::string dump(const std::vector<ConfigError>& errors) {
  std::string out;
  for (const auto& e : errors) out += e.to_string() + "\n";
  return out;
}

std::vector<ConfigError> errors_of(const std::string& text, const EnvLookup& env = env_of({})) {
  auto result = parse_config(text, "relay.yaml", env);
  REQUIRE(std::holds_alternative<std::vector<ConfigError>>(result));
  return std::get<std::vector<ConfigError>>(std::move(result));
}

// The one error the text produces; fails the test (listing them) if there are more or none.
ConfigError only_error(const std::string& text, const EnvLookup& env = env_of({})) {
  auto errors = errors_of(text, env);
  INFO(dump(errors));
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].file == "relay.yaml");
  return errors[0];
}

Config config_of(const std::string& text, const EnvLookup& env = env_of({})) {
  auto result = parse_config(text, "relay.yaml", env);
  if (auto* errors = std::get_if<std::vector<ConfigError>>(&result)) FAIL(dump(*errors));
  return std::get<Config>(std::move(result));
}

void check_error(const ConfigError& e, int line, int column, std::string_view key_path,
                 std::string_view fragment) {
  INFO(e.to_string());
  CHECK(e.line == line);
  CHECK(e.column == column);
  CHECK(e.key_path == key_path);
  CHECK_THAT(e.message, Catch::Contains(std::string(fragment)));
}

// A valid subscriptions section on lines 1-4; tests append their own lines after it.
constexpr std::string_view kSub0 = "subscriptions:";
constexpr std::string_view kSub1 = "  - name: billing";
constexpr std::string_view kSub2 = "    topics: [\"order.*\"]";
constexpr std::string_view kSub3 = "    endpoint: http://127.0.0.1:8080/events";

}  // namespace

// ---------------------------------------------------------------------------------------------
// Valid configs

TEST_CASE("a full valid config parses into the matching fields", "[config]") {
  const Config c = config_of(yaml({
      "database:",
      "  url: postgresql://relay@db:5432/app",
      "  connect_timeout: 3s",
      "source:",
      "  mode: table",
      "  batch_size: 200",
      "  poll_interval: 250ms",
      "  lease: 2m",
      "subscriptions:",
      "  - name: billing",
      "    topics: [\"order.*\", \"invoice.paid\"]",
      "    endpoint: http://billing:8080/events",
      "    format: binary",
      "    timeout: 7s",
      "    connect_timeout: 1500ms",
      "    max_in_flight: 16",
      "    retry: { max_attempts: 5, initial_backoff: 100ms, max_backoff: 1m, max_age: 2h }",
      "    signing_secret: whsec_c2VjcmV0",
      "    max_response_bytes: 0",
      "  - name: audit.log-2_x",
      "    topics:",
      "      - \"*\"",
      "    endpoint: http://[::1]:9000/",
      "limits:",
      "  max_payload_bytes: 2048",
      "log:",
      "  level: debug",
      "  format: json",
      "shutdown_timeout: 0s",
  }));
  CHECK(c.path == "relay.yaml");
  CHECK(c.database.url == "postgresql://relay@db:5432/app");
  CHECK(c.database.connect_timeout == 3s);
  CHECK(c.source.mode == "table");
  CHECK(c.source.batch_size == 200);
  CHECK(c.source.poll_interval == 250ms);
  CHECK(c.source.lease == 2min);
  REQUIRE(c.subscriptions.size() == 2);
  const auto& billing = c.subscriptions[0];
  CHECK(billing.name == "billing");
  CHECK(billing.topics == std::vector<std::string>{"order.*", "invoice.paid"});
  CHECK(billing.endpoint.url == "http://billing:8080/events");
  CHECK(billing.endpoint.host == "billing");
  CHECK(billing.endpoint.port == 8080);
  CHECK(billing.endpoint.path == "/events");
  CHECK(billing.format == relay::model::Format::kBinary);
  CHECK(billing.timeout == 7s);
  CHECK(billing.connect_timeout == 1500ms);
  CHECK(billing.max_in_flight == 16);
  CHECK(billing.retry.max_attempts == 5);
  CHECK(billing.retry.initial_backoff == 100ms);
  CHECK(billing.retry.max_backoff == 1min);
  CHECK(billing.retry.max_age == 2h);
  CHECK(billing.signing_secrets == std::vector<std::string>{"whsec_c2VjcmV0"});
  CHECK(billing.max_response_bytes == 0);
  const auto& audit = c.subscriptions[1];
  CHECK(audit.name == "audit.log-2_x");
  CHECK(audit.topics == std::vector<std::string>{"*"});
  CHECK(audit.endpoint.url == "http://[::1]:9000/");
  CHECK(audit.endpoint.host == "::1");
  CHECK(c.limits.max_payload_bytes == 2048);
  CHECK(c.log.level == "debug");
  CHECK(c.log.format == "json");
  CHECK(c.shutdown_timeout == 0ms);
}

TEST_CASE("keys left out take the documented defaults", "[config]") {
  const Config c = config_of(yaml({kSub0, kSub1, kSub2, kSub3}));
  CHECK(c.database.url.empty());
  CHECK(c.database.connect_timeout == 10s);
  CHECK(c.source.mode == "table");
  CHECK(c.source.batch_size == 500);
  CHECK(c.source.poll_interval == 1s);
  CHECK(c.source.lease == 60s);
  REQUIRE(c.subscriptions.size() == 1);
  const auto& s = c.subscriptions[0];
  CHECK(s.format == relay::model::Format::kBinary);
  CHECK(s.timeout == 5s);
  CHECK(s.connect_timeout == 2s);
  CHECK(s.max_in_flight == 64);
  CHECK(s.retry.max_attempts == 12);
  CHECK(s.retry.initial_backoff == 500ms);
  CHECK(s.retry.max_backoff == 10min);
  CHECK(s.retry.max_age == 24h);
  CHECK(s.signing_secrets.empty());
  CHECK(s.headers.empty());
  CHECK(s.max_response_bytes == 4096);
  CHECK(s.ordering == relay::model::Ordering::kPerKey);
  CHECK(s.on_dead_letter == relay::model::OnDeadLetter::kSkip);
  CHECK(s.circuit_breaker.failure_threshold == 5);
  CHECK(s.circuit_breaker.open_for == 10s);
  CHECK(s.circuit_breaker.max_open_for == 30s);
  CHECK_FALSE(s.rate_limit.has_value());
  CHECK(c.limits.max_payload_bytes == 1'048'576);
  CHECK(c.log.level == "info");
  CHECK(c.log.format == "text");
  CHECK(c.shutdown_timeout == 25s);
  CHECK(c.ops.listen.empty());
}

TEST_CASE("a section whose keys are all commented out takes the defaults", "[config]") {
  const Config c =
      config_of(yaml({"source:", "#  batch_size: 10", "log:", kSub0, kSub1, kSub2, kSub3}));
  CHECK(c.source.batch_size == 500);
  CHECK(c.log.level == "info");
}

TEST_CASE("${VAR} takes the variable's value, before conversion to the key's type", "[config]") {
  const Config c =
      config_of(yaml({"database:", "  url: ${DATABASE_URL}", "source:", "  batch_size: ${BATCH}",
                      "  lease: ${LEASE}", kSub0, kSub1, "    topics: [\"${TOPIC}\"]", kSub3}),
                env_of({{"DATABASE_URL", "postgresql://x/y"},
                        {"BATCH", "42"},
                        {"LEASE", "90s"},
                        {"TOPIC", "order.paid"}}));
  CHECK(c.database.url == "postgresql://x/y");
  CHECK(c.source.batch_size == 42);
  CHECK(c.source.lease == 90s);
  CHECK(c.subscriptions[0].topics == std::vector<std::string>{"order.paid"});
}

TEST_CASE("${VAR:-default} takes the default when VAR is unset and the value when it is set",
          "[config]") {
  const std::string text = yaml({"source:", "  batch_size: ${N:-500}",
                                 "log:", "  level: ${LEVEL:-warn}", kSub0, kSub1, kSub2, kSub3});
  const Config unset = config_of(text, env_of({}));
  CHECK(unset.source.batch_size == 500);
  CHECK(unset.log.level == "warn");
  const Config set = config_of(text, env_of({{"N", "7"}, {"LEVEL", "debug"}}));
  CHECK(set.source.batch_size == 7);
  CHECK(set.log.level == "debug");
}

TEST_CASE("$${ in a value is a literal ${", "[config]") {
  const Config c =
      config_of(yaml({kSub0, kSub1, kSub2, kSub3, "    signing_secret: \"ab$${cd}\""}));
  CHECK(c.subscriptions[0].signing_secrets == std::vector<std::string>{"ab${cd}"});
}

TEST_CASE("the example relay.yaml loads given DATABASE_URL", "[config]") {
  const std::string path = std::string(RELAY_SOURCE_DIR) + "/examples/relay.yaml";
  auto result =
      load_config(path, env_of({{"DATABASE_URL", "postgresql://relay@127.0.0.1:5432/app"}}));
  if (auto* errors = std::get_if<std::vector<ConfigError>>(&result)) FAIL(dump(*errors));
  const Config& c = std::get<Config>(result);
  CHECK(c.path == path);
  CHECK(c.database.url == "postgresql://relay@127.0.0.1:5432/app");
  REQUIRE_FALSE(c.subscriptions.empty());
  CHECK(c.subscriptions[0].endpoint.url == "http://127.0.0.1:8080/events");
}

// ---------------------------------------------------------------------------------------------
// Errors: file-level

TEST_CASE("an unreadable file is one error with no line", "[config]") {
  auto result = load_config("/nonexistent/relay.yaml", env_of({}));
  REQUIRE(std::holds_alternative<std::vector<ConfigError>>(result));
  const auto& errors = std::get<std::vector<ConfigError>>(result);
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].file == "/nonexistent/relay.yaml");
  CHECK(errors[0].line == 0);
  CHECK(errors[0].key_path.empty());
  CHECK_THAT(errors[0].message, Catch::Contains("cannot read") && Catch::Contains("No such file"));
  CHECK(errors[0].to_string().rfind("/nonexistent/relay.yaml: cannot read", 0) == 0);
}

TEST_CASE("an empty file or one with only comments is an error", "[config]") {
  for (const std::string text : {"", "\n\n", "# nothing here\n", "---\n"}) {
    CAPTURE(text);
    check_error(only_error(text), 1, 1, "(document)", "empty");
  }
}

TEST_CASE("a YAML syntax error is reported with a 1-based line and column", "[config]") {
  const ConfigError e = only_error(yaml({kSub0, kSub1, "    topics: [\"order.*\"", kSub3}));
  CHECK(e.line == 4);
  CHECK(e.column == 5);
  CHECK(e.key_path == "(document)");
  CHECK_THAT(e.message,
             Catch::Contains("YAML syntax error") && Catch::Contains("end of sequence flow"));
}

TEST_CASE("a tab in the indentation is a syntax error at its place", "[config]") {
  check_error(only_error(yaml({"source:", "\tbatch_size: 5", kSub0, kSub1, kSub2, kSub3})), 2, 12,
              "(document)", "YAML syntax error");
}

TEST_CASE("a document that is not a map is an error", "[config]") {
  check_error(only_error(yaml({"- a", "- b"})), 1, 1, "(document)",
              "expected a map of settings at the top level, got a list");
}

TEST_CASE("a second YAML document is an error", "[config]") {
  check_error(only_error(yaml({kSub0, kSub1, kSub2, kSub3, "---", "log: {level: info}"})), 6, 1,
              "(document)", "more than one YAML document");
}

TEST_CASE("control characters from the file are escaped in every error line", "[config]") {
  // A value or key with a newline or CR must not print a line that reads like another error.
  const auto errors =
      errors_of(yaml({"log: {level: \"a\\nfake.yaml:1:1: log.level: injected\"}",
                      "\"b\\rc\\td\\x1b[2J\\u0085\": 1", kSub0, kSub1, kSub2, kSub3}));
  REQUIRE(errors.size() == 2);
  for (const auto& e : errors) {
    const std::string line = e.to_string();
    INFO(line);
    CHECK(line.find_first_of("\n\r\t\x1b") == std::string::npos);
    CHECK(line.find("\xc2\x85") == std::string::npos);
  }
  CHECK_THAT(errors[0].to_string(),
             Catch::StartsWith("relay.yaml:1:14: log.level: invalid value \"a\\nfake.yaml:1:1:"));
  CHECK_THAT(errors[1].to_string(), Catch::Contains("b\\rc\\td\\x1b[2J\\u0085"));
}

// ---------------------------------------------------------------------------------------------
// Errors: keys

TEST_CASE("an unknown key close to a known one gets a suggestion", "[config]") {
  check_error(only_error(yaml({kSub0, kSub1, kSub2, kSub3, "    timout: 5s"})), 5, 5,
              "subscriptions[0].timout", "unknown key 'timout'; did you mean 'timeout'?");
  check_error(only_error(yaml({"sorce: {}", kSub0, kSub1, kSub2, kSub3})), 1, 1, "sorce",
              "did you mean 'source'?");
  check_error(only_error(yaml({kSub0, kSub1, kSub2, kSub3, "    retry: {max_atempts: 3}"})), 5, 13,
              "subscriptions[0].retry.max_atempts", "did you mean 'max_attempts'?");
}

TEST_CASE("an unknown key far from every known one gets no suggestion", "[config]") {
  const ConfigError e = only_error(yaml({kSub0, kSub1, kSub2, kSub3, "colour: blue"}));
  check_error(e, 5, 1, "colour", "unknown key 'colour'");
  CHECK_THAT(e.message, !Catch::Contains("did you mean"));
}

TEST_CASE("an inbox needs listen and sources", "[config][inbox]") {
  check_error(only_error(yaml({kSub0, kSub1, kSub2, kSub3, "inbox:", "  listen: 0.0.0.0:8081"})), 6,
              3, "inbox.sources", "missing required key 'sources'");
  check_error(only_error(yaml({kSub0, kSub1, kSub2, kSub3, "inbox:",
                               "  sources: [{name: a, "
                               "unsigned: true}]"})),
              6, 3, "inbox.listen", "missing required key 'listen'");
  check_error(only_error(yaml({kSub0, kSub1, kSub2, kSub3, "inbox:", "  listen: 8081",
                               "  sources: [{name: a, unsigned: true}]"})),
              6, 11, "inbox.listen", "listen address has no port");
  check_error(only_error(yaml({kSub0, kSub1, kSub2, kSub3, "inbox:", "  listen: 127.0.0.1:0",
                               "  sources: []"})),
              7, 12, "inbox.sources", "must list at least one source");
}

TEST_CASE("an inbox with its defaults, and a relay that only receives", "[config][inbox]") {
  const Config c = config_of(yaml({"inbox:", "  listen: 127.0.0.1:8081",
                                   "  sources:", "    - name: payments", "      unsigned: true"}));
  CHECK(c.subscriptions.empty());
  REQUIRE(c.inbox.has_value());
  CHECK(c.inbox->listen == "127.0.0.1:8081");
  CHECK(c.inbox->timestamp_tolerance == Millis(300'000));
  CHECK(c.inbox->retention == Millis(7LL * 24 * 3600 * 1000));
  CHECK(c.inbox->workers == 16);
  CHECK(c.inbox->max_queued_connections == 64);
  CHECK(c.inbox->read_timeout == Millis(10'000));
  CHECK(c.inbox->max_header_bytes == 16'384);
  CHECK(c.inbox->max_headers == 64);
  REQUIRE(c.inbox->sources.size() == 1);
  CHECK(c.inbox->sources[0].name == "payments");
  CHECK(c.inbox->sources[0].unsigned_requests);
  CHECK_FALSE(c.inbox->sources[0].deliver_to.has_value());
  // Without an inbox, a subscription is still required.
  check_error(only_error(yaml({"log: {level: info}"})), 1, 1, "subscriptions",
              "at least one subscription, or an inbox");
}

TEST_CASE("an inbox source's verify scheme, and provider secrets used as written",
          "[config][inbox]") {
  const std::string head = "inbox:\n  listen: 127.0.0.1:0\n  sources:\n";
  const Config c =
      config_of(head +
                "    - {name: sw, signing_secret: whsec_c2VjcmV0}\n"
                "    - {name: st, verify: stripe, signing_secret: [whsec_not!base64, whsec_new]}\n"
                "    - {name: gh, verify: github, signing_secret: \"It's a Secret to Everybody\"}\n"
                "    - {name: sh, verify: shopify, signing_secret: hush}\n");
  REQUIRE(c.inbox->sources.size() == 4);
  CHECK(c.inbox->sources[0].verify == VerifyScheme::kStandardWebhooks);
  CHECK(c.inbox->sources[1].verify == VerifyScheme::kStripe);
  CHECK(c.inbox->sources[1].signing_secrets ==
        std::vector<std::string>{"whsec_not!base64", "whsec_new"});
  CHECK(c.inbox->sources[2].verify == VerifyScheme::kGithub);
  CHECK(c.inbox->sources[3].verify == VerifyScheme::kShopify);
  CHECK(std::string(to_string(VerifyScheme::kStandardWebhooks)) == "standard-webhooks");
  // The same secret is invalid for standard-webhooks, which decodes whsec_.
  check_error(only_error(head + "    - {name: sw, signing_secret: whsec_not!base64}\n"), 4, 34,
              "inbox.sources[0].signing_secret", "");
  check_error(only_error(head + "    - {name: p, verify: paypal, signing_secret: x}\n"), 4, 25,
              "inbox.sources[0].verify", "expected one of \"standard-webhooks\", \"stripe\"");
  check_error(only_error(head + "    - {name: p, verify: github, unsigned: true}\n"), 4, 17,
              "inbox.sources[0].verify", "not both");
  check_error(only_error(head + "    - {name: p, verify: github}\n"), 4, 7,
              "inbox.sources[0].signing_secret", "or unsigned: true");
  check_error(only_error(head + "    - {name: p, verify: github, signing_secret: [a, \"\"]}\n"), 4,
              53, "inbox.sources[0].signing_secret[1]", "must not be empty");
}

TEST_CASE("key_from and topic_from are a header name or body: and a JSON Pointer",
          "[config][inbox]") {
  const std::string head = "inbox:\n  listen: 127.0.0.1:0\n  sources:\n";
  const Config c = config_of(head +
                             "    - name: st\n"
                             "      verify: stripe\n"
                             "      signing_secret: whsec_x\n"
                             "      key_from: body:/data/object/customer\n"
                             "      topic_from: X-Event-Kind\n");
  const auto& s = c.inbox->sources[0];
  REQUIRE(s.key_from.has_value());
  CHECK(s.key_from->from_body());
  CHECK(s.key_from->pointer == "/data/object/customer");
  CHECK(s.key_from->describe() == "body:/data/object/customer");
  REQUIRE(s.topic_from.has_value());
  CHECK_FALSE(s.topic_from->from_body());
  CHECK(s.topic_from->header == "X-Event-Kind");
  CHECK(config_of(head + "    - {name: u, unsigned: true, key_from: \"body:/a~1b/~0c/0\"}\n")
            .inbox->sources[0]
            .key_from->pointer == "/a~1b/~0c/0");
  // Invalid pointers and header names are reported where they are written.
  const std::string src = "    - name: u\n      unsigned: true\n";
  check_error(only_error(head + src + "      key_from: body:data/customer\n"), 6, 17,
              "inbox.sources[0].key_from", "starts with '/'");
  check_error(only_error(head + src + "      key_from: \"body:\"\n"), 6, 17,
              "inbox.sources[0].key_from", "starts with '/'");
  check_error(only_error(head + src + "      topic_from: body:/a~2b\n"), 6, 19,
              "inbox.sources[0].topic_from", "'~' must be followed by 0 or 1");
  check_error(only_error(head + src + "      topic_from: body:/a~\n"), 6, 19,
              "inbox.sources[0].topic_from", "'~' must be followed by 0 or 1");
  check_error(only_error(head + src + "      key_from: \"X Customer\"\n"), 6, 17,
              "inbox.sources[0].key_from", "expected a header name");
  check_error(only_error(head + src + "      key_from: [a]\n"), 6, 17, "inbox.sources[0].key_from",
              "");
}

TEST_CASE("an inbox source is signed or explicitly unsigned, never by default", "[config][inbox]") {
  const std::string head = "inbox:\n  listen: 127.0.0.1:0\n  sources:\n";
  check_error(only_error(head + "    - name: payments\n"), 4, 7, "inbox.sources[0].signing_secret",
              "or unsigned: true");
  // An empty secret (an unset ${VAR:-}) does not quietly turn verification off.
  check_error(only_error(head + "    - name: payments\n      signing_secret: ${S:-}\n"), 5, 23,
              "inbox.sources[0].signing_secret", "or unsigned: true");
  check_error(only_error(head + "    - name: p\n      signing_secret: abc\n      unsigned: true\n"),
              6, 7, "inbox.sources[0].unsigned", "not both");
  check_error(only_error(head + "    - name: p\n      unsigned: yes\n"), 5, 17,
              "inbox.sources[0].unsigned", "expected one of \"true\", \"false\"");
  check_error(
      only_error(head + "    - {name: p, unsigned: true}\n    - {name: p, unsigned: true}\n"), 5,
      14, "inbox.sources[1].name", "duplicate source name \"p\"");
  const Config c =
      config_of(head +
                "    - name: p\n      signing_secret: [whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw, "
                "raw-secret]\n");
  REQUIRE(c.inbox->sources.size() == 1);
  CHECK(c.inbox->sources[0].signing_secrets.size() == 2);
  CHECK_FALSE(c.inbox->sources[0].unsigned_requests);
}

TEST_CASE("an inbox source with a push URL becomes subscription inbox:<source>",
          "[config][inbox]") {
  const Config c = config_of(yaml({
      kSub0,
      kSub1,
      kSub2,
      kSub3,
      "inbox:",
      "  listen: 127.0.0.1:0",
      "  deliver_to: http://127.0.0.1:3000/inbox",
      "  sources:",
      "    - {name: payments, unsigned: true}",
      "    - name: crm",
      "      unsigned: true",
      "      deliver_to: http://127.0.0.1:3001/crm",
      "      delivery:",
      "        timeout: 2s",
      "        retry: {max_attempts: 3}",
      "        ordering: none",
  }));
  REQUIRE(c.subscriptions.size() == 3);
  CHECK(c.subscriptions[0].name == "billing");
  CHECK(c.subscriptions[0].inbox_source.empty());
  const SubscriptionConfig& payments = c.subscriptions[1];
  CHECK(payments.name == "inbox:payments");
  CHECK(payments.inbox_source == "payments");
  CHECK(payments.topics.empty());
  CHECK(payments.endpoint.url == "http://127.0.0.1:3000/inbox");
  CHECK(payments.retry.max_attempts == 12);
  const SubscriptionConfig& crm = c.subscriptions[2];
  CHECK(crm.name == "inbox:crm");
  CHECK(crm.endpoint.url == "http://127.0.0.1:3001/crm");
  CHECK(crm.endpoint.port == 3001);
  CHECK(crm.timeout == Millis(2000));
  CHECK(crm.retry.max_attempts == 3);
  CHECK(crm.ordering == relay::model::Ordering::kNone);

  // Delivery settings without anywhere to push are a mistake, as is a bad one.
  check_error(only_error(yaml({"inbox:", "  listen: 127.0.0.1:0", "  sources:", "    - name: a",
                               "      unsigned: true", "      delivery: {}"})),
              6, 7, "inbox.sources[0].delivery", "need a push URL");
  check_error(only_error(yaml({"inbox:", "  listen: 127.0.0.1:0", "  deliver_to: ftp://x/",
                               "  sources: [{name: a, unsigned: true}]"})),
              3, 15, "inbox.deliver_to", "must be an http:// or https:// URL");
  check_error(only_error(yaml({"inbox:", "  listen: 127.0.0.1:0", "  deliver_to: http://x/",
                               "  sources:", "    - name: a", "      unsigned: true",
                               "      delivery: {tiemout: 1s}"})),
              7, 18, "inbox.sources[0].delivery.tiemout", "did you mean 'timeout'?");
}

TEST_CASE("every inbox delivery key is also a subscription key", "[config][inbox]") {
  const auto keys = known_config_keys();
  const std::string prefix = "inbox.sources[].delivery.";
  int seen = 0;
  for (const std::string& key : keys) {
    if (key.rfind(prefix, 0) != 0) continue;
    ++seen;
    const std::string as_subscription = "subscriptions[]." + key.substr(prefix.size());
    CAPTURE(key);
    CHECK(std::find(keys.begin(), keys.end(), as_subscription) != keys.end());
  }
  CHECK(seen > 10);
}

TEST_CASE("batch settings, their defaults and bounds", "[config]") {
  const Config c = config_of(yaml({kSub0, kSub1, kSub2, kSub3, "    format: protobuf",
                                   "    batch: {max_events: 50, max_bytes: 65536, linger: 0ms}"}));
  REQUIRE(c.subscriptions[0].batch.has_value());
  CHECK(c.subscriptions[0].batch->max_events == 50);
  CHECK(c.subscriptions[0].batch->max_bytes == 65536);
  CHECK(c.subscriptions[0].batch->linger == Millis(0));
  const Config d = config_of(
      yaml({kSub0, kSub1, kSub2, kSub3, "    format: cloudevents-json", "    batch: {}"}));
  REQUIRE(d.subscriptions[0].batch.has_value());
  CHECK(d.subscriptions[0].batch->max_events == 100);
  CHECK(d.subscriptions[0].batch->max_bytes == 1'048'576);
  CHECK(d.subscriptions[0].batch->linger == Millis(10));
  CHECK_FALSE(config_of(yaml({kSub0, kSub1, kSub2, kSub3})).subscriptions[0].batch.has_value());

  check_error(only_error(yaml({kSub0, kSub1, kSub2, kSub3, "    batch: {}"})), 5, 5,
              "subscriptions[0].batch", "batches need format: cloudevents-json or protobuf");
  check_error(only_error(yaml({kSub0, kSub1, kSub2, kSub3, "    format: protobuf",
                               "    batch: {max_events: 0}"})),
              6, 25, "subscriptions[0].batch.max_events", "must be between 1 and 10000");
  check_error(only_error(yaml({kSub0, kSub1, kSub2, kSub3, "    format: protobuf",
                               "    batch: {max_bytes: 100}"})),
              6, 24, "subscriptions[0].batch.max_bytes", "must be between 1024 and");
  check_error(only_error(yaml(
                  {kSub0, kSub1, kSub2, kSub3, "    format: protobuf", "    batch: {linger: 1m}"})),
              6, 21, "subscriptions[0].batch.linger", "must be between");
}

TEST_CASE("tls settings: files must be readable, cert and key go together, https only",
          "[config]") {
  const std::string readable = RELAY_SOURCE_DIR "/README.md";  // any readable file will do here
  const std::string https = "    endpoint: https://127.0.0.1:8443/events";
  const Config c = config_of(
      yaml({kSub0, kSub1, kSub2, https, "    tls:", "      ca_file: " + readable,
            "      cert_file: " + readable, "      key_file: " + readable, "      verify: true"}));
  CHECK(c.subscriptions[0].tls.ca_file == readable);
  CHECK(c.subscriptions[0].tls.cert_file == readable);
  CHECK(c.subscriptions[0].tls.key_file == readable);
  CHECK(c.subscriptions[0].tls.verify);
  CHECK_FALSE(config_of(yaml({kSub0, kSub1, kSub2, https, "    tls: {verify: false}"}))
                  .subscriptions[0]
                  .tls.verify);
  // https:// without tls: verification against the system store.
  CHECK(config_of(yaml({kSub0, kSub1, kSub2, https})).subscriptions[0].tls.ca_file.empty());

  check_error(
      only_error(yaml({kSub0, kSub1, kSub2, https, "    tls: {ca_file: /nonexistent/ca.pem}"})), 5,
      20, "subscriptions[0].tls.ca_file", "cannot read \"/nonexistent/ca.pem\"");
  check_error(
      only_error(yaml({kSub0, kSub1, kSub2, https, "    tls: {cert_file: " + readable + "}"})), 5,
      5, "subscriptions[0].tls", "cert_file and key_file go together");
  check_error(only_error(yaml({kSub0, kSub1, kSub2, kSub3, "    tls: {verify: false}"})), 5, 5,
              "subscriptions[0].tls", "tls applies to https:// endpoints only");
}

TEST_CASE("a duplicate key names both occurrences", "[config]") {
  check_error(only_error(yaml({"log:", "  level: info", "  format: text", "  level: debug", kSub0,
                               kSub1, kSub2, kSub3})),
              4, 3, "log.level", "duplicate key 'level' (first defined at line 2)");
  check_error(only_error(yaml(
                  {kSub0, kSub1, kSub2, kSub3, "    retry: {max_attempts: 1, max_attempts: 2}"})),
              5, 30, "subscriptions[0].retry.max_attempts", "first defined at line 5");
  check_error(only_error(yaml({kSub0, kSub1, kSub2, kSub3, "subscriptions: []"})), 5, 1,
              "subscriptions", "first defined at line 1");
}

TEST_CASE("missing required keys point at the map that lacks them", "[config]") {
  check_error(only_error(yaml({"log:", "  level: info"})), 1, 1, "subscriptions",
              "missing required key 'subscriptions'");

  const auto errors = errors_of(yaml({kSub0, "  - format: binary"}));
  INFO(dump(errors));
  REQUIRE(errors.size() == 3);
  check_error(errors[0], 2, 5, "subscriptions[0].name", "missing required key 'name'");
  check_error(errors[1], 2, 5, "subscriptions[0].topics", "missing required key 'topics'");
  check_error(errors[2], 2, 5, "subscriptions[0].endpoint", "missing required key 'endpoint'");
}

// ---------------------------------------------------------------------------------------------
// Errors: types and values

TEST_CASE("a map or list where a scalar belongs is a type error", "[config]") {
  check_error(only_error(yaml({"source:", "  batch_size: {a: 1}", kSub0, kSub1, kSub2, kSub3})), 2,
              15, "source.batch_size", "expected an integer, got a map");
  check_error(only_error(yaml({kSub0, "  - name: [billing]", kSub2, kSub3})), 2, 11,
              "subscriptions[0].name", "expected a string, got a list");
  check_error(only_error(yaml({"shutdown_timeout:", kSub0, kSub1, kSub2, kSub3})), 1, 1,
              "shutdown_timeout",
              "expected a duration such as 500ms, 5s or 10m, got nothing (null)");
}

TEST_CASE("a scalar or map where a list or map belongs is a type error", "[config]") {
  check_error(only_error(yaml({kSub0, kSub1, "    topics: order.*", kSub3})), 3, 13,
              "subscriptions[0].topics", "expected a list of topic globs");
  check_error(only_error(yaml({"subscriptions: {name: billing}"})), 1, 16, "subscriptions",
              "expected a list of subscriptions, got a map");
  check_error(only_error(yaml({kSub0, "  - billing"})), 2, 5, "subscriptions[0]",
              "expected a map describing a subscription, got a scalar");
  check_error(only_error(yaml({"log: [debug]", kSub0, kSub1, kSub2, kSub3})), 1, 6, "log",
              "expected a map, got a list");
  check_error(only_error(yaml({kSub0, kSub1, kSub2, kSub3, "    retry: 3"})), 5, 12,
              "subscriptions[0].retry", "expected a map, got a scalar");
}

TEST_CASE("integers must be plain decimal integers", "[config]") {
  for (const std::string value : {"12abc", "true", "1.5", "0x1F", "\"\"", "+5"}) {
    CAPTURE(value);
    check_error(only_error(yaml({"source:", "  batch_size: " + value, kSub0, kSub1, kSub2, kSub3})),
                2, 15, "source.batch_size", "expected an integer");
  }
}

TEST_CASE("numbers outside their range are errors naming the range", "[config]") {
  check_error(only_error(yaml({"source:", "  batch_size: 0", kSub0, kSub1, kSub2, kSub3})), 2, 15,
              "source.batch_size", "must be between 1 and 10000, got 0");
  check_error(only_error(yaml({"source:", "  batch_size: 10001", kSub0, kSub1, kSub2, kSub3})), 2,
              15, "source.batch_size", "must be between 1 and 10000");
  check_error(only_error(yaml({"source:", "  batch_size: 99999999999999999999999", kSub0, kSub1,
                               kSub2, kSub3})),
              2, 15, "source.batch_size", "must be between 1 and 10000");
  check_error(only_error(yaml({kSub0, kSub1, kSub2, kSub3, "    max_in_flight: 4097"})), 5, 20,
              "subscriptions[0].max_in_flight", "must be between 1 and 4096");
  check_error(only_error(yaml({kSub0, kSub1, kSub2, kSub3, "    max_response_bytes: -1"})), 5, 25,
              "subscriptions[0].max_response_bytes", "must be between 0 and 1048576");
  check_error(only_error(yaml({kSub0, kSub1, kSub2, kSub3, "    retry: {max_attempts: 1001}"})), 5,
              27, "subscriptions[0].retry.max_attempts", "must be between 1 and 1000");
  check_error(
      only_error(yaml({"limits: {max_payload_bytes: 67108865}", kSub0, kSub1, kSub2, kSub3})), 1,
      29, "limits.max_payload_bytes", "must be between 1 and 67108864");
}

TEST_CASE("bad durations are errors naming the text", "[config]") {
  check_error(only_error(yaml({"source:", "  poll_interval: 5x", kSub0, kSub1, kSub2, kSub3})), 2,
              18, "source.poll_interval", "invalid duration \"5x\"");
  check_error(only_error(yaml({"shutdown_timeout: 30", kSub0, kSub1, kSub2, kSub3})), 1, 19,
              "shutdown_timeout", "missing unit");
}

TEST_CASE("durations outside their range are errors naming the range", "[config]") {
  check_error(only_error(yaml({"source:", "  poll_interval: 5ms", kSub0, kSub1, kSub2, kSub3})), 2,
              18, "source.poll_interval", "must be between 10ms and 1h, got 5ms");
  check_error(only_error(yaml({"source:", "  lease: 500ms", kSub0, kSub1, kSub2, kSub3})), 2, 10,
              "source.lease", "must be between 1s and 1h");
  check_error(only_error(yaml({"database:", "  connect_timeout: 1s", kSub0, kSub1, kSub2, kSub3})),
              2, 20, "database.connect_timeout", "must be between 2s and 1h, got 1s");
  check_error(only_error(yaml({kSub0, kSub1, kSub2, kSub3, "    connect_timeout: 2m"})), 5, 22,
              "subscriptions[0].connect_timeout", "must be between 1ms and 1m");
  check_error(only_error(yaml({kSub0, kSub1, kSub2, kSub3, "    retry: {max_age: 31d}"})), 5, 22,
              "subscriptions[0].retry.max_age", "must be between 1s and 30d");
  check_error(only_error(yaml({"shutdown_timeout: 11m", kSub0, kSub1, kSub2, kSub3})), 1, 19,
              "shutdown_timeout", "must be between 0s and 10m");
}

TEST_CASE("max_backoff below initial_backoff is an error", "[config]") {
  check_error(only_error(yaml({kSub0, kSub1, kSub2, kSub3, "    retry:",
                               "      initial_backoff: 2s", "      max_backoff: 1s"})),
              7, 20, "subscriptions[0].retry.max_backoff",
              "max_backoff (1s) must be at least initial_backoff (2s)");
  // Against the default max_backoff (10m) the error points at the key that is set.
  check_error(only_error(yaml({kSub0, kSub1, kSub2, kSub3, "    retry: {initial_backoff: 20m}"})),
              5, 30, "subscriptions[0].retry.max_backoff",
              "must be at least initial_backoff (20m)");
}

TEST_CASE("source.mode is table or wal, and source.wal has defaults and bounds", "[config]") {
  const auto table = config_of(yaml({kSub0, kSub1, kSub2, kSub3}));
  CHECK(table.source.mode == "table");
  CHECK(table.source.wal.slot == "relay_outbox");
  CHECK(table.source.wal.publication == "relay_outbox");
  CHECK(table.source.wal.takeover_after == std::chrono::seconds(10));
  CHECK(table.source.wal.max_held_events == 10'000);
  CHECK(table.source.wal.spill_after == std::chrono::seconds(1));
  CHECK(table.source.wal.status_interval == std::chrono::seconds(10));

  const auto wal =
      config_of(yaml({"source:", "  mode: wal", "  wal:", "    slot: s_1", "    publication: p2",
                      "    takeover_after: 3s", "    max_held_events: 500",
                      "    spill_after: 0ms", "    status_interval: 250ms", kSub0, kSub1, kSub2, kSub3}));
  CHECK(wal.source.mode == "wal");
  CHECK(wal.source.wal.slot == "s_1");
  CHECK(wal.source.wal.publication == "p2");
  CHECK(wal.source.wal.takeover_after == std::chrono::seconds(3));
  CHECK(wal.source.wal.max_held_events == 500);
  CHECK(wal.source.wal.spill_after == std::chrono::milliseconds(0));
  CHECK(wal.source.wal.status_interval == std::chrono::milliseconds(250));

  check_error(only_error(yaml({"source: {mode: queue}", kSub0, kSub1, kSub2, kSub3})), 1, 16,
              "source.mode", "invalid value \"queue\": expected one of \"table\", \"wal\"");
  check_error(only_error(yaml({"source: {wal: {slot: My-Slot}}", kSub0, kSub1, kSub2, kSub3})), 1,
              22, "source.wal.slot",
              "invalid name \"My-Slot\": expected 1 to 63 of a-z, 0-9 and _");
  check_error(only_error(yaml({"source: {wal: {publication: \"\"}}", kSub0, kSub1, kSub2, kSub3})),
              1, 29, "source.wal.publication", "invalid name");
  check_error(only_error(yaml({"source: {wal: {takeover_after: 0s}}", kSub0, kSub1, kSub2, kSub3})),
              1, 32, "source.wal.takeover_after", "must be between 1s and 10m");
  check_error(only_error(yaml({"source: {wal: {max_held_events: 5}}", kSub0, kSub1, kSub2, kSub3})),
              1, 33, "source.wal.max_held_events", "must be between 100 and 1000000");
  check_error(only_error(yaml({"source: {wal: {spill_after: 2h}}", kSub0, kSub1, kSub2, kSub3})),
              1, 29, "source.wal.spill_after", "must be between 0s and 1h");
  check_error(only_error(yaml({"source: {wal: {lag: 5}}", kSub0, kSub1, kSub2, kSub3})), 1, 16,
              "source.wal.lag", "unknown key");
}

TEST_CASE("format is binary, cloudevents-json or protobuf", "[config]") {
  for (const std::string format : {"binary", "cloudevents-json", "protobuf"}) {
    CAPTURE(format);
    CHECK(config_of(yaml({kSub0, kSub1, kSub2, kSub3, "    format: " + format}))
              .subscriptions[0]
              .format == relay::model::format_named(format));
  }
  check_error(only_error(yaml({kSub0, kSub1, kSub2, kSub3, "    format: xml"})), 5, 13,
              "subscriptions[0].format",
              "invalid value \"xml\": expected one of \"binary\", \"cloudevents-json\", "
              "\"protobuf\"");
}

TEST_CASE("log.level and log.format accept only their listed values", "[config]") {
  check_error(only_error(yaml({"log: {level: verbose}", kSub0, kSub1, kSub2, kSub3})), 1, 14,
              "log.level", "expected one of \"debug\", \"info\", \"warn\", \"error\"");
  check_error(only_error(yaml({"log: {format: yaml}", kSub0, kSub1, kSub2, kSub3})), 1, 15,
              "log.format", "expected one of \"text\", \"json\"");
}

TEST_CASE("subscription names must be 1 to 64 characters from [a-z0-9_.-]", "[config]") {
  const std::string max_name(64, 'a');
  CHECK(config_of(yaml({kSub0, "  - name: " + max_name, kSub2, kSub3})).subscriptions[0].name ==
        max_name);
  for (const std::string& name : std::vector<std::string>{"Billing", "\"bill ing\"", "\"\"",
                                                          "bill/ing", std::string(65, 'a')}) {
    CAPTURE(name);
    check_error(only_error(yaml({kSub0, "  - name: " + name, kSub2, kSub3})), 2, 11,
                "subscriptions[0].name", "invalid subscription name");
  }
}

TEST_CASE("subscription names must be unique", "[config]") {
  check_error(only_error(yaml({kSub0, kSub1, kSub2, kSub3, kSub1, kSub2, kSub3})), 5, 11,
              "subscriptions[1].name",
              "duplicate subscription name \"billing\" (first used at line 2)");
}

TEST_CASE("endpoints must be http:// or https:// URLs with a host", "[config]") {
  const auto https = config_of(yaml({kSub0, kSub1, kSub2, "    endpoint: https://billing/events"}))
                         .subscriptions[0]
                         .endpoint;
  CHECK(https.url == "https://billing/events");
  CHECK(https.tls);
  CHECK(https.port == 443);
  check_error(only_error(yaml({kSub0, kSub1, kSub2, "    endpoint: ftp://billing/events"})), 4, 15,
              "subscriptions[0].endpoint", "must be an http:// or https:// URL");
  check_error(only_error(yaml({kSub0, kSub1, kSub2, "    endpoint: billing:8080"})), 4, 15,
              "subscriptions[0].endpoint", "must be an http:// or https:// URL");
  check_error(only_error(yaml({kSub0, kSub1, kSub2, "    endpoint: https://:8443/"})), 4, 15,
              "subscriptions[0].endpoint", "must name a host");
  check_error(only_error(yaml({kSub0, kSub1, kSub2, "    endpoint: http:///events"})), 4, 15,
              "subscriptions[0].endpoint", "must name a host");
  check_error(only_error(yaml({kSub0, kSub1, kSub2, "    endpoint: http://billing:99999/"})), 4, 15,
              "subscriptions[0].endpoint", "invalid port");
}

TEST_CASE("endpoint errors do not quote the URL, which may carry credentials", "[config]") {
  const ConfigError e =
      only_error(yaml({kSub0, kSub1, kSub2, "    endpoint: http://user:hunter2@billing:0/"}));
  CHECK_THAT(e.message, !Catch::Contains("hunter2"));
}

TEST_CASE("the loader refuses every endpoint the sender would refuse, at its position",
          "[config]") {
  // One parser (common/endpoint.h) for check-config and run: whatever passes here can be sent to.
  struct Case {
    const char* url;
    const char* problem;
  };
  for (const Case c :
       {Case{"http://user:pw@billing/", "must not carry credentials"},
        Case{"http://user@billing/", "must not carry credentials"},
        Case{"https://u:p@[::1]:9000/", "must not carry credentials"},
        Case{"http://bill!ing/", "host with characters"},
        Case{"http://[zz]/", "invalid IPv6 address"},
        Case{"http://[::1]x/", "unexpected text after the IPv6 address"},
        Case{"http://billing:/", "invalid port"}, Case{"http://billing/events#top", "#fragment"},
        Case{"http://billing/\xc3\xa9v", "must be percent-encoded"}}) {
    INFO(c.url);
    const ConfigError e =
        only_error(yaml({kSub0, kSub1, kSub2, std::string("    endpoint: \"") + c.url + "\""}));
    check_error(e, 4, 15, "subscriptions[0].endpoint", c.problem);
    CHECK_THAT(e.message, !Catch::Contains("pw"));
  }
  check_error(only_error(yaml({"inbox:", "  listen: 127.0.0.1:0", "  deliver_to: http://a:b@x/",
                               "  sources: [{name: a, unsigned: true}]"})),
              3, 15, "inbox.deliver_to", "must not carry credentials");
}

TEST_CASE("topics must be a non-empty list of non-empty strings", "[config]") {
  check_error(only_error(yaml({kSub0, kSub1, "    topics: []", kSub3})), 3, 13,
              "subscriptions[0].topics", "must list at least one topic");
  check_error(only_error(yaml({kSub0, kSub1, "    topics: [\"order.*\", \"\"]", kSub3})), 3, 25,
              "subscriptions[0].topics[1]", "topic must not be empty");
  check_error(only_error(yaml({kSub0, kSub1, "    topics: [[a]]", kSub3})), 3, 14,
              "subscriptions[0].topics[0]", "expected a string, got a list");
}

TEST_CASE("at least one subscription is required", "[config]") {
  check_error(only_error(yaml({"subscriptions: []"})), 1, 16, "subscriptions",
              "at least one subscription is required");
  check_error(only_error(yaml({"subscriptions:"})), 1, 1, "subscriptions",
              "at least one subscription is required");
}

// ---------------------------------------------------------------------------------------------
// Errors: interpolation and secrets

TEST_CASE("an unset variable without a default is an error at its value", "[config]") {
  check_error(only_error(yaml({"database:", "  url: ${DATABASE_URL}", kSub0, kSub1, kSub2, kSub3})),
              2, 8, "database.url", "environment variable DATABASE_URL is not set");
  check_error(only_error(yaml({"source:", "  batch_size: ${N}", kSub0, kSub1, kSub2, kSub3})), 2,
              15, "source.batch_size", "N is not set");
}

TEST_CASE("a variable's value is validated like a literal", "[config]") {
  check_error(only_error(yaml({"source:", "  batch_size: ${N:-500}", kSub0, kSub1, kSub2, kSub3}),
                         env_of({{"N", "0"}})),
              2, 15, "source.batch_size", "must be between 1 and 10000, got 0");
}

TEST_CASE("a database URL libpq would echo is an error that quotes no password", "[config]") {
  for (const std::string url :
       {"postgresql://relay:pwLeft%zzpwRight@db/app", "postgresq1://relay:pwTypo@db/app",
        "POSTGRESQL://relay:pwUp@db/app", "postgresql://relay:pwA@pwB@db/app",
        "host=db password=pw cret"}) {
    INFO(url);
    const ConfigError e = only_error(
        yaml({"database:", "  url: ${URL}", kSub0, kSub1, kSub2, kSub3}), env_of({{"URL", url}}));
    check_error(e, 2, 8, "database.url", "");
    CHECK(e.to_string().find("pw") == std::string::npos);
  }
  CHECK(config_of(yaml({"database:", "  url: ${URL}", kSub0, kSub1, kSub2, kSub3}),
                  env_of({{"URL", "host=db password='se cret' dbname=app"}}))
            .database.url == "host=db password='se cret' dbname=app");
}

TEST_CASE("signing_secret errors never echo the secret", "[config]") {
  const ConfigError list_item =
      only_error(yaml({kSub0, kSub1, kSub2, kSub3, "    signing_secret: [whsec_topsecret]"}));
  check_error(list_item, 5, 22, "subscriptions[0].signing_secret[0]", "invalid base64");
  CHECK_THAT(list_item.to_string(), !Catch::Contains("topsecret"));

  const ConfigError map =
      only_error(yaml({kSub0, kSub1, kSub2, kSub3, "    signing_secret: {whsec_topsecret: 1}"}));
  check_error(map, 5, 21, "subscriptions[0].signing_secret",
              "expected a string or a list of strings, got a map");
  CHECK_THAT(map.to_string(), !Catch::Contains("topsecret"));

  const ConfigError bad_ref =
      only_error(yaml({kSub0, kSub1, kSub2, kSub3, "    signing_secret: \"topsecret${X\""}));
  check_error(bad_ref, 5, 21, "subscriptions[0].signing_secret", "unterminated");
  CHECK_THAT(bad_ref.to_string(), !Catch::Contains("topsecret"));
}

TEST_CASE("signing_secret is one string or a list of secrets in order", "[config]") {
  const Config one = config_of(yaml({kSub0, kSub1, kSub2, kSub3, "    signing_secret: raw"}));
  CHECK(one.subscriptions[0].signing_secrets == std::vector<std::string>{"raw"});

  // Empty (e.g. ${SECRET:-} unset) means unsigned.
  const Config none =
      config_of(yaml({kSub0, kSub1, kSub2, kSub3, "    signing_secret: ${SECRET:-}"}), env_of({}));
  CHECK(none.subscriptions[0].signing_secrets.empty());

  const Config two =
      config_of(yaml({kSub0, kSub1, kSub2, kSub3, "    signing_secret:", "      - ${NEW}",
                      "      - whsec_c2VjcmV0", "      - raw"}),
                env_of({{"NEW", "whsec_bmV3LXNlY3JldA=="}}));
  CHECK(two.subscriptions[0].signing_secrets ==
        std::vector<std::string>{"whsec_bmV3LXNlY3JldA==", "whsec_c2VjcmV0", "raw"});
}

TEST_CASE("a bad whsec_ secret is a config error at its position", "[config]") {
  const std::string secret = "whsec_c2Vj!!!";
  const ConfigError single =
      only_error(yaml({kSub0, kSub1, kSub2, kSub3, "    signing_secret: " + secret}));
  check_error(single, 5, 21, "subscriptions[0].signing_secret", "whsec_ part is invalid base64");
  CHECK_THAT(single.to_string(), !Catch::Contains("c2Vj"));

  // The second item of a block list, given through the environment.
  const ConfigError item =
      only_error(yaml({kSub0, kSub1, kSub2, kSub3, "    signing_secret:", "      - whsec_c2VjcmV0",
                       "      - ${OLD}"}),
                 env_of({{"OLD", secret}}));
  check_error(item, 7, 9, "subscriptions[0].signing_secret[1]", "invalid base64");
  CHECK_THAT(item.to_string(), !Catch::Contains("c2Vj"));

  const ConfigError empty_key =
      only_error(yaml({kSub0, kSub1, kSub2, kSub3, "    signing_secret: [raw, whsec_]"}));
  check_error(empty_key, 5, 27, "subscriptions[0].signing_secret[1]", "whsec_ key is empty");

  const ConfigError empty_item =
      only_error(yaml({kSub0, kSub1, kSub2, kSub3, "    signing_secret: [raw, \"\"]"}));
  check_error(empty_item, 5, 27, "subscriptions[0].signing_secret[1]", "signing secret is empty");

  const ConfigError empty_list =
      only_error(yaml({kSub0, kSub1, kSub2, kSub3, "    signing_secret: []"}));
  check_error(empty_list, 5, 21, "subscriptions[0].signing_secret", "at least one secret");

  const ConfigError nested =
      only_error(yaml({kSub0, kSub1, kSub2, kSub3, "    signing_secret: [[topsecret]]"}));
  check_error(nested, 5, 22, "subscriptions[0].signing_secret[0]", "expected a string, got a list");
  CHECK_THAT(nested.to_string(), !Catch::Contains("topsecret"));
}

TEST_CASE("headers are read in order with interpolated values", "[config]") {
  const Config c = config_of(
      yaml({kSub0, kSub1, kSub2, kSub3, "    headers:", "      Authorization: \"Bearer ${TOKEN}\"",
            "      X-Tenant: acme", "      X-Empty: \"\""}),
      env_of({{"TOKEN", "t0k"}}));
  using Headers = std::vector<std::pair<std::string, std::string>>;
  CHECK(c.subscriptions[0].headers ==
        Headers{{"Authorization", "Bearer t0k"}, {"X-Tenant", "acme"}, {"X-Empty", ""}});
  // A null map (all entries commented out) is no headers.
  CHECK(config_of(yaml({kSub0, kSub1, kSub2, kSub3, "    headers:", "#     X-A: b"}))
            .subscriptions[0]
            .headers.empty());
}

TEST_CASE("headers reject bad names and values without echoing values", "[config]") {
  const ConfigError not_map = only_error(yaml({kSub0, kSub1, kSub2, kSub3, "    headers: [a, b]"}));
  check_error(not_map, 5, 14, "subscriptions[0].headers",
              "expected a map of header names to values, got a list");

  const ConfigError bad_name =
      only_error(yaml({kSub0, kSub1, kSub2, kSub3, "    headers:", "      \"X Bad\": v"}));
  check_error(bad_name, 6, 7, "subscriptions[0].headers.X Bad", "invalid header name \"X Bad\"");

  const ConfigError crlf =
      only_error(yaml({kSub0, kSub1, kSub2, kSub3,
                       "    headers:", "      Authorization: \"Bearer s3cr3t\\r\\nX-Evil: 1\""}));
  check_error(crlf, 6, 22, "subscriptions[0].headers.Authorization",
              "must not contain CR, LF, NUL");
  CHECK_THAT(crlf.to_string(), !Catch::Contains("s3cr3t"));

  const ConfigError via_env =
      only_error(yaml({kSub0, kSub1, kSub2, kSub3, "    headers:", "      X-Token: ${TOKEN}"}),
                 env_of({{"TOKEN", std::string("s3cr3t\0x", 8)}}));
  check_error(via_env, 6, 16, "subscriptions[0].headers.X-Token", "must not contain CR, LF, NUL");
  CHECK_THAT(via_env.to_string(), !Catch::Contains("s3cr3t"));

  const ConfigError too_long =
      only_error(yaml({kSub0, kSub1, kSub2, kSub3, "    headers:", "      X-Big: ${BIG}"}),
                 env_of({{"BIG", std::string(4097, 'q')}}));
  check_error(too_long, 6, 14, "subscriptions[0].headers.X-Big", "4097 bytes; at most 4096");
  CHECK_THAT(too_long.to_string(), !Catch::Contains("qqqq"));
  CHECK(config_of(yaml({kSub0, kSub1, kSub2, kSub3, "    headers:", "      X-Big: ${BIG}"}),
                  env_of({{"BIG", std::string(4096, 'q')}}))
            .subscriptions[0]
            .headers[0]
            .second.size() == 4096);

  const ConfigError dup = only_error(
      yaml({kSub0, kSub1, kSub2, kSub3, "    headers:", "      X-A: 1", "      x-a: 2"}));
  check_error(dup, 7, 7, "subscriptions[0].headers.x-a",
              "duplicate header 'x-a' (first defined at line 6)");

  const ConfigError not_string =
      only_error(yaml({kSub0, kSub1, kSub2, kSub3, "    headers:", "      X-A: {b: c}"}));
  check_error(not_string, 6, 12, "subscriptions[0].headers.X-A", "expected a string, got a map");
}

TEST_CASE("headers cannot set relay's own headers", "[config]") {
  for (const std::string name :
       {"Idempotency-Key", "webhook-signature", "Webhook-Id", "CE-Type", "ce-id", "relay-attempt",
        "Relay-Anything", "content-type", "Content-Length", "HOST", "Transfer-Encoding",
        "connection", "TE"}) {
    CAPTURE(name);
    const ConfigError e =
        only_error(yaml({kSub0, kSub1, kSub2, kSub3, "    headers:", "      " + name + ": x"}));
    check_error(e, 6, 7, "subscriptions[0].headers." + name, name + " is set by relay");
  }
  // Near misses are fine.
  CHECK(config_of(yaml({kSub0, kSub1, kSub2, kSub3, "    headers:", "      TE2: x",
                        "      X-Relay-Note: y", "      Hosts: z"}))
            .subscriptions[0]
            .headers.size() == 3);
}

TEST_CASE("at most 32 headers", "[config]") {
  std::string text = yaml({kSub0, kSub1, kSub2, kSub3, "    headers:"});
  for (int i = 0; i < 32; ++i) text += "      X-H" + std::to_string(i) + ": v\n";
  CHECK(config_of(text).subscriptions[0].headers.size() == 32);
  text += "      X-H32: v\n";
  check_error(only_error(text), 5, 5, "subscriptions[0].headers", "at most 32 headers, got 33");
}

// ---------------------------------------------------------------------------------------------
// Errors: all at once

TEST_CASE("every error in a file is reported, not just the first", "[config]") {
  const auto errors = errors_of(yaml({
      "source:",
      "  batch_size: lots",  // wrong type
      "subscriptions:", "  - name: billing", "    topics: [\"order.*\"]",
      "    endpoint: http://127.0.0.1:8080/events",
      "    timout: 5s",      // unknown key
      "log: {level: loud}",  // bad enum
  }));
  INFO(dump(errors));
  REQUIRE(errors.size() == 3);
  check_error(errors[0], 2, 15, "source.batch_size", "expected an integer");
  check_error(errors[1], 7, 5, "subscriptions[0].timout", "did you mean 'timeout'?");
  check_error(errors[2], 8, 14, "log.level", "invalid value \"loud\"");
}

TEST_CASE("errors in several subscriptions are all reported in file order", "[config]") {
  const auto errors = errors_of(yaml({
      kSub0,
      "  - name: a",
      "    topics: [x]",
      "    endpoint: ftp://a/",
      "  - name: b",
      "    topics: []",
      "    endpoint: http://b/",
      "    tls: {}",
  }));
  INFO(dump(errors));
  REQUIRE(errors.size() == 3);
  CHECK(errors[0].key_path == "subscriptions[0].endpoint");
  CHECK(errors[1].key_path == "subscriptions[1].topics");
  CHECK(errors[2].key_path == "subscriptions[1].tls");
}

// ---------------------------------------------------------------------------------------------
// ordering, on_dead_letter, circuit_breaker, rate_limit, ops

TEST_CASE("ordering and on_dead_letter take their listed values", "[config]") {
  const Config c =
      config_of(yaml({kSub0, kSub1, kSub2, kSub3, "    ordering: none", "    on_dead_letter: block",
                      "  - name: b", "    topics: [x]", "    endpoint: http://h/",
                      "    ordering: per_key", "    on_dead_letter: skip"}));
  CHECK(c.subscriptions[0].ordering == relay::model::Ordering::kNone);
  CHECK(c.subscriptions[0].on_dead_letter == relay::model::OnDeadLetter::kBlock);
  CHECK(c.subscriptions[1].ordering == relay::model::Ordering::kPerKey);
  CHECK(c.subscriptions[1].on_dead_letter == relay::model::OnDeadLetter::kSkip);
}

TEST_CASE("ordering and on_dead_letter reject other values, naming the choices", "[config]") {
  check_error(only_error(yaml({kSub0, kSub1, kSub2, kSub3, "    ordering: global"})), 5, 15,
              "subscriptions[0].ordering",
              "invalid value \"global\": expected one of \"per_key\", \"none\"");
  check_error(only_error(yaml({kSub0, kSub1, kSub2, kSub3, "    on_dead_letter: retry"})), 5, 21,
              "subscriptions[0].on_dead_letter",
              "invalid value \"retry\": expected one of \"skip\", \"block\"");
}

TEST_CASE("circuit_breaker keys parse, and the ones left out keep their defaults", "[config]") {
  const Config c = config_of(
      yaml({kSub0, kSub1, kSub2, kSub3, "    circuit_breaker:", "      failure_threshold: 3",
            "      open_for: 10s", "      max_open_for: 1h", "  - name: b", "    topics: [x]",
            "    endpoint: http://h/", "    circuit_breaker: {failure_threshold: 1000}"}));
  const auto& first = c.subscriptions[0].circuit_breaker;
  CHECK(first.failure_threshold == 3);
  CHECK(first.open_for == 10s);
  CHECK(first.max_open_for == 1h);
  const auto& second = c.subscriptions[1].circuit_breaker;
  CHECK(second.failure_threshold == 1000);
  CHECK(second.open_for == 10s);
  CHECK(second.max_open_for == 30s);
}

TEST_CASE(
    "an open_for longer than the default max_open_for is kept, with max_open_for following it",
    "[config]") {
  const Config c =
      config_of(yaml({kSub0, kSub1, kSub2, kSub3, "    circuit_breaker: {open_for: 2m}"}));
  CHECK(c.subscriptions[0].circuit_breaker.open_for == 2min);
  CHECK(c.subscriptions[0].circuit_breaker.max_open_for == 2min);
}

TEST_CASE("circuit_breaker values outside their ranges are errors", "[config]") {
  check_error(
      only_error(yaml({kSub0, kSub1, kSub2, kSub3, "    circuit_breaker: {failure_threshold: 0}"})),
      5, 42, "subscriptions[0].circuit_breaker.failure_threshold",
      "must be between 1 and 1000, got 0");
  check_error(
      only_error(
          yaml({kSub0, kSub1, kSub2, kSub3, "    circuit_breaker: {failure_threshold: 1001}"})),
      5, 42, "subscriptions[0].circuit_breaker.failure_threshold", "must be between 1 and 1000");
  check_error(
      only_error(yaml({kSub0, kSub1, kSub2, kSub3, "    circuit_breaker: {open_for: 5ms}"})), 5, 33,
      "subscriptions[0].circuit_breaker.open_for", "must be between 10ms and 1h");
  check_error(only_error(yaml({kSub0, kSub1, kSub2, kSub3, "    circuit_breaker: {open_for: 2h}"})),
              5, 33, "subscriptions[0].circuit_breaker.open_for", "must be between 10ms and 1h");
  check_error(
      only_error(yaml({kSub0, kSub1, kSub2, kSub3, "    circuit_breaker: {max_open_for: 25h}"})), 5,
      37, "subscriptions[0].circuit_breaker.max_open_for", "must be between 10ms and 1d");
  check_error(only_error(yaml({kSub0, kSub1, kSub2, kSub3, "    circuit_breaker: {open_for: 5}"})),
              5, 33, "subscriptions[0].circuit_breaker.open_for", "missing unit");
  check_error(only_error(yaml({kSub0, kSub1, kSub2, kSub3, "    circuit_breaker: 5"})), 5, 22,
              "subscriptions[0].circuit_breaker", "expected a map, got a scalar");
  check_error(only_error(yaml({kSub0, kSub1, kSub2, kSub3, "    circuit_breaker: {threshold: 5}"})),
              5, 23, "subscriptions[0].circuit_breaker.threshold", "unknown key 'threshold'");
}

TEST_CASE("max_open_for below open_for is an error", "[config]") {
  check_error(only_error(yaml({kSub0, kSub1, kSub2, kSub3, "    circuit_breaker:",
                               "      open_for: 2m", "      max_open_for: 1m"})),
              7, 21, "subscriptions[0].circuit_breaker.max_open_for",
              "max_open_for (1m) must be at least open_for (2m)");
  // Against the default max_open_for (30s) there is no error: an unset max_open_for follows a
  // longer open_for (see the test above).
  // Equal is fine.
  const Config c = config_of(
      yaml({kSub0, kSub1, kSub2, kSub3, "    circuit_breaker: {open_for: 1m, max_open_for: 1m}"}));
  CHECK(c.subscriptions[0].circuit_breaker.max_open_for == 1min);
}

TEST_CASE("rate_limit takes a decimal rate and an explicit burst", "[config]") {
  const Config c = config_of(
      yaml({kSub0, kSub1, kSub2, kSub3, "    rate_limit: {events_per_second: 0.5, burst: 10}"}));
  REQUIRE(c.subscriptions[0].rate_limit.has_value());
  CHECK(c.subscriptions[0].rate_limit->events_per_second == 0.5);
  CHECK(c.subscriptions[0].rate_limit->burst == 10);
}

TEST_CASE("rate_limit burst defaults to the rate rounded up, at least 1", "[config]") {
  const auto burst_for = [](const std::string& rate) {
    const Config c = config_of(
        yaml({kSub0, kSub1, kSub2, kSub3, "    rate_limit: {events_per_second: " + rate + "}"}));
    REQUIRE(c.subscriptions[0].rate_limit.has_value());
    return c.subscriptions[0].rate_limit->burst;
  };
  CHECK(burst_for("0.001") == 1);
  CHECK(burst_for("0.5") == 1);
  CHECK(burst_for("1") == 1);
  CHECK(burst_for("2.5") == 3);
  CHECK(burst_for("100") == 100);
  CHECK(burst_for("1e6") == 1'000'000);
}

TEST_CASE("rate_limit absent or with every key commented out means no limit", "[config]") {
  const Config absent = config_of(yaml({kSub0, kSub1, kSub2, kSub3}));
  CHECK_FALSE(absent.subscriptions[0].rate_limit.has_value());
  const Config commented = config_of(
      yaml({kSub0, kSub1, kSub2, kSub3, "    rate_limit:", "    #  events_per_second: 5"}));
  CHECK_FALSE(commented.subscriptions[0].rate_limit.has_value());
}

TEST_CASE("rate_limit values take ${VAR} like any other", "[config]") {
  const Config c = config_of(
      yaml({kSub0, kSub1, kSub2, kSub3,
            "    rate_limit: {events_per_second: \"${RATE:-2.5}\", burst: \"${BURST}\"}"}),
      env_of({{"BURST", "7"}}));
  REQUIRE(c.subscriptions[0].rate_limit.has_value());
  CHECK(c.subscriptions[0].rate_limit->events_per_second == 2.5);
  CHECK(c.subscriptions[0].rate_limit->burst == 7);
}

TEST_CASE("rate_limit errors: missing rate, bad numbers, out of range", "[config]") {
  check_error(only_error(yaml({kSub0, kSub1, kSub2, kSub3, "    rate_limit: {burst: 5}"})), 5, 17,
              "subscriptions[0].rate_limit.events_per_second",
              "missing required key 'events_per_second'");
  for (const std::string rate : {"0", "0.0009", "-1", "1000001", "1e7"}) {
    CAPTURE(rate);
    check_error(only_error(yaml({kSub0, kSub1, kSub2, kSub3,
                                 "    rate_limit: {events_per_second: " + rate + "}"})),
                5, 37, "subscriptions[0].rate_limit.events_per_second",
                "must be between 0.001 and 1000000, got " + rate);
  }
  for (const std::string rate : {"fast", "1.5/s", "inf", "nan", "0x10", "+5", "\"\""}) {
    CAPTURE(rate);
    check_error(only_error(yaml({kSub0, kSub1, kSub2, kSub3,
                                 "    rate_limit: {events_per_second: " + rate + "}"})),
                5, 37, "subscriptions[0].rate_limit.events_per_second", "expected a number");
  }
  for (const std::string burst : {"0", "1000001"}) {
    CAPTURE(burst);
    check_error(only_error(yaml({kSub0, kSub1, kSub2, kSub3,
                                 "    rate_limit: {events_per_second: 5, burst: " + burst + "}"})),
                5, 47, "subscriptions[0].rate_limit.burst", "must be between 1 and 1000000");
  }
  check_error(only_error(yaml({kSub0, kSub1, kSub2, kSub3,
                               "    rate_limit: {events_per_second: 5, burst: 2.5}"})),
              5, 47, "subscriptions[0].rate_limit.burst", "expected an integer");
  check_error(only_error(yaml({kSub0, kSub1, kSub2, kSub3, "    rate_limit: 5"})), 5, 17,
              "subscriptions[0].rate_limit", "expected a map, got a scalar");
}

TEST_CASE("ops.listen takes host:port, IPv6 in brackets, and port 0", "[config]") {
  for (const std::string listen :
       {"127.0.0.1:9090", "0.0.0.0:0", "localhost:65535", "[::1]:9090", "[::]:80"}) {
    CAPTURE(listen);
    const Config c =
        config_of(yaml({"ops:", "  listen: \"" + listen + "\"", kSub0, kSub1, kSub2, kSub3}));
    CHECK(c.ops.listen == listen);
  }
}

TEST_CASE("ops.listen empty or left out means no ops listener", "[config]") {
  CHECK(config_of(yaml({"ops:", "  listen: \"${OPS_LISTEN:-}\"", kSub0, kSub1, kSub2, kSub3}))
            .ops.listen.empty());
  CHECK(config_of(yaml({"ops:", kSub0, kSub1, kSub2, kSub3})).ops.listen.empty());
}

TEST_CASE("ops.listen must be host:port with a port in 0..65535", "[config]") {
  const std::pair<std::string, std::string> cases[] = {
      {"9090", "has no port"},
      {":9090", "has no host"},
      {"127.0.0.1:", "invalid port"},
      {"127.0.0.1:65536", "invalid port"},
      {"127.0.0.1:-1", "invalid port"},
      {"127.0.0.1:http", "invalid port"},
      {"::1:9090", "IPv6 host in brackets"},
      {"[::1]", "has no port"},
      {"[::1:9090", "unterminated IPv6"},
      {"[]:9090", "has no host"},
      {"host name:80", "whitespace"},
  };
  for (const auto& [listen, fragment] : cases) {
    CAPTURE(listen);
    check_error(
        only_error(yaml({"ops:", "  listen: \"" + listen + "\"", kSub0, kSub1, kSub2, kSub3})), 2,
        11, "ops.listen", fragment);
  }
  check_error(only_error(yaml({"ops: {listen: \"a:1\", port: 2}", kSub0, kSub1, kSub2, kSub3})), 1,
              22, "ops.port", "unknown key 'port'");
  check_error(only_error(yaml({"ops: 127.0.0.1:9090", kSub0, kSub1, kSub2, kSub3})), 1, 6, "ops",
              "expected a map, got a scalar");
}

// ---------------------------------------------------------------------------------------------
// known_config_keys()

TEST_CASE("known_config_keys lists every accepted key path, sections included, in file order",
          "[config]") {
  CHECK(known_config_keys() == std::vector<std::string>{
                                   "database",
                                   "database.url",
                                   "database.connect_timeout",
                                   "source",
                                   "source.mode",
                                   "source.batch_size",
                                   "source.poll_interval",
                                   "source.lease",
                                   "source.wal",
                                   "source.wal.slot",
                                   "source.wal.publication",
                                   "source.wal.takeover_after",
                                   "source.wal.max_held_events",
                                   "source.wal.spill_after",
                                   "source.wal.status_interval",
                                   "subscriptions",
                                   "subscriptions[].name",
                                   "subscriptions[].topics",
                                   "subscriptions[].endpoint",
                                   "subscriptions[].format",
                                   "subscriptions[].batch",
                                   "subscriptions[].batch.max_events",
                                   "subscriptions[].batch.max_bytes",
                                   "subscriptions[].batch.linger",
                                   "subscriptions[].tls",
                                   "subscriptions[].tls.ca_file",
                                   "subscriptions[].tls.cert_file",
                                   "subscriptions[].tls.key_file",
                                   "subscriptions[].tls.verify",
                                   "subscriptions[].timeout",
                                   "subscriptions[].connect_timeout",
                                   "subscriptions[].max_in_flight",
                                   "subscriptions[].retry",
                                   "subscriptions[].retry.max_attempts",
                                   "subscriptions[].retry.initial_backoff",
                                   "subscriptions[].retry.max_backoff",
                                   "subscriptions[].retry.max_age",
                                   "subscriptions[].signing_secret",
                                   "subscriptions[].max_response_bytes",
                                   "subscriptions[].ordering",
                                   "subscriptions[].on_dead_letter",
                                   "subscriptions[].circuit_breaker",
                                   "subscriptions[].circuit_breaker.failure_threshold",
                                   "subscriptions[].circuit_breaker.open_for",
                                   "subscriptions[].circuit_breaker.max_open_for",
                                   "subscriptions[].rate_limit",
                                   "subscriptions[].rate_limit.events_per_second",
                                   "subscriptions[].rate_limit.burst",
                                   "subscriptions[].headers",
                                   "inbox",
                                   "inbox.listen",
                                   "inbox.deliver_to",
                                   "inbox.timestamp_tolerance",
                                   "inbox.retention",
                                   "inbox.workers",
                                   "inbox.max_queued_connections",
                                   "inbox.read_timeout",
                                   "inbox.idle_timeout",
                                   "inbox.max_header_bytes",
                                   "inbox.max_headers",
                                   "inbox.sources",
                                   "inbox.sources[].name",
                                   "inbox.sources[].signing_secret",
                                   "inbox.sources[].unsigned",
                                   "inbox.sources[].verify",
                                   "inbox.sources[].key_from",
                                   "inbox.sources[].topic_from",
                                   "inbox.sources[].deliver_to",
                                   "inbox.sources[].delivery",
                                   "inbox.sources[].delivery.format",
                                   "inbox.sources[].delivery.batch",
                                   "inbox.sources[].delivery.batch.max_events",
                                   "inbox.sources[].delivery.batch.max_bytes",
                                   "inbox.sources[].delivery.batch.linger",
                                   "inbox.sources[].delivery.tls",
                                   "inbox.sources[].delivery.tls.ca_file",
                                   "inbox.sources[].delivery.tls.cert_file",
                                   "inbox.sources[].delivery.tls.key_file",
                                   "inbox.sources[].delivery.tls.verify",
                                   "inbox.sources[].delivery.timeout",
                                   "inbox.sources[].delivery.connect_timeout",
                                   "inbox.sources[].delivery.max_in_flight",
                                   "inbox.sources[].delivery.retry",
                                   "inbox.sources[].delivery.retry.max_attempts",
                                   "inbox.sources[].delivery.retry.initial_backoff",
                                   "inbox.sources[].delivery.retry.max_backoff",
                                   "inbox.sources[].delivery.retry.max_age",
                                   "inbox.sources[].delivery.signing_secret",
                                   "inbox.sources[].delivery.max_response_bytes",
                                   "inbox.sources[].delivery.ordering",
                                   "inbox.sources[].delivery.on_dead_letter",
                                   "inbox.sources[].delivery.circuit_breaker",
                                   "inbox.sources[].delivery.circuit_breaker.failure_threshold",
                                   "inbox.sources[].delivery.circuit_breaker.open_for",
                                   "inbox.sources[].delivery.circuit_breaker.max_open_for",
                                   "inbox.sources[].delivery.rate_limit",
                                   "inbox.sources[].delivery.rate_limit.events_per_second",
                                   "inbox.sources[].delivery.rate_limit.burst",
                                   "inbox.sources[].delivery.headers",
                                   "limits",
                                   "limits.max_payload_bytes",
                                   "log",
                                   "log.level",
                                   "log.format",
                                   "ops",
                                   "ops.listen",
                                   "shutdown_timeout",
                               });
}

// "subscriptions[].retry.max_attempts" -> "subscriptions: [{retry: {max_attempts: 1}}]".
std::string yaml_setting(const std::string& key_path) {
  std::string out;
  std::string closers;
  std::size_t start = 0;
  while (true) {
    const std::size_t dot = key_path.find('.', start);
    std::string part = key_path.substr(start, dot == std::string::npos ? dot : dot - start);
    const bool list = part.size() > 2 && part.compare(part.size() - 2, 2, "[]") == 0;
    if (list) part.resize(part.size() - 2);
    out += part + ": ";
    if (dot == std::string::npos) break;
    out += list ? "[{" : "{";
    closers.insert(0, list ? "}]" : "}");
    start = dot + 1;
  }
  return out + "1" + closers + "\n";
}

TEST_CASE("the parser accepts every key known_config_keys lists", "[config]") {
  for (const std::string& key : known_config_keys()) {
    const std::string text = yaml_setting(key);
    CAPTURE(text);
    auto result = parse_config(text, "relay.yaml", env_of({}));
    // Wrong types and missing keys are expected; an unknown or unsupported key is not.
    if (auto* errors = std::get_if<std::vector<ConfigError>>(&result)) {
      for (const ConfigError& e : *errors) {
        CHECK_THAT(e.message, !Catch::Contains("unknown key") && !Catch::Contains("not supported"));
      }
    }
  }
}

TEST_CASE("known_config_keys has no duplicates", "[config]") {
  std::vector<std::string> keys = known_config_keys();
  std::sort(keys.begin(), keys.end());
  CHECK(std::adjacent_find(keys.begin(), keys.end()) == keys.end());
}
