#pragma once
// InFlightCredit: the items (outbox rows and relay.delivery rows) this relay has claimed and whose
// outcome is not yet written, and their bound. The bound caps every queue behind the claimer, so
// memory stays flat whatever the backlog. The claimer takes credit for what a claim returned; the
// recorder gives it back once the outcomes are written (or given up), which wakes the claimer if it
// had run out. The ids serve the in-doubt case: after a claim whose commit is unknown, everything
// leased to this relay but not held here is stranded, and the claimer releases it
// (WorkSource::release_unheld). Thread-safe.

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <unordered_set>
#include <vector>

namespace relay::pipeline {

class InFlightCredit {
 public:
  // `on_room` is called (from give_back's thread) when credit frees up after running out.
  InFlightCredit(int bound, std::function<void()> on_room);
  InFlightCredit(const InFlightCredit&) = delete;
  InFlightCredit& operator=(const InFlightCredit&) = delete;

  int bound() const { return bound_; }
  int used() const { return used_.load(); }
  int room() const { return bound_ - used_.load(); }
  bool exhausted() const { return room() <= 0; }

  // REQUIRES: their number is at most room(). Only the claimer takes, so room() cannot shrink
  // between its check and this call. An id may be held twice (a claim that took back a row whose
  // lease ran out while it was in flight): each take is given back once.
  void take(const std::vector<std::int64_t>& outbox_ids,
            const std::vector<std::int64_t>& delivery_ids);
  // REQUIRES: the outcomes of these ids are committed (or will never be): giving an id back before
  // that would let release_unheld() free a row whose outcome is still on its way. If the claimer
  // may be waiting for room (credit had run out), wakes it: a claimer that saw no room before this
  // call sees this wake-up after it.
  void give_back(const std::vector<std::int64_t>& outbox_ids,
                 const std::vector<std::int64_t>& delivery_ids);

  struct Held {
    std::vector<std::int64_t> outbox;
    std::vector<std::int64_t> deliveries;
  };
  Held held() const;

 private:
  const int bound_;
  const std::function<void()> on_room_;
  std::atomic<int> used_{0};  // the size of the two sets, readable without the lock
  mutable std::mutex mu_;
  std::unordered_multiset<std::int64_t> outbox_;      // guarded by mu_
  std::unordered_multiset<std::int64_t> deliveries_;  // guarded by mu_
};

}  // namespace relay::pipeline
