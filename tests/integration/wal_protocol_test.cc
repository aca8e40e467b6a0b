// Integration: the WAL source's protocol layer (relay/store/wal/) against a real PostgreSQL 15
// started with wal_level = logical (scripts/pg). A slot with an exported snapshot, the pgoutput
// stream of relay.outbox's inserts decoded into Events equal to what a SELECT reads, keepalives and
// flush feedback, replay after a reconnect without feedback, and the errors relay must tell apart.
//
// Each test drops the slots it creates: an abandoned slot retains WAL in the shared cluster (and
// keeps its database from being dropped).
//
// RELAY_WAL_CORPUS_DIR=<dir>: the stream test also writes every CopyData message it receives to
// <dir>/<n> (how tests/fuzz/corpus/pgoutput/ was made).

#include <fmt/format.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <map>
#include <pqxx/pqxx>
#include <stdexcept>
#include <thread>

#include "relay/store/wal/outbox_row.h"
#include "relay/store/wal/pgoutput.h"
#include "relay/store/wal/replication_connection.h"
#include "tests/integration/test_config.h"
#include "tests/support/fake_consumer.h"
#include "tests/support/pg_cluster.h"
#include "tests/support/relay_process.h"
#include "tests/support/temp_dir.h"
#include "tests/support/test_database.h"
#include "tests/support/wait.h"

using namespace std::chrono_literals;
using namespace relay::testing;
using namespace relay::store::wal;

namespace {

constexpr auto kConnectTimeout = relay::Millis(10'000);
constexpr auto kStreamDeadline = 60s;
const std::string kPublication = "relay_pub";

std::unique_ptr<ReplicationConnection> open_replication(const std::string& url) {
  auto c = ReplicationConnection::open(url, kConnectTimeout);
  if (!c) FAIL("open: " << c.error().message);
  return std::move(*c);
}

void create_publication(TestDatabase& db) {
  db.exec("CREATE PUBLICATION " + kPublication +
          " FOR TABLE relay.outbox WITH (publish = 'insert')");
}

bool slot_active(TestDatabase& db, const std::string& slot) {
  return db.value("SELECT active::text FROM pg_replication_slots WHERE slot_name = '" + slot +
                  "'") == "true";
}

// Drops the slot (once no walsender holds it) when the test ends, however it ends. Declare it
// after the TestDatabase and before the connections, so that it runs after they close.
struct SlotGuard {
  TestDatabase& db;
  std::string slot;
  ~SlotGuard() {
    try {
      wait_until([&] { return !slot_active(db, slot); }, 60s);
      db.exec(
          "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE "
          "slot_name = '" +
          slot + "'");
    } catch (...) {
    }
  }
};

// One decoded transaction of the stream.
struct Txn {
  BeginMsg begin;
  std::vector<OutboxRow> rows;
  CommitMsg commit;
};

// Reads a started stream: keeps the relations it is sent, decodes outbox inserts, answers
// keepalives that ask for a reply (with `reply_flush`, 0 meaning "confirm nothing"), and counts
// keepalives.
class StreamReader {
 public:
  explicit StreamReader(ReplicationConnection& conn) : conn_(conn) {
    if (const char* dir = std::getenv("RELAY_WAL_CORPUS_DIR")) corpus_dir_ = dir;
  }

  int keepalives = 0;
  Lsn reply_flush = 0;

  // The next whole transaction; fails the test after kStreamDeadline.
  Txn next_txn() {
    const auto deadline = std::chrono::steady_clock::now() + kStreamDeadline;
    std::optional<Txn> txn;
    while (std::chrono::steady_clock::now() < deadline) {
      auto m = conn_.next(relay::Millis(1000));
      if (!m) FAIL("next: " << m.error().message);
      if (!*m) continue;
      save(**m);
      auto cd = decode_copy_data(**m);
      REQUIRE(cd.has_value());
      if (auto* k = std::get_if<Keepalive>(&*cd)) {
        ++keepalives;
        if (k->reply_requested) {
          REQUIRE(conn_.send_status(reply_flush, reply_flush, reply_flush, false).has_value());
        }
        continue;
      }
      auto msg = decode_pgoutput(std::get<XLogData>(*cd).payload);
      if (!msg) FAIL("decode_pgoutput: " << msg.error().message);
      if (auto* b = std::get_if<BeginMsg>(&*msg)) {
        REQUIRE_FALSE(txn.has_value());
        txn = Txn{*b, {}, {}};
      } else if (auto* r = std::get_if<RelationMsg>(&*msg)) {
        relations_[r->oid] = *r;
      } else if (auto* i = std::get_if<InsertMsg>(&*msg)) {
        REQUIRE(txn.has_value());
        REQUIRE(relations_.count(i->relation_oid) == 1);
        auto row = decode_outbox_row(relations_.at(i->relation_oid), *i);
        if (!row) FAIL("decode_outbox_row: " << row.error().message);
        txn->rows.push_back(std::move(*row));
      } else if (auto* c = std::get_if<CommitMsg>(&*msg)) {
        REQUIRE(txn.has_value());
        txn->commit = *c;
        CHECK(c->commit_lsn == txn->begin.final_lsn);
        return std::move(*txn);
      }
    }
    FAIL("no whole transaction within the deadline");
    return {};
  }

  // Waits for any message that is a keepalive.
  bool wait_keepalive() {
    const int before = keepalives;
    const auto deadline = std::chrono::steady_clock::now() + kStreamDeadline;
    while (keepalives == before && std::chrono::steady_clock::now() < deadline) {
      auto m = conn_.next(relay::Millis(1000));
      REQUIRE(m.has_value());
      if (!*m) continue;
      save(**m);
      auto cd = decode_copy_data(**m);
      REQUIRE(cd.has_value());
      if (std::holds_alternative<Keepalive>(*cd)) ++keepalives;
    }
    return keepalives > before;
  }

 private:
  void save(std::string_view bytes) {
    if (corpus_dir_.empty()) return;
    std::ofstream(fmt::format("{}/msg-{:03}", corpus_dir_, saved_++), std::ios::binary)
        .write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  }

  ReplicationConnection& conn_;
  std::map<std::uint32_t, RelationMsg> relations_;
  std::string corpus_dir_;
  static inline int saved_ = 0;  // across readers: one corpus file per message
};

std::chrono::system_clock::time_point micros_to_time(const std::string& unix_micros) {
  return std::chrono::system_clock::time_point(std::chrono::microseconds(std::stoll(unix_micros)));
}

std::string unhex(const std::string& hex) {
  std::string out;
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  }
  return out;
}

// The outbox rows with these ids as the table gives them, in id order.
std::vector<OutboxRow> select_rows(TestDatabase& db, const std::vector<std::int64_t>& ids) {
  std::string list;
  for (auto id : ids) list += (list.empty() ? "" : ",") + std::to_string(id);
  auto micros = [](const char* col) {
    return fmt::format("(extract(epoch from {}) * 1000000)::bigint::text", col);
  };
  const auto rows = db.rows(fmt::format(
      "SELECT id::text, event_id::text, topic, coalesce(key, '<null>'), encode(payload, 'hex'), "
      "content_type, headers::text, {}, coalesce({}, '<null>'), coalesce({}, '<null>') "
      "FROM relay.outbox WHERE id IN ({}) ORDER BY id",
      micros("created_at"), micros("deliver_after"), micros("expires_at"), list));
  std::vector<OutboxRow> out;
  for (const auto& r : rows) {
    OutboxRow o;
    o.event.outbox_id = std::stoll(r[0]);
    o.event.event_id = r[1];
    o.event.topic = r[2];
    if (r[3] != "<null>") o.event.key = r[3];
    o.event.payload = unhex(r[4]);
    o.event.content_type = r[5];
    o.event.headers_json = r[6];
    o.event.created_at = micros_to_time(r[7]);
    if (r[8] != "<null>") o.deliver_after = micros_to_time(r[8]);
    if (r[9] != "<null>") o.event.expires_at = micros_to_time(r[9]);
    out.push_back(std::move(o));
  }
  return out;
}

void check_same(const OutboxRow& got, const OutboxRow& want) {
  INFO("outbox id " << want.event.outbox_id);
  CHECK(got.event.outbox_id == want.event.outbox_id);
  CHECK(got.event.event_id == want.event.event_id);
  CHECK(got.event.topic == want.event.topic);
  CHECK(got.event.key == want.event.key);
  CHECK(got.event.payload == want.event.payload);
  CHECK(got.event.content_type == want.event.content_type);
  CHECK(got.event.headers_json == want.event.headers_json);
  CHECK(got.event.created_at == want.event.created_at);
  CHECK(got.deliver_after == want.deliver_after);
  CHECK(got.event.expires_at == want.event.expires_at);
}

std::vector<std::int64_t> ids_of(const std::vector<Txn>& txns) {
  std::vector<std::int64_t> ids;
  for (const auto& t : txns) {
    for (const auto& r : t.rows) ids.push_back(r.event.outbox_id);
  }
  return ids;
}

// A transaction of `n` plain inserts; returns their ids.
void insert_plain(TestDatabase& db, int n, const std::string& topic) {
  std::string sql = "BEGIN;";
  for (int i = 0; i < n; ++i) {
    sql += fmt::format(
        "INSERT INTO relay.outbox (topic, key, payload) VALUES ('{}', 'k', "
        "'\\x7b7d'::bytea);",
        topic);
  }
  db.exec(sql + "COMMIT;");
}

std::string slot_name(const TestDatabase& db, const std::string& suffix) {
  return db.name() + "_" + suffix;  // relay_it_<hex>_<suffix>: unique in the cluster
}

}  // namespace

TEST_CASE("the WAL stream carries the outbox's committed inserts as the Events the table holds",
          "[integration][wal]") {
  auto db = TestDatabase::create();
  create_publication(db);
  insert_plain(db, 2, "before.slot");
  const std::string slot = slot_name(db, "s");
  SlotGuard guard{db, slot};

  auto conn = open_replication(db.url());
  auto sys = conn->identify_system();
  REQUIRE(sys.has_value());
  CHECK(sys->dbname == db.name());
  CHECK(sys->timeline >= 1);
  CHECK(sys->xlogpos > 0);

  auto created = conn->create_slot(slot, true);
  if (!created) FAIL(created.error().message);
  CHECK(created->consistent_point > 0);
  REQUIRE_FALSE(created->snapshot_name.empty());
  CHECK(db.value("SELECT slot_type || ' ' || plugin FROM pg_replication_slots WHERE slot_name = '" +
                 slot + "'") == "logical pgoutput");

  // A row committed after the slot: in the stream, not in the snapshot.
  insert_plain(db, 1, "after.slot");
  {
    pqxx::connection c(db.url());
    pqxx::nontransaction tx(c);
    tx.exec("BEGIN ISOLATION LEVEL REPEATABLE READ");
    tx.exec("SET TRANSACTION SNAPSHOT " + tx.quote(created->snapshot_name));
    const auto r = tx.exec("SELECT topic, count(*) FROM relay.outbox GROUP BY topic");
    REQUIRE(r.size() == 1);
    CHECK(r[0][0].as<std::string>() == "before.slot");
    CHECK(r[0][1].as<int>() == 2);
    tx.exec("COMMIT");
  }

  // Two more transactions: every column shape relay reads.
  db.exec(
      "BEGIN;"
      "INSERT INTO relay.outbox (topic, key, payload, content_type, headers, deliver_after, "
      "expires_at) VALUES "
      "('orders.created', 'order-1', '\\x00ff00'::bytea, 'application/octet-stream', "
      " '{\"x-trace\": \"abc\", \"n\": 1}', now() + interval '1 hour', now() + interval '2 hours'),"
      "('orders.created', NULL, ''::bytea, 'application/json', '{}', NULL, NULL),"
      "('orders.paid', 'order-1', convert_to('{\"total\": 12.5, \"ü\": \"€\"}', 'UTF8'), "
      " 'application/json', '{\"a\": [1, 2]}', NULL, now() + interval '1 day');"
      "COMMIT;");
  insert_plain(db, 2, "second.txn");

  REQUIRE(conn->start(slot, kPublication, 0).has_value());
  StreamReader reader(*conn);
  std::vector<Txn> txns;
  for (int i = 0; i < 3; ++i) txns.push_back(reader.next_txn());
  REQUIRE(txns[0].rows.size() == 1);
  CHECK(txns[0].rows[0].event.topic == "after.slot");
  REQUIRE(txns[1].rows.size() == 3);
  REQUIRE(txns[2].rows.size() == 2);
  CHECK(txns[0].commit.end_lsn < txns[1].commit.end_lsn);
  CHECK(txns[1].commit.end_lsn < txns[2].commit.end_lsn);
  CHECK(txns[0].begin.xid != txns[1].begin.xid);

  const auto ids = ids_of(txns);
  const auto want = select_rows(db, ids);
  REQUIRE(want.size() == ids.size());
  std::size_t k = 0;
  for (const auto& t : txns) {
    for (const auto& row : t.rows) check_same(row, want[k++]);
  }
  CHECK(txns[1].rows[0].event.payload == std::string("\0\xff\0", 3));
  CHECK_FALSE(txns[1].rows[1].event.key.has_value());

  // A keepalive on demand: ask for a reply, without confirming anything.
  REQUIRE(conn->send_status(0, 0, 0, true).has_value());
  REQUIRE(reader.wait_keepalive());

  // No feedback yet: a new reader gets the same transactions again.
  const Lsn last_end = txns.back().commit.end_lsn;
  conn.reset();
  REQUIRE(wait_until([&] { return !slot_active(db, slot); }, 60s));
  {
    auto again = open_replication(db.url());
    REQUIRE(again->start(slot, kPublication, 0).has_value());
    StreamReader r2(*again);
    for (const auto& t : txns) {
      const Txn replayed = r2.next_txn();
      CHECK(replayed.commit.end_lsn == t.commit.end_lsn);
      CHECK(replayed.rows.size() == t.rows.size());
    }
    // Flush feedback for all three, then wait until the server has it.
    REQUIRE(again->send_status(last_end, last_end, last_end, false).has_value());
    REQUIRE(wait_until(
        [&] {
          auto lsn = parse_lsn(db.value(
              "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = '" +
              slot + "'"));
          return lsn && *lsn >= last_end;
        },
        60s));
  }
  REQUIRE(wait_until([&] { return !slot_active(db, slot); }, 60s));

  // After the feedback: nothing replayed, the next transaction is the first one seen.
  insert_plain(db, 1, "marker");
  Lsn marker_end = 0;
  {
    auto after = open_replication(db.url());
    REQUIRE(after->start(slot, kPublication, 0).has_value());
    StreamReader r3(*after);
    const Txn first = r3.next_txn();
    REQUIRE(first.rows.size() == 1);
    CHECK(first.rows[0].event.topic == "marker");
    CHECK(first.commit.end_lsn > last_end);
    marker_end = first.commit.end_lsn;
  }
  REQUIRE(wait_until([&] { return !slot_active(db, slot); }, 60s));
  // ... and without feedback for the marker, it comes again.
  {
    auto once_more = open_replication(db.url());
    REQUIRE(once_more->start(slot, kPublication, 0).has_value());
    StreamReader r4(*once_more);
    const Txn first = r4.next_txn();
    REQUIRE(first.rows.size() == 1);
    CHECK(first.rows[0].event.topic == "marker");
    CHECK(first.commit.end_lsn == marker_end);
  }
}

TEST_CASE("replication errors say which setup problem they are", "[integration][wal]") {
  auto db = TestDatabase::create();
  create_publication(db);
  const std::string slot = slot_name(db, "e");
  const std::string nopub_slot = slot_name(db, "np");
  SlotGuard guard{db, slot};
  SlotGuard nopub_guard{db, nopub_slot};

  auto holder = open_replication(db.url());
  REQUIRE(holder->create_slot(slot, false).has_value());

  SECTION("a slot that exists already") {
    auto again = holder->create_slot(slot, false);
    REQUIRE_FALSE(again.has_value());
    CHECK(sqlstate_of(again.error()) == "42710");
    CHECK(classify_replication_error(again.error()) == ReplicationFailure::kSlotExists);
  }

  SECTION("a missing slot") {
    auto other = open_replication(db.url());
    auto s = other->start(slot_name(db, "nope"), kPublication, 0);
    REQUIRE_FALSE(s.has_value());
    CHECK(sqlstate_of(s.error()) == "42704");
    CHECK(classify_replication_error(s.error()) == ReplicationFailure::kSlotMissing);
    CHECK(s.error().code == relay::ErrorCode::kNotFound);
    auto d = other->drop_slot(slot_name(db, "nope"));
    REQUIRE_FALSE(d.has_value());
    CHECK(classify_replication_error(d.error()) == ReplicationFailure::kSlotMissing);
  }

  SECTION("a second reader on an active slot") {
    REQUIRE(holder->start(slot, kPublication, 0).has_value());
    REQUIRE(wait_until([&] { return slot_active(db, slot); }, 60s));
    auto second = open_replication(db.url());
    auto s = second->start(slot, kPublication, 0);
    REQUIRE_FALSE(s.has_value());
    CHECK(sqlstate_of(s.error()) == "55006");
    CHECK(classify_replication_error(s.error()) == ReplicationFailure::kSlotActive);
    CHECK(s.error().code == relay::ErrorCode::kUnavailable);
    CHECK(s.error().message.find(std::to_string(holder->backend_pid())) != std::string::npos);
    auto d = second->drop_slot(slot);
    REQUIRE_FALSE(d.has_value());
    CHECK(classify_replication_error(d.error()) == ReplicationFailure::kSlotActive);
  }

  SECTION("a publication that does not exist fails at the first change") {
    auto reader = open_replication(db.url());
    REQUIRE(reader->create_slot(nopub_slot, false).has_value());
    REQUIRE(reader->start(nopub_slot, "no_such_pub", 0).has_value());
    insert_plain(db, 1, "t");
    std::optional<relay::Error> failure;
    REQUIRE(wait_until(
        [&] {
          auto m = reader->next(relay::Millis(100));
          if (!m) failure = m.error();
          return failure.has_value();
        },
        60s));
    CHECK(sqlstate_of(*failure) == "42704");
    CHECK(classify_replication_error(*failure) == ReplicationFailure::kPublicationMissing);
  }

  SECTION("interrupt() ends a wait at once, from another thread or before it starts") {
    REQUIRE(holder->start(slot, kPublication, 0).has_value());
    holder->interrupt();
    const auto t0 = std::chrono::steady_clock::now();
    auto m = holder->next(relay::Millis(60'000));
    REQUIRE(m.has_value());
    CHECK_FALSE(m->has_value());
    // From another thread: the messages the server sends meanwhile (a keepalive) come first, then
    // nullopt long before the 60 s timeout.
    std::thread t([&] { holder->interrupt(); });
    bool ended = false;
    while (!ended && std::chrono::steady_clock::now() - t0 < 50s) {
      auto m2 = holder->next(relay::Millis(60'000));
      REQUIRE(m2.has_value());
      ended = !m2->has_value();
    }
    t.join();
    CHECK(ended);
    CHECK(std::chrono::steady_clock::now() - t0 < 30s);
  }

  SECTION("the stream breaking is kUnavailable") {
    REQUIRE(holder->start(slot, kPublication, 0).has_value());
    db.exec(fmt::format("SELECT pg_terminate_backend({})", holder->backend_pid()));
    std::optional<relay::Error> failure;
    REQUIRE(wait_until(
        [&] {
          auto m = holder->next(relay::Millis(100));
          if (!m) failure = m.error();
          return failure.has_value();
        },
        60s));
    CHECK(failure->code == relay::ErrorCode::kUnavailable);
    CHECK(classify_replication_error(*failure) == ReplicationFailure::kConnectionLost);
  }
}

TEST_CASE("a role without REPLICATION is refused at connect, and the password never shows",
          "[integration][wal]") {
  auto db = TestDatabase::create();
  const std::string role = "relay_norepl_" + db.name().substr(db.name().size() - 8);
  const std::string password = "Wal5ecretPw";
  db.exec(fmt::format("CREATE ROLE {} LOGIN PASSWORD '{}'", role, password));
  struct DropRole {
    TestDatabase& db;
    std::string role;
    ~DropRole() {
      try {
        db.exec("DROP ROLE IF EXISTS " + role);
      } catch (...) {
      }
    }
  } drop_role{db, role};
  std::string url = db.url();
  REQUIRE(url.find("postgres@") != std::string::npos);
  url.replace(url.find("postgres@"), 9, role + ":" + password + "@");

  auto c = ReplicationConnection::open(url, kConnectTimeout);
  REQUIRE_FALSE(c.has_value());
  INFO(c.error().message);
  CHECK(sqlstate_of(c.error()) == "42501");
  CHECK(classify_replication_error(c.error()) == ReplicationFailure::kNotReplicationRole);
  CHECK(c.error().message.find("replication role") != std::string::npos);
  CHECK(c.error().message.find(password) == std::string::npos);

  // Nobody listening: kUnavailable, no SQLSTATE.
  auto closed = ReplicationConnection::open("postgresql://u:" + password + "@127.0.0.1:1/db",
                                            kConnectTimeout);
  REQUIRE_FALSE(closed.has_value());
  CHECK(closed.error().code == relay::ErrorCode::kUnavailable);
  CHECK(classify_replication_error(closed.error()) == ReplicationFailure::kConnectionLost);
  CHECK(closed.error().message.find(password) == std::string::npos);
}

TEST_CASE("replication errors on a server set up against WAL mode name the setting",
          "[integration][wal]") {
  PrivateCluster pg;
  pg.exec({"ALTER SYSTEM SET max_replication_slots = 1",
           "ALTER SYSTEM SET max_slot_wal_keep_size = '1MB'"});
  pg.restart();
  {
    auto conn = open_replication(pg.url());
    REQUIRE(conn->create_slot("first", false).has_value());
    auto second = conn->create_slot("second", false);
    REQUIRE_FALSE(second.has_value());
    INFO(second.error().message);
    CHECK(sqlstate_of(second.error()) == "53400");
    CHECK(classify_replication_error(second.error()) == ReplicationFailure::kSlotsExhausted);
  }

  // More WAL than max_slot_wal_keep_size, and a checkpoint: the slot is invalidated ('lost').
  pg.exec({"CREATE TABLE filler (x int)", "CREATE PUBLICATION p FOR TABLE filler"});
  REQUIRE(wait_until(
      [&] {
        pg.exec({"INSERT INTO filler SELECT generate_series(1, 50000)", "SELECT pg_switch_wal()",
                 "CHECKPOINT"});
        return pg.value("SELECT wal_status FROM pg_replication_slots WHERE slot_name = 'first'") ==
               "lost";
      },
      60s));
  {
    auto conn = open_replication(pg.url());
    auto s = conn->start("first", "p", 0);
    REQUIRE_FALSE(s.has_value());
    INFO(s.error().message);
    CHECK(sqlstate_of(s.error()) == "55000");
    CHECK(classify_replication_error(s.error()) == ReplicationFailure::kSlotInvalidated);
  }

  // A logical slot keeps a server with wal_level below logical from starting: drop it first.
  pg.exec({"SELECT pg_drop_replication_slot('first')", "ALTER SYSTEM SET wal_level = replica"});
  pg.restart();
  REQUIRE(pg.value("SHOW wal_level") == "replica");
  {
    auto conn = open_replication(pg.url());
    auto created = conn->create_slot("first", false);
    REQUIRE_FALSE(created.has_value());
    INFO(created.error().message);
    CHECK(sqlstate_of(created.error()) == "55000");
    CHECK(classify_replication_error(created.error()) == ReplicationFailure::kWalLevelNotLogical);
  }
}

// The stream carries a transaction as soon as its commit is in the WAL, a moment before other
// sessions can see its rows. A synchronous standby that never answers stretches that moment: the
// committing session waits for it with the commit already flushed (and streamed), invisible. relay
// must not take the invisible row for one that is gone (delivered or cancelled) and confirm past
// it; it delivers it once it is visible.
TEST_CASE("wal source: a row streamed before its commit is visible is delivered once it is",
          "[integration][wal]") {
  PrivateCluster pg;
  // Commits wait for a standby that does not exist, except in sessions with synchronous_commit
  // local: relay's (the database default) and the second writer's.
  // In this order: once the reload takes effect (at some moment after pg_reload_conf returns),
  // a commit in a session without synchronous_commit local waits for ever.
  pg.exec({"ALTER DATABASE postgres SET synchronous_commit = local"});
  pg.exec({"ALTER SYSTEM SET synchronous_standby_names = 'ghost'", "SELECT pg_reload_conf()"});
  std::string out;
  REQUIRE(RelayProcess::run_cli({"migrate", "--database-url", pg.url()}, &out) == 0);
  FakeConsumer consumer;
  TestRelayConfig cfg;
  cfg.source_extra = "  mode: wal\n  wal: { slot: visibility, status_interval: 200ms }\n";
  cfg.subscriptions = {{.name = "s", .topics = {"*"}, .endpoint = consumer.url()}};
  RelayProcess relay(to_yaml(cfg), {}, {{"DATABASE_URL", pg.url()}});
  REQUIRE(
      wait_until([&] { return pg.value("SELECT caught_up FROM relay.wal_reader") == "t"; }, 60s));

  // The first writer's COMMIT hangs, flushed and streamed but not visible.
  pqxx::connection slow(pg.url());
  const int slow_pid = slow.backendpid();
  std::string slow_id;
  std::thread writer([&] {
    try {
      pqxx::nontransaction tx(slow);
      tx.exec("SET synchronous_commit = on");
      tx.exec("BEGIN");
      slow_id =
          tx.exec("SELECT relay.publish('t', 'a', '{}'::jsonb)::text")[0][0].as<std::string>();
      tx.exec("COMMIT");  // waits for 'ghost' until cancelled; then committed locally
    } catch (const std::exception&) {
      // the cancel's warning may come back as an error on some libpq versions: the row is
      // committed either way (checked below)
    }
  });
  REQUIRE(wait_until(
      [&] {
        return pg.value("SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'SyncRep'") ==
               "1";
      },
      30s));
  // A later event on another key, visible at once: once it arrives, relay has read the stream
  // past the hanging commit and claimed from there.
  const std::string later = pg.value("SELECT relay.publish('t', 'b', '{}'::jsonb)::text");
  REQUIRE(wait_until([&] { return consumer.count() >= 1; }, 30s));
  CHECK(consumer.received_ids() == std::vector<std::string>{later});

  pg.exec({"SELECT pg_cancel_backend(" + std::to_string(slow_pid) + ")"});
  writer.join();
  REQUIRE(wait_until([&] { return consumer.count() >= 2; }, 30s));
  CHECK(consumer.received_ids().back() == slow_id);
  REQUIRE(wait_until([&] { return pg.value("SELECT count(*) FROM relay.outbox") == "0"; }, 30s));
  relay.signal(SIGTERM);
  REQUIRE(relay.wait_exit(30s) == 0);
  pg.exec({"SELECT pg_drop_replication_slot('visibility')"});
}
