#pragma once
// PgOutboxSource: finds due work and claims it under a lease. Claims are short transactions with
// FOR UPDATE SKIP LOCKED, so any number of relays can share one outbox without delivering the same
// event at the same time; a crashed relay's claims become claimable again when its lease runs out.
// The same connection LISTENs for the outbox wake-up. Not thread-safe: one owner thread, except
// wake().

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "relay/common/duration.h"
#include "relay/common/event.h"
#include "relay/common/result.h"
#include "relay/model/work_source.h"
#include "relay/store/claim_floor.h"

namespace relay::store {

class PgConnection;
class OutboxListener;

class PgOutboxSource final : public model::WorkSource {
 public:
  // `owner` names this relay instance in lease_owner; `lease` is how long claims are held.
  // `subscriptions`: names this relay delivers to; `ordered`: those with ordering per_key;
  // `blocking`: those with on_dead_letter block. Each name matches [a-z0-9_.-]+.
  // `claims_outbox` false: only relay.delivery is claimed here (the WAL source streams the outbox),
  // so renewing and releasing leave relay.outbox alone.
  PgOutboxSource(std::string database_url, std::string owner, Millis lease,
                 std::vector<std::string> subscriptions, std::vector<std::string> ordered,
                 std::vector<std::string> blocking, bool claims_outbox = true);

  // Events claimed per key head: the head plus at most this many - 1 of its successors.
  static constexpr int kRunLength = 8;
  // A claim looks at the oldest rows only: what this relay holds, plus this many rows per event it
  // asks for, at least kMinClaimWindow. Each claim sorts its whole window, so the window is a
  // fixed cost per claim; 2 per event finds a full claim when at least half the rows past the
  // held ones are claimable (keys not busy elsewhere).
  static constexpr int kClaimWindowPerEvent = 2;
  static constexpr int kMinClaimWindow = 2000;
  // time_until_next_due() ignores a relay.delivery row that was already due this long before the
  // last claim_deliveries ran (the slack covers the gap between this process's clock and the
  // database's now()): that claim left it, so it is blocked until an event announces otherwise.
  static constexpr Millis kBlockedMargin{5};
  ~PgOutboxSource() override;
  PgOutboxSource(const PgOutboxSource&) = delete;
  PgOutboxSource& operator=(const PgOutboxSource&) = delete;

  // Claims up to `limit` due outbox events (deliver_after passed, lease free or expired) by key:
  // key heads, each with up to kRunLength - 1 of its successors. Returns them in id order.
  // kUnavailable when the database is down (the caller backs off). The claim looks at rows from
  // this relay's floor on (ClaimFloor), which it moves at most every ClaimFloor::kRoundEvery.
  Result<std::vector<model::ClaimedEvent>> claim_outbox(int limit, int held_items) override;
  // Claims up to `limit` relay.delivery rows whose next attempt is due, for the named subscriptions
  // only (rows of a subscription this relay doesn't know, or whose breaker is open, stay put).
  // Each name matches [a-z0-9_.-]+.
  Result<std::vector<model::ClaimedDelivery>> claim_deliveries(
      int limit, const std::vector<std::string>& subscriptions) override;
  Status renew_leases() override;
  Status release_all() override;
  Result<long long> release_unheld(const std::vector<std::int64_t>& outbox_ids,
                                   const std::vector<std::int64_t>& delivery_ids) override;
  // Writes a row in relay.parked: while it lives, the outbox trigger NOTIFYs this relay (a relay
  // that dies stops costing the app NOTIFYs when it expires).
  Status park(Millis ttl) override;
  // Deletes it: while relay is busy claiming, the app's commits pay no NOTIFY.
  Status unpark() override;
  // Counts a due relay.delivery row only if it fell due after the last claim_deliveries (less
  // kBlockedMargin): one that claim left behind waits for an event, not for the clock (see
  // model::WorkSource::time_until_next_due). Before any claim, counts every row.
  Result<std::optional<Millis>> time_until_next_due() override;
  // Waits for a NOTIFY on the listening connection or a wake() (an eventfd).
  Result<bool> wait_for_work(Millis timeout) override;
  void wake() override;

  const std::string& owner() const { return owner_; }
  // How many times wait_for_work() has returned for a NOTIFY (not a wake()) so far. Claimer thread.
  std::uint64_t notifications() const { return notifications_; }
  // This relay's claim floor (tests and diagnostics).
  const ClaimFloor& claim_floor() const { return floor_; }

 private:
  template <typename Fn>
  auto with_connection(Fn&& fn);  // defined in the .cc, the only user
  template <typename T>
  Result<std::vector<T>> in_doubt_if_injected(Result<std::vector<T>>&& claimed, const char* point);

  const std::string owner_;
  const Millis lease_;
  const bool claims_outbox_;
  const std::string subscriptions_;  // as Postgres array literals
  const std::string ordered_;
  const std::string blocking_;
  int wake_fd_ = -1;  // eventfd written by wake()
  std::unique_ptr<PgConnection> conn_;
  std::unique_ptr<OutboxListener> listener_;
  bool notified_ = false;
  std::uint64_t notifications_ = 0;
  ClaimFloor floor_;
  std::optional<long long> floor_sequence_;  // oid of relay.outbox's id sequence, once read
  // When the last successful claim_deliveries started (taken just before its statement).
  std::optional<std::chrono::steady_clock::time_point> last_delivery_claim_;
};

}  // namespace relay::store
