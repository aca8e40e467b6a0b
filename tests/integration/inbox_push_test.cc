// Integration: an inbox source with deliver_to. relay pushes each stored event to the app with the
// outbox's delivery machinery (subscription "inbox:<source>"): per-key order, headers, processed_at
// on success; a dead letter on a final failure, mirrored on the inbox row, and `relay dlq replay`
// sends it again.

#include <catch2/catch.hpp>
#include <csignal>

#include "tests/integration/inbox_test_helpers.h"
#include "tests/support/fake_consumer.h"
#include "tests/support/relay_process.h"
#include "tests/support/test_database.h"
#include "tests/support/wait.h"

using namespace std::chrono_literals;
using namespace relay::testing;

namespace {

bool inbox_up(int port) {
  return wait_until([&] { return InboxClient(port).get("/inbox/x").status == 405; }, 60s);
}

const std::string kFastRetry =
    "      delivery:\n"
    "        retry: { max_attempts: 3, initial_backoff: 20ms, max_backoff: 200ms }\n";

}  // namespace

TEST_CASE("a pushing source delivers stored events in key order and sets processed_at",
          "[integration][inbox]") {
  auto db = TestDatabase::create();
  FakeConsumer app;
  const int port = FakeConsumer::unused_port();
  RelayProcess relay(inbox_yaml(port, {{.name = "pay",
                                        .secrets = {kSecretA},
                                        .deliver_to = app.url("/inbox"),
                                        .extra = kFastRetry}}),
                     {}, {{"DATABASE_URL", db.url()}});
  REQUIRE(inbox_up(port));
  InboxClient client(port);

  std::vector<std::string> ids;
  for (int i = 0; i < 20; ++i) {
    const std::string id = fmt::format("evt_{:02}", i);
    const std::string body = fmt::format(R"({{"n":{}}})", i);
    Headers h = signed_headers(kKeyA, id, body);
    h.emplace_back("ce-type", "payment.settled");
    h.emplace_back("ce-subject", i % 2 ? "acct-odd" : "acct-even");
    h.emplace_back("X-Tenant", "acme");
    REQUIRE(client.post("/inbox/pay", body, h).status == 200);
    ids.push_back(id);
  }
  REQUIRE(wait_until([&] { return db.count("relay.inbox WHERE processed_at IS NOT NULL") == 20; },
                     60s));
  CHECK(db.count("relay.delivery") == 0);
  CHECK(db.count("relay.dead_letter") == 0);
  CHECK(db.value("SELECT min(attempts) || '-' || max(attempts) FROM relay.inbox") == "1-1");

  const auto requests = app.requests();
  REQUIRE(requests.size() == 20);
  // Each key's events arrive in the order they were received.
  std::vector<std::string> odd, even;
  for (const auto& r : requests) {
    CHECK(r.path == "/inbox");
    CHECK(r.headers.at("ce-type") == "payment.settled");
    CHECK(r.headers.at("relay-subscription") == "inbox:pay");
    CHECK(r.headers.at("x-tenant") == "acme");
    (r.headers.at("ce-subject") == "acct-odd" ? odd : even)
        .push_back(r.headers.at("idempotency-key"));
  }
  std::vector<std::string> want_odd, want_even;
  for (int i = 0; i < 20; ++i) (i % 2 ? want_odd : want_even).push_back(ids[i]);
  CHECK(odd == want_odd);
  CHECK(even == want_even);

  // A duplicate of a delivered event is not pushed again.
  const std::string body = R"({"n":0})";
  auto again = client.post("/inbox/pay", body, signed_headers(kKeyA, "evt_00", body));
  CHECK(again.header("relay-duplicate") == "true");
  CHECK(db.count("relay.delivery") == 0);
  CHECK(app.count() == 20);
}

TEST_CASE("a pushed event the app refuses is dead-lettered as inbox:<source> and can be replayed",
          "[integration][inbox]") {
  auto db = TestDatabase::create();
  FakeConsumer app{Reply{.status = 400}};
  const int port = FakeConsumer::unused_port();
  RelayProcess relay(inbox_yaml(port, {{.name = "pay",
                                        .secrets = {kSecretA},
                                        .deliver_to = app.url("/inbox"),
                                        .extra = kFastRetry}}),
                     {}, {{"DATABASE_URL", db.url()}});
  REQUIRE(inbox_up(port));
  InboxClient client(port);
  const std::string body = R"({"n":1})";
  REQUIRE(client.post("/inbox/pay", body, signed_headers(kKeyA, "msg_not_a_uuid", body)).status ==
          200);

  REQUIRE(wait_until([&] { return db.count("relay.dead_letter") == 1; }, 60s));
  CHECK(
      db.value("SELECT event_id || ' ' || subscription || ' ' || reason FROM relay.dead_letter") ==
      "msg_not_a_uuid inbox:pay non_retryable_status");
  REQUIRE(wait_until(
      [&] { return db.count("relay.inbox WHERE dead_lettered_at IS NOT NULL") == 1; }, 60s));
  CHECK(db.value(
            "SELECT (processed_at IS NULL)::text || ' ' || (last_error LIKE "
            "'dead-lettered (non_retryable_status)%')::text || ' ' || attempts FROM relay.inbox") ==
        "true true 1");
  CHECK(app.count() == 1);

  // The app is fixed; the operator replays the dead letter: it goes back to relay.delivery (never
  // the outbox, whose ids are uuids) and reaches the app; the inbox row becomes processed.
  app.set_handler([](const ReceivedRequest&) { return Reply{}; });
  std::string out;
  REQUIRE(RelayProcess::run_cli({"dlq", "replay", "--all", "--yes", "--database-url", db.url()},
                                &out) == 0);
  REQUIRE(
      wait_until([&] { return db.count("relay.inbox WHERE processed_at IS NOT NULL") == 1; }, 60s));
  CHECK(db.value("SELECT (dead_lettered_at IS NULL)::text FROM relay.inbox") == "true");
  CHECK(db.count("relay.outbox") == 0);
  CHECK(app.successful_ids() == std::vector<std::string>{"msg_not_a_uuid"});
}
