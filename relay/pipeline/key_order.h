#pragma once
// KeyOrder: the one place in C++ that decides what a key may send next, for one lane. Per-key order
// is kept in two halves. The source hands out a key's events in outbox order and marks an event
// `held` while an earlier one is pending in the store (the claim SQL); every event of a key goes to
// the same lane (the router). Within one claim, KeyOrder holds a key back once one of its events
// did not get through, so the later ones are deferred behind it instead of overtaking it; the store
// hands the key on when that event leaves (outcome_store's due_if_first). Lane thread only.

#include <cstdint>
#include <string>
#include <unordered_map>

#include "relay/model/modes.h"
#include "relay/model/work_items.h"
#include "relay/pipeline/task.h"

namespace relay::pipeline {

class KeyOrder {
 public:
  KeyOrder(model::Ordering ordering, model::OnDeadLetter on_dead_letter)
      : ordering_(ordering), on_dead_letter_(on_dead_letter) {}

  // True when `task` must wait behind an earlier event of its key: the source said so, or an
  // earlier event of the same claim did not get through. Its key stays held.
  bool must_wait(const Task& task);
  // After `task` was settled with `part` (sent or not): unless `part` lets the key's next event go
  // (delivered, or dead-lettered under on_dead_letter: skip), the key is held for the rest of the
  // task's claim.
  void settled(const Task& task, const model::PartOutcome& part);

 private:
  bool orders(const Task& task) const;

  const model::Ordering ordering_;
  const model::OnDeadLetter on_dead_letter_;
  // Keys held back, with the claim they are held in (a later claim starts afresh: by then the
  // source knows what is pending and marks the events `held`).
  std::unordered_map<std::string, std::uint64_t> held_;
};

}  // namespace relay::pipeline
