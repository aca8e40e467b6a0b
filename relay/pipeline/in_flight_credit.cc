#include "relay/pipeline/in_flight_credit.h"

#include <utility>

#include "relay/common/check.h"

namespace relay::pipeline {

InFlightCredit::InFlightCredit(int bound, std::function<void()> on_room)
    : bound_(bound), on_room_(std::move(on_room)) {}

void InFlightCredit::take(const std::vector<std::int64_t>& outbox_ids,
                          const std::vector<std::int64_t>& delivery_ids) {
  const int n = static_cast<int>(outbox_ids.size() + delivery_ids.size());
  {
    std::lock_guard lock(mu_);
    outbox_.insert(outbox_ids.begin(), outbox_ids.end());
    deliveries_.insert(delivery_ids.begin(), delivery_ids.end());
  }
  const int before = used_.fetch_add(n);
  RELAY_CHECK(before + n <= bound_, "in-flight credit overdrawn");
}

void InFlightCredit::give_back(const std::vector<std::int64_t>& outbox_ids,
                               const std::vector<std::int64_t>& delivery_ids) {
  const int n = static_cast<int>(outbox_ids.size() + delivery_ids.size());
  {
    std::lock_guard lock(mu_);
    auto erase_one = [](std::unordered_multiset<std::int64_t>& held, std::int64_t id) {
      auto it = held.find(id);
      RELAY_CHECK(it != held.end(), "in-flight credit given back for an item it does not hold");
      held.erase(it);
    };
    for (auto id : outbox_ids) erase_one(outbox_, id);
    for (auto id : delivery_ids) erase_one(deliveries_, id);
  }
  const int before = used_.fetch_sub(n);
  if (before >= bound_ && n > 0 && on_room_) on_room_();
}

InFlightCredit::Held InFlightCredit::held() const {
  std::lock_guard lock(mu_);
  return {{outbox_.begin(), outbox_.end()}, {deliveries_.begin(), deliveries_.end()}};
}

}  // namespace relay::pipeline
