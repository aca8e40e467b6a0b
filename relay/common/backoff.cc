#include "relay/common/backoff.h"

#include <algorithm>

namespace relay {

Millis backoff_ceiling(const BackoffOptions& opts, int retry) {
  if (retry < 1) retry = 1;
  std::int64_t ceiling = opts.initial_backoff.count();
  const std::int64_t cap = opts.max_backoff.count();
  // Doubling saturates at the cap, so neither a huge retry count nor a huge cap can overflow.
  for (int i = 1; i < retry && ceiling < cap; ++i) ceiling = ceiling > cap / 2 ? cap : ceiling * 2;
  return Millis(std::min(ceiling, cap));
}

Millis Backoff::next_delay(int retry) {
  const auto ceiling = backoff_ceiling(opts_, retry).count();
  std::uniform_int_distribution<std::int64_t> dist(0, ceiling);
  return Millis(dist(rng_));
}

}  // namespace relay
