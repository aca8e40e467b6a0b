#pragma once
// The WAL source's overflow (sql/0007_wal_spill.sql): events of a key that wait in memory behind
// an event of that key on its way to the consumer move to relay.delivery, so the stream is read on
// while that key is slow. A spilled part of a per-key subscription is parked behind the event on
// its way: not claimable, and without a final place in the key's order, until that event has its
// outcome; then release_parked() gives the parked rows places after it. Internal to relay/store.

#include <cstdint>
#include <pqxx/pqxx>
#include <string>
#include <vector>

#include "relay/common/result.h"

namespace relay::store {

struct SpillItem {
  std::int64_t outbox_id = 0;
  std::string key;
  std::int64_t behind = 0;  // the outbox id of the key's latest event on its way
  std::vector<std::string> subscriptions;  // one relay.delivery row each
  std::vector<bool> parked;                // per subscription: per-key order, so park it
};

// In one transaction, moves the rows of `items` (in hand-out order) from relay.outbox to
// relay.delivery and returns the outbox ids it moved. A key's items move only while the event they
// wait behind still has its row (locked for the transaction, so its outcome is recorded after this
// commits and releases what it parked), and only as a prefix in order: an item whose row cannot be
// read (its commit is not visible yet, or it is locked) keeps itself and the key's later items in
// memory. Each row gets a place in its key's order now (relay.outbox_id_seq, in item order).
Result<std::vector<std::int64_t>> spill_events(pqxx::connection& conn,
                                               const std::vector<SpillItem>& items);

// Releases the rows parked behind the outbox rows `behind` (their outcomes are recorded): new
// places after every place drawn so far, in their old order, and due at once if first of their
// (subscription, key). Returns how many rows it released.
Result<long long> release_parked(pqxx::connection& conn, const std::vector<std::int64_t>& behind);

// The same for rows parked behind an outbox row that no longer exists (its outcome was recorded
// but relay stopped before it released them, or the event was cancelled).
Result<long long> release_orphaned_parked(pqxx::connection& conn);

}  // namespace relay::store
