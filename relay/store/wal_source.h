#pragma once
// PgWalSource: the WAL source (source.mode: wal). Outbox events come from a logical replication
// slot instead of claims:
//
//   reader thread: lease in relay.wal_reader ─▶ [catch-up from the table] ─▶ stream (pgoutput)
//        │ decoded inserts, in commit order, at most wal.max_held_events
//        ▼
//   held events ─claim_outbox()─▶ pipeline ─▶ outcome sink deletes the row ─▶ recorded()
//                                                        │
//   WalProgress: a transaction is confirmed to PostgreSQL ◀┘ once all its events are recorded
//
// - The outbox row stays the durable record: the sink deletes it only once every part has an
//   outcome, and the slot's confirmed position moves past a transaction only when each of its
//   events has one. After a crash the slot sends the unconfirmed transactions again; claim_outbox
//   hands out only events whose row still exists, so only events in flight are delivered twice.
//   One read-only statement per claim tells both which rows exist and which of their transactions
//   its snapshot does not see yet (a commit reaches the stream a moment before it is visible).
// - Per-key order is commit order: an event waits in memory while an earlier event of its key from
//   an earlier claim is in flight (at most one request's time); once that one is recorded, an
//   event behind a retry is held for its subscription (held_for) and queues in relay.delivery.
// - Memory is bounded by wal.max_held_events. When it is full and a key's event has been in flight
//   for wal.spill_after (a slow or hanging consumer), that key's waiting events move to
//   relay.delivery, parked behind the event in flight (store/wal_spill.h), and the stream goes on.
//   The event's outcome releases them after it. A restarted reader learns of parked rows from the
//   look (`parked`): it hands out the event they wait behind, and that key's later events only
//   after its outcome. Otherwise a full memory pauses the stream (the pipeline is the bottleneck).
// - One reader per slot: the reader holds a lease in relay.wal_reader and renews it every third of
//   wal.takeover_after; another relay stands by and takes over when it runs out. A relay that
//   cannot renew stops streaming before its lease ends.
// - Rows the stream does not cover (committed before the slot existed, or while it was lost) are
//   delivered from the table first: relay creates the slot with an exported snapshot, reads the
//   rows that snapshot sees in id order, and starts streaming (from the slot's start, which is
//   exactly that snapshot) only once each of them has an outcome. relay.wal_reader.caught_up
//   records that; a relay that stops before it starts the catch-up over with a new slot.
// Retries (relay.delivery) are claimed as in table mode, by the active relay and standbys alike,
// except that a claim that found no more due rows is not repeated before the next row falls due
// by the clock (5 ms to 1 s away) unless something may have made one due: this relay recorded or
// moved rows there, a NOTIFY (dlq replay, released leases), or a breaker let a subscription send
// again. In steady streaming the claimer goes round once per event and per busy poll; without
// this each round cost a claim statement.
// Thread safety: as model::WorkSource; recorded() and status() may be called from any thread.

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <stop_token>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "relay/common/clock.h"
#include "relay/common/log.h"
#include "relay/config/config.h"
#include "relay/model/work_source.h"
#include "relay/store/outbox_source.h"
#include "relay/store/wal/wal_progress.h"

namespace relay::store {

class PgConnection;
using SteadyTime = std::chrono::steady_clock::duration;
// The subscriptions whose topics match `topic` (what the pipeline's router fans an event out to).
using TopicRoutes = std::function<std::vector<std::string>(const std::string& topic)>;

namespace wal {
class ReplicationConnection;
struct RelationMsg;
}  // namespace wal

struct WalSourceStatus {
  std::string role = "starting";  // starting | standby | catching_up | streaming
  std::string slot;
  wal::Lsn received_lsn = 0;   // the end of the last transaction read from the stream
  wal::Lsn confirmed_lsn = 0;  // the last position reported as flushed
  long long held_events = 0;   // read and not yet handed to the pipeline
  long long in_flight = 0;     // handed to the pipeline, outcome not yet recorded
  long long pending_transactions = 0;
  long long catch_up_read = 0;        // rows read from the table in the current or last catch-up
  long long catch_up_rows_total = 0;  // rows read by every catch-up of this process
  long long catch_ups = 0;            // catch-ups started by this process
  long long spilled_events = 0;       // moved from memory to relay.delivery by this process
  // How long ago the oldest transaction not yet confirmed committed (0 when none): what a restart
  // would replay, and how far behind this relay is. Only the relay reading the slot knows it.
  double lag_seconds = 0;
  // From pg_replication_slots, read by every relay (standbys too) every few seconds.
  bool slot_exists = false;
  bool slot_active = false;           // some relay streams from it now
  std::string slot_wal_status;        // reserved | extended | unreserved | lost
  long long slot_lag_bytes = 0;       // pg_current_wal_lsn() - confirmed_flush_lsn
  long long slot_retained_bytes = 0;  // pg_current_wal_lsn() - restart_lsn: WAL kept for it
};

class PgWalSource final : public model::WorkSource {
 public:
  // `owner` names this relay in relay.wal_reader and relay.delivery leases. `subscriptions`,
  // `ordered`, `blocking`: as PgOutboxSource's. `routes`: where a spilled event's parts go.
  PgWalSource(std::string database_url, std::string owner, const config::SourceConfig& source,
              std::vector<std::string> subscriptions, std::vector<std::string> ordered,
              std::vector<std::string> blocking, TopicRoutes routes);
  ~PgWalSource() override;
  PgWalSource(const PgWalSource&) = delete;
  PgWalSource& operator=(const PgWalSource&) = delete;

  // What wal mode needs from the server: wal_level = logical, a role with REPLICATION, the
  // publication (created here if missing). kInvalidArgument names the setting to change (relay
  // exits 2); kUnavailable when the database cannot be reached.
  Status prepare();
  // Starts the reader thread. REQUIRES: prepare() succeeded.
  void start();

  Result<std::vector<model::ClaimedEvent>> claim_outbox(int limit, int held_items) override;
  Result<std::vector<model::ClaimedDelivery>> claim_deliveries(
      int limit, const std::vector<std::string>& subscriptions) override;
  Status renew_leases() override;
  // Stops the reader (it confirms what is done and gives up its lease, so a standby or the next
  // start takes over at once) and releases this relay's relay.delivery leases.
  Status release_all() override;
  Result<long long> release_unheld(const std::vector<std::int64_t>& outbox_ids,
                                   const std::vector<std::int64_t>& delivery_ids) override;
  // The stream is the wake-up: no doorbell, no relay.parked row.
  Status park(Millis ttl) override;
  Status unpark() override;
  Result<std::optional<Millis>> time_until_next_due() override;
  Result<bool> wait_for_work(Millis timeout) override;
  void wake() override;
  void recorded(const model::OutcomeBatch& batch) override;

  WalSourceStatus status() const;

 private:
  struct Held {
    Event event;
    wal::WalProgress::Txn txn = 0;  // 0: a catch-up row (not in the stream)
    std::uint32_t xid = 0;          // the inserting transaction (stream rows only)
    bool spilling = false;          // being moved to relay.delivery: not to be handed out
  };
  struct InFlight {
    wal::WalProgress::Txn txn = 0;
    std::optional<std::string> key;
  };
  // How a reader's term (or part of one) ended.
  enum class Outcome {
    kUnavailable,  // the database or the stream failed: back off, then try again
    kStopped,
    kLeaseLost,    // another relay reads the slot now (or this one is standing by)
    kRestartSlot,  // the slot is gone or invalidated: catch up from the table with a new one
    kCaughtUp,     // (catch_up only) every row the slot does not cover has an outcome
  };

  void run(std::stop_token stop);
  // One term as the slot's reader, from taking the lease to losing it or stopping.
  Outcome lead(std::stop_token stop);
  Outcome catch_up(std::stop_token stop);
  Outcome stream(std::stop_token stop);
  // Takes or renews the lease on `conn`; false if another relay holds it. Errors: the database is
  // away.
  Result<bool> hold_lease(PgConnection& conn);
  // The keeper thread: while the reader holds the lease, renews it every third of
  // takeover_after, and reads the slot's state every status_interval, on a connection of its own,
  // so the stream is never held up by those round trips (each a durable commit).
  void keep(std::stop_token stop);
  // Whether the lease still stands, as the keeper last saw it (the reader steps down otherwise).
  bool lease_stands() const;
  void start_term();  // the reader just took the lease: the keeper renews it from now on
  void end_term();
  void give_up_lease();
  // Reads the slot's row in pg_replication_slots into status_ (errors only leave it stale).
  void refresh_slot_state(PgConnection& conn);
  // Waits until the held events have room (or stop), spilling what waits behind slow keys; renews
  // the lease meanwhile.
  bool wait_for_room(std::stop_token stop, const std::function<bool()>& keep_alive);
  // When the oldest key in flight with events waiting behind it passes spill_after (nullopt: no
  // such key), or an earlier time (then ask again) while no key in flight has passed it yet.
  // REQUIRES: mu_ held.
  std::optional<std::chrono::steady_clock::time_point> next_spill() const;
  // Moves the waiting events of keys in flight for spill_after to relay.delivery (reader thread);
  // returns how many moved.
  long long spill_waiting();
  // Releases what is parked behind outbox rows that are gone (keeper and reader threads).
  Status release_orphans(PgConnection& conn);
  void add_held(Held&& held);
  void finish_event(std::int64_t outbox_id, bool done);  // REQUIRES: mu_ held
  void set_role(const char* role);
  Status send_status(wal::ReplicationConnection& conn, bool reply);

  const std::string database_url_;
  const std::string owner_;
  const config::WalSourceConfig config_;
  const std::string ordered_;  // Postgres array literals
  const std::string blocking_;
  const std::vector<std::string> parks_;  // ordered and blocking names: spilled parts park
  const TopicRoutes routes_;
  const Logger log_{"wal"};
  PgOutboxSource deliveries_;                  // relay.delivery claims, LISTEN, wake-ups
  std::unique_ptr<PgConnection> claim_conn_;   // claimer thread: existence and held_for
  std::unique_ptr<PgConnection> reader_conn_;  // reader thread: lease, slot state
  std::unique_ptr<PgConnection> keeper_conn_;  // keeper thread: lease renewals, slot state
  std::unique_ptr<PgConnection> release_conn_;  // recorder thread (recorded()): releases parked rows
  std::jthread keeper_;
  std::atomic<bool> holding_{false};                  // the reader is in a term
  std::atomic<bool> lease_lost_{false};               // the keeper found another owner
  std::atomic<SteadyTime::rep> lease_good_until_{0};  // steady clock, ns: last renewal + 2/3 term
  std::jthread reader_;
  // The replication connection the reader waits on, if any, so that stopping can interrupt it.
  // Set and cleared under stream_mu_, which interrupt_stream() holds while it calls into it: the
  // reader cannot destroy the connection in between.
  void set_interruptible(wal::ReplicationConnection* conn);
  void interrupt_stream();
  std::mutex stream_mu_;
  wal::ReplicationConnection* streaming_ = nullptr;  // guarded by stream_mu_

  mutable std::mutex mu_;
  std::condition_variable_any room_;  // held events left, or in-flight ones settled
  std::list<Held> held_;              // guarded by mu_
  std::unordered_map<std::int64_t, InFlight> in_flight_;  // by outbox id; guarded by mu_
  // Per key: events in flight (outbox ids, in hand-out order), the claim that took them (a later
  // claim waits) and since when the key has been in flight.
  struct KeyUse {
    std::vector<std::int64_t> ids;
    std::uint64_t claim = 0;
    std::chrono::steady_clock::time_point since;
  };
  void key_done(const std::string& key, std::int64_t outbox_id);  // REQUIRES: mu_ held
  std::unordered_map<std::string, KeyUse> keys_in_flight_;  // guarded by mu_
  std::uint64_t claims_ = 0;                                // guarded by mu_
  // Keys whose waiting events are being spilled now, and keys whose parked rows could not be
  // released before relay began to stop (the next term releases orphans first): neither is
  // handed out.
  std::set<std::string> spilling_keys_;    // guarded by mu_
  std::set<std::string> unreleased_keys_;  // guarded by mu_
  // Events in flight that rows may be parked behind: their outcome releases them.
  std::set<std::int64_t> parked_behind_;  // guarded by mu_
  // Some streamed rows were not visible yet when last claimed: claim again shortly.
  std::atomic<bool> recheck_soon_{false};
  // Something may have made a relay.delivery row due since the last claim of them.
  std::atomic<bool> deliveries_dirty_{true};
  // Claimer thread only: until when a claim of relay.delivery may be skipped, and what the last
  // one was asked with.
  std::chrono::steady_clock::time_point skip_deliveries_until_{};
  std::uint64_t notifications_seen_ = 0;
  std::vector<std::string> last_sendable_;
  long long catch_up_outstanding_ = 0;  // guarded by mu_
  wal::WalProgress progress_;           // guarded by mu_
  WalSourceStatus status_;              // guarded by mu_
};

}  // namespace relay::store
