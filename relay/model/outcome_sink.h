#pragma once
// OutcomeSink: where the pipeline's recorder writes what became of claimed work. One caller thread.
// The table sink (store/outcome_store.h) is the production implementation; tests use an in-memory
// fake (tests/support/fake_store.h).

#include "relay/common/result.h"
#include "relay/model/work_items.h"

namespace relay::model {

class OutcomeSink {
 public:
  virtual ~OutcomeSink() = default;
  // All or nothing. On kUnavailable/kConflict/kInDoubt nothing is known to be written and the
  // caller retries the same batch: recording a batch twice must change nothing the second time.
  // A batch for work whose lease this relay lost changes nothing.
  virtual Status record(const OutcomeBatch& batch) = 0;
};

}  // namespace relay::model
