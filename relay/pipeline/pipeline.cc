#include "relay/pipeline/pipeline.h"

#include <algorithm>

#include "relay/common/check.h"
#include "relay/pipeline/lane.h"

namespace relay::pipeline {

Pipeline::Pipeline(const config::Config& config, std::string owner, Clock& clock,
                   model::WorkSource& source, DispatchStats& stats)
    : config_(config),
      clock_(clock),
      owner_(std::move(owner)),
      stats_(stats),
      source_(source),
      credit_(2 * config.source.batch_size, [this] { source_.wake(); }),
      // Room for every part of every item in flight: pushing a result never blocks a lane for long.
      results_(static_cast<size_t>(credit_.bound()) *
                   std::max<size_t>(1, config.subscriptions.size()) +
               1) {}

Result<std::unique_ptr<Pipeline>> Pipeline::create(const config::Config& config, std::string owner,
                                                   Clock& clock, model::WorkSource& source,
                                                   model::OutcomeSink& sink,
                                                   const SenderFactory& make_sender,
                                                   DispatchStats& stats) {
  std::unique_ptr<Pipeline> p(new Pipeline(config, std::move(owner), clock, source, stats));
  const size_t queue_capacity = static_cast<size_t>(p->credit_.bound()) + 1;
  for (const auto& sub_config : p->config_.subscriptions) {
    auto sub = std::make_unique<Subscription>(sub_config, clock, stats);
    for (int i = 0; i < sub_config.max_in_flight; ++i) {
      auto sender = make_sender(sub_config);
      if (!sender) return sender.error();
      sub->lanes.push_back(std::make_unique<Lane>(queue_capacity, std::move(*sender), sub_config));
    }
    p->subscriptions_.push_back(std::move(sub));
  }
  Pipeline* self = p.get();
  auto record = [self](TaskResult&& r) { self->record(std::move(r)); };
  p->router_ = std::make_unique<Router>(p->config_.subscriptions, p->subscriptions_, record);
  p->claimer_ = std::make_unique<Claimer>(p->config_.source, clock, source, p->credit_, *p->router_,
                                          p->subscriptions_, stats, p->counters_);
  p->recorder_ =
      std::make_unique<Recorder>(sink, source, p->results_, p->credit_, p->counters_, stats, clock,
                                 [self] { return self->claimer_->parked(); });
  return p;
}

Pipeline::~Pipeline() {
  if (started_ && !shut_down_) (void)shutdown(clock_.now(), clock_.now());
}

void Pipeline::record(TaskResult&& result) {
  std::stop_source never;
  RELAY_CHECK(results_.push(result, never.get_token()), "results queue closed while lanes run");
}

void Pipeline::start() {
  RELAY_CHECK(!started_, "Pipeline::start() called twice");
  started_ = true;
  const LaneContext context{.clock = clock_,
                            .stats = stats_,
                            .drain = drain_,
                            .credit = credit_,
                            .max_payload_bytes = config_.limits.max_payload_bytes,
                            .record = [this](TaskResult&& r) { record(std::move(r)); }};
  for (auto& sub : subscriptions_) {
    for (auto& lane : sub->lanes) {
      Subscription* s = sub.get();
      Lane* l = lane.get();
      l->thread = std::jthread(
          [s, l, context](std::stop_token st) { run_lane(*s, *l, context, std::move(st)); });
    }
  }
  recorder_thread_ = std::jthread([this](std::stop_token st) { recorder_->run(std::move(st)); });
  claimer_thread_ = std::jthread([this](std::stop_token st) { claimer_->run(std::move(st)); });
  log_.info("started",
            {{"owner", owner_}, {"subscriptions", std::to_string(subscriptions_.size())}});
}

PipelineStatus Pipeline::status() const {
  PipelineStatus st;
  st.owner = owner_;
  st.database_ok = claimer_->database_ok();
  st.source_heartbeat = claimer_->heartbeat();
  for (const auto& s : subscriptions_) st.subscriptions.push_back(s->status());
  return st;
}

Status Pipeline::shutdown(Clock::TimePoint drain_deadline, Clock::TimePoint final_deadline) {
  if (!started_ || shut_down_) return {};
  shut_down_ = true;
  drain_.draining = true;

  // 1. Stop claiming.
  claimer_thread_.request_stop();
  if (claimer_thread_.joinable()) claimer_thread_.join();

  // 2. Lanes finish the request they are sending; queued tasks come back aborted.
  drain_.stop.request_stop();
  for (auto& s : subscriptions_) {
    for (auto& lane : s->lanes) lane->queue.close();
  }
  // Wait for lanes up to the deadline; then abort what is still on the wire.
  std::jthread watchdog([this, drain_deadline](std::stop_token st) {
    if (clock_.sleep_until(drain_deadline, st)) {
      drain_.hard_stop = true;
      for (auto& s : subscriptions_) {
        for (auto& lane : s->lanes) lane->sender->stop();
      }
    }
  });
  for (auto& s : subscriptions_) {
    for (auto& lane : s->lanes) {
      if (lane->thread.joinable()) lane->thread.join();
    }
  }
  watchdog.request_stop();
  watchdog.join();

  // 3. Record every outcome; a database that stays down past the final deadline is given up on.
  results_.close();
  std::jthread recorder_watchdog([this, final_deadline](std::stop_token st) {
    if (clock_.sleep_until(final_deadline, st)) recorder_thread_.request_stop();
  });
  if (recorder_thread_.joinable()) recorder_thread_.join();
  recorder_watchdog.request_stop();
  recorder_watchdog.join();

  // 4. Release what this relay still holds (e.g. outcomes that could not be recorded).
  Status released = source_.release_all();
  log_.info("stopped", {{"delivered", std::to_string(counters_.delivered.load())},
                        {"dead_lettered", std::to_string(counters_.dead_lettered.load())}});
  if (recorder_->gave_up())
    return Error{ErrorCode::kUnavailable, "some outcomes could not be recorded"};
  return released;
}

}  // namespace relay::pipeline
