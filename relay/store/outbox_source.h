#pragma once
// PgOutboxSource: finds due work and claims it under a lease. Claims are short transactions with
// FOR UPDATE SKIP LOCKED, so any number of relays can share one outbox without delivering the same
// event at the same time; a crashed relay's claims become claimable again when its lease runs out.
// The same connection LISTENs for the outbox wake-up. Not thread-safe: one owner thread.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "relay/common/duration.h"
#include "relay/common/event.h"
#include "relay/common/result.h"
#include "relay/store/work_items.h"

namespace relay::store {

class PgConnection;
class OutboxListener;

class PgOutboxSource {
 public:
  // `owner` names this relay instance in lease_owner; `lease` is how long claims are held.
  // `subscriptions`: names this relay delivers to; `ordered`: those with ordering per_key;
  // `blocking`: those with on_dead_letter block. Each name matches [a-z0-9_.-]+.
  PgOutboxSource(std::string database_url, std::string owner, Millis lease,
                 std::vector<std::string> subscriptions, std::vector<std::string> ordered,
                 std::vector<std::string> blocking);

  // Events claimed per key head: the head plus at most this many - 1 of its successors.
  static constexpr int kRunLength = 8;
  // A claim looks at the oldest rows only: what this relay holds, plus this many rows per event it
  // asks for, at least kMinClaimWindow. Each claim sorts its whole window, so the window is a
  // fixed cost per claim; 2 per event finds a full claim when at least half the rows past the
  // held ones are claimable (keys not busy elsewhere).
  static constexpr int kClaimWindowPerEvent = 2;
  static constexpr int kMinClaimWindow = 2000;
  ~PgOutboxSource();
  PgOutboxSource(const PgOutboxSource&) = delete;
  PgOutboxSource& operator=(const PgOutboxSource&) = delete;

  // An outbox event and the subscriptions that must not get it directly (an earlier event of its
  // key is still pending for them, or dead-lettered under on_dead_letter: block).
  struct ClaimedEvent {
    Event event;
    std::vector<std::string> held_for;
  };
  // Claims up to `limit` due outbox events (deliver_after passed, lease free or expired) by key:
  // key heads, each with up to kRunLength - 1 of its successors. Returns them in id order.
  // kUnavailable when the database is down (the caller backs off).
  Result<std::vector<ClaimedEvent>> claim_outbox(int limit);
  // How many items this relay holds now: widens the claim's scan window past them.
  void set_in_flight_hint(int items) { in_flight_hint_ = items; }
  // Claims up to `limit` relay.delivery rows whose next attempt is due, for the named subscriptions
  // only (rows of a subscription this relay doesn't know, or whose breaker is open, stay put).
  // Each name matches [a-z0-9_.-]+.
  Result<std::vector<ClaimedDelivery>> claim_deliveries(
      int limit, const std::vector<std::string>& subscriptions);
  // Pushes out the lease of every row this instance holds (it is still working on them).
  Status renew_leases();
  // Releases every claim this instance holds, without counting an attempt (shutdown).
  Status release_all();
  // After a claim whose outcome is unknown (kInDoubt, or kUnavailable during it): releases every
  // row leased to this instance except the outbox and relay.delivery ids it still works on, so a
  // claim that committed unseen leaves nothing stranded under a lease that renew_leases() would
  // keep alive forever. Returns how many rows it released.
  Result<long long> release_unheld(const std::vector<std::int64_t>& outbox_ids,
                                   const std::vector<std::int64_t>& delivery_ids);
  // Asks to be woken by the outbox trigger until `ttl` from now (a relay that dies stops costing
  // the app NOTIFYs when it expires). Call again before it runs out to stay parked.
  Status park(Millis ttl);
  // Stops the wake-ups: while relay is busy claiming, the app's commits pay no NOTIFY.
  Status unpark();
  // Time until the earliest known future work (a delayed event or a scheduled retry), if any.
  Result<std::optional<Millis>> time_until_next_due();
  // Blocks until a wake-up notification arrives, `kick_fd` becomes readable, or `timeout` passes.
  // Returns true when woken by a notification or a kick.
  Result<bool> wait_for_wakeup(Millis timeout, int kick_fd);

  const std::string& owner() const { return owner_; }

 private:
  template <typename Fn>
  auto with_connection(Fn&& fn);  // defined in the .cc, the only user
  template <typename T>
  Result<std::vector<T>> in_doubt_if_injected(Result<std::vector<T>>&& claimed, const char* point);

  const std::string owner_;
  const Millis lease_;
  const std::string subscriptions_;  // as Postgres array literals
  const std::string ordered_;
  const std::string blocking_;
  int in_flight_hint_ = 0;
  std::unique_ptr<PgConnection> conn_;
  std::unique_ptr<OutboxListener> listener_;
  bool notified_ = false;
};

}  // namespace relay::store
