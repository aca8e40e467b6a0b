#include "relay/dispatch/dispatcher.h"

#include <fmt/format.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <functional>
#include <random>
#include <unordered_map>

#include "relay/delivery/request_builder.h"
#include "relay/dispatch/retry_policy.h"

namespace relay::dispatch {
namespace {


// Most outcomes are written in one go; a batch is capped so one transaction stays short.
constexpr size_t kMaxRecordBatch = 1000;

}  // namespace

Dispatcher::Dispatcher(const config::Config& config, std::string owner, Clock& clock,
                       model::WorkSource& source, model::OutcomeSink& sink, DispatchStats& stats)
    : config_(config),
      clock_(clock),
      owner_(std::move(owner)),
      matcher_(config_.subscriptions),
      max_in_flight_items_(2 * config.source.batch_size),
      stats_(stats),
      source_(source),
      sink_(sink),
      // Room for every part of every item in flight: pushing a result never blocks a lane for long.
      results_(static_cast<size_t>(2 * config.source.batch_size) *
                   std::max<size_t>(1, config.subscriptions.size()) +
               1) {}

Result<std::unique_ptr<Dispatcher>> Dispatcher::create(const config::Config& config,
                                                       std::string owner, Clock& clock,
                                                       model::WorkSource& source,
                                                       model::OutcomeSink& sink,
                                                       const SenderFactory& make_sender,
                                                       DispatchStats& stats) {
  std::unique_ptr<Dispatcher> d(
      new Dispatcher(config, std::move(owner), clock, source, sink, stats));
  const size_t queue_capacity = static_cast<size_t>(d->max_in_flight_items_) + 1;
  for (const auto& sub : d->config_.subscriptions) {
    auto lanes = std::make_unique<SubscriptionLanes>();
    lanes->config = &sub;
    lanes->breaker = std::make_unique<delivery::CircuitBreaker>(sub.circuit_breaker, clock);
    // One log line per state change (never per failed attempt); runs under the breaker's lock.
    SubscriptionLanes* sl = lanes.get();
    Dispatcher* self = d.get();
    lanes->breaker->set_on_transition([self, sl](delivery::CircuitBreaker::State from,
                                                 delivery::CircuitBreaker::State to,
                                                 long long trips) {
      using State = delivery::CircuitBreaker::State;
      const std::string& name = sl->config->name;
      self->stats_.breaker_transition(name, to);
      const auto now = self->clock_.now();
      if (from == State::kClosed) {
        sl->opened_at = now;
        sl->deferred = 0;
        self->log_.warn("breaker opened",
                        {{"subscription", name}, {"trips", std::to_string(trips)}});
      } else if (to == State::kClosed) {
        const auto open = std::chrono::duration_cast<Millis>(now - sl->opened_at.load());
        self->log_.info("breaker closed", {{"subscription", name},
                                           {"trips", std::to_string(trips)},
                                           {"was_open_for", format_duration(open)},
                                           {"deferred", std::to_string(sl->deferred.load())}});
      } else {
        // open <-> half_open while the outage lasts: the periodic summary covers it at info.
        self->log_.debug(to == State::kHalfOpen ? "breaker half-open" : "breaker re-opened",
                         {{"subscription", name}, {"trips", std::to_string(trips)}});
      }
    });
    if (sub.rate_limit)
      lanes->limiter = std::make_unique<delivery::RateLimiter>(*sub.rate_limit, clock);
    lanes->batched = sub.batch.has_value() && model::can_batch(sub.format);
    for (int i = 0; i < sub.max_in_flight; ++i) {
      auto lane = std::make_unique<Lane>(queue_capacity);
      auto sender = make_sender(sub);
      if (!sender) return sender.error();
      lane->sender = std::move(*sender);
      lanes->lanes.push_back(std::move(lane));
    }
    d->subscriptions_.push_back(std::move(lanes));
  }
  return d;
}

Dispatcher::~Dispatcher() {
  if (started_ && !shut_down_) (void)shutdown(clock_.now(), clock_.now());
}

void Dispatcher::start() {
  RELAY_CHECK(!started_, "Dispatcher::start() called twice");
  started_ = true;
  for (auto& s : subscriptions_) {
    for (auto& lane : s->lanes) {
      Lane* l = lane.get();
      SubscriptionLanes* sub = s.get();
      l->thread = std::jthread([this, sub, l](std::stop_token st) { run_lane(*sub, *l, st); });
    }
  }
  recorder_thread_ = std::jthread([this](std::stop_token st) { run_recorder(st); });
  source_thread_ = std::jthread([this](std::stop_token st) { run_source(st); });
  log_.info("started",
            {{"owner", owner_}, {"subscriptions", std::to_string(subscriptions_.size())}});
}

void Dispatcher::log_open_breakers() {
  constexpr Millis kSummaryEvery{60'000};
  const auto now = clock_.now();
  for (auto& s : subscriptions_) {
    if (s->breaker->state() == delivery::CircuitBreaker::State::kClosed) continue;
    const auto opened = s->opened_at.load();
    if (now - opened < kSummaryEvery || now - s->last_summary < kSummaryEvery) continue;
    s->last_summary = now;
    const auto secs = std::chrono::duration_cast<std::chrono::seconds>(now - opened).count();
    log_.warn(fmt::format("subscription {} breaker open for {} s; {} deferred", s->config->name,
                          secs, s->deferred.load()),
              {{"subscription", s->config->name},
               {"trips", std::to_string(s->breaker->snapshot().trips)}});
  }
}

// Waits out a database outage: 100ms doubling to 5s. Returns false on stop.
bool Dispatcher::wait_backoff(int failures, std::stop_token stop) {
  const Millis delay =
      backoff_ceiling({.initial_backoff = Millis(100), .max_backoff = Millis(5000)}, failures);
  return clock_.sleep_until(clock_.now() + delay, stop);
}

// ---- source ---------------------------------------------------------------------------------

// The source alternates between two modes.
// - Busy: claim back to back while claims come back full; when a claim is short, poll again after
//   kBusyPoll for up to kLinger. The app's commits pay nothing for relay meanwhile.
// - Parked: after kLinger without work, write a row in relay.parked (so the outbox trigger
//   NOTIFYs), claim once more to catch what committed before the row was visible, then sleep until
//   a notification, the next scheduled retry or delayed event, or the safety-net poll.
void Dispatcher::run_source(std::stop_token stop) {
  constexpr Millis kBusyPoll{2};
  constexpr Millis kLinger{25};
  const int batch = config_.source.batch_size;
  const Millis renew_every = config_.source.lease / 3;
  // A parked row outlives a few polls; a relay that dies stops costing the app NOTIFYs after it.
  const Millis park_ttl = std::max(Millis(30'000), 3 * config_.source.poll_interval);
  auto next_renew = clock_.now() + renew_every;
  auto last_work = clock_.now();
  bool parked = false;
  Clock::TimePoint park_expires{};
  int db_failures = 0;
  std::stop_callback wake_on_stop(stop, [this] { source_.wake(); });

  auto on_db_error = [&](const Error& e, const char* what) {
    stats_.database_error(what);
    if (db_failures == 0)
      log_.warn("database unavailable", {{"during", what}, {"error", e.message}});
    database_ok_ = false;
    ++db_failures;
    parked = false;  // unknown after an error: park again before sleeping
    source_parked_ = false;
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
      const HeldClaims::Snapshot held = held_.snapshot();
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

    source_heartbeat_ = clock_.now();
    log_open_breakers();
    ++claim_seq_;
    int room = max_in_flight_items_ - in_flight_items_.load();
    int found = 0;
    bool full = false;  // a full claim: there is probably more, claim again at once
    Millis next_probe{0};
    const std::vector<std::string> sendable = sendable_subscriptions(next_probe);
    // Every breaker open: claim nothing (the outbox keeps the events) until the first may probe.
    const bool all_held = sendable.empty();
    if (room > 0 && !all_held) {
      // Scheduled retries first, with at most half the room, so a deep outbox can't starve them.
      auto due = source_.claim_deliveries(std::min(batch, std::max(1, room / 2)), sendable);
      if (!due) {
        if (!on_claim_error(due.error())) break;
        continue;
      }
      for (const auto& d : *due) held_.add_delivery(d.delivery_id);
      found += static_cast<int>(due->size());
      in_flight_items_ += static_cast<int>(due->size());
      room -= static_cast<int>(due->size());
      for (auto& d : *due) dispatch_delivery(std::move(d));

      if (room > 0) {
        const int want = std::min(batch, room);
        auto events = source_.claim_outbox(want, in_flight_items_.load());
        if (!events) {
          if (!on_claim_error(events.error())) break;
          continue;
        }
        for (const auto& e : *events) held_.add_outbox(e.event.outbox_id);
        found += static_cast<int>(events->size());
        in_flight_items_ += static_cast<int>(events->size());
        room -= static_cast<int>(events->size());
        full = static_cast<int>(events->size()) == want;
        for (auto& e : *events) dispatch_event(std::move(e));
      }
      counters_.claimed += found;
      on_db_ok();
    }

    if (found > 0) {
      last_work = clock_.now();
      if (parked) {
        auto r = source_.unpark();
        if (!r && !on_db_error(r.error(), "unpark")) break;
        parked = false;
        source_parked_ = false;
      }
    }
    // Re-read: the recorder may have finished items since the claim. If we still see the limit, the
    // recorder's next decrement sees it too (only this thread adds) and kicks us.
    room = max_in_flight_items_ - in_flight_items_.load();
    if (full && room > 0) continue;

    Result<bool> woke = false;
    if (room <= 0) {
      // At capacity: the recorder kicks us as soon as outcomes free room.
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
      parked = true;
      source_parked_ = true;  // before the claim below: see run_recorder
      park_expires = clock_.now() + park_ttl;
      continue;  // claim once more: an event committed before the park row was visible rang no bell
    } else {
      if (park_expires - clock_.now() < park_ttl / 2) {
        auto r = source_.park(park_ttl);
        if (!r) {
          if (!on_db_error(r.error(), "park")) break;
          continue;
        }
        park_expires = clock_.now() + park_ttl;
      }
      Millis wait = std::min(renew_every, config_.source.poll_interval);
      auto next = source_.time_until_next_due();
      if (!next) {
        if (!on_db_error(next.error(), "wait")) break;
        continue;
      }
      on_db_ok();
      if (*next) wait = std::min(wait, std::max(Millis(1), **next));
      if (all_held) wait = std::min(wait, std::max(Millis(1), next_probe));
      woke = source_.wait_for_work(wait);
    }
    if (!woke && !on_db_error(woke.error(), "wait")) break;
  }
}

std::vector<std::string> Dispatcher::sendable_subscriptions(Millis& next_probe) const {
  std::vector<std::string> out;
  next_probe = Millis::max();
  for (const auto& s : subscriptions_) {
    const Millis wait = s->breaker->time_until_probe();
    if (wait == Millis(0)) {
      out.push_back(s->config->name);
    } else {
      next_probe = std::min(next_probe, wait);
    }
  }
  if (!out.empty()) next_probe = Millis(0);
  return out;
}

DispatcherStatus Dispatcher::status() const {
  DispatcherStatus st;
  st.owner = owner_;
  st.database_ok = database_ok_.load();
  st.source_heartbeat = source_heartbeat_.load();
  for (const auto& s : subscriptions_) {
    SubscriptionStatus ss;
    ss.name = s->config->name;
    ss.breaker = s->breaker->snapshot();
    ss.in_flight = s->in_flight.load();
    if (s->limiter) ss.rate_tokens = s->limiter->available();
    st.subscriptions.push_back(std::move(ss));
  }
  return st;
}

void Dispatcher::dispatch_event(model::ClaimedEvent&& claimed) {
  auto shared = std::make_shared<const Event>(std::move(claimed.event));
  const std::vector<size_t> matched = matcher_.match(shared->topic);
  if (matched.empty()) {
    // Nothing subscribes to this topic. Dead-letter it rather than drop it: an unmatched topic is
    // usually a typo in the config or the app, and an operator can replay it once it is fixed.
    TaskResult r;
    r.outbox_id = shared->outbox_id;
    r.part.kind = model::PartOutcome::Kind::kDeadLetter;
    r.part.subscription = "(none)";
    r.part.reason = model::DeadLetterReason::kNoSubscription;
    r.part.last_error = fmt::format("no subscription matches topic \"{}\"", shared->topic);
    push_result(std::move(r));
    return;
  }
  const std::uint64_t claim = claim_seq_.load();
  for (size_t index : matched) {
    Task t;
    t.event = shared;
    t.parts_total = static_cast<int>(matched.size());
    t.claim = claim;
    const std::string& name = subscriptions_[index]->config->name;
    t.held =
        std::find(claimed.held_for.begin(), claimed.held_for.end(), name) != claimed.held_for.end();
    enqueue(index, std::move(t));
  }
}

void Dispatcher::dispatch_delivery(model::ClaimedDelivery&& claimed) {
  for (size_t i = 0; i < subscriptions_.size(); ++i) {
    if (subscriptions_[i]->config->name != claimed.subscription) continue;
    Task t;
    t.delivery_id = claimed.delivery_id;
    t.attempts_before = claimed.attempts;
    t.first_failed_at = claimed.first_failed_at;
    t.claim = claim_seq_.load();
    t.event = std::make_shared<const Event>(std::move(claimed.event));
    enqueue(i, std::move(t));
    return;
  }
  // The claim only returns rows of our subscriptions.
  RELAY_CHECK(false, "claimed a delivery row for an unknown subscription");
}

void Dispatcher::enqueue(size_t subscription_index, Task&& task) {
  const SubscriptionLanes& sub = *subscriptions_[subscription_index];
  auto& lanes = sub.lanes;
  // Same key -> same lane, so one relay sends a key's events in the order it claimed them.
  const std::string& by = task.event->key ? *task.event->key : task.event->event_id;
  const size_t lane = std::hash<std::string>{}(by) % lanes.size();
  // Lane queues hold every item that can be in flight, so this does not block.
  std::stop_source never;
  RELAY_CHECK(lanes[lane]->queue.push(task, never.get_token()), "lane queue closed while claiming");
  if (sub.batched) lanes[lane]->bell.ring();  // it may be lingering for more
}

// ---- lanes ----------------------------------------------------------------------------------

void Dispatcher::hold_key(const SubscriptionLanes& sub, Lane& lane, const Task& task) {
  if (sub.config->ordering == model::Ordering::kPerKey && task.event->key)
    lane.held_keys[*task.event->key] = task.claim;
}

std::optional<model::PartOutcome> Dispatcher::settle_unsent(const SubscriptionLanes& sub,
                                                            Lane& lane, const Task& task) {
  using Kind = model::PartOutcome::Kind;
  const config::SubscriptionConfig& cfg = *sub.config;
  const Event& e = *task.event;
  model::PartOutcome part;
  part.attempts = task.attempts_before;
  if (draining_) {
    part.kind = Kind::kAborted;
    return part;
  }
  if (static_cast<std::int64_t>(e.payload.size()) > config_.limits.max_payload_bytes) {
    part.kind = Kind::kDeadLetter;
    part.reason = model::DeadLetterReason::kPayloadTooLarge;
    part.last_error = fmt::format("payload is {} bytes; limits.max_payload_bytes is {}",
                                  e.payload.size(), config_.limits.max_payload_bytes);
    return part;
  }
  if (e.expires_at && *e.expires_at <= clock_.wall_now()) {
    part.kind = Kind::kDeadLetter;
    part.reason = model::DeadLetterReason::kExpired;
    part.last_error = "expires_at passed before delivery";
    return part;
  }
  if (cfg.ordering == model::Ordering::kPerKey && e.key) {
    auto held = lane.held_keys.find(*e.key);
    if (task.held || (held != lane.held_keys.end() && held->second == task.claim)) {
      // An earlier event of this key is not through yet (pending in relay.delivery, or earlier in
      // this claim): queue behind it. It is promoted when its predecessor leaves, or made due at
      // once if the predecessor left before this row was written; max_backoff is only the safety
      // net.
      part.kind = Kind::kDeferred;
      part.behind_key = true;
      part.retry_in = cfg.retry.max_backoff;
      part.last_error = "waiting behind an earlier event of the same key";
      hold_key(sub, lane, task);
      return part;
    }
  }
  return std::nullopt;
}

// A TLS failure is a setting to fix, not an outage: say so once (per subscription, until a request
// gets through again) with the cause, instead of leaving only "breaker opened" in the log.
void Dispatcher::note_tls(SubscriptionLanes& sub, const delivery::DeliveryOutcome& outcome) {
  if (outcome.cause == delivery::DeliveryOutcome::Cause::kNone) {
    if (outcome.kind == delivery::DeliveryOutcome::Kind::kDelivered) sub.tls_failing = false;
    return;
  }
  if (sub.tls_failing.exchange(true)) return;
  log_.error("TLS failure: fix the subscription's tls settings; its events are kept and retried",
             {{"subscription", sub.config->name}, {"error", outcome.error}});
}

model::PartOutcome Dispatcher::attempt(SubscriptionLanes& sub, Lane& lane, const Task& task,
                                       Backoff& backoff) {
  using Kind = model::PartOutcome::Kind;
  const config::SubscriptionConfig& cfg = *sub.config;
  const Event& e = *task.event;
  if (auto settled = settle_unsent(sub, lane, task)) return std::move(*settled);
  const auto wall_now = clock_.wall_now();
  model::PartOutcome part;
  part.attempts = task.attempts_before;
  auto hold_key = [&] { Dispatcher::hold_key(sub, lane, task); };
  const auto admission = sub.breaker->admit();
  if (admission == delivery::CircuitBreaker::Admission::kRejected) {
    // The endpoint is resting: no request, no attempt spent. Come back when it may be probed.
    part.kind = Kind::kDeferred;
    part.retry_in = std::max(Millis(250), sub.breaker->time_until_probe());
    part.last_error = "circuit breaker open";
    ++sub.deferred;
    hold_key();
    return part;
  }
  if (sub.limiter && !sub.limiter->acquire(drain_stop_.get_token())) {
    part.kind = Kind::kAborted;  // shutting down while waiting for a token
    return part;
  }
  const int attempt_no = task.attempts_before + 1;
  ++sub.in_flight;
  delivery::DeliveryOutcome outcome = lane.sender->send(e, attempt_no);
  --sub.in_flight;
  stats_.attempt(cfg.name, outcome, e.created_at, clock_.wall_now());
  note_tls(sub, outcome);
  if (hard_stop_ && outcome.kind != delivery::DeliveryOutcome::Kind::kDelivered) {
    part.kind = Kind::kAborted;  // cut off by shutdown: not the consumer's fault, not an attempt
    hold_key();
    return part;
  }
  if (outcome.kind == delivery::DeliveryOutcome::Kind::kRetryable) {
    sub.breaker->record_failure();
    if (admission == delivery::CircuitBreaker::Admission::kProbe) {
      // A failed probe says the endpoint is still down, not that this event is bad: it spends no
      // attempt (max_age still bounds how long an event may wait).
      part.kind = Kind::kDeferred;
      part.retry_in = std::max(Millis(250), sub.breaker->time_until_probe());
      part.last_error = "circuit breaker probe failed: " + outcome.error;
      hold_key();
      return part;
    }
  } else {
    sub.breaker->record_success();  // 2xx, or a final 4xx: the endpoint is up
  }
  Millis failing_for{0};
  if (task.delivery_id != 0 && wall_now > task.first_failed_at) {
    failing_for = std::chrono::duration_cast<Millis>(wall_now - task.first_failed_at);
  }
  part = decide(outcome, attempt_no, failing_for, cfg.retry, backoff);
  const bool lets_key_go = part.kind == Kind::kDelivered ||
                           (part.kind == Kind::kDeadLetter && cfg.on_dead_letter == model::OnDeadLetter::kSkip);
  if (!lets_key_go) hold_key();
  return part;
}

void Dispatcher::run_lane(SubscriptionLanes& sub, Lane& lane, std::stop_token stop) {
  Backoff backoff({.initial_backoff = sub.config->retry.initial_backoff,
                   .max_backoff = sub.config->retry.max_backoff});
  if (sub.batched) {
    run_batch_lane(sub, lane, stop, backoff);
    return;
  }
  while (auto task = lane.queue.pop(stop)) {
    TaskResult r;
    r.outbox_id = task->event->outbox_id;
    r.delivery_id = task->delivery_id;
    r.parts_total = task->parts_total;
    r.part = attempt(sub, lane, *task, backoff);
    r.part.subscription = sub.config->name;
    push_result(std::move(r));
  }
}

// ---- batches --------------------------------------------------------------------------------

void Dispatcher::LaneBell::ring() {
  std::lock_guard lock(mu_);
  rung_ = true;
  if (sleeper_ != nullptr) sleeper_->request_stop();
}

// GCC 12 at -O2 with the sanitizers warns that a default-constructed std::stop_source "may be used
// uninitialized": its constructor passes *this to a member's constructor, which ignores it (a
// false positive in libstdc++'s <stop_token>, not in this code). Silenced for this function only.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
void Dispatcher::LaneBell::wait_until(Clock& clock, Clock::TimePoint deadline, std::stop_token stop,
                                      std::stop_token drain) {
  std::stop_source wake;
  {
    std::lock_guard lock(mu_);
    if (rung_) {
      rung_ = false;
      return;
    }
    sleeper_ = &wake;
  }
  {
    std::stop_callback on_stop(stop, [&wake] { wake.request_stop(); });
    std::stop_callback on_drain(drain, [&wake] { wake.request_stop(); });
    (void)clock.sleep_until(deadline, wake.get_token());
  }
  std::lock_guard lock(mu_);
  sleeper_ = nullptr;
  rung_ = false;
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

namespace {

// An upper bound on the bytes one event adds to a batch body, in either format (the protobuf
// encoding is never larger than the JSON one): attribute names, punctuation, time and attempt;
// text attributes as JSON strings (6x: every byte could need a \u00XX escape); the app headers as
// a JSON string holding a JSON object (2x: its quotes and backslashes get escaped); the payload
// inline or as base64 (4/3).
std::int64_t batch_bytes_bound(const Event& e, const std::string& subscription) {
  constexpr std::int64_t kFixed = 256;
  const size_t text = e.event_id.size() + e.topic.size() + (e.key ? e.key->size() : 0) +
                      e.content_type.size() + subscription.size();
  const size_t bound =
      kFixed + 6 * text + 2 * e.headers_json.size() + (e.payload.size() + 2) / 3 * 4;
  return static_cast<std::int64_t>(bound);
}

}  // namespace

void Dispatcher::push_task_result(const SubscriptionLanes& sub, const Task& task,
                                  model::PartOutcome&& part) {
  TaskResult r;
  r.outbox_id = task.event->outbox_id;
  r.delivery_id = task.delivery_id;
  r.parts_total = task.parts_total;
  r.part = std::move(part);
  r.part.subscription = sub.config->name;
  push_result(std::move(r));
}

void Dispatcher::run_batch_lane(SubscriptionLanes& sub, Lane& lane, std::stop_token stop,
                                Backoff& backoff) {
  using Close = DispatchStats::BatchClose;
  const config::BatchConfig& limits = *sub.config->batch;
  const size_t max_events = static_cast<size_t>(std::max(1, limits.max_events));
  // The array brackets (JSON) around the events.
  constexpr std::int64_t kBodyOverhead = 2;
  std::vector<Task> batch;
  batch.reserve(max_events);
  std::optional<Task> carried;  // taken from the queue, but it would have passed max_bytes
  while (true) {
    std::optional<Task> first =
        carried ? std::exchange(carried, std::nullopt) : lane.queue.pop(stop);
    if (!first) break;
    if (auto settled = settle_unsent(sub, lane, *first)) {
      push_task_result(sub, *first, std::move(*settled));
      continue;
    }
    // The first event always goes, even one bigger than max_bytes alone (a batch of one).
    std::int64_t bytes = kBodyOverhead + batch_bytes_bound(*first->event, sub.config->name);
    batch.push_back(std::move(*first));
    const Clock::TimePoint deadline = clock_.now() + limits.linger;
    Close closed_by = Close::kLinger;
    while (true) {
      if (batch.size() >= max_events) {
        closed_by = Close::kMaxEvents;
        break;
      }
      std::optional<Task> next = lane.queue.try_pop();
      if (!next) {
        // Linger only while more can come: at the in-flight bound the source claims nothing until
        // outcomes (this batch's among them) are recorded.
        if (draining_ || stop.stop_requested() || in_flight_items_.load() >= max_in_flight_items_ ||
            clock_.now() >= deadline) {
          break;
        }
        lane.bell.wait_until(clock_, deadline, stop, drain_stop_.get_token());
        continue;
      }
      if (auto settled = settle_unsent(sub, lane, *next)) {
        push_task_result(sub, *next, std::move(*settled));
        continue;
      }
      const std::int64_t more = batch_bytes_bound(*next->event, sub.config->name);
      if (bytes + more > limits.max_bytes) {
        carried = std::move(next);  // first of the next batch (checked again then)
        closed_by = Close::kMaxBytes;
        break;
      }
      bytes += more;
      batch.push_back(std::move(*next));
    }
    deliver_batch(sub, lane, batch, backoff, closed_by);
    batch.clear();
  }
}

void Dispatcher::deliver_batch(SubscriptionLanes& sub, Lane& lane, std::vector<Task>& tasks,
                               Backoff& backoff, DispatchStats::BatchClose closed_by) {
  using Kind = model::PartOutcome::Kind;
  const config::SubscriptionConfig& cfg = *sub.config;
  // Settles every task without a request: no attempt counted.
  auto settle_all = [&](Kind kind, Millis retry_in, const std::string& error, bool hold) {
    for (const Task& t : tasks) {
      model::PartOutcome part;
      part.kind = kind;
      part.attempts = t.attempts_before;
      part.retry_in = retry_in;
      part.last_error = error;
      if (hold) hold_key(sub, lane, t);
      push_task_result(sub, t, std::move(part));
    }
  };
  if (draining_) {  // shutdown began while the batch lingered
    settle_all(Kind::kAborted, Millis(0), "", false);
    return;
  }
  const auto admission = sub.breaker->admit();
  if (admission == delivery::CircuitBreaker::Admission::kRejected) {
    // The endpoint is resting: no request, no attempt spent. Come back when it may be probed.
    sub.deferred += static_cast<long long>(tasks.size());
    settle_all(Kind::kDeferred, std::max(Millis(250), sub.breaker->time_until_probe()),
               "circuit breaker open", true);
    return;
  }
  if (sub.limiter) {
    // One token per event: a batch is no way around the subscription's event rate.
    for (size_t i = 0; i < tasks.size(); ++i) {
      if (!sub.limiter->acquire(drain_stop_.get_token())) {
        settle_all(Kind::kAborted, Millis(0), "", false);  // shutting down while waiting
        return;
      }
    }
  }
  std::vector<delivery::BatchItem> items;
  std::vector<std::chrono::system_clock::time_point> created;
  items.reserve(tasks.size());
  created.reserve(tasks.size());
  for (const Task& t : tasks) {
    items.push_back({.event = t.event.get(), .attempt = t.attempts_before + 1});
    created.push_back(t.event->created_at);
  }
  const auto wall_now = clock_.wall_now();
  ++sub.in_flight;
  delivery::DeliveryOutcome outcome = lane.sender->send_batch(items);
  --sub.in_flight;
  stats_.batch_attempt(cfg.name, outcome, created, clock_.wall_now(), closed_by);
  note_tls(sub, outcome);
  if (hard_stop_ && outcome.kind != delivery::DeliveryOutcome::Kind::kDelivered) {
    // Cut off by shutdown: not the consumer's fault, no attempt for any event of the batch.
    settle_all(Kind::kAborted, Millis(0), "", true);
    return;
  }
  if (outcome.kind == delivery::DeliveryOutcome::Kind::kRetryable) {
    sub.breaker->record_failure();
    if (admission == delivery::CircuitBreaker::Admission::kProbe) {
      // A failed probe says the endpoint is still down, not that these events are bad.
      settle_all(Kind::kDeferred, std::max(Millis(250), sub.breaker->time_until_probe()),
                 "circuit breaker probe failed: " + outcome.error, true);
      return;
    }
  } else {
    sub.breaker->record_success();  // 2xx, or a final 4xx: the endpoint is up
  }
  // One backoff draw for the whole batch (for its most-tried event): its events fall due together
  // and go out again together, instead of being scattered by each event's own jitter.
  Millis retry_in{0};
  if (outcome.kind == delivery::DeliveryOutcome::Kind::kRetryable) {
    int most_attempts = 0;
    for (const Task& t : tasks) most_attempts = std::max(most_attempts, t.attempts_before + 1);
    retry_in = backoff.next_delay(most_attempts);
    if (outcome.retry_after) retry_in = std::max(retry_in, *outcome.retry_after);
    retry_in = std::min(retry_in, cfg.retry.max_backoff);
  }
  for (const Task& t : tasks) {
    Millis failing_for{0};
    if (t.delivery_id != 0 && wall_now > t.first_failed_at) {
      failing_for = std::chrono::duration_cast<Millis>(wall_now - t.first_failed_at);
    }
    model::PartOutcome part =
        decide(outcome, t.attempts_before + 1, failing_for, cfg.retry, backoff);
    if (part.kind == Kind::kRetry) part.retry_in = retry_in;
    const bool lets_key_go = part.kind == Kind::kDelivered ||
                             (part.kind == Kind::kDeadLetter && cfg.on_dead_letter == model::OnDeadLetter::kSkip);
    if (!lets_key_go) hold_key(sub, lane, t);
    push_task_result(sub, t, std::move(part));
  }
}

void Dispatcher::push_result(TaskResult&& result) {
  std::stop_source never;
  RELAY_CHECK(results_.push(result, never.get_token()), "results queue closed while lanes run");
}

// ---- recorder -------------------------------------------------------------------------------

void Dispatcher::run_recorder(std::stop_token stop) {
  // Parts of outbox rows seen so far; a row is recorded once all its parts are in.
  std::unordered_map<std::int64_t, model::OutboxOutcome> partial;
  int db_failures = 0;

  // Ends when the queue is closed and drained (shutdown); `stop` only cuts short a database outage.
  while (auto first = results_.pop({})) {
    model::OutcomeBatch batch;
    int items_done = 0;
    auto take = [&](TaskResult&& r) {
      if (r.delivery_id != 0) {
        batch.deliveries.push_back({r.delivery_id, std::move(r.part)});
        ++items_done;
        return;
      }
      auto& o = partial[r.outbox_id];
      o.outbox_id = r.outbox_id;
      o.parts.push_back(std::move(r.part));
      if (static_cast<int>(o.parts.size()) == r.parts_total) {
        batch.outbox.push_back(std::move(o));
        partial.erase(r.outbox_id);
        ++items_done;
      }
    };
    take(std::move(*first));
    while (batch.size() < kMaxRecordBatch) {
      auto more = results_.try_pop();
      if (!more) break;
      take(std::move(*more));
    }
    if (batch.empty()) continue;

    // Keep the batch until it is written: an outcome is never dropped while the database is away.
    while (true) {
      auto r = sink_.record(batch);
      if (r) break;
      if (db_failures == 0) log_.warn("cannot record outcomes", {{"error", r.error().message}});
      stats_.database_error("record");
      ++db_failures;
      if (!wait_backoff(db_failures, stop)) {
        record_failed_ = true;
        log_.error(
            "gave up recording outcomes; their leases will expire and they will be delivered again",
            {{"items", std::to_string(batch.size())}});
        break;
      }
    }
    {
      // Written (or given up: their leases will expire): no longer ours to keep.
      std::vector<std::int64_t> outbox_ids, delivery_ids;
      for (const auto& o : batch.outbox) outbox_ids.push_back(o.outbox_id);
      for (const auto& d : batch.deliveries) delivery_ids.push_back(d.delivery_id);
      held_.remove(outbox_ids, delivery_ids);
    }
    if (db_failures > 0 && !record_failed_) {
      log_.info("recording outcomes again");
      stats_.database_reconnect();
      db_failures = 0;
    }

    auto count = [&](const model::PartOutcome& p) {
      switch (p.kind) {
        case model::PartOutcome::Kind::kDelivered:
          ++counters_.delivered;
          stats_.outcome(p.subscription, DispatchStats::Outcome::kDelivered);
          break;
        case model::PartOutcome::Kind::kRetry:
          ++counters_.retries_scheduled;
          stats_.outcome(p.subscription, DispatchStats::Outcome::kRetryScheduled);
          break;
        case model::PartOutcome::Kind::kDeadLetter:
          ++counters_.dead_lettered;
          stats_.outcome(p.subscription, DispatchStats::Outcome::kDeadLettered);
          stats_.dead_letter_created(p.subscription, p.reason);
          break;
        case model::PartOutcome::Kind::kAborted:
        case model::PartOutcome::Kind::kDeferred:
          break;
      }
    };
    for (const auto& o : batch.outbox) {
      for (const auto& p : o.parts) {
        count(p);
        if (p.kind == model::PartOutcome::Kind::kDeadLetter) {
          log_.warn("dead-lettered", {{"outbox_id", std::to_string(o.outbox_id)},
                                      {"subscription", p.subscription},
                                      {"reason", std::string(model::name_of(p.reason))},
                                      {"attempts", std::to_string(p.attempts)}});
        }
      }
    }
    for (const auto& d : batch.deliveries) {
      count(d.part);
      if (d.part.kind == model::PartOutcome::Kind::kDeadLetter) {
        log_.warn("dead-lettered", {{"delivery_id", std::to_string(d.delivery_id)},
                                    {"subscription", d.part.subscription},
                                    {"reason", std::string(model::name_of(d.part.reason))},
                                    {"attempts", std::to_string(d.part.attempts)}});
      }
    }
    const int before = in_flight_items_.fetch_sub(items_done);
    // Wake the source when it may be waiting for this: it was at capacity; a retry is now
    // scheduled that may fall due before its current sleep ends; or it is parked and an outcome
    // may have freed a key whose next event waits (no notification announces that, and it must
    // not wait for the poll). A source that is not parked claims again within kBusyPoll anyway;
    // one that parks after this load claims once more after setting the flag, and sees this batch.
    bool scheduled = false;
    bool settled = false;
    auto note = [&](const model::PartOutcome& p) {
      using Kind = model::PartOutcome::Kind;
      scheduled = scheduled || p.kind == Kind::kRetry || p.kind == Kind::kDeferred;
      settled = settled || p.kind == Kind::kDelivered || p.kind == Kind::kDeadLetter;
    };
    for (const auto& o : batch.outbox) {
      for (const auto& p : o.parts) note(p);
    }
    for (const auto& d : batch.deliveries) note(d.part);
    if (before >= max_in_flight_items_ || scheduled || (settled && source_parked_.load()))
      source_.wake();
  }
}

// ---- shutdown -------------------------------------------------------------------------------

Status Dispatcher::shutdown(Clock::TimePoint drain_deadline, Clock::TimePoint final_deadline) {
  if (!started_ || shut_down_) return {};
  shut_down_ = true;
  draining_ = true;

  // 1. Stop claiming.
  source_thread_.request_stop();
  if (source_thread_.joinable()) source_thread_.join();

  // 2. Lanes finish the request they are sending; queued tasks come back aborted.
  drain_stop_.request_stop();
  for (auto& s : subscriptions_) {
    for (auto& lane : s->lanes) lane->queue.close();
  }
  // Wait for lanes up to the deadline; then abort what is still on the wire.
  std::jthread watchdog([this, drain_deadline](std::stop_token st) {
    if (clock_.sleep_until(drain_deadline, st)) {
      hard_stop_ = true;
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
  if (record_failed_) return Error{ErrorCode::kUnavailable, "some outcomes could not be recorded"};
  return released;
}

}  // namespace relay::dispatch
