#pragma once
// The SQL behind `relay status`: what is waiting in relay.outbox (by topic), in relay.delivery
// (retries, by subscription) and in relay.dead_letter (unreplayed, by subscription). One read-only
// snapshot per call.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "relay/common/result.h"

namespace relay::store {

struct TopicBacklog {
  std::string topic;
  std::int64_t pending = 0;  // outbox rows
  std::int64_t delayed = 0;  // of those, deliver_after still in the future
  std::int64_t claimed = 0;  // of those, under a live lease (being delivered now)
  // created_at of the oldest row that is due (not delayed); nullopt if none is.
  std::optional<std::chrono::system_clock::time_point> oldest_due_created_at;
};

struct SubscriptionBacklog {
  std::string name;
  std::int64_t retries_pending = 0;  // relay.delivery rows
  std::int64_t retrying_now = 0;     // of those, under a live lease
  std::optional<std::chrono::system_clock::time_point> next_attempt_at;         // earliest
  std::optional<std::chrono::system_clock::time_point> oldest_first_failed_at;  // longest failing
  std::int64_t dead_letters = 0;                                                // unreplayed
  std::optional<std::chrono::system_clock::time_point> oldest_dead_letter_at;
  std::int64_t keys_with_dead_letter = 0;  // distinct non-NULL keys with an unreplayed dead letter
};

// A WAL source slot (source.mode: wal): who reads it and what it keeps.
struct WalSlotStatus {
  std::string slot;
  std::optional<std::string> owner;  // the relay reading it, while its lease lives
  bool caught_up = false;            // rows from before the slot were delivered from the table
  bool exists = false;               // in pg_replication_slots
  bool active = false;               // a relay streams from it now
  std::string wal_status;            // reserved | extended | unreserved | lost ("" if missing)
  std::int64_t lag_bytes = 0;        // WAL written since its confirmed position
  std::int64_t retained_bytes = 0;   // WAL the server keeps for it
};

struct StatusSnapshot {
  std::vector<TopicBacklog> topics;                // ordered by topic
  std::vector<SubscriptionBacklog> subscriptions;  // every subscription with a row, ordered by name
  std::vector<WalSlotStatus> wal_slots;            // ordered by slot; empty in table mode
};

// Reads the snapshot in one repeatable-read transaction. kUnavailable (naming host and port,
// never the password) if the database cannot be reached.
Result<StatusSnapshot> read_status(const std::string& database_url);

}  // namespace relay::store
