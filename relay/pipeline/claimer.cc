#include "relay/pipeline/claimer.h"

#include <algorithm>

#include "relay/pipeline/database_outage.h"

namespace relay::pipeline {

Claimer::Claimer(const config::SourceConfig& config, Clock& clock, model::WorkSource& source,
                 InFlightCredit& credit, Router& router,
                 const std::vector<std::unique_ptr<Subscription>>& subscriptions,
                 DispatchStats& stats, PipelineCounters& counters)
    : config_(config),
      clock_(clock),
      source_(source),
      credit_(credit),
      router_(router),
      subscriptions_(subscriptions),
      stats_(stats),
      counters_(counters) {}

// Waits out a database outage (database_outage.h). Returns false on stop.
bool Claimer::wait_backoff(int failures, std::stop_token stop) {
  return clock_.sleep_until(clock_.now() + database_retry_delay(failures), stop);
}

std::vector<std::string> Claimer::sendable_subscriptions(Millis& next_probe) const {
  std::vector<std::string> out;
  next_probe = Millis::max();
  for (const auto& s : subscriptions_) {
    const Millis wait = s->breaker().time_until_probe();
    if (wait == Millis(0)) {
      out.push_back(s->name());
    } else {
      next_probe = std::min(next_probe, wait);
    }
  }
  return out;
}

void Claimer::run(std::stop_token stop) {
  constexpr Millis kBusyPoll{2};
  constexpr Millis kLinger{25};
  const int batch = config_.batch_size;
  const Millis renew_every = config_.lease / 3;
  // A parked row outlives a few polls; a relay that dies stops costing the app NOTIFYs after it.
  const Millis park_ttl = std::max(Millis(30'000), 3 * config_.poll_interval);
  auto next_renew = clock_.now() + renew_every;
  auto last_work = clock_.now();
  bool parked = false;
  Clock::TimePoint park_expires{};
  int db_failures = 0;
  std::stop_callback wake_on_stop(stop, [this] { source_.wake(); });

  auto set_parked = [&](bool p) {
    parked = p;
    parked_ = p;
  };
  auto on_db_error = [&](const Error& e, const char* what) {
    stats_.database_error(what);
    if (db_failures == 0)
      log_.warn("database unavailable", {{"during", what}, {"error", e.message}});
    database_ok_ = false;
    ++db_failures;
    set_parked(false);  // unknown after an error: park again before sleeping
    return wait_backoff(db_failures, stop);
  };
  // Any database call that succeeded says the database is there: readiness must not depend on a
  // claim, which a relay with nothing to claim (an inbox-only relay, every breaker open) never
  // makes.
  auto on_db_ok = [&] {
    database_ok_ = true;
    if (db_failures > 0) {
      log_.info("database available again");
      stats_.database_reconnect();
      db_failures = 0;
    }
  };
  // A claim failed in a way that may have committed it (the connection died during the call):
  // rows may be leased to us that nobody here works on. Release them before renewing any lease.
  bool claim_in_doubt = false;
  auto on_claim_error = [&](const Error& e) {
    if (e.code == ErrorCode::kInDoubt || e.code == ErrorCode::kUnavailable) claim_in_doubt = true;
    return on_db_error(e, "claim");
  };

  while (!stop.stop_requested()) {
    if (claim_in_doubt) {
      const InFlightCredit::Held held = credit_.held();
      auto released = source_.release_unheld(held.outbox, held.deliveries);
      if (!released) {
        if (!on_db_error(released.error(), "release after an in-doubt claim")) break;
        continue;
      }
      claim_in_doubt = false;
      if (*released > 0)
        log_.warn("released claims that an interrupted claim committed unseen",
                  {{"rows", std::to_string(*released)}});
    }
    if (clock_.now() >= next_renew) {
      auto r = source_.renew_leases();
      if (!r) {
        if (!on_db_error(r.error(), "lease renewal")) break;
        continue;
      }
      next_renew = clock_.now() + renew_every;
    }

    heartbeat_ = clock_.now();
    for (const auto& s : subscriptions_) s->log_if_open_long();
    ++claim_seq_;
    int found = 0;
    bool full = false;                  // a full claim: there is probably more, claim again at once
    Millis next_probe = Millis::max();  // until a held-back subscription may probe, if any
    const std::vector<std::string> sendable = sendable_subscriptions(next_probe);
    // Every breaker open: claim nothing (the store keeps the events) until the first may probe.
    const bool all_held = sendable.empty();
    if (credit_.room() > 0 && !all_held) {
      // Scheduled retries first, with at most half the room, so a deep outbox can't starve them.
      const int due_limit = std::min(batch, std::max(1, credit_.room() / 2));
      auto due = source_.claim_deliveries(due_limit, sendable);
      if (!due) {
        if (!on_claim_error(due.error())) break;
        continue;
      }
      // The source's next-due time leaves out rows this claim left behind: claim the rest now.
      full = static_cast<int>(due->size()) == due_limit;
      std::vector<std::int64_t> delivery_ids;
      for (const auto& d : *due) delivery_ids.push_back(d.delivery_id);
      credit_.take({}, delivery_ids);
      found += static_cast<int>(due->size());
      for (auto& d : *due) router_.route(std::move(d), claim_seq_);

      if (credit_.room() > 0) {
        const int want = std::min(batch, credit_.room());
        auto events = source_.claim_outbox(want, credit_.used());
        if (!events) {
          if (!on_claim_error(events.error())) break;
          continue;
        }
        std::vector<std::int64_t> outbox_ids;
        for (const auto& e : *events) outbox_ids.push_back(e.event.outbox_id);
        credit_.take(outbox_ids, {});
        found += static_cast<int>(events->size());
        full = full || static_cast<int>(events->size()) == want;
        for (auto& e : *events) router_.route(std::move(e), claim_seq_);
      }
      counters_.claimed += found;
      on_db_ok();
    }

    if (found > 0) {
      last_work = clock_.now();
      if (parked) {
        auto r = source_.unpark();
        if (!r && !on_db_error(r.error(), "unpark")) break;
        set_parked(false);
      }
    }
    // Re-read: the recorder may have given credit back since the claim. If we still see none, its
    // next give_back sees that too (only this thread takes) and wakes us.
    if (full && credit_.room() > 0) continue;

    Result<bool> woke = false;
    if (credit_.exhausted()) {
      woke = source_.wait_for_work(renew_every);
    } else if (!parked && clock_.now() - last_work < kLinger) {
      woke = source_.wait_for_work(kBusyPoll);
    } else if (!parked) {
      auto r = source_.park(park_ttl);
      if (!r) {
        if (!on_db_error(r.error(), "park")) break;
        continue;
      }
      on_db_ok();
      set_parked(true);  // before the claim below: see Recorder
      park_expires = clock_.now() + park_ttl;
      continue;  // claim once more: work committed before the park took effect rang no bell
    } else {
      if (park_expires - clock_.now() < park_ttl / 2) {
        auto r = source_.park(park_ttl);
        if (!r) {
          if (!on_db_error(r.error(), "park")) break;
          continue;
        }
        park_expires = clock_.now() + park_ttl;
      }
      Millis wait = std::min(renew_every, config_.poll_interval);
      // Every breaker open: nothing is claimed before the first probe, so the next due row does
      // not matter (and rows that fell due since the last claim would say "now" until then).
      if (!all_held) {
        auto next = source_.time_until_next_due();
        if (!next) {
          if (!on_db_error(next.error(), "wait")) break;
          continue;
        }
        on_db_ok();
        if (*next) wait = std::min(wait, std::max(Millis(1), **next));
      }
      // A held-back subscription's due rows are left out of the next-due time: claim them when
      // its breaker may probe.
      if (next_probe != Millis::max()) wait = std::min(wait, std::max(Millis(1), next_probe));
      woke = source_.wait_for_work(wait);
    }
    if (!woke && !on_db_error(woke.error(), "wait")) break;
  }
}

}  // namespace relay::pipeline
