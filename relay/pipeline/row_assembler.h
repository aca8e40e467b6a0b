#pragma once
// RowAssembler: gathers the parts of each claimed outbox row (one per matching subscription) into
// the row's outcome, and hands out complete rows of a key in the order the source handed them out
// (TaskResult::handed_out: id order from the table source, commit order from the WAL source). A
// complete row is held
// back while an earlier row of its key still waits for parts: recorded first, the later row's
// deferred part would find no predecessor in relay.delivery (the earlier one is still in
// relay.outbox) and the store's hand-over would make it due at once, ahead of the earlier event.
// The recorder's thread only.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "relay/model/work_items.h"
#include "relay/pipeline/task.h"

namespace relay::pipeline {

class RowAssembler {
 public:
  // Adds one part of outbox row `result.outbox_id` (REQUIRES: result.delivery_id == 0). Appends to
  // `ready` the rows this completes or releases, each key's in hand-out order.
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

  std::map<std::int64_t, Row> rows_;  // by outbox id
  // The ids in rows_ of each key, by hand-out order.
  std::unordered_map<std::string, std::map<std::uint64_t, std::int64_t>> by_key_;
};

}  // namespace relay::pipeline
