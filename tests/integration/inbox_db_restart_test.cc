// Integration: PostgreSQL stops while requests arrive at the inbox. Every request answered while
// it is away gets 503 with Retry-After, nothing is acknowledged that was not committed, and intake
// resumes by itself once the database is back (same relay process, no restart).
//
// Stops the shared test cluster: the "serial:" name makes CTest run it alone (RUN_SERIAL).

#include <catch2/catch.hpp>
#include <csignal>
#include <set>

#include "tests/integration/inbox_test_helpers.h"
#include "tests/support/fake_consumer.h"
#include "tests/support/pg_cluster.h"
#include "tests/support/relay_process.h"
#include "tests/support/test_database.h"
#include "tests/support/wait.h"

using namespace std::chrono_literals;
using namespace relay::testing;

TEST_CASE("serial: inbox answers 503 with Retry-After while PostgreSQL is down and resumes after",
          "[integration][inbox][db_restart]") {
  auto db = TestDatabase::create();
  const int port = FakeConsumer::unused_port();
  RelayProcess relay(inbox_yaml(port, {{.name = "open"}}), {}, {{"DATABASE_URL", db.url()}});
  REQUIRE(wait_until([&] { return InboxClient(port).get("/inbox/x").status == 405; }, 60s));
  InboxClient client(port);

  std::set<std::string> acknowledged;
  int n = 0;
  // Posts one new event; returns the status.
  auto post_one = [&]() -> InboxReply {
    const std::string id = fmt::format("evt-{}", n++);
    auto r = client.post("/inbox/open", "{}", {{"webhook-id", id}});
    if (r.status == 200) acknowledged.insert(id);
    return r;
  };
  for (int i = 0; i < 20; ++i) REQUIRE(post_one().status == 200);

  int unavailable = 0;
  {
    RestartClusterOnExit guard;
    pg_stop();
    for (int i = 0; i < 30; ++i) {
      auto r = post_one();
      CHECK(r.status == 503);
      CHECK(r.header("retry-after") == "1");
      if (r.status == 503) ++unavailable;
    }
    CHECK(relay.running());
    pg_start();
  }
  // Back without a restart of relay: the next requests are stored again.
  REQUIRE(wait_until([&] { return post_one().status == 200; }, 60s));
  for (int i = 0; i < 20; ++i) CHECK(post_one().status == 200);

  CHECK(unavailable == 30);
  CHECK(acknowledged.size() == 41);
  // Exactly the acknowledged events are stored: none of the 503s left a row behind.
  const auto rows = db.rows("SELECT event_id FROM relay.inbox");
  std::set<std::string> stored;
  for (const auto& r : rows) stored.insert(r[0]);
  CHECK(stored == acknowledged);
  INFO(relay.log());
  relay.signal(SIGTERM);
  CHECK(relay.wait_exit(60s) == 0);
}
