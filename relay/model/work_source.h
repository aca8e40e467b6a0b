#pragma once
// WorkSource: where the pipeline's work comes from. The pipeline's claimer is its only caller (one
// thread), except wake(), which any thread may call. The table source (store/outbox_source.h) is
// the production implementation; tests use an in-memory fake (tests/support/fake_store.h).
//
// Contract every implementation keeps: a claim hands out work under a lease owned by this relay, so
// no other relay works on it until the lease runs out or it is released; an event is handed out
// only when the pipeline may deliver it to some subscription now (per-key order across relays is
// the source's part: ClaimedEvent::held_for names the subscriptions it must not go to yet).

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "relay/common/duration.h"
#include "relay/common/result.h"
#include "relay/model/work_items.h"

namespace relay::model {

class WorkSource {
 public:
  virtual ~WorkSource() = default;

  // Claims up to `limit` due outbox events, in id order. `held_items` is how many items this relay
  // holds now (a hint: the table source widens its scan past them). kUnavailable when the database
  // is away; kInDoubt when the claim may have committed unseen (see release_unheld).
  virtual Result<std::vector<ClaimedEvent>> claim_outbox(int limit, int held_items) = 0;
  // Claims up to `limit` scheduled retries that are due, for the named subscriptions only (the
  // others' breakers are open). Errors as claim_outbox.
  virtual Result<std::vector<ClaimedDelivery>> claim_deliveries(
      int limit, const std::vector<std::string>& subscriptions) = 0;
  // Pushes out the lease of everything this relay holds (it is still working on it).
  virtual Status renew_leases() = 0;
  // Releases everything this relay holds, counting no attempt (shutdown).
  virtual Status release_all() = 0;
  // After a claim that failed in doubt: releases everything leased to this relay except the given
  // outbox and delivery ids, which it still works on. Returns how many it released.
  virtual Result<long long> release_unheld(const std::vector<std::int64_t>& outbox_ids,
                                           const std::vector<std::int64_t>& delivery_ids) = 0;

  // Idle: asks to be woken when new work is committed, for `ttl` (call again before it runs out to
  // stay parked). After park() the caller claims once more before it waits, for work that arrived
  // before the request took effect. A source that always wakes its waiter may do nothing.
  virtual Status park(Millis ttl) = 0;
  // Busy again: new commits need not wake anyone.
  virtual Status unpark() = 0;
  // Time until the earliest known future work (a delayed event or a scheduled retry), if any; 0
  // when some is due now. A scheduled retry that was already due when the last claim_deliveries
  // ran, and that the claim did not hand out, may be left out: it is blocked (behind its key's head
  // or a dead letter, or its subscription was not asked for), and what unblocks it wakes the
  // waiter (an outcome, a dlq replay or drop) or is the caller's to time (a breaker's next probe).
  // So a claim that returned as many rows as asked must be followed by another at once.
  virtual Result<std::optional<Millis>> time_until_next_due() = 0;
  // Blocks until new work is announced, wake() is called, or `timeout` passes. Returns true when
  // woken (announced or wake()), false on timeout. A wake() before the call is not lost: the call
  // returns at once.
  virtual Result<bool> wait_for_work(Millis timeout) = 0;
  // Ends the current or next wait_for_work() early. Thread-safe, never blocks.
  virtual void wake() = 0;

  // The pipeline's recorder calls this (from its own thread) once the sink has committed `batch`.
  // A source that must know when its work is done for good (the WAL source confirms stream
  // positions from it) overrides it; claims with leases need nothing.
  virtual void recorded(const OutcomeBatch& batch) { (void)batch; }
};

}  // namespace relay::model
