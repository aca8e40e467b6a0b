#include "relay/store/wal/wal_progress.h"

#include <algorithm>

namespace relay::store::wal {

WalProgress::Txn WalProgress::begin(std::int64_t commit_time) {
  if (txns_.empty()) first_ = next_;
  txns_.push_back(Pending{.commit_time = commit_time});
  return next_++;
}

std::optional<std::int64_t> WalProgress::oldest_pending_commit_time() const {
  if (txns_.empty()) return std::nullopt;
  return txns_.front().commit_time;
}

WalProgress::Pending* WalProgress::find(Txn txn) {
  if (txns_.empty() || txn < first_ || txn >= first_ + txns_.size()) return nullptr;
  return &txns_[txn - first_];
}

void WalProgress::add_event(Txn txn) {
  if (Pending* p = find(txn)) ++p->outstanding;
}

void WalProgress::event_done(Txn txn) {
  if (Pending* p = find(txn)) --p->outstanding;
}

void WalProgress::commit(Txn txn, Lsn end_lsn) {
  if (Pending* p = find(txn)) {
    p->committed = true;
    p->end_lsn = end_lsn;
  }
}

void WalProgress::keepalive(Lsn wal_end) { idle_at_ = std::max(idle_at_, wal_end); }

void WalProgress::restart() {
  txns_.clear();
  first_ = next_;
  idle_at_ = 0;
}

Lsn WalProgress::confirmed() {
  while (!txns_.empty() && txns_.front().committed && txns_.front().outstanding <= 0) {
    confirmed_ = std::max(confirmed_, txns_.front().end_lsn);
    txns_.pop_front();
    ++first_;
  }
  // The keepalive position covers only what came before it: with nothing pending, that is
  // everything this session has read.
  if (txns_.empty()) confirmed_ = std::max(confirmed_, idle_at_);
  return confirmed_;
}

}  // namespace relay::store::wal
