#pragma once
// Exponential backoff with full jitter: the delay before retry n (n = 1 after the first failure)
// is uniform in [0, min(max_backoff, initial_backoff * 2^(n-1))]. Full jitter spreads a burst of
// failures so a recovering consumer is not hit by a synchronized retry storm.

#include <cstdint>
#include <random>

#include "relay/common/duration.h"

namespace relay {

struct BackoffOptions {
  Millis initial_backoff{500};
  Millis max_backoff{600'000};
};

// The cap (upper bound of the jitter range) for retry number `retry` (>= 1).
Millis backoff_ceiling(const BackoffOptions& opts, int retry);

// Thread-compatible: one Backoff per thread, or guard it.
class Backoff {
 public:
  explicit Backoff(BackoffOptions opts, std::uint64_t seed = std::random_device{}())
      : opts_(opts), rng_(seed) {}
  // A delay in [0, backoff_ceiling(retry)].
  Millis next_delay(int retry);

 private:
  BackoffOptions opts_;
  std::mt19937_64 rng_;
};

}  // namespace relay
