#pragma once
// Drain: how the pipeline tells its lanes that shutdown has begun. Set by Pipeline::shutdown(),
// read by every lane. Thread-safe.

#include <atomic>
#include <stop_token>

namespace relay::pipeline {

struct Drain {
  std::atomic<bool> draining{false};   // start no new attempt: settle what comes as aborted
  std::atomic<bool> hard_stop{false};  // the drain deadline passed: requests on the wire were cut
  std::stop_source stop;  // requested with `draining`: ends waits for a token or for a batch
};

}  // namespace relay::pipeline
