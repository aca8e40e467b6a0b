#pragma once
// HeldClaims: the outbox and relay.delivery ids this relay has claimed and whose outcome is not yet
// written. The source adds what each claim returned; the recorder removes what it wrote (or gave
// up writing). After a claim whose commit is in doubt, everything leased to this relay but not
// held here is stranded work, and the source releases it (PgOutboxSource::release_unheld).
// Thread-safe.

#include <cstdint>
#include <mutex>
#include <unordered_set>
#include <vector>

namespace relay::pipeline {

class HeldClaims {
 public:
  void add_outbox(std::int64_t id) {
    std::lock_guard lock(mu_);
    outbox_.insert(id);
  }
  void add_delivery(std::int64_t id) {
    std::lock_guard lock(mu_);
    deliveries_.insert(id);
  }
  // REQUIRES: the outcomes of these ids are committed (or will never be): removing an id before
  // that would let release_unheld() free a row whose outcome is still on its way.
  void remove(const std::vector<std::int64_t>& outbox_ids,
              const std::vector<std::int64_t>& delivery_ids) {
    std::lock_guard lock(mu_);
    for (auto id : outbox_ids) outbox_.erase(id);
    for (auto id : delivery_ids) deliveries_.erase(id);
  }
  struct Snapshot {
    std::vector<std::int64_t> outbox;
    std::vector<std::int64_t> deliveries;
  };
  Snapshot snapshot() const {
    std::lock_guard lock(mu_);
    return {{outbox_.begin(), outbox_.end()}, {deliveries_.begin(), deliveries_.end()}};
  }

 private:
  mutable std::mutex mu_;
  std::unordered_set<std::int64_t> outbox_;      // guarded by mu_
  std::unordered_set<std::int64_t> deliveries_;  // guarded by mu_
};

}  // namespace relay::pipeline
