#include "relay/pipeline/row_assembler.h"

#include "relay/common/check.h"

namespace relay::pipeline {

void RowAssembler::release(std::map<std::int64_t, Row>::iterator it,
                           std::vector<model::OutboxOutcome>& ready) {
  ready.push_back(std::move(it->second.outcome));
  rows_.erase(it);
}

void RowAssembler::add(TaskResult&& result, std::vector<model::OutboxOutcome>& ready) {
  RELAY_CHECK(result.delivery_id == 0, "a relay.delivery part has no row to assemble");
  const std::int64_t id = result.outbox_id;
  auto [it, inserted] = rows_.try_emplace(id);
  Row& row = it->second;
  if (inserted) {
    row.key = result.key;
    row.parts_total = result.parts_total;
    row.outcome.outbox_id = id;
    if (row.key) by_key_[*row.key].emplace(result.handed_out, id);
  }
  row.outcome.parts.push_back(std::move(result.part));
  if (!row.complete()) return;
  if (!row.key) {
    release(it, ready);
    return;
  }
  // Release the key's rows from its oldest on, up to the first that still waits for parts.
  auto key_it = by_key_.find(*row.key);
  std::map<std::uint64_t, std::int64_t>& ids = key_it->second;
  while (!ids.empty()) {
    auto oldest = rows_.find(ids.begin()->second);
    if (!oldest->second.complete()) break;
    ids.erase(ids.begin());
    release(oldest, ready);
  }
  if (ids.empty()) by_key_.erase(key_it);
}

}  // namespace relay::pipeline
