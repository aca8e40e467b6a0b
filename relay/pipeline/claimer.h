#pragma once
// The claimer: asks the work source for work and hands it to the router, never holding more than
// its in-flight credit allows. It alternates between two modes.
// - Busy: claim back to back while claims come back full; when a claim is short, look again after
//   kBusyPoll for up to kLinger. The app's commits pay nothing for relay meanwhile.
// - Parked: after kLinger without work, park (the table source asks the outbox trigger to NOTIFY),
//   claim once more to catch what committed before the park took effect, then sleep until the
//   source announces work, the recorder or the credit wakes it, the next scheduled retry or
//   delayed event falls due, or the safety-net poll (source.poll_interval).
// It also renews the leases of what this relay holds, and after a claim whose commit is in doubt
// releases whatever the source leased to us that we do not hold. One thread.

#include <atomic>
#include <cstdint>
#include <memory>
#include <stop_token>
#include <string>
#include <vector>

#include "relay/common/clock.h"
#include "relay/common/log.h"
#include "relay/config/config.h"
#include "relay/model/work_source.h"
#include "relay/pipeline/counters.h"
#include "relay/pipeline/dispatch_stats.h"
#include "relay/pipeline/in_flight_credit.h"
#include "relay/pipeline/router.h"
#include "relay/pipeline/subscription.h"

namespace relay::pipeline {

class Claimer {
 public:
  // Everything must outlive it.
  Claimer(const config::SourceConfig& config, Clock& clock, model::WorkSource& source,
          InFlightCredit& credit, Router& router,
          const std::vector<std::unique_ptr<Subscription>>& subscriptions, DispatchStats& stats,
          PipelineCounters& counters);

  void run(std::stop_token stop);

  // Parked: the claimer sleeps until the source announces work, a wake-up, or its timer. Set before
  // its last claim, so an outcome recorded before the flag is seen set was visible to that claim.
  // Thread-safe.
  bool parked() const { return parked_.load(); }
  // The last database call succeeded. Thread-safe.
  bool database_ok() const { return database_ok_.load(); }
  // The last time the loop went round. Thread-safe.
  Clock::TimePoint heartbeat() const { return heartbeat_.load(); }

 private:
  // Names of the subscriptions that may be sent to now (breaker not holding them back), and the
  // shortest wait until a held-back one may probe.
  std::vector<std::string> sendable_subscriptions(Millis& next_probe) const;
  bool wait_backoff(int failures, std::stop_token stop);

  const config::SourceConfig config_;
  Clock& clock_;
  model::WorkSource& source_;
  InFlightCredit& credit_;
  Router& router_;
  const std::vector<std::unique_ptr<Subscription>>& subscriptions_;
  DispatchStats& stats_;
  PipelineCounters& counters_;
  const Logger log_{"dispatch"};

  std::atomic<bool> parked_{false};
  std::atomic<bool> database_ok_{false};
  std::atomic<Clock::TimePoint> heartbeat_{};
  std::uint64_t claim_seq_ = 0;
};

}  // namespace relay::pipeline
