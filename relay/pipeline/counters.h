#pragma once
// PipelineCounters: what the pipeline did since it started (for logs and tests). Thread-safe.

#include <atomic>

namespace relay::pipeline {

struct PipelineCounters {
  std::atomic<long long> claimed{0};    // items (outbox rows and scheduled retries), by the claimer
  std::atomic<long long> delivered{0};  // parts; these three by the recorder, once written
  std::atomic<long long> retries_scheduled{0};
  std::atomic<long long> dead_lettered{0};
};

}  // namespace relay::pipeline
