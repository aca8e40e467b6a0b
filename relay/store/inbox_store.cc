#include "relay/store/inbox_store.h"

#include <fmt/format.h>

#include "relay/store/pg_connection.h"
#include "relay/store/transaction.h"

namespace relay::store {
namespace {

// One statement, so it commits atomically in autocommit and costs one round trip. The inbox row
// is inserted unless (source, event_id) exists; only a row inserted now queues a delivery. A
// concurrent insert of the same id waits for the first to commit and then counts as a duplicate,
// so a duplicate is never acknowledged before its original is durable.
// A keyed event whose (subscription, key) already has a pending delivery queues behind it with a
// far next_attempt_at (the outcome sink promotes it when its predecessor leaves); otherwise it is
// due now (`pred` below closes the hand-over's race). Its per-key order number (outbox_id) is the
// inbox row's seq.
constexpr const char* kInsert = R"(
  WITH ins AS (
    INSERT INTO relay.inbox (source, event_id, topic, key, payload, content_type, headers, lease_owner, lease_until)
    VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb,
            CASE WHEN $8::boolean THEN 'relay-push' END, CASE WHEN $8::boolean THEN 'infinity'::timestamptz END)
    ON CONFLICT (source, event_id) DO NOTHING
    RETURNING seq, received_at),
  -- The key's pending deliveries, locked FOR KEY SHARE (only a DELETE conflicts): a predecessor
  -- whose removal is in progress is waited for and skipped once gone (so this event is due now),
  -- and one removed after this lock waits for this statement to commit, so its promote_next sees
  -- this event.
  pred AS (
    SELECT 1 FROM relay.delivery d
     WHERE $4::text IS NOT NULL AND $8::boolean AND $10::boolean
       AND d.key = $4::text AND d.subscription = $9::text
       AND EXISTS (SELECT 1 FROM ins)
     FOR KEY SHARE OF d),
  push AS (
    INSERT INTO relay.delivery (outbox_id, event_id, subscription, topic, key, payload, content_type, headers,
                                created_at, attempts, first_failed_at, next_attempt_at)
    SELECT ins.seq, $2, $9, coalesce($3, $1), $4, $5, $6, $7::jsonb,
           coalesce('epoch'::timestamptz + $12::bigint * interval '1 microsecond', ins.received_at), 0, now(),
           CASE WHEN EXISTS (SELECT 1 FROM pred)
                THEN now() + $11::bigint * interval '1 millisecond' ELSE now() END
      FROM ins
     WHERE $8::boolean
    ON CONFLICT (event_id, subscription) DO NOTHING)
  SELECT count(*)::integer FROM ins)";

// Finished rows past the retention: processed, or dead-lettered and never processed since.
constexpr const char* kDeleteExpired = R"(
  WITH old AS (
    (SELECT source, event_id FROM relay.inbox
      WHERE processed_at < now() - $1::bigint * interval '1 millisecond' LIMIT $2)
    UNION ALL
    (SELECT source, event_id FROM relay.inbox
      WHERE dead_lettered_at < now() - $1::bigint * interval '1 millisecond' AND processed_at IS NULL LIMIT $2)),
  gone AS (
    DELETE FROM relay.inbox i USING (SELECT source, event_id FROM old LIMIT $2) o
     WHERE i.source = o.source AND i.event_id = o.event_id
    RETURNING 1)
  SELECT count(*)::integer FROM gone)";

const char* or_null(const std::optional<std::string>& s) { return s ? s->c_str() : nullptr; }

}  // namespace

struct InboxStore::Slot {
  std::unique_ptr<PgConnection> conn;
};

InboxStore::InboxStore(std::string database_url, InboxStoreOptions options)
    : url_(std::move(database_url)), options_(options) {}

InboxStore::~InboxStore() = default;

InboxStore::Slot* InboxStore::acquire() {
  std::unique_lock lock(mu_);
  if (free_.empty() && static_cast<int>(slots_.size()) < options_.max_connections) {
    const long long timeout_ms = options_.statement_timeout.count();
    auto slot = std::make_unique<Slot>();
    slot->conn = std::make_unique<PgConnection>(url_, [timeout_ms](pqxx::connection& c) {
      pqxx::nontransaction setup(c);
      setup.exec(fmt::format("SET statement_timeout = {}", timeout_ms));
      setup.commit();
      c.prepare("inbox_insert", kInsert);
    });
    slots_.push_back(std::move(slot));
    return slots_.back().get();
  }
  if (!cv_.wait_for(lock, options_.acquire_timeout, [this] { return !free_.empty(); }))
    return nullptr;
  Slot* slot = free_.back();
  free_.pop_back();
  return slot;
}

void InboxStore::release(Slot* slot) {
  {
    std::lock_guard lock(mu_);
    free_.push_back(slot);
  }
  cv_.notify_one();
}

Result<InboxWrite> InboxStore::insert(std::span<const InboxEvent> events, const InboxPush* push) {
  Slot* slot = acquire();
  if (slot == nullptr) return InboxWrite{.busy = true};
  auto conn = slot->conn->get();
  if (!conn) {
    release(slot);
    return conn.error();
  }
  const bool pushed = push != nullptr;
  // Returns 1 if the event was stored, 0 for a duplicate.
  auto insert_one = [&](auto& tx, const InboxEvent& event) {
    std::optional<std::string> created_micros;
    if (event.created_at) {
      created_micros = std::to_string(std::chrono::duration_cast<std::chrono::microseconds>(
                                          event.created_at->time_since_epoch())
                                          .count());
    }
    return tx
        .exec_prepared1("inbox_insert", event.source, event.event_id, or_null(event.topic),
                        or_null(event.key), pqxx::binarystring(event.payload), event.content_type,
                        event.headers_json, pushed, pushed ? push->subscription.c_str() : nullptr,
                        pushed && push->ordered,
                        static_cast<long long>(pushed ? push->queued_recheck.count() : 0),
                        or_null(created_micros))[0]
        .template as<int>();
  };
  auto count = [&](const std::vector<int>& stored) {
    InboxWrite w;
    for (int s : stored) (s == 1 ? w.stored : w.duplicates) += 1;
    return w;
  };
  // One event: a single autocommitted statement (one round trip). Several: one transaction, so a
  // batch is acknowledged all or nothing.
  Result<InboxWrite> result =
      events.size() == 1 ? run_nontransaction(**conn,
                                              [&](pqxx::nontransaction& tx) {
                                                return count({insert_one(tx, events.front())});
                                              })
                         : run_transaction(**conn, [&](pqxx::work& tx) {
                             std::vector<int> stored;
                             for (const auto& e : events) stored.push_back(insert_one(tx, e));
                             return count(stored);
                           });
  if (!result) {
    // Whatever went wrong (server gone, statement timeout, connection cut mid-statement), the
    // request is answered "retry later": the sender's retry is deduplicated if it did commit.
    slot->conn->reset();
    release(slot);
    return Error{ErrorCode::kUnavailable, result.error().message};
  }
  release(slot);
  return result;
}

InboxRetention::InboxRetention(std::string database_url)
    : conn_(std::make_unique<PgConnection>(std::move(database_url), [](pqxx::connection& c) {
        c.prepare("inbox_delete_expired", kDeleteExpired);
      })) {}

InboxRetention::~InboxRetention() = default;

Result<int> InboxRetention::delete_batch(Millis retention, int batch) {
  auto conn = conn_->get();
  if (!conn) return conn.error();
  auto result = run_nontransaction(**conn, [&](pqxx::nontransaction& tx) {
    return tx
        .exec_prepared1("inbox_delete_expired", static_cast<long long>(retention.count()), batch)[0]
        .as<int>();
  });
  if (!result && result.error().code == ErrorCode::kUnavailable) conn_->reset();
  return result;
}

}  // namespace relay::store
