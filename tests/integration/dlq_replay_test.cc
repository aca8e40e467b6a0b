// Integration: `relay dlq replay` end to end. Dead letters from real failed deliveries go back to a
// now-healthy consumer under their original Idempotency-Key, for their one subscription only; a
// second replay enqueues nothing; a bulk replay interrupted with SIGINT leaves every row either
// fully replayed or untouched.

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <csignal>
#include <thread>

#include "tests/integration/test_config.h"
#include "tests/support/fake_consumer.h"
#include "tests/support/relay_process.h"
#include "tests/support/temp_dir.h"
#include "tests/support/test_database.h"
#include "tests/support/wait.h"

using namespace std::chrono_literals;
using namespace relay::testing;

namespace {

struct CliRun {
  int code = -1;
  std::string output;
};

CliRun dlq(TestDatabase& db, std::vector<std::string> args) {
  args.insert(args.begin(), "dlq");
  args.push_back("--database-url");
  args.push_back(db.url());
  CliRun r;
  r.code = RelayProcess::run_cli(args, &r.output);
  return r;
}

size_t count_of(const std::vector<std::string>& ids, const std::string& id) {
  return static_cast<size_t>(std::count(ids.begin(), ids.end(), id));
}

// `relay <args...>` as a child this test can signal (RelayProcess::run_cli waits for the end).
// stdin is /dev/null, stdout+stderr go to a file. The destructor SIGKILLs and reaps a child that
// is still running.
class CliChild {
 public:
  explicit CliChild(std::vector<std::string> args) {
    out_path_ = dir_.path() + "/output";
    args.insert(args.begin(), RelayProcess::binary());
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const int out_fd = ::open(out_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    const int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    REQUIRE(out_fd >= 0);
    REQUIRE(null_fd >= 0);
    pid_ = ::fork();
    if (pid_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      ::dup2(null_fd, STDIN_FILENO);
      ::dup2(out_fd, STDOUT_FILENO);
      ::dup2(out_fd, STDERR_FILENO);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    ::close(out_fd);
    ::close(null_fd);
    REQUIRE(pid_ > 0);
  }
  ~CliChild() {
    if (!code_) {
      ::kill(pid_, SIGKILL);
      int status = 0;
      ::waitpid(pid_, &status, 0);
    }
  }
  CliChild(const CliChild&) = delete;
  CliChild& operator=(const CliChild&) = delete;

  void signal(int sig) { ::kill(pid_, sig); }
  // Exit code (128 + signal if a signal ended it), or nullopt if still running at the deadline.
  std::optional<int> wait_exit(std::chrono::milliseconds timeout) {
    const bool done = wait_until(
        [&] {
          int status = 0;
          if (::waitpid(pid_, &status, WNOHANG) != pid_) return false;
          code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
          return true;
        },
        timeout);
    return done ? code_ : std::nullopt;
  }
  std::string output() const { return read_file(out_path_); }

 private:
  TempDir dir_{"relay-dlq-child."};
  std::string out_path_;
  pid_t pid_ = -1;
  std::optional<int> code_;
};

}  // namespace

TEST_CASE(
    "dlq replay sends a dead letter again to its one subscription under the original "
    "Idempotency-Key",
    "[integration][dlq][replay]") {
  auto db = TestDatabase::create();
  FakeConsumer billing{Reply{.status = 400, .body = "rejected"}};
  FakeConsumer audit;
  TestRelayConfig cfg;
  cfg.subscriptions = {{.name = "billing", .topics = {"order.*"}, .endpoint = billing.url()},
                       {.name = "audit", .topics = {"order.*"}, .endpoint = audit.url()}};
  RelayProcess relay(to_yaml(cfg), {}, {{"DATABASE_URL", db.url()}});

  const std::string e1 = db.value(
      "SELECT relay.publish('order.paid', '42', '{\"n\": 1}'::jsonb, '{\"x-tenant\": "
      "\"acme\"}'::jsonb)::text");
  const std::string e2 =
      db.value("SELECT relay.publish('order.paid', '43', '{\"n\": 2}'::jsonb)::text");
  REQUIRE(wait_until(
      [&] { return db.count("relay.dead_letter") == 2 && audit.successful_ids().size() == 2; },
      60s));
  REQUIRE(wait_until([&] { return db.count("relay.outbox") == 0; }, 60s));
  const std::string dl1 =
      db.value("SELECT id FROM relay.dead_letter WHERE event_id = '" + e1 + "'");
  const std::string dl2 =
      db.value("SELECT id FROM relay.dead_letter WHERE event_id = '" + e2 + "'");
  CHECK(db.value("SELECT string_agg(DISTINCT subscription, ',') FROM relay.dead_letter") ==
        "billing");

  billing.set_handler([](const ReceivedRequest&) { return Reply{200}; });  // the consumer is fixed
  auto r = dlq(db, {"replay", dl1});
  INFO(r.output);
  REQUIRE(r.code == 0);
  CHECK(r.output == "replayed " + dl1 + ": event " + e1 + " queued for subscription billing\n");
  REQUIRE(wait_until([&] { return count_of(billing.successful_ids(), e1) == 1; }, 60s));

  const auto requests = billing.requests();
  const ReceivedRequest& ok = requests.back();
  CHECK(ok.headers.at("idempotency-key") == e1);
  CHECK(ok.headers.at("webhook-id") == e1);
  CHECK(ok.headers.at("relay-subscription") == "billing");
  CHECK(ok.headers.at("x-tenant") == "acme");
  CHECK(ok.body == "{\"n\": 1}");
  REQUIRE(wait_until([&] { return db.count("relay.delivery") == 0; }, 60s));
  CHECK(db.count("relay.dead_letter WHERE id = " + dl1 + " AND replayed_at IS NOT NULL") == 1);

  // A second replay of the same dead letter enqueues nothing.
  auto again = dlq(db, {"replay", dl1});
  INFO(again.output);
  CHECK(again.code == 0);
  CHECK(again.output.find(dl1 + ": already replayed") != std::string::npos);
  CHECK(db.count("relay.delivery") == 0);
  CHECK(db.count("relay.outbox") == 0);

  // Replaying the other one, and seeing it arrive, shows the first was not sent a third time; the
  // audit subscription, which had received both, gets neither again.
  REQUIRE(dlq(db, {"replay", dl2, dl1}).code == 0);
  REQUIRE(wait_until([&] { return count_of(billing.successful_ids(), e2) == 1; }, 60s));
  REQUIRE(wait_until([&] { return db.count("relay.delivery") == 0; }, 60s));
  CHECK(count_of(billing.received_ids(), e1) == 2);  // the 400, then the replay
  CHECK(count_of(billing.successful_ids(), e1) == 1);
  CHECK(count_of(audit.received_ids(), e1) == 1);
  CHECK(count_of(audit.received_ids(), e2) == 1);
  CHECK(db.count("relay.dead_letter WHERE replayed_at IS NULL") == 0);
  CHECK(db.count("relay.dead_letter") == 2);

  relay.signal(SIGTERM);
  CHECK(relay.wait_exit(60s) == 0);
}

TEST_CASE("dlq replay --all replays what the filters select, once, while a relay is running",
          "[integration][dlq][replay]") {
  auto db = TestDatabase::create();
  FakeConsumer billing{Reply{.status = 422}};
  TestRelayConfig cfg;
  cfg.subscriptions = {
      {.name = "billing", .topics = {"order.*", "refund.*"}, .endpoint = billing.url()}};
  RelayProcess relay(to_yaml(cfg), {}, {{"DATABASE_URL", db.url()}});
  db.exec(
      "SELECT relay.publish(CASE WHEN i % 2 = 0 THEN 'order.paid' ELSE 'refund.sent' END, 'k' || "
      "i, "
      "jsonb_build_object('i', i)) FROM generate_series(1, 20) i");
  REQUIRE(wait_until([&] { return db.count("relay.dead_letter") == 20; }, 60s));
  billing.set_handler([](const ReceivedRequest&) { return Reply{200}; });

  auto r = dlq(db, {"replay", "--all", "--topic", "order.*", "--yes"});
  INFO(r.output);
  REQUIRE(r.code == 0);
  CHECK(r.output.find("10 unreplayed dead letters match (topic order.*)") != std::string::npos);
  CHECK(r.output.find("replayed 10 dead letters") != std::string::npos);
  REQUIRE(wait_until([&] { return billing.successful_ids().size() == 10; }, 60s));

  auto twice = dlq(db, {"replay", "--all", "--topic", "order.*", "--yes"});
  CHECK(twice.code == 0);
  CHECK(twice.output == "no unreplayed dead letters match (topic order.*)\n");
  REQUIRE(wait_until([&] { return db.count("relay.delivery") == 0; }, 60s));
  CHECK(db.count("relay.dead_letter WHERE replayed_at IS NULL") == 10);
  CHECK(db.count("relay.dead_letter WHERE replayed_at IS NULL AND topic = 'refund.sent'") == 10);
  CHECK(billing.successful_ids().size() == 10);
}

TEST_CASE(
    "dlq replay of a cancelled or unrouted event puts it back in the outbox for every subscription",
    "[integration][dlq][replay]") {
  auto db = TestDatabase::create();
  FakeConsumer a, b;
  TestRelayConfig cfg;
  cfg.subscriptions = {{.name = "a", .topics = {"order.*"}, .endpoint = a.url()},
                       {.name = "b", .topics = {"order.*"}, .endpoint = b.url()}};
  RelayProcess relay(to_yaml(cfg), {}, {{"DATABASE_URL", db.url()}});

  // Cancelled while delayed, before any delivery: one dead letter for subscription '*'.
  const std::string cancelled = db.value(
      "SELECT relay.publish('order.paid', '7', '{\"n\": 7}'::jsonb, '{}'::jsonb, now() + interval "
      "'1 hour')::text");
  CHECK(db.value("SELECT relay.cancel('" + cancelled + "')") == "1");
  const std::string dl = db.value("SELECT id FROM relay.dead_letter WHERE subscription = '*'");
  REQUIRE_FALSE(dl.empty());
  // No subscription matches this topic: dead-lettered as '(none)'.
  const std::string unrouted =
      db.value("SELECT relay.publish('nobody.listens', NULL, '{}'::jsonb)::text");
  REQUIRE(wait_until(
      [&] { return db.count("relay.dead_letter WHERE subscription = '(none)'") == 1; }, 60s));
  const std::string dl_none =
      db.value("SELECT id FROM relay.dead_letter WHERE subscription = '(none)'");

  auto r = dlq(db, {"replay", dl, dl_none});
  INFO(r.output);
  REQUIRE(r.code == 0);
  CHECK(r.output.find("replayed " + dl + ": event " + cancelled + " queued for the outbox") !=
        std::string::npos);
  // Delivered now (the replay does not keep the delay) to both subscriptions, same id.
  REQUIRE(wait_until([&] { return count_of(a.successful_ids(), cancelled) == 1; }, 60s));
  REQUIRE(wait_until([&] { return count_of(b.successful_ids(), cancelled) == 1; }, 60s));
  // Still nobody wants the unrouted one: it comes back as a new dead letter, same event id.
  REQUIRE(wait_until(
      [&] {
        return db.count("relay.dead_letter WHERE event_id = '" + unrouted +
                        "' AND replayed_at IS NULL") == 1;
      },
      60s));
  CHECK(db.count("relay.dead_letter WHERE event_id = '" + unrouted + "'") == 2);
}

TEST_CASE(
    "dlq replay --all of 5,000 dead letters interrupted by SIGINT stops between batches, every row "
    "replayed or "
    "untouched",
    "[integration][dlq][replay]") {
  auto db = TestDatabase::create();
  db.exec(R"SQL(
    INSERT INTO relay.dead_letter (event_id, subscription, topic, key, payload, content_type, headers, created_at,
                                   reason, attempts, last_status, failed_at, outbox_id)
    SELECT gen_random_uuid(), 'billing', 'order.paid', 'k' || (i % 100), convert_to('{"i": ' || i || '}', 'UTF8'),
           'application/json', '{}', now() - interval '1 hour', 'retries_exhausted', 12, 503,
           now() - interval '30 minutes', i
      FROM generate_series(1, 5000) i
  )SQL");
  REQUIRE(db.value("SELECT min(id) || '-' || max(id) FROM relay.dead_letter") == "1-5000");

  // Hold a lock on row 2600 so the sixth batch (2501..3000) waits: the signal then arrives while a
  // batch is in flight, and the test knows exactly where the run must stop.
  db.exec("BEGIN; SELECT 1 FROM relay.dead_letter WHERE id = 2600 FOR UPDATE");
  CliChild child({"dlq", "replay", "--all", "--yes", "--database-url", db.url()});
  // Five batches committed and the sixth waiting for the lock: signal now.
  const bool reached = wait_until(
      [&] {
        return db.count("relay.dead_letter WHERE replayed_at IS NOT NULL") == 2500 &&
               db.count(
                   "pg_stat_activity WHERE datname = current_database() AND wait_event_type = "
                   "'Lock'") == 1;
      },
      60s);
  child.signal(SIGINT);
  db.exec("COMMIT");
  REQUIRE(reached);
  const auto code = child.wait_exit(60s);
  INFO(child.output());
  REQUIRE(code.has_value());
  CHECK(*code == 130);
  CHECK(child.output().find("interrupted: replayed 3000 dead letters of 5000") !=
        std::string::npos);

  auto consistent = [&] {
    // Replayed <=> has its delivery row (same event id, same subscription, attempts reset).
    CHECK(
        db.count(
            "relay.dead_letter d WHERE (d.replayed_at IS NOT NULL) <> EXISTS (SELECT 1 FROM "
            "relay.delivery x "
            "WHERE x.event_id = d.event_id AND x.subscription = d.subscription AND x.attempts = 0 "
            "AND x.outbox_id = d.outbox_id AND x.payload = d.payload)") == 0);
  };
  consistent();
  CHECK(db.count("relay.dead_letter WHERE replayed_at IS NOT NULL") == 3000);
  CHECK(db.count("relay.delivery") == 3000);
  CHECK(db.count("relay.dead_letter WHERE replayed_at IS NOT NULL AND id > 3000") == 0);

  // Running it again finishes the rest and touches nothing twice.
  auto rest = dlq(db, {"replay", "--all", "--yes"});
  INFO(rest.output);
  CHECK(rest.code == 0);
  CHECK(rest.output.find("2000 unreplayed dead letters match") != std::string::npos);
  CHECK(rest.output.find("replayed 2000 dead letters") != std::string::npos);
  consistent();
  CHECK(db.count("relay.delivery") == 5000);
  CHECK(db.count("relay.dead_letter WHERE replayed_at IS NULL") == 0);
}
