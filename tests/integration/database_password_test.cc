// A database URL that libpq cannot parse must not make relay print its password: libpq's own
// error text echoes the offending token (a bad %-escape), the whole string (a scheme it does not
// know makes it parse the URL as key=value conninfo) or a piece of it (an unencoded '@' splits
// the password and the rest becomes the host name). Every command that connects — status,
// dlq list, migrate and run — is run against each shape, and its stdout and stderr must contain
// no fragment of the password. Port 1 on loopback refuses at once, so nothing waits.

#include <signal.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <string>
#include <vector>

#include "tests/support/relay_process.h"
#include "tests/support/wait.h"

using namespace std::chrono_literals;
using relay::testing::RelayProcess;
using relay::testing::wait_until;

namespace {

struct Shape {
  const char* what;
  std::string url;
  std::vector<std::string> secrets;  // no output may contain any of these
};

std::vector<Shape> shapes() {
  return {
      {"bad %-escape in the password",
       "postgresql://relay:pwLeftHalf%zzpwRightHalf@127.0.0.1:1/app",
       {"pwLeftHalf", "pwRightHalf"}},
      {"scheme typo", "postgresq1://relay:pwSchemeTypo@127.0.0.1:1/app", {"pwSchemeTypo"}},
      {"upper-case scheme", "POSTGRESQL://relay:pwUpperScheme@127.0.0.1:1/app", {"pwUpperScheme"}},
      {"unencoded @ in the password",
       "postgresql://relay:pwBeforeAt@pwAfterAt@127.0.0.1:1/app",
       {"pwBeforeAt", "pwAfterAt"}},
      {"key=value conninfo",
       "host=127.0.0.1 port=1 user=relay password=pwKeyValue dbname=app",
       {"pwKeyValue"}},
      {"key=value conninfo, quoted password",
       "host=127.0.0.1 port=1 user=relay password='pwQuoted1 pwQuoted2' dbname=app",
       {"pwQuoted1", "pwQuoted2"}},
  };
}

const char* const kRunConfig = R"(subscriptions:
  - name: s
    topics: ["*"]
    endpoint: http://127.0.0.1:9/events
)";

void check_no_secret(const Shape& shape, const std::string& output) {
  for (const auto& secret : shape.secrets) {
    INFO("secret: " << secret);
    CHECK(output.find(secret) == std::string::npos);
  }
}

}  // namespace

TEST_CASE("status, dlq, migrate and run never print the password of a malformed database URL",
          "[integration][connect]") {
  for (const auto& shape : shapes()) {
    SECTION(shape.what) {
      const relay::testing::EnvVars env{{"DATABASE_URL", shape.url}};
      for (const std::vector<std::string>& args :
           std::vector<std::vector<std::string>>{{"status"}, {"dlq", "list"}, {"migrate"}}) {
        INFO("relay " << args[0]);
        std::string output;
        const int rc = RelayProcess::run_cli(args, &output, 60s, env);
        INFO(output);
        CHECK(rc != 0);
        CHECK_FALSE(output.empty());  // it does say what is wrong
        check_no_secret(shape, output);
      }
      INFO("relay run");
      RelayProcess relay(kRunConfig, {}, env);
      // run either exits (a URL it can tell is malformed) or logs that it waits for the database.
      REQUIRE(wait_until(
          [&] {
            return !relay.running() ||
                   relay.log().find("waiting for the database") != std::string::npos;
          },
          60s));
      relay.signal(SIGTERM);
      REQUIRE(relay.wait_exit(30s).has_value());
      const std::string log = relay.log();
      INFO(log);
      CHECK(log.find("database") != std::string::npos);
      check_no_secret(shape, log);
    }
  }
}
