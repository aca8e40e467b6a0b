#pragma once
// What the WAL source's integration tests share: a relay config in wal mode with a slot of the
// test's own (slot names are cluster-wide; TestDatabase drops the slot with its database), a
// publisher of numbered events, and readers of what the consumer got, per key.

#include <fmt/format.h>

#include <map>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>
#include <set>
#include <string>
#include <vector>

#include "tests/integration/test_config.h"
#include "tests/support/fake_consumer.h"
#include "tests/support/test_database.h"

namespace relay::testing {

// One subscription "s" for every topic; takeover_after 2s, status_interval 200ms; `wal_extra`:
// more source.wal keys, YAML lines indented by 4 spaces.
inline TestRelayConfig wal_config(const TestDatabase& db, const std::string& endpoint,
                                  const std::string& wal_extra = "") {
  TestRelayConfig cfg;
  cfg.source_extra = fmt::format(
      "  mode: wal\n  wal:\n    slot: {}\n    takeover_after: 2s\n    status_interval: 200ms\n{}",
      db.name(), wal_extra);
  cfg.subscriptions = {{.name = "s", .topics = {"*"}, .endpoint = endpoint}};
  return cfg;
}

// Publishes n events on keys k0..k{keys-1}, `per_txn` per transaction, with {"i": first..};
// returns their ids in order.
inline std::vector<std::string> publish(TestDatabase& db, int first, int n, int keys = 20,
                                        int per_txn = 100) {
  std::vector<std::string> ids;
  for (int at = first; at < first + n; at += per_txn) {
    auto rows = db.rows(fmt::format(
        "SELECT relay.publish('order.paid', 'k' || (i % {}), jsonb_build_object('i', i))::text "
        "FROM generate_series({}, {}) i ORDER BY i",
        keys, at, std::min(first + n, at + per_txn) - 1));
    for (auto& r : rows) ids.push_back(r[0]);
  }
  return ids;
}

// Two writers of key 'k' with their transactions open: A took the lower id ({"i": 2}), B the
// higher one ({"i": 1}). The test commits them in the order it needs (B first: commit order is not
// id order).
struct OutOfIdOrderWriters {
  explicit OutOfIdOrderWriters(const TestDatabase& db) : a(db.url()), b(db.url()), ta(a), tb(b) {
    id_a = ta.exec("SELECT relay.publish('order.paid', 'k', '{\"i\": 2}'::jsonb)::text")[0][0]
               .as<std::string>();
    id_b = tb.exec("SELECT relay.publish('order.paid', 'k', '{\"i\": 1}'::jsonb)::text")[0][0]
               .as<std::string>();
  }
  pqxx::connection a, b;
  pqxx::work ta, tb;
  std::string id_a, id_b;
};

inline bool all_done(TestDatabase& db) {
  return db.count("relay.outbox") == 0 && db.count("relay.delivery") == 0;
}

// The test's slot has been caught up from the table (relay streams from then on).
inline bool caught_up(TestDatabase& db) {
  return db.value("SELECT caught_up FROM relay.wal_reader WHERE slot = '" + db.name() + "'") == "t";
}

inline std::string key_of(const ReceivedRequest& r) {
  return r.headers.count("ce-subject") ? r.headers.at("ce-subject") : "";
}

// Per key, the `i` of each event in arrival order. With `first_only`, replays of an id are left
// out; with `successful`, only 2xx answers count.
inline std::map<std::string, std::vector<int>> arrivals_by_key(const FakeConsumer& consumer,
                                                               bool first_only = false,
                                                               bool successful = false) {
  std::map<std::string, std::vector<int>> out;
  std::set<std::string> seen;
  for (const auto& r : consumer.requests()) {
    if (successful && (r.status < 200 || r.status > 299)) continue;
    if (first_only && !seen.insert(r.headers.at("idempotency-key")).second) continue;
    out[key_of(r)].push_back(nlohmann::json::parse(r.body).at("i").get<int>());
  }
  return out;
}

inline std::map<std::string, std::vector<int>> first_arrivals_by_key(const FakeConsumer& consumer,
                                                                     bool successful = false) {
  return arrivals_by_key(consumer, /*first_only=*/true, successful);
}

// The ids received more than once.
inline std::set<std::string> duplicated(const std::vector<std::string>& received) {
  std::set<std::string> seen, dups;
  for (const auto& id : received) {
    if (!seen.insert(id).second) dups.insert(id);
  }
  return dups;
}

}  // namespace relay::testing
