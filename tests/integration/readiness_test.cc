// Integration: /readyz of a relay that has nothing to claim. An inbox-only relay (no subscriptions,
// no deliver_to: a setup the README allows) never claims from the outbox, so its readiness must
// come from the database calls it does make, not from a claim.

#include <catch2/catch.hpp>

#include "tests/integration/inbox_test_helpers.h"
#include "tests/support/fake_consumer.h"
#include "tests/support/ops_probe.h"
#include "tests/support/relay_process.h"
#include "tests/support/test_database.h"
#include "tests/support/wait.h"

using namespace std::chrono_literals;
using namespace relay::testing;

TEST_CASE("an inbox-only relay turns ready, and its /metrics says so",
          "[integration][ops][inbox]") {
  auto db = TestDatabase::create();
  const int port = FakeConsumer::unused_port();
  const int ops_port = FakeConsumer::unused_port();
  RelayProcess relay(inbox_yaml(port, {{.name = "pay", .secrets = {kSecretA}}}, "",
                                fmt::format("ops:\n  listen: 127.0.0.1:{}\n", ops_port)),
                     {}, {{"DATABASE_URL", db.url()}});
  OpsProbe ops(ops_port);
  INFO("relay log:\n" << relay.log());
  // Ready is a state relay must reach with its database up; the inbox serving requests shows it is
  // past startup.
  REQUIRE(wait_until([&] { return InboxClient(port).get("/inbox/x").status == 405; }, 60s));
  REQUIRE(wait_until([&] { return ops.get("/readyz").first == 200; }, 60s));
  CHECK(OpsProbe::sample(ops.metrics(), "relay_ready") == 1.0);
  const std::string body = "{}";
  CHECK(InboxClient(port).post("/inbox/pay", body, signed_headers(kKeyA, "e1", body)).status ==
        200);
  CHECK(db.count("relay.inbox") == 1);
}
