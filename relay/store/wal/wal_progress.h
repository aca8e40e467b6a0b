#pragma once
// WalProgress: which stream position the WAL source may confirm to PostgreSQL. A transaction is
// done when it has committed (its Commit message arrived) and every one of its outbox events has
// an outcome recorded; the confirmed position is the end of the longest run of done transactions
// from the oldest one on, so a restart replays nothing that is done except what comes after a
// transaction still in flight. With no transaction pending, a keepalive's position (everything the
// server sent, none of it ours) is confirmed too, so an idle outbox does not pin the WAL that the
// rest of the cluster writes. Pure bookkeeping, not thread-safe: the WAL source holds its lock.

#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>

namespace relay::store::wal {

using Lsn = std::uint64_t;

class WalProgress {
 public:
  using Txn = std::uint64_t;  // a transaction's number in this process; never reused

  // A Begin message: returns the number its events and Commit refer to. `commit_time` is the
  // transaction's commit time as the message gives it (any clock; only reported back).
  Txn begin(std::int64_t commit_time = 0);
  // One more event of `txn` waits for its outcome.
  void add_event(Txn txn);
  // An event of `txn` has its outcome (or needs none). Unknown numbers (from a stream session that
  // restart() dropped) are ignored.
  void event_done(Txn txn);
  // The Commit message of `txn`: the position after it is `end_lsn`.
  void commit(Txn txn, Lsn end_lsn);
  // A keepalive: the server has sent everything up to `wal_end`.
  void keepalive(Lsn wal_end);
  // A new stream session starts: the server sends every transaction not confirmed again, so the
  // ones pending here are forgotten (their events' outcomes are then ignored).
  void restart();

  // The position to report as flushed: only ever moves forward.
  Lsn confirmed();
  // Transactions begun and not yet done.
  std::size_t pending() const { return txns_.size(); }
  // The commit time of the oldest transaction not yet done, if any: how far behind relay is.
  std::optional<std::int64_t> oldest_pending_commit_time() const;

 private:
  struct Pending {
    long long outstanding = 0;
    bool committed = false;
    Lsn end_lsn = 0;
    std::int64_t commit_time = 0;
  };
  Pending* find(Txn txn);

  std::deque<Pending> txns_;  // txns_[i] is number first_ + i
  Txn first_ = 1;             // the number of txns_.front()
  Txn next_ = 1;
  Lsn confirmed_ = 0;
  Lsn idle_at_ = 0;  // the last keepalive's position
};

}  // namespace relay::store::wal
