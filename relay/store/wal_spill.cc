#include "relay/store/wal_spill.h"

#include <fmt/format.h>

#include <map>
#include <set>
#include <unordered_set>

#include "relay/store/outbox_rows.h"
#include "relay/store/pg_arrays.h"
#include "relay/store/transaction.h"

namespace relay::store {
namespace {

// The events spilled rows wait behind. KEY SHARE conflicts only with a DELETE: the outcome of
// such an event (which deletes its row) waits for the spill to commit, and releases what it parked
// afterwards. SKIP LOCKED: a row being deleted now is as good as gone (and no deadlock with the
// outcome store, which deletes many rows in one statement).
constexpr const char* kLockBehind =
    "SELECT id FROM relay.outbox WHERE id = ANY($1::bigint[]) FOR KEY SHARE SKIP LOCKED";
// The rows to move: only those this snapshot sees (a commit reaches the stream a moment before it
// is visible) and nobody else is deleting (a cancel).
constexpr const char* kLockSpilled =
    "SELECT id FROM relay.outbox WHERE id = ANY($1::bigint[]) AND lease_owner IS NULL "
    "FOR UPDATE SKIP LOCKED";
// One row per part, in item order ($1 outbox ids, $2 subscriptions, $3 the event it is parked
// behind or 0). The ordered inner query keeps that order for nextval (a subquery with ORDER BY is
// not flattened into the outer one).
constexpr const char* kInsertSpilled = R"(
  INSERT INTO relay.delivery (outbox_id, event_id, subscription, topic, key, payload, content_type, headers,
                              created_at, expires_at, attempts, first_failed_at, next_attempt_at, last_error,
                              behind_outbox_id)
  SELECT nextval('relay.outbox_id_seq'), x.event_id, x.subscription, x.topic, x.key, x.payload, x.content_type,
         x.headers, x.created_at, x.expires_at, 0, now(), now(),
         'moved out of memory while an earlier event of its key was on its way', x.behind
    FROM (SELECT o.event_id, s.subscription, o.topic, o.key, o.payload, o.content_type, o.headers,
                 o.created_at, o.expires_at, NULLIF(s.behind, 0) AS behind
            FROM unnest($1::bigint[], $2::text[], $3::bigint[]) WITH ORDINALITY AS s(id, subscription, behind, ord)
            JOIN relay.outbox o ON o.id = s.id
           ORDER BY s.ord) x
  ON CONFLICT (event_id, subscription) DO NOTHING)";
constexpr const char* kDeleteSpilled = "DELETE FROM relay.outbox WHERE id = ANY($1::bigint[])";

// Parked rows ({0} says which) get places after every place drawn so far, in their old order, and
// wait behind their key's head (the first of each (subscription, key) is made due if it is the
// head: kDueIfFirst). The far next_attempt_at is only a safety net.
constexpr const char* kRelease = R"(
  UPDATE relay.delivery d
     SET outbox_id = r.place, behind_outbox_id = NULL, next_attempt_at = now() + interval '5 minutes'
    FROM (SELECT q.id, nextval('relay.outbox_id_seq') AS place
            FROM (SELECT id FROM relay.delivery WHERE {0} ORDER BY outbox_id, id) q) r
   WHERE d.id = r.id
  RETURNING d.id, d.subscription, d.key, d.outbox_id)";

long long release_where(pqxx::work& txn, const std::string& released) {
  // The first released row of each (subscription, key) may be its head now.
  std::map<std::pair<std::string, std::string>, std::pair<std::int64_t, std::int64_t>> first;
  long long n = 0;
  for (const auto& row : txn.exec(released)) {
    ++n;
    if (row[2].is_null()) continue;
    const auto place = row[3].as<std::int64_t>();
    auto [it, inserted] = first.try_emplace({row[1].as<std::string>(), row[2].as<std::string>()},
                                            place, row[0].as<std::int64_t>());
    if (!inserted && place < it->second.first) it->second = {place, row[0].as<std::int64_t>()};
  }
  for (const auto& [sk, row] : first) txn.exec_params(std::string(kDueIfFirst), row.second);
  return n;
}

}  // namespace

Result<std::vector<std::int64_t>> spill_events(pqxx::connection& conn,
                                               const std::vector<SpillItem>& items) {
  if (items.empty()) return std::vector<std::int64_t>{};
  return run_transaction(conn, [&](pqxx::work& txn) {
    std::vector<std::int64_t> behind, ids;
    for (const auto& item : items) {
      behind.push_back(item.behind);
      ids.push_back(item.outbox_id);
    }
    std::unordered_set<std::int64_t> alive, movable;
    for (const auto& row : txn.exec_params(kLockBehind, bigint_array(behind)))
      alive.insert(row[0].as<std::int64_t>());
    for (const auto& row : txn.exec_params(kLockSpilled, bigint_array(ids)))
      movable.insert(row[0].as<std::int64_t>());

    std::vector<std::int64_t> moved, part_ids, part_behind;
    std::vector<std::string> part_subs;
    std::set<std::string> stopped;  // keys whose remaining items stay in memory
    for (const auto& item : items) {
      if (stopped.count(item.key) != 0) continue;
      if (alive.count(item.behind) == 0 || movable.count(item.outbox_id) == 0) {
        stopped.insert(item.key);
        continue;
      }
      moved.push_back(item.outbox_id);
      for (size_t i = 0; i < item.subscriptions.size(); ++i) {
        part_ids.push_back(item.outbox_id);
        part_subs.push_back(item.subscriptions[i]);
        part_behind.push_back(item.parked[i] ? item.behind : 0);
      }
    }
    if (moved.empty()) return moved;
    txn.exec_params(kInsertSpilled, bigint_array(part_ids), name_array(part_subs),
                    bigint_array(part_behind));
    txn.exec_params(kDeleteSpilled, bigint_array(moved));
    return moved;
  });
}

Result<long long> release_parked(pqxx::connection& conn, const std::vector<std::int64_t>& behind) {
  if (behind.empty()) return 0LL;
  return run_transaction(conn, [&](pqxx::work& txn) {
    return release_where(
        txn, fmt::format(kRelease, fmt::format("behind_outbox_id = ANY('{}'::bigint[])",
                                               bigint_array(behind))));
  });
}

Result<long long> release_orphaned_parked(pqxx::connection& conn) {
  return run_transaction(conn, [&](pqxx::work& txn) {
    return release_where(
        txn, fmt::format(kRelease,
                         "behind_outbox_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM relay.outbox o "
                         "WHERE o.id = relay.delivery.behind_outbox_id)"));
  });
}

}  // namespace relay::store
