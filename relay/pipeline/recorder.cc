#include "relay/pipeline/recorder.h"

#include <string>
#include <vector>

#include "relay/pipeline/database_outage.h"
#include "relay/pipeline/row_assembler.h"

namespace relay::pipeline {
namespace {

// Most outcomes are written in one go; a batch is capped so one transaction stays short.
constexpr size_t kMaxRecordBatch = 1000;

using Kind = model::PartOutcome::Kind;

}  // namespace

Recorder::Recorder(model::OutcomeSink& sink, model::WorkSource& source,
                   BoundedQueue<TaskResult>& results, InFlightCredit& credit,
                   PipelineCounters& counters, DispatchStats& stats, Clock& clock,
                   std::function<bool()> claimer_parked)
    : sink_(sink),
      source_(source),
      results_(results),
      credit_(credit),
      counters_(counters),
      stats_(stats),
      clock_(clock),
      claimer_parked_(std::move(claimer_parked)) {}

void Recorder::run(std::stop_token stop) {
  // A row is recorded once all its parts are in, and after the earlier rows of its key.
  RowAssembler rows;
  while (auto first = results_.pop({})) {
    model::OutcomeBatch batch;
    auto take = [&](TaskResult&& r) {
      if (r.delivery_id != 0) {
        batch.deliveries.push_back({r.delivery_id, std::move(r.part)});
      } else {
        rows.add(std::move(r), batch.outbox);
      }
    };
    take(std::move(*first));
    while (batch.size() < kMaxRecordBatch) {
      auto more = results_.try_pop();
      if (!more) break;
      take(std::move(*more));
    }
    if (batch.empty()) continue;

    const bool written = write(batch, stop);
    if (written) {
      count_and_log(batch);
      source_.recorded(batch);
    }

    // Wake the claimer when it may be waiting for this: a retry is now scheduled that may fall due
    // before its current sleep ends, or it is parked and an outcome may have freed a key whose
    // next event waits (nothing else announces that, and it must not wait for the poll). Running
    // out of credit is the credit's to announce (give_back). A claimer that is not parked claims
    // again within its busy poll anyway; one that parks after this load claims once more after
    // setting the flag, and sees this batch.
    bool scheduled = false;
    bool settled = false;
    auto note = [&](const model::PartOutcome& p) {
      scheduled = scheduled || p.kind == Kind::kRetry || p.kind == Kind::kDeferred;
      settled = settled || p.kind == Kind::kDelivered || p.kind == Kind::kDeadLetter;
    };
    for (const auto& o : batch.outbox) {
      for (const auto& p : o.parts) note(p);
    }
    for (const auto& d : batch.deliveries) note(d.part);
    // Written (or given up: their leases will expire): no longer ours to keep.
    std::vector<std::int64_t> outbox_ids, delivery_ids;
    for (const auto& o : batch.outbox) outbox_ids.push_back(o.outbox_id);
    for (const auto& d : batch.deliveries) delivery_ids.push_back(d.delivery_id);
    credit_.give_back(outbox_ids, delivery_ids);
    if (scheduled || (settled && claimer_parked_())) source_.wake();
  }
}

bool Recorder::write(const model::OutcomeBatch& batch, std::stop_token stop) {
  while (true) {
    auto r = sink_.record(batch);
    if (r) break;
    if (db_failures_ == 0) log_.warn("cannot record outcomes", {{"error", r.error().message}});
    stats_.database_error("record");
    ++db_failures_;
    if (!clock_.sleep_until(clock_.now() + database_retry_delay(db_failures_), stop)) {
      gave_up_ = true;
      log_.error(
          "gave up recording outcomes; their leases will expire and they will be delivered again",
          {{"items", std::to_string(batch.size())}});
      return false;
    }
  }
  if (db_failures_ > 0) {
    log_.info("recording outcomes again");
    stats_.database_reconnect();
    db_failures_ = 0;
  }
  return true;
}

void Recorder::count_and_log(const model::OutcomeBatch& batch) {
  auto count = [&](const model::PartOutcome& p) {
    switch (p.kind) {
      case Kind::kDelivered:
        ++counters_.delivered;
        stats_.outcome(p.subscription, DispatchStats::Outcome::kDelivered);
        break;
      case Kind::kRetry:
        ++counters_.retries_scheduled;
        stats_.outcome(p.subscription, DispatchStats::Outcome::kRetryScheduled);
        break;
      case Kind::kDeadLetter:
        ++counters_.dead_lettered;
        stats_.outcome(p.subscription, DispatchStats::Outcome::kDeadLettered);
        stats_.dead_letter_created(p.subscription, p.reason);
        break;
      case Kind::kAborted:
      case Kind::kDeferred:
        break;
    }
  };
  for (const auto& o : batch.outbox) {
    for (const auto& p : o.parts) {
      count(p);
      if (p.kind == Kind::kDeadLetter) {
        log_.warn("dead-lettered", {{"outbox_id", std::to_string(o.outbox_id)},
                                    {"subscription", p.subscription},
                                    {"reason", std::string(model::name_of(p.reason))},
                                    {"attempts", std::to_string(p.attempts)}});
      }
    }
  }
  for (const auto& d : batch.deliveries) {
    count(d.part);
    if (d.part.kind == Kind::kDeadLetter) {
      log_.warn("dead-lettered", {{"delivery_id", std::to_string(d.delivery_id)},
                                  {"subscription", d.part.subscription},
                                  {"reason", std::string(model::name_of(d.part.reason))},
                                  {"attempts", std::to_string(d.part.attempts)}});
    }
  }
}

}  // namespace relay::pipeline
