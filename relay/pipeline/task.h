#pragma once
// Task: one (event, subscription) part on its way from the router to a lane, and TaskResult: what
// became of it, on its way from the lane to the recorder. Plain data.

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "relay/common/event.h"
#include "relay/model/work_items.h"

namespace relay::pipeline {

struct Task {
  std::shared_ptr<const Event> event;  // shared by the parts of a fanned-out event
  std::int64_t delivery_id = 0;        // 0: a part of a claimed outbox row
  int parts_total = 1;                 // parts of the outbox row (the recorder waits for all)
  int attempts_before = 0;
  std::chrono::system_clock::time_point first_failed_at{};
  std::uint64_t claim = 0;  // which claim it came from (KeyOrder holds a key within one claim)
  // Outbox parts only: the event's place in the order the source handed events out (the router
  // counts them). That is the key's order: outbox id order from the table source, commit order
  // from the WAL source, where ids need not follow commits.
  std::uint64_t handed_out = 0;
  bool held = false;  // the source says an earlier event of its key is still pending
};

struct TaskResult {
  std::int64_t outbox_id = 0;
  std::uint64_t handed_out = 0;  // Task::handed_out: a key's rows are recorded in this order
  std::int64_t delivery_id = 0;
  int parts_total = 1;
  std::optional<std::string> key;  // the event's (the recorder records a key's rows in order)
  model::PartOutcome part;
};

inline TaskResult result_of(const Task& task, const std::string& subscription,
                            model::PartOutcome part) {
  TaskResult r;
  r.outbox_id = task.event->outbox_id;
  r.handed_out = task.handed_out;
  r.delivery_id = task.delivery_id;
  r.parts_total = task.parts_total;
  r.key = task.event->key;
  r.part = std::move(part);
  r.part.subscription = subscription;
  return r;
}

}  // namespace relay::pipeline
