#pragma once
// How the claimer and the recorder wait out a database outage: 100 ms, doubling to 5 s. One rule
// for both, so an outage costs the database the same few reconnect attempts from either thread.

#include "relay/common/backoff.h"
#include "relay/common/duration.h"

namespace relay::pipeline {

// The wait after the `failures`-th failure in a row (>= 1).
inline Millis database_retry_delay(int failures) {
  return backoff_ceiling({.initial_backoff = Millis(100), .max_backoff = Millis(5000)}, failures);
}

}  // namespace relay::pipeline
