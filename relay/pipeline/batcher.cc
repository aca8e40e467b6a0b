#include "relay/pipeline/batcher.h"

#include <algorithm>
#include <utility>

namespace relay::pipeline {

void LaneBell::ring() {
  std::lock_guard lock(mu_);
  rung_ = true;
  if (sleeper_ != nullptr) sleeper_->request_stop();
}

// GCC 12 at -O2 with the sanitizers warns that a default-constructed std::stop_source "may be used
// uninitialized": its constructor passes *this to a member's constructor, which ignores it (a
// false positive in libstdc++'s <stop_token>, not in this code). Silenced for this function only.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
void LaneBell::wait_until(Clock& clock, Clock::TimePoint deadline, std::stop_token stop,
                          std::stop_token drain) {
  std::stop_source wake;
  {
    std::lock_guard lock(mu_);
    if (rung_) {
      rung_ = false;
      return;
    }
    sleeper_ = &wake;
  }
  {
    std::stop_callback on_stop(stop, [&wake] { wake.request_stop(); });
    std::stop_callback on_drain(drain, [&wake] { wake.request_stop(); });
    (void)clock.sleep_until(deadline, wake.get_token());
  }
  std::lock_guard lock(mu_);
  sleeper_ = nullptr;
  rung_ = false;
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

// Attribute names, punctuation, time and attempt; text attributes as JSON strings (6x: every byte
// could need a \u00XX escape); the app headers as a JSON string holding a JSON object (2x: its
// quotes and backslashes get escaped); the payload inline or as base64 (4/3). The protobuf encoding
// is never larger than the JSON one.
std::int64_t batch_bytes_bound(const Event& e, const std::string& subscription) {
  constexpr std::int64_t kFixed = 256;
  const size_t text = e.event_id.size() + e.topic.size() + (e.key ? e.key->size() : 0) +
                      e.content_type.size() + subscription.size();
  const size_t bound =
      kFixed + 6 * text + 2 * e.headers_json.size() + (e.payload.size() + 2) / 3 * 4;
  return static_cast<std::int64_t>(bound);
}

Batcher::Batcher(const config::BatchConfig& limits, std::string subscription, Clock& clock)
    : limits_(limits), subscription_(std::move(subscription)), clock_(clock) {}

std::optional<Batcher::Batch> Batcher::next(BoundedQueue<Task>& queue, LaneBell& bell,
                                            const std::function<bool(const Task&)>& may_send,
                                            const std::function<bool()>& may_linger,
                                            std::stop_token stop, std::stop_token drain) {
  using Close = DispatchStats::BatchClose;
  const size_t max_events = static_cast<size_t>(std::max(1, limits_.max_events));
  constexpr std::int64_t kBodyOverhead = 2;  // the array brackets (JSON) around the events
  Batch batch;
  std::int64_t bytes = kBodyOverhead;
  // The first event always goes, even one bigger than max_bytes alone (a batch of one).
  while (batch.tasks.empty()) {
    std::optional<Task> first = carried_ ? std::exchange(carried_, std::nullopt) : queue.pop(stop);
    if (!first) return std::nullopt;
    if (!may_send(*first)) continue;
    bytes += batch_bytes_bound(*first->event, subscription_);
    batch.tasks.push_back(std::move(*first));
  }
  const Clock::TimePoint deadline = clock_.now() + limits_.linger;
  batch.closed_by = Close::kLinger;
  while (true) {
    if (batch.tasks.size() >= max_events) {
      batch.closed_by = Close::kMaxEvents;
      break;
    }
    std::optional<Task> next = queue.try_pop();
    if (!next) {
      if (stop.stop_requested() || !may_linger() || clock_.now() >= deadline) break;
      bell.wait_until(clock_, deadline, stop, drain);
      continue;
    }
    if (!may_send(*next)) continue;
    const std::int64_t more = batch_bytes_bound(*next->event, subscription_);
    if (bytes + more > limits_.max_bytes) {
      carried_ = std::move(next);  // first of the next batch (checked again then)
      batch.closed_by = Close::kMaxBytes;
      break;
    }
    bytes += more;
    batch.tasks.push_back(std::move(*next));
  }
  return batch;
}

}  // namespace relay::pipeline
