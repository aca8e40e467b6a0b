#pragma once
// BoundedQueue<T>: a fixed-capacity MPMC queue. push() blocks while full (that is how
// backpressure travels upstream); both ends give up on a stop request or close(). Thread-safe.

#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <stop_token>

#include "relay/common/check.h"

namespace relay {

template <typename T>
class BoundedQueue {
 public:
  explicit BoundedQueue(size_t capacity) : capacity_(capacity) {
    RELAY_CHECK(capacity > 0, "BoundedQueue capacity must be positive");
  }
  BoundedQueue(const BoundedQueue&) = delete;
  BoundedQueue& operator=(const BoundedQueue&) = delete;

  // Returns false (and drops nothing: `item` is left to the caller) if closed or stopped.
  bool push(T& item, std::stop_token stop) {
    std::unique_lock lock(mu_);
    if (!not_full_.wait(lock, stop, [&] { return closed_ || items_.size() < capacity_; }))
      return false;
    if (closed_) return false;
    items_.push_back(std::move(item));
    not_empty_.notify_one();
    return true;
  }

  // Waits for an item; nullopt once closed and drained, or on a stop request.
  std::optional<T> pop(std::stop_token stop) {
    std::unique_lock lock(mu_);
    if (!not_empty_.wait(lock, stop, [&] { return closed_ || !items_.empty(); }))
      return std::nullopt;
    if (items_.empty()) return std::nullopt;
    T item = std::move(items_.front());
    items_.pop_front();
    not_full_.notify_one();
    return item;
  }

  // Takes what is there without waiting.
  std::optional<T> try_pop() {
    std::lock_guard lock(mu_);
    if (items_.empty()) return std::nullopt;
    T item = std::move(items_.front());
    items_.pop_front();
    not_full_.notify_one();
    return item;
  }

  // After close(), push fails and pop drains what is left.
  void close() {
    std::lock_guard lock(mu_);
    closed_ = true;
    not_empty_.notify_all();
    not_full_.notify_all();
  }

  size_t size() const {
    std::lock_guard lock(mu_);
    return items_.size();
  }
  size_t capacity() const { return capacity_; }

 private:
  const size_t capacity_;
  mutable std::mutex mu_;
  std::condition_variable_any not_full_;
  std::condition_variable_any not_empty_;
  std::deque<T> items_;
  bool closed_ = false;
};

}  // namespace relay
