#pragma once
// InFlightCredit: how many claimed items (outbox rows and relay.delivery rows) this relay may hold
// at once, claimed and not yet recorded. It bounds every queue behind the claimer, so memory stays
// flat whatever the backlog. The claimer takes credit for what a claim returned; the recorder
// gives it back once the outcomes are written, and that wakes the claimer if it was out of credit.
// Thread-safe.

#include <atomic>
#include <functional>
#include <utility>

#include "relay/common/check.h"

namespace relay::pipeline {

class InFlightCredit {
 public:
  // `on_room` is called (from give_back's thread) when credit frees up after running out.
  InFlightCredit(int bound, std::function<void()> on_room)
      : bound_(bound), on_room_(std::move(on_room)) {}
  InFlightCredit(const InFlightCredit&) = delete;
  InFlightCredit& operator=(const InFlightCredit&) = delete;

  int bound() const { return bound_; }
  int used() const { return used_.load(); }
  int room() const { return bound_ - used_.load(); }
  bool exhausted() const { return room() <= 0; }

  // REQUIRES: 0 <= n <= room(). Only the claimer takes, so room() cannot shrink between its check
  // and this call.
  void take(int n) {
    const int before = used_.fetch_add(n);
    RELAY_CHECK(n >= 0 && before + n <= bound_, "in-flight credit overdrawn");
  }
  // Returns n items' credit. If the claimer may be waiting for it (credit had run out), wakes it:
  // a claimer that saw no room before this call sees this wake-up after it.
  void give_back(int n) {
    const int before = used_.fetch_sub(n);
    RELAY_CHECK(n >= 0 && before - n >= 0, "in-flight credit returned twice");
    if (before >= bound_ && n > 0 && on_room_) on_room_();
  }

 private:
  const int bound_;
  const std::function<void()> on_room_;
  std::atomic<int> used_{0};
};

}  // namespace relay::pipeline
