#pragma once
// ClaimFloor: the lowest outbox id a claim needs to look at, so that a claim's window scan starts
// past the delivered prefix instead of wading through it. Without it, a snapshot held anywhere in
// the cluster (a long REPEATABLE READ transaction) keeps every deleted row as a dead tuple, and
// each claim's `ORDER BY id LIMIT n` index scan visits all of them again: the drain rate falls
// with every delivered event.
//
// The danger: an id is taken at INSERT, but the row becomes visible at COMMIT, so a row below a
// floor can still appear (a slow writer). A floor is safe only while no transaction that may still
// commit a row below it is running. How this class decides that (the caller runs the statements,
// in this order and each in its own snapshot):
//
//   1. last_id: the outbox sequence's last value (pg_sequence_last_value). With CACHE 1 every id
//      <= last_id has been handed out by then.
//   2. writers: the transactions that hold a lock on that sequence, read AFTER last_id. nextval()
//      locks the sequence until the end of its transaction, BEFORE it hands out a value (PostgreSQL
//      sequence.c, lock_and_open_sequence), so every transaction that took an id <= last_id and
//      may still commit is among them. (A transaction may take an id before it has an xid, so the
//      snapshot's xmin/xmax alone cannot tell; the lock can.)
//   3. Once none of those writers runs any more (a later probe finds none of their virtual
//      transaction ids in pg_locks, and no prepared transaction holds the sequence), every row
//      with id <= last_id is final: committed or aborted. If there were no writers at all, that
//      holds at once.
//   4. A statement started after that sees every such row that was committed and not yet deleted,
//      so the floor may become min(lowest live id >= floor, final_through + 1).
//
// A pending (last_id, writers) pair is kept until its writers are gone; a writer that stays open
// holds the floor where it is (correct, only slower). Every kRescanEvery the floor starts again
// from 0 once (one scan of the dead prefix): a safety net for what the sequence cannot tell,
// e.g. ids an application sets itself or a sequence restarted lower.
//
// The floor is this relay's own: several relays each keep theirs, and nothing depends on another
// relay. Assumes the outbox ids come from its sequence with CACHE 1 (the bigserial default, as
// relay.publish and the column default do); the caller disables the floor otherwise.
//
// Pure logic, no SQL: times are passed in. Not thread-safe: one owner.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "relay/common/duration.h"

namespace relay::store {

class ClaimFloor {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;
  // How often a claim may run a round (three short statements); the floor trails the head by
  // about two rounds' worth of deletions.
  static constexpr Millis kRoundEvery{25};
  static constexpr Millis kRescanEvery{60'000};

  // The lowest id a claim must look at: every row below it is deleted, or was never committed,
  // and no transaction that may still commit one is running. 0 until a round moved it.
  std::int64_t floor() const { return floor_; }
  // Every row with an id <= this is final (committed or aborted). 0 at first.
  std::int64_t final_through() const { return final_through_; }
  bool enabled() const { return enabled_; }
  // The floor stays 0 for good (no sequence, CACHE > 1, no privilege to read it).
  void disable() {
    enabled_ = false;
    floor_ = 0;
  }

  // A round is due: enabled, and kRoundEvery passed since the last one started.
  bool round_due(TimePoint now) const;
  // The virtual transaction ids the next probe must ask about; empty when nothing is pending.
  const std::vector<std::string>& pending_writers() const;

  struct Probe {
    std::optional<std::int64_t> last_id;  // step 1; nullopt before the sequence's first value
    std::vector<std::string> writers;     // step 2, read after last_id
    bool pending_ended = false;           // step 3: none of pending_writers() runs any more
  };
  // Takes a probe (steps 1-3). Returns the id from which the caller must read the lowest live id
  // (step 4, in a statement started after the probe's) and pass it to lowest_live(); nullopt when
  // the floor cannot move (nothing new became final and no rescan is due).
  std::optional<std::int64_t> probe(const Probe& p, TimePoint now);
  // Step 4: `lowest` is the lowest id >= the id probe() returned that the statement saw, nullopt
  // if none.
  void lowest_live(std::optional<std::int64_t> lowest);
  // A round's statement failed: what it would have decided is dropped (the floor stays).
  void round_failed() { scan_from_.reset(); }

 private:
  struct Pending {
    std::int64_t last_id = 0;
    std::vector<std::string> writers;
  };
  bool enabled_ = true;
  std::int64_t floor_ = 0;
  std::int64_t final_through_ = 0;
  std::optional<Pending> pending_;
  std::optional<TimePoint> last_round_;
  std::optional<TimePoint> last_rescan_;
  std::optional<std::int64_t> scan_from_;  // set by probe(), used by lowest_live()
};

}  // namespace relay::store
