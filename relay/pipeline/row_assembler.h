#pragma once
// RowAssembler: gathers the parts of each claimed outbox row (one per matching subscription) into
// the row's outcome, and hands out complete rows of a key in outbox order. A complete row is held
// back while an earlier row of its key still waits for parts: recorded first, the later row's
// deferred part would find no predecessor in relay.delivery (the earlier one is still in
// relay.outbox) and the store's hand-over would make it due at once, ahead of the earlier event.
// The recorder's thread only.

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "relay/model/work_items.h"
#include "relay/pipeline/task.h"

namespace relay::pipeline {

class RowAssembler {
 public:
  // Adds one part of outbox row `result.outbox_id` (REQUIRES: result.delivery_id == 0). Appends to
  // `ready` the rows this completes or releases, each key's in id order.
  void add(TaskResult&& result, std::vector<model::OutboxOutcome>& ready);
  // Rows that are incomplete or held back.
  size_t pending() const { return rows_.size(); }

 private:
  struct Row {
    std::optional<std::string> key;
    int parts_total = 1;
    model::OutboxOutcome outcome;
    bool complete() const { return static_cast<int>(outcome.parts.size()) >= parts_total; }
  };
  void release(std::map<std::int64_t, Row>::iterator it, std::vector<model::OutboxOutcome>& ready);

  std::map<std::int64_t, Row> rows_;                                // by outbox id
  std::unordered_map<std::string, std::set<std::int64_t>> by_key_;  // ids in rows_, by key
};

}  // namespace relay::pipeline
