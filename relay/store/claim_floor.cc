#include "relay/store/claim_floor.h"

#include <algorithm>
#include <limits>

namespace relay::store {

bool ClaimFloor::round_due(TimePoint now) const {
  return enabled_ && (!last_round_ || now - *last_round_ >= kRoundEvery);
}

const std::vector<std::string>& ClaimFloor::pending_writers() const {
  static const std::vector<std::string> kNone;
  return pending_ ? pending_->writers : kNone;
}

std::optional<std::int64_t> ClaimFloor::probe(const Probe& p, TimePoint now) {
  scan_from_.reset();
  if (!enabled_) return std::nullopt;
  last_round_ = now;
  if (!last_rescan_) last_rescan_ = now;  // the first rounds start from 0 anyway
  if (pending_ && p.pending_ended) {
    final_through_ = std::max(final_through_, pending_->last_id);
    pending_.reset();
  }
  if (p.last_id) {
    if (p.writers.empty()) {
      // Nobody who took an id <= last_id still runs: final now. A pending pair has a lower
      // last_id (the sequence only grows), so it is settled too.
      final_through_ = std::max(final_through_, *p.last_id);
      pending_.reset();
    } else if (!pending_) {
      pending_ = Pending{*p.last_id, p.writers};
    }
    // else: keep the older pair until its writers are gone; replacing it with a newer one on a
    // busy outbox would never settle.
  }
  if (now - *last_rescan_ >= kRescanEvery) {
    last_rescan_ = now;
    scan_from_ = 0;
  } else if (floor_ <= final_through_) {
    // The floor trails what is final: something became final, or the live row it stopped at may
    // be deleted by now.
    scan_from_ = floor_;
  }
  return scan_from_;
}

void ClaimFloor::lowest_live(std::optional<std::int64_t> lowest) {
  if (!scan_from_) return;
  const std::int64_t limit = final_through_ + 1;  // rows above final_through may still appear
  const std::int64_t next =
      std::min(lowest.value_or(std::numeric_limits<std::int64_t>::max()), limit);
  // From the current floor the result never moves down; from a rescan it may (a row found below).
  floor_ = *scan_from_ == 0 ? next : std::max(floor_, next);
  scan_from_.reset();
}

}  // namespace relay::store
