#include "relay/store/status_store.h"

#include <map>

#include "relay/store/transaction.h"

namespace relay::store {
namespace {

using WallTime = std::chrono::system_clock::time_point;

// Timestamps travel as microseconds since the epoch: no time-zone or text-format surprises.
constexpr const char* kOutbox = R"(
  SELECT topic, count(*), count(*) FILTER (WHERE deliver_after > now()), count(*) FILTER (WHERE lease_until > now()),
         (extract(epoch FROM min(created_at) FILTER (WHERE deliver_after IS NULL OR deliver_after <= now()))
          * 1000000)::bigint
    FROM relay.outbox GROUP BY topic ORDER BY topic COLLATE "C")";

constexpr const char* kDelivery = R"(
  SELECT subscription, count(*), count(*) FILTER (WHERE lease_until > now()),
         (extract(epoch FROM min(next_attempt_at)) * 1000000)::bigint,
         (extract(epoch FROM min(first_failed_at)) * 1000000)::bigint
    FROM relay.delivery GROUP BY subscription)";

constexpr const char* kDeadLetters = R"(
  SELECT subscription, count(*), (extract(epoch FROM min(failed_at)) * 1000000)::bigint, count(DISTINCT key)
    FROM relay.dead_letter WHERE replayed_at IS NULL GROUP BY subscription)";

std::optional<WallTime> opt_time(const pqxx::field& f) {
  if (f.is_null()) return std::nullopt;
  return WallTime{
      std::chrono::duration_cast<WallTime::duration>(std::chrono::microseconds(f.as<long long>()))};
}

// Only a lease that still lives names an owner.
constexpr const char* kWalSlots = R"(
  SELECT w.slot, CASE WHEN w.lease_until > now() THEN w.owner END, w.caught_up,
         s.slot_name IS NOT NULL, coalesce(s.active, false), coalesce(s.wal_status, ''),
         coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), s.confirmed_flush_lsn), 0)::bigint,
         coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), s.restart_lsn), 0)::bigint
    FROM relay.wal_reader w LEFT JOIN pg_replication_slots s ON s.slot_name = w.slot
   ORDER BY w.slot)";

}  // namespace

Result<StatusSnapshot> read_status(const std::string& database_url) {
  auto conn = connect(database_url);
  if (!conn) return conn.error();
  try {
    // One consistent picture across the three tables.
    pqxx::transaction<pqxx::repeatable_read, pqxx::read_only> txn(**conn);
    StatusSnapshot snap;
    for (const auto& r : txn.exec(kOutbox)) {
      snap.topics.push_back({.topic = r[0].as<std::string>(),
                             .pending = r[1].as<std::int64_t>(),
                             .delayed = r[2].as<std::int64_t>(),
                             .claimed = r[3].as<std::int64_t>(),
                             .oldest_due_created_at = opt_time(r[4])});
    }
    std::map<std::string, SubscriptionBacklog> subs;
    for (const auto& r : txn.exec(kDelivery)) {
      auto& s = subs[r[0].as<std::string>()];
      s.retries_pending = r[1].as<std::int64_t>();
      s.retrying_now = r[2].as<std::int64_t>();
      s.next_attempt_at = opt_time(r[3]);
      s.oldest_first_failed_at = opt_time(r[4]);
    }
    for (const auto& r : txn.exec(kDeadLetters)) {
      auto& s = subs[r[0].as<std::string>()];
      s.dead_letters = r[1].as<std::int64_t>();
      s.oldest_dead_letter_at = opt_time(r[2]);
      s.keys_with_dead_letter = r[3].as<std::int64_t>();
    }
    for (const auto& r : txn.exec(kWalSlots)) {
      WalSlotStatus w;
      w.slot = r[0].as<std::string>();
      if (!r[1].is_null()) w.owner = r[1].as<std::string>();
      w.caught_up = r[2].as<bool>();
      w.exists = r[3].as<bool>();
      w.active = r[4].as<bool>();
      w.wal_status = r[5].as<std::string>();
      w.lag_bytes = r[6].as<std::int64_t>();
      w.retained_bytes = r[7].as<std::int64_t>();
      snap.wal_slots.push_back(std::move(w));
    }
    txn.commit();
    for (auto& [name, s] : subs) {
      s.name = name;
      snap.subscriptions.push_back(std::move(s));
    }
    return snap;
  } catch (const std::exception& e) {
    return classify_exception(e);
  }
}

}  // namespace relay::store
