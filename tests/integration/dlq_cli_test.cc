// Integration: `relay dlq list|show|stats|purge` against real PostgreSQL, run as the real binary.
// Dead letters come from real failed deliveries (a consumer answering 400) and, where the output is
// compared with a golden file, from rows inserted with fixed times while RELAY_NOW pins "now".
// Regenerate the golden files with RELAY_UPDATE_GOLDEN=1.

#include <catch2/catch.hpp>
#include <csignal>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "tests/integration/test_config.h"
#include "tests/support/fake_consumer.h"
#include "tests/support/relay_process.h"
#include "tests/support/temp_dir.h"
#include "tests/support/test_database.h"
#include "tests/support/wait.h"

using namespace std::chrono_literals;
using namespace relay::testing;
using Json = nlohmann::json;

namespace {

constexpr const char* kPinnedNow = "2024-05-01T12:00:00Z";

struct CliRun {
  int code = -1;
  std::string output;  // stdout and stderr together
};

// `relay dlq <args...> --database-url <db>` with RELAY_NOW pinned.
CliRun dlq(TestDatabase& db, std::vector<std::string> args, EnvVars env = {}) {
  args.insert(args.begin(), "dlq");
  args.push_back("--database-url");
  args.push_back(db.url());
  env.emplace("RELAY_NOW", kPinnedNow);
  CliRun r;
  r.code = RelayProcess::run_cli(args, &r.output, 60s, env);
  return r;
}

Json json_of(const CliRun& r) {
  INFO(r.output);
  REQUIRE(r.code == 0);
  Json j = Json::parse(r.output, nullptr, false);
  REQUIRE_FALSE(j.is_discarded());
  return j;
}

std::string golden_path(const std::string& name) {
  const std::string here = __FILE__;
  return here.substr(0, here.rfind('/')) + "/golden/" + name;
}

void check_golden(const std::string& name, const std::string& actual) {
  const std::string path = golden_path(name);
  if (const char* update = std::getenv("RELAY_UPDATE_GOLDEN");
      update != nullptr && *update == '1') {
    std::ofstream(path, std::ios::binary) << actual;
  }
  const std::string expected = read_file(path);
  INFO("golden file " << path << " (regenerate with RELAY_UPDATE_GOLDEN=1)");
  CHECK(actual == expected);
}

// Six dead letters with fixed ids (1..6), event ids and times, relative to kPinnedNow.
void insert_fixed_dead_letters(TestDatabase& db) {
  db.exec(R"SQL(
    INSERT INTO relay.dead_letter (event_id, subscription, topic, key, payload, content_type, headers, created_at,
                                   reason, attempts, last_status, last_error, last_response, failed_at, replayed_at,
                                   outbox_id)
    VALUES
    ('00000000-0000-4000-8000-000000000001', 'billing', 'order.paid', '42',
     convert_to('{"order_id": 42, "amount": 1999, "currency": "EUR", "items": [1, 2, 3]}', 'UTF8'),
     'application/json', '{"x-tenant": "acme"}', '2024-05-01T11:54:58Z', 'non_retryable_status', 1, 400, NULL,
     '{"error":"amount missing"}', '2024-05-01T11:55:00Z', NULL, 17),
    ('00000000-0000-4000-8000-000000000002', 'billing', 'order.refunded', NULL, '\xdeadbeef00ff'::bytea,
     'application/x-protobuf', '{}', '2024-05-01T08:00:00Z', 'retries_exhausted', 12, 503, 'HTTP 503',
     E'upstream down\nretry later', '2024-05-01T10:00:00Z', NULL, 18),
    ('00000000-0000-4000-8000-000000000003', 'search', 'order.paid', 'k-ü',
     convert_to('{"q": "naïve café ✓"}', 'UTF8'), 'application/json', '{}', '2024-04-30T11:00:00Z',
     'retries_exhausted', 5, NULL, 'connection refused', NULL, '2024-04-30T12:00:00Z', '2024-05-01T11:59:30Z', 19),
    ('00000000-0000-4000-8000-000000000004', '*', 'user.signup', 'u1', convert_to('hello', 'UTF8'), 'text/plain',
     '{}', '2024-04-24T12:00:00Z', 'cancelled', 0, NULL, NULL, NULL, '2024-04-24T12:00:00Z', NULL, 3),
    ('00000000-0000-4000-8000-000000000005', '(none)', 'audit.log', NULL, ''::bytea, 'application/json', '{}',
     '2024-05-01T11:59:59Z', 'no_subscription', 0, NULL, NULL, NULL, '2024-05-01T12:00:00Z', NULL, 25),
    ('00000000-0000-4000-8000-000000000006', 'billing', 'order.paid', E'evil\x1b[2J',
     convert_to(E'\x1b[31mred\x1b[0m and a very long tail that goes on and on', 'UTF8'), 'text/plain',
     '{"x-note": "bell\u0007"}', '2024-05-01T11:30:00Z', 'non_retryable_status', 1, 422, NULL,
     E'\x1b]0;pwned\x07', '2024-05-01T11:30:01Z', NULL, 30)
  )SQL");
}

std::vector<long long> ids_of(const Json& list) {
  std::vector<long long> out;
  for (const auto& d : list.at("dead_letters")) out.push_back(d.at("id").get<long long>());
  return out;
}

// A fingerprint of every table a dry run must not touch.
std::string fingerprint(TestDatabase& db) {
  return db.value(
      "SELECT md5(coalesce((SELECT string_agg(d::text, '|' ORDER BY id) FROM relay.dead_letter d), "
      "'') || '#' || "
      "coalesce((SELECT string_agg(x::text, '|' ORDER BY id) FROM relay.delivery x), '') || '#' || "
      "coalesce((SELECT string_agg(o::text, '|' ORDER BY id) FROM relay.outbox o), ''))");
}

struct RealDeadLetters {
  std::string json_id, binary_id, other_id;  // event ids
};

// Runs relay against a consumer that answers 400 until three events are dead-lettered, then stops
// it.
RealDeadLetters produce_real_dead_letters(TestDatabase& db) {
  FakeConsumer strict{Reply{.status = 400, .body = "{\"error\":\"amount missing\"}"}};
  TestRelayConfig cfg;
  cfg.subscriptions = {{.name = "strict", .topics = {"order.*"}, .endpoint = strict.url()}};
  RelayProcess relay(to_yaml(cfg), {}, {{"DATABASE_URL", db.url()}});
  RealDeadLetters out;
  out.json_id = db.value(
      "SELECT relay.publish('order.paid', 'o-1', '{\"order\": 1}'::jsonb, '{\"x-tenant\": "
      "\"acme\"}'::jsonb)::text");
  out.binary_id = db.value(
      "SELECT relay.publish('order.blob', 'o-2', '\\x00ff10'::bytea, "
      "'application/octet-stream')::text");
  out.other_id =
      db.value("SELECT relay.publish('order.shipped', NULL, '{\"order\": 3}'::jsonb)::text");
  REQUIRE(wait_until([&] { return db.count("relay.dead_letter") == 3; }, 60s));
  relay.signal(SIGTERM);
  REQUIRE(relay.wait_exit(60s) == 0);
  return out;
}

}  // namespace

TEST_CASE("dlq list --output json describes dead letters from real failed deliveries, with paging",
          "[integration][dlq]") {
  auto db = TestDatabase::create();
  const auto real = produce_real_dead_letters(db);

  const Json all = json_of(dlq(db, {"list", "--output", "json"}));
  REQUIRE(all.at("dead_letters").size() == 3);
  CHECK(all.at("next_after").is_null());
  std::map<std::string, Json> by_event;
  for (const auto& d : all.at("dead_letters")) by_event[d.at("event_id").get<std::string>()] = d;
  REQUIRE(by_event.count(real.json_id) == 1);
  REQUIRE(by_event.count(real.binary_id) == 1);

  const Json& j = by_event.at(real.json_id);
  CHECK(j.at("subscription") == "strict");
  CHECK(j.at("topic") == "order.paid");
  CHECK(j.at("key") == "o-1");
  CHECK(j.at("reason") == "non_retryable_status");
  CHECK(j.at("attempts") == 1);
  CHECK(j.at("last_status") == 400);
  CHECK(j.at("last_response") == "{\"error\":\"amount missing\"}");
  CHECK(j.at("content_type") == "application/json");
  CHECK(j.at("headers") == Json{{"x-tenant", "acme"}});
  CHECK(j.at("payload") == "{\"order\": 1}");
  CHECK(j.at("payload_base64") == "eyJvcmRlciI6IDF9");
  CHECK(j.at("replayed_at").is_null());
  CHECK(j.at("failed_at").get<std::string>().size() ==
        std::string("2024-05-01T12:00:00.000000Z").size());
  for (const char* field :
       {"id", "event_id", "subscription", "topic", "key", "reason", "attempts", "last_status",
        "last_error", "last_response", "created_at", "failed_at", "replayed_at", "content_type",
        "headers", "payload", "payload_base64"}) {
    CHECK(j.contains(field));
  }

  const Json& b = by_event.at(real.binary_id);
  CHECK(b.at("payload").is_null());  // not UTF-8
  CHECK(b.at("payload_base64") == "AP8Q");
  CHECK(b.at("content_type") == "application/octet-stream");
  CHECK(by_event.at(real.other_id).at("key").is_null());

  // Paging: --limit 2 then --after the returned cursor gives the rest, in id order.
  const Json page1 = json_of(dlq(db, {"list", "--output", "json", "--limit", "2"}));
  REQUIRE(page1.at("dead_letters").size() == 2);
  REQUIRE(page1.at("next_after").is_number());
  const auto cursor = page1.at("next_after").get<long long>();
  CHECK(cursor == ids_of(page1).back());
  const Json page2 = json_of(
      dlq(db, {"list", "--output", "json", "--limit", "2", "--after", std::to_string(cursor)}));
  CHECK(page2.at("dead_letters").size() == 1);
  CHECK(page2.at("next_after").is_null());
  CHECK(ids_of(page2).front() > cursor);
}

TEST_CASE("dlq show prints everything about a real dead letter, payload pretty-printed",
          "[integration][dlq]") {
  auto db = TestDatabase::create();
  const auto real = produce_real_dead_letters(db);
  const std::string id =
      db.value("SELECT id FROM relay.dead_letter WHERE event_id = '" + real.json_id + "'");

  auto r = dlq(db, {"show", id});
  INFO(r.output);
  REQUIRE(r.code == 0);
  const std::vector<std::string> wanted = {"dead letter " + id,
                                           real.json_id,
                                           "strict",
                                           "order.paid",
                                           "o-1",
                                           "non_retryable_status",
                                           "400",
                                           "x-tenant: acme",
                                           "{\"error\":\"amount missing\"}",
                                           "payload (12 bytes, JSON)\n  {\n    \"order\": 1\n  }\n",
                                           "relay dlq replay " + id};
  for (const std::string& want : wanted) {
    CHECK(r.output.find(want) != std::string::npos);
  }

  const Json j = json_of(dlq(db, {"show", id, "--output", "json"}));
  CHECK(j.at("event_id") == real.json_id);
  CHECK(j.at("id").get<long long>() == std::stoll(id));

  auto missing = dlq(db, {"show", "999999"});
  CHECK(missing.code == 1);
  CHECK(missing.output.find("no dead letter with id 999999") != std::string::npos);
}

TEST_CASE("dlq stats counts real dead letters by subscription and reason", "[integration][dlq]") {
  auto db = TestDatabase::create();
  produce_real_dead_letters(db);
  db.exec(
      "UPDATE relay.dead_letter SET replayed_at = now() WHERE id = (SELECT min(id) FROM "
      "relay.dead_letter)");
  const Json s = json_of(dlq(db, {"stats", "--output", "json"}));
  REQUIRE(s.at("groups").size() == 1);
  CHECK(s.at("groups")[0].at("subscription") == "strict");
  CHECK(s.at("groups")[0].at("reason") == "non_retryable_status");
  CHECK(s.at("groups")[0].at("count") == 3);
  CHECK(s.at("groups")[0].at("unreplayed") == 2);
  CHECK(s.at("total") == 3);
  CHECK(s.at("unreplayed") == 2);
  CHECK(s.at("oldest_failed_at").get<std::string>() <= s.at("newest_failed_at").get<std::string>());
}

TEST_CASE("dlq list, show and stats print tables that match the golden files",
          "[integration][dlq][golden]") {
  auto db = TestDatabase::create();
  insert_fixed_dead_letters(db);

  auto list = dlq(db, {"list"});
  REQUIRE(list.code == 0);
  check_golden("dlq_list.txt", list.output);

  auto filtered = dlq(db, {"list", "--subscription", "billing", "--limit", "2"});
  REQUIRE(filtered.code == 0);
  check_golden("dlq_list_page.txt", filtered.output);

  auto show_json = dlq(db, {"show", "1"});
  REQUIRE(show_json.code == 0);
  check_golden("dlq_show_json_payload.txt", show_json.output);

  auto show_binary = dlq(db, {"show", "2"});
  REQUIRE(show_binary.code == 0);
  check_golden("dlq_show_binary_payload.txt", show_binary.output);

  auto show_escapes = dlq(db, {"show", "6"});
  REQUIRE(show_escapes.code == 0);
  check_golden("dlq_show_control_characters.txt", show_escapes.output);
  CHECK(show_escapes.output.find('\x1b') ==
        std::string::npos);  // no raw escape reaches the terminal
  CHECK(list.output.find('\x1b') == std::string::npos);

  auto stats = dlq(db, {"stats"});
  REQUIRE(stats.code == 0);
  check_golden("dlq_stats.txt", stats.output);

  auto none = dlq(db, {"list", "--reason", "expired"});
  CHECK(none.code == 0);
  CHECK(none.output == "no dead letters match (reason expired)\n");
}

TEST_CASE("dlq filters combine, and --since/--until take durations and timestamps",
          "[integration][dlq]") {
  auto db = TestDatabase::create();
  insert_fixed_dead_letters(db);
  auto ids = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {"list", "--output", "json"});
    return ids_of(json_of(dlq(db, args)));
  };
  using V = std::vector<long long>;
  CHECK(ids({"--subscription", "billing"}) == V{1, 2, 6});
  CHECK(ids({"--topic", "order.*"}) == V{1, 2, 3, 6});
  CHECK(ids({"--topic", "order.pai?"}) == V{1, 3, 6});
  CHECK(ids({"--subscription", "billing", "--topic", "order.*", "--reason",
             "non_retryable_status"}) == V{1, 6});
  CHECK(ids({"--subscription", "billing", "--topic", "order.*", "--since", "1h"}) == V{1, 6});
  CHECK(ids({"--subscription", "billing", "--since", "1h", "--key", "42"}) == V{1});
  CHECK(ids({"--key", "k-ü"}) == V{3});
  CHECK(ids({"--until", "23h"}) == V{3, 4});  // failed more than 23 hours before RELAY_NOW
  CHECK(ids({"--until", "1d"}) == V{4});      // half-open: id 3 failed exactly one day before
  CHECK(ids({"--since", "2024-05-01T10:00:00Z", "--until", "2024-05-01T11:55:00Z"}) == V{2, 6});
  CHECK(ids({"--since", "2024-05-01T12:00:00+02:00"}) == V{1, 2, 5, 6});  // 10:00 UTC
  CHECK(ids({"--since", "2024-05-01"}) == V{1, 2, 5, 6});
  CHECK(ids({"--subscription", "nobody"}).empty());

  auto stats = json_of(dlq(db, {"stats", "--output", "json", "--subscription", "billing"}));
  CHECK(stats.at("total") == 3);
}

TEST_CASE("dlq filters are parameters: quotes, LIKE wildcards and SQL in them match only literally",
          "[integration][dlq]") {
  auto db = TestDatabase::create();
  insert_fixed_dead_letters(db);
  db.exec(R"SQL(
    INSERT INTO relay.dead_letter (event_id, subscription, topic, payload, content_type, headers, created_at, reason,
                                   attempts)
    SELECT gen_random_uuid(), 'lit', t, '', 'text/plain', '{}', now(), 'cancelled', 0
      FROM unnest(ARRAY['pct%x', 'pctAx', 'und_x', 'undAx', 'back\slash', 'backAslash', 'it''s']) t
  )SQL");
  auto count = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {"list", "--output", "json"});
    return json_of(dlq(db, args)).at("dead_letters").size();
  };
  CHECK(count({"--topic", "pct%x"}) == 1);
  CHECK(count({"--topic", "und_x"}) == 1);
  CHECK(count({"--topic", "und?x"}) == 2);
  CHECK(count({"--topic", "back\\slash"}) == 1);
  CHECK(count({"--topic", "it's"}) == 1);
  CHECK(count({"--topic", "%"}) == 0);

  for (const std::vector<std::string>& attack :
       {std::vector<std::string>{"--topic", "x'; drop table relay.outbox; --"},
        {"--subscription", "' OR 1=1 --"},
        {"--reason", "x\"; DELETE FROM relay.dead_letter; --"},
        {"--key", "'); DROP TABLE relay.dead_letter; --"}}) {
    auto r = dlq(db, {"list", attack[0], attack[1]});
    INFO(r.output);
    CHECK(r.code == 0);
    CHECK(r.output.rfind("no dead letters match", 0) == 0);
    auto purge = dlq(db, {"purge", "--all", "--yes", attack[0], attack[1]});
    CHECK(purge.code == 0);
  }
  CHECK(db.value("SELECT to_regclass('relay.outbox')::text") == "relay.outbox");
  CHECK(db.value("SELECT to_regclass('relay.dead_letter')::text") == "relay.dead_letter");
  CHECK(db.count("relay.dead_letter") == 13);
}

TEST_CASE("dlq --dry-run counts and lists but changes nothing", "[integration][dlq]") {
  auto db = TestDatabase::create();
  insert_fixed_dead_letters(db);
  const std::string before = fingerprint(db);

  auto replay_all = dlq(db, {"replay", "--all", "--dry-run"});
  INFO(replay_all.output);
  CHECK(replay_all.code == 0);
  CHECK(replay_all.output.find("5 unreplayed dead letters match") !=
        std::string::npos);  // id 3 was replayed
  CHECK(replay_all.output.find("dry run: nothing replayed") != std::string::npos);

  auto replay_ids = dlq(db, {"replay", "1", "3", "--dry-run"});
  INFO(replay_ids.output);
  CHECK(replay_ids.code == 0);
  CHECK(replay_ids.output.find(
            "would replay 1: event 00000000-0000-4000-8000-000000000001 to subscription billing") !=
        std::string::npos);
  CHECK(replay_ids.output.find("3: already replayed") != std::string::npos);

  auto purge_all = dlq(db, {"purge", "--all", "--dry-run", "--subscription", "billing"});
  INFO(purge_all.output);
  CHECK(purge_all.code == 0);
  CHECK(purge_all.output.find("3 dead letters match (subscription billing)") != std::string::npos);
  CHECK(purge_all.output.find("dry run: nothing purged") != std::string::npos);

  auto purge_old = dlq(db, {"purge", "--older-than", "23h", "--dry-run", "--yes"});
  CHECK(purge_old.code == 0);
  CHECK(purge_old.output.find("2 dead letters match (older than 23h)") != std::string::npos);

  auto purge_ids = dlq(db, {"purge", "2", "--dry-run"});
  CHECK(purge_ids.code == 0);
  CHECK(purge_ids.output.find("would purge 2") != std::string::npos);

  CHECK(fingerprint(db) == before);
}

TEST_CASE(
    "dlq purge: bulk forms refuse without --yes when stdin is not a terminal, ids and --yes delete",
    "[integration][dlq]") {
  auto db = TestDatabase::create();
  insert_fixed_dead_letters(db);
  const std::string before = fingerprint(db);

  for (const std::vector<std::string>& args : {std::vector<std::string>{"purge", "--all"},
                                               {"purge", "--older-than", "1d"},
                                               {"replay", "--all"}}) {
    auto r = dlq(db, args);  // run_cli gives the child /dev/null as stdin
    INFO(r.output);
    CHECK(r.code == 2);
    CHECK(r.output.find("without --yes") != std::string::npos);
  }
  CHECK(fingerprint(db) == before);

  auto one = dlq(db, {"purge", "2"});
  CHECK(one.code == 0);
  CHECK(one.output == "purged 2\n");
  auto missing = dlq(db, {"purge", "2", "5"});
  CHECK(missing.code == 1);
  CHECK(missing.output.find("no dead letter with id 2") != std::string::npos);
  CHECK(db.count("relay.dead_letter WHERE id IN (2, 5)") == 0);

  auto old = dlq(db, {"purge", "--older-than", "23h", "--yes"});
  INFO(old.output);
  CHECK(old.code == 0);
  CHECK(old.output.find("purged 2 dead letters") != std::string::npos);
  CHECK(db.count("relay.dead_letter WHERE id IN (3, 4)") == 0);

  auto rest = dlq(db, {"purge", "--all", "--yes", "--subscription", "billing"});
  CHECK(rest.code == 0);
  CHECK(db.count("relay.dead_letter") == 0);
}

TEST_CASE(
    "dlq rejects bad input with exit 2 and an unreachable database with exit 1, hiding the "
    "password",
    "[integration][dlq]") {
  auto db = TestDatabase::create();
  struct Case {
    std::vector<std::string> args;
    std::string expect;
  };
  const std::vector<Case> usage = {
      {{"list", "--since", "5x"}, "--since: invalid value \"5x\""},
      {{"list", "--until", "yesterday"}, "--until: invalid value"},
      {{"list", "--limit", "0"}, "--limit: expected a number from 1 to 10000"},
      {{"list", "--limit", "10001"}, "--limit"},
      {{"list", "--after", "x"}, "--after"},
      {{"list", "--output", "yaml"}, "--output must be table or json"},
      {{"show", "abc"}, "invalid dead letter id \"abc\""},
      {{"show"}, "needs exactly one dead letter id"},
      {{"replay"}, "needs dead letter ids"},
      {{"replay", "1", "--all"}, "not both"},
      {{"replay", "1", "--topic", "x"}, "only with --all"},
      {{"purge", "--older-than", "soon"}, "--older-than: invalid value"},
      {{"frobnicate"}, "unknown action"},
      {{"list", "--bogus"}, "unknown option '--bogus'"},
  };
  for (const auto& c : usage) {
    auto r = dlq(db, c.args);
    INFO(c.args[0] << " " << (c.args.size() > 1 ? c.args[1] : "") << "\n" << r.output);
    CHECK(r.code == 2);
    CHECK(r.output.find(c.expect) != std::string::npos);
  }
  auto bare = RelayProcess::run_cli({"dlq"}, nullptr);
  CHECK(bare == 2);

  const int port = FakeConsumer::unused_port();
  std::string out;
  const int code =
      RelayProcess::run_cli({"dlq", "list", "--database-url",
                             fmt::format("postgresql://alice:sekrit-pw@127.0.0.1:{}/db", port)},
                            &out);
  INFO(out);
  CHECK(code == 1);
  CHECK(out.find("database unreachable") != std::string::npos);
  CHECK(out.find("127.0.0.1") != std::string::npos);
  CHECK(out.find(std::to_string(port)) != std::string::npos);
  CHECK(out.find("sekrit-pw") == std::string::npos);

  // A database without relay's schema: a clear hint, exit 1.
  auto empty = TestDatabase::create_empty();
  auto r = dlq(empty, {"list"});
  CHECK(r.code == 1);
  CHECK(r.output.find("relay migrate") != std::string::npos);
}
