#include "tests/support/fake_store.h"

#include <fmt/format.h>

#include <algorithm>
#include <set>
#include <unordered_map>
#include <utility>

namespace relay::testing {
namespace {

bool contains(const std::vector<std::string>& names, const std::string& name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

// `a IS NOT DISTINCT FROM b` is not what the SQL uses: `p.key = d.key` is never true for NULL keys.
bool same_key(const std::optional<std::string>& a, const std::optional<std::string>& b) {
  return a && b && *a == *b;
}

// Postgres' (extract(epoch FROM interval) * 1000)::bigint, rounded up to whole milliseconds so a
// ManualClock that moves by the returned amount reaches the due time.
Millis ceil_millis(Clock::Duration d) { return std::chrono::ceil<Millis>(d); }

}  // namespace

FakeStoreOptions fake_store_options(const config::Config& config, std::string owner) {
  FakeStoreOptions o;
  o.owner = std::move(owner);
  o.lease = config.source.lease;
  for (const auto& s : config.subscriptions) {
    o.subscriptions.push_back(s.name);
    if (s.ordering == model::Ordering::kPerKey) o.ordered.push_back(s.name);
    if (s.on_dead_letter == model::OnDeadLetter::kBlock) o.blocking.push_back(s.name);
  }
  return o;
}

FakeStore::FakeStore(Clock& clock, FakeStoreOptions options)
    : clock_(clock), options_(std::move(options)) {}

bool FakeStore::is_ordered(const std::string& subscription) const {
  return contains(options_.ordered, subscription);
}
bool FakeStore::is_blocking(const std::string& subscription) const {
  return contains(options_.blocking, subscription);
}
bool FakeStore::owned_locked(const std::optional<std::string>& lease_owner) const {
  return lease_owner && *lease_owner == options_.owner;
}

int FakeStore::leased_locked() const {
  int n = 0;
  for (const auto& [id, row] : outbox_) n += owned_locked(row.lease_owner) ? 1 : 0;
  for (const auto& [id, row] : delivery_) n += owned_locked(row.lease_owner) ? 1 : 0;
  return n;
}

// ---- claims ---------------------------------------------------------------------------------

// kClaimOutbox, step by step: the window of the oldest rows; per key group (a NULL key is a group
// of its own) the position of each row and the first "stuck" row (leased and live, or not yet
// due); candidates are rows before their group's first stuck row, at most kRunLength deep, the
// first `heads` of them in id order. Every candidate is unleased and due (that is what not stuck
// means), so all are locked, and a group's candidates are an unbroken prefix from its head.
Result<std::vector<model::ClaimedEvent>> FakeStore::claim_outbox(int limit, int held_items) {
  std::lock_guard lock(mu_);
  ++calls_.claim_outbox;
  const auto now = clock_.now();
  const int heads = std::max(1, limit);
  const int window = std::max(kMinClaimWindow, held_items + kClaimWindowPerEvent * limit);

  auto stuck = [&](const OutboxRow& r) {
    return (r.lease_until && *r.lease_until >= now) || (r.deliver_after && *r.deliver_after > now);
  };
  // Group of a row: its key, or (for a NULL key) its own id.
  auto group_of = [](const OutboxRow& r) {
    return r.event.key ? "k:" + *r.event.key : "id:" + std::to_string(r.event.outbox_id);
  };
  std::vector<OutboxRow*> win;
  for (auto& [id, row] : outbox_) {
    if (static_cast<int>(win.size()) >= window) break;
    win.push_back(&row);
  }
  std::unordered_map<std::string, std::int64_t> first_stuck;
  for (OutboxRow* r : win) {
    if (stuck(*r)) first_stuck.emplace(group_of(*r), r->event.outbox_id);  // min: id order
  }
  std::unordered_map<std::string, int> pos;
  std::vector<OutboxRow*> claimed;
  for (OutboxRow* r : win) {
    if (static_cast<int>(claimed.size()) >= heads) break;
    const std::string group = group_of(*r);
    const int p = ++pos[group];
    auto fs = first_stuck.find(group);
    if (fs != first_stuck.end() && r->event.outbox_id >= fs->second) continue;
    if (p > kRunLength) continue;
    claimed.push_back(r);
  }

  std::vector<model::ClaimedEvent> out;
  out.reserve(claimed.size());
  for (OutboxRow* r : claimed) {
    r->lease_owner = options_.owner;
    r->lease_until = now + options_.lease;
    ++r->claims;
    model::ClaimedEvent c;
    c.event = r->event;
    if (r->event.key) {
      std::set<std::string> held;
      for (const auto& [id, d] : delivery_) {
        if (same_key(d.event.key, r->event.key) && is_ordered(d.subscription))
          held.insert(d.subscription);
      }
      for (const auto& [id, dl] : dead_letter_) {
        if (same_key(dl.event.key, r->event.key) && !dl.replayed && is_blocking(dl.subscription) &&
            dl.event.outbox_id != 0 && dl.event.outbox_id < r->event.outbox_id)
          held.insert(dl.subscription);
      }
      c.held_for.assign(held.begin(), held.end());
    }
    out.push_back(std::move(c));
  }
  max_leased_ = std::max(max_leased_, leased_locked());
  return out;  // `claimed` is in id order already
}

// kClaimDeliveries.
Result<std::vector<model::ClaimedDelivery>> FakeStore::claim_deliveries(
    int limit, const std::vector<std::string>& subscriptions) {
  std::lock_guard lock(mu_);
  ++calls_.claim_deliveries;
  const auto now = clock_.now();
  last_delivery_claim_ = now;
  std::vector<DeliveryRow*> due;
  for (auto& [id, d] : delivery_) {
    if (d.next_attempt_at > now) continue;
    if (d.lease_until && *d.lease_until >= now) continue;
    if (!contains(subscriptions, d.subscription)) continue;
    if (d.event.key && is_ordered(d.subscription)) {
      bool has_predecessor = false;
      for (const auto& [pid, p] : delivery_) {
        has_predecessor = has_predecessor ||
                          (same_key(p.event.key, d.event.key) && p.subscription == d.subscription &&
                           p.event.outbox_id < d.event.outbox_id);
      }
      if (has_predecessor) continue;
    }
    if (d.event.key && is_blocking(d.subscription)) {
      bool blocked = false;
      for (const auto& [lid, dl] : dead_letter_) {
        blocked = blocked || (same_key(dl.event.key, d.event.key) &&
                              dl.subscription == d.subscription && !dl.replayed &&
                              dl.event.outbox_id != 0 && dl.event.outbox_id < d.event.outbox_id);
      }
      if (blocked) continue;
    }
    due.push_back(&d);
  }
  std::sort(due.begin(), due.end(), [](const DeliveryRow* a, const DeliveryRow* b) {
    return std::pair(a->next_attempt_at, a->id) < std::pair(b->next_attempt_at, b->id);
  });
  if (static_cast<int>(due.size()) > limit) due.resize(static_cast<size_t>(std::max(0, limit)));

  std::vector<model::ClaimedDelivery> out;
  out.reserve(due.size());
  for (DeliveryRow* d : due) {
    d->lease_owner = options_.owner;
    d->lease_until = now + options_.lease;
    model::ClaimedDelivery c;
    c.delivery_id = d->id;
    c.subscription = d->subscription;
    c.attempts = d->attempts;
    c.first_failed_at = d->first_failed_at;
    c.event = d->event;
    out.push_back(std::move(c));
  }
  std::sort(out.begin(), out.end(),
            [](const auto& a, const auto& b) { return a.event.outbox_id < b.event.outbox_id; });
  max_leased_ = std::max(max_leased_, leased_locked());
  return out;
}

// ---- leases ---------------------------------------------------------------------------------

Status FakeStore::renew_leases() {
  std::lock_guard lock(mu_);
  ++calls_.renew_leases;
  const auto until = clock_.now() + options_.lease;
  for (auto& [id, r] : outbox_) {
    if (owned_locked(r.lease_owner)) r.lease_until = until;
  }
  for (auto& [id, d] : delivery_) {
    if (owned_locked(d.lease_owner)) d.lease_until = until;
  }
  return {};
}

Status FakeStore::release_all() {
  std::lock_guard lock(mu_);
  ++calls_.release_all;
  for (auto& [id, r] : outbox_) {
    if (owned_locked(r.lease_owner)) r.lease_owner.reset(), r.lease_until.reset();
  }
  for (auto& [id, d] : delivery_) {
    if (owned_locked(d.lease_owner)) d.lease_owner.reset(), d.lease_until.reset();
  }
  return {};
}

Result<long long> FakeStore::release_unheld(const std::vector<std::int64_t>& outbox_ids,
                                            const std::vector<std::int64_t>& delivery_ids) {
  std::lock_guard lock(mu_);
  ++calls_.release_unheld;
  long long n = 0;
  auto held = [](const std::vector<std::int64_t>& ids, std::int64_t id) {
    return std::find(ids.begin(), ids.end(), id) != ids.end();
  };
  for (auto& [id, r] : outbox_) {
    if (owned_locked(r.lease_owner) && !held(outbox_ids, id)) {
      r.lease_owner.reset();
      r.lease_until.reset();
      ++n;
    }
  }
  for (auto& [id, d] : delivery_) {
    if (owned_locked(d.lease_owner) && !held(delivery_ids, id)) {
      d.lease_owner.reset();
      d.lease_until.reset();
      ++n;
    }
  }
  return n;
}

Status FakeStore::park(Millis) {
  std::lock_guard lock(mu_);
  ++calls_.park;
  return {};
}

Status FakeStore::unpark() {
  std::lock_guard lock(mu_);
  ++calls_.unpark;
  return {};
}

// kNextDue: the earliest next_attempt_at of unleased rows of this relay's subscriptions, or the
// earliest future deliver_after.
Result<std::optional<Millis>> FakeStore::time_until_next_due() {
  std::lock_guard lock(mu_);
  const auto now = clock_.now();
  std::optional<Clock::TimePoint> next;
  auto consider = [&](Clock::TimePoint t) { next = next ? std::min(*next, t) : t; };
  // Rows due before the last delivery claim (less the margin) were left by it: blocked.
  std::optional<Clock::TimePoint> counted_after;
  if (last_delivery_claim_)
    counted_after = now - ((now - *last_delivery_claim_) + store::PgOutboxSource::kBlockedMargin);
  for (const auto& [id, d] : delivery_) {
    if (counted_after && d.next_attempt_at <= *counted_after) continue;
    if (!d.lease_until && contains(options_.subscriptions, d.subscription))
      consider(d.next_attempt_at);
  }
  for (const auto& [id, r] : outbox_) {
    if (r.deliver_after && *r.deliver_after > now) consider(*r.deliver_after);
  }
  if (!next) return std::optional<Millis>();
  return std::optional<Millis>(std::max(Millis(0), ceil_millis(*next - now)));
}

// ---- waiting --------------------------------------------------------------------------------

// See LaneBell::wait_until in relay/pipeline/batcher.cc: GCC 12 may warn that a default-built
// std::stop_source "may be used uninitialized" (a false positive in libstdc++).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
Result<bool> FakeStore::wait_for_work(Millis timeout) {
  // The deadline is computed here, before anyone else can move the clock for this wait.
  const auto deadline = clock_.now() + timeout;
  std::stop_source wake;
  {
    std::lock_guard lock(mu_);
    if (woken_) {
      woken_ = false;
      return true;
    }
    waiter_ = &wake;
  }
  (void)clock_.sleep_until(deadline, wake.get_token());
  std::lock_guard lock(mu_);
  waiter_ = nullptr;
  const bool woke = woken_;
  woken_ = false;
  return woke;
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

void FakeStore::notify_locked() {
  woken_ = true;
  if (waiter_ != nullptr) waiter_->request_stop();
}

void FakeStore::wake() {
  std::lock_guard lock(mu_);
  ++calls_.wake;
  notify_locked();
}

// ---- outcomes -------------------------------------------------------------------------------

void FakeStore::due_if_first_locked(std::int64_t delivery_id, Clock::TimePoint now) {
  auto me = delivery_.find(delivery_id);
  if (me == delivery_.end() || me->second.next_attempt_at <= now) return;
  for (const auto& [id, p] : delivery_) {
    if (p.subscription == me->second.subscription && same_key(p.event.key, me->second.event.key) &&
        p.event.outbox_id < me->second.event.outbox_id)
      return;
  }
  me->second.next_attempt_at = now;
}

void FakeStore::promote_next_locked(const std::string& subscription, const std::string& key,
                                    Clock::TimePoint now) {
  DeliveryRow* head = nullptr;
  for (auto& [id, d] : delivery_) {
    if (d.subscription != subscription || !d.event.key || *d.event.key != key) continue;
    if (head == nullptr || d.event.outbox_id < head->event.outbox_id) head = &d;
  }
  if (head != nullptr && head->next_attempt_at > now && !head->lease_owner)
    head->next_attempt_at = now;
}

// PgOutcomeStore::record, in the same order: the outbox outcomes (copies into relay.delivery and
// relay.dead_letter, then the delete of finished rows and the release of wholly aborted ones),
// then the relay.delivery outcomes (updates and dead letters, the delete of finished rows with the
// promotion of each key's next row, then releases).
Status FakeStore::record(const model::OutcomeBatch& batch) {
  using Kind = model::PartOutcome::Kind;
  std::lock_guard lock(mu_);
  ++calls_.record;
  if (batch.empty()) return {};
  const auto now = clock_.now();
  const auto wall_now = clock_.wall_now();

  std::vector<std::int64_t> outbox_done, outbox_release;
  for (const model::OutboxOutcome& o : batch.outbox) {
    bool all_aborted = !o.parts.empty();
    for (const auto& p : o.parts) all_aborted = all_aborted && p.kind == Kind::kAborted;
    if (all_aborted) {
      outbox_release.push_back(o.outbox_id);
      continue;
    }
    auto row = outbox_.find(o.outbox_id);
    // Every copy is INSERT ... SELECT ... WHERE lease_owner = me: nothing if the lease was lost.
    const bool held = row != outbox_.end() && owned_locked(row->second.lease_owner);
    for (const model::PartOutcome& p : o.parts) {
      if (!held) break;
      const OutboxRow& r = row->second;
      switch (p.kind) {
        case Kind::kDelivered:
          break;
        case Kind::kRetry:
        case Kind::kDeferred:
        case Kind::kAborted: {
          bool exists = false;  // ON CONFLICT (event_id, subscription) DO NOTHING
          for (const auto& [id, d] : delivery_) {
            exists = exists ||
                     (d.event.event_id == r.event.event_id && d.subscription == p.subscription);
          }
          if (exists) break;
          DeliveryRow d;
          d.id = next_delivery_id_++;
          d.subscription = p.subscription;
          d.event = r.event;
          d.attempts = p.attempts;
          d.first_failed_at = wall_now;
          d.next_attempt_at = now + p.retry_in;
          d.last_status = p.last_status;
          d.last_error = p.last_error;
          d.last_response = p.last_response;
          const std::int64_t id = d.id;
          delivery_.emplace(id, std::move(d));
          if (p.behind_key) due_if_first_locked(id, now);
          break;
        }
        case Kind::kDeadLetter: {
          DeadLetterRow dl;
          dl.id = next_dead_letter_id_++;
          dl.subscription = p.subscription;
          dl.event = r.event;
          dl.reason = p.reason;
          dl.attempts = p.attempts;
          dl.last_status = p.last_status;
          dl.last_error = p.last_error;
          dl.last_response = p.last_response;
          dead_letter_.emplace(dl.id, std::move(dl));
          break;
        }
      }
    }
    outbox_done.push_back(o.outbox_id);
  }
  for (std::int64_t id : outbox_done) {
    auto row = outbox_.find(id);
    if (row != outbox_.end() && owned_locked(row->second.lease_owner)) outbox_.erase(row);
  }
  for (std::int64_t id : outbox_release) {
    auto row = outbox_.find(id);
    if (row != outbox_.end() && owned_locked(row->second.lease_owner)) {
      row->second.lease_owner.reset();
      row->second.lease_until.reset();
    }
  }

  std::vector<std::int64_t> deliveries_done, deliveries_release;
  std::set<std::pair<std::string, std::string>> blocked_keys;  // (subscription, key) dead-lettered
  for (const model::DeliveryOutcomeRecord& rec : batch.deliveries) {
    const model::PartOutcome& p = rec.part;
    auto it = delivery_.find(rec.delivery_id);
    const bool held = it != delivery_.end() && owned_locked(it->second.lease_owner);
    switch (p.kind) {
      case Kind::kDelivered:
        deliveries_done.push_back(rec.delivery_id);
        break;
      case Kind::kRetry:
        if (held) {
          DeliveryRow& d = it->second;
          d.attempts = p.attempts;
          d.next_attempt_at = now + p.retry_in;
          d.last_status = p.last_status;
          d.last_error = p.last_error;
          d.last_response = p.last_response;
          d.lease_owner.reset();
          d.lease_until.reset();
        }
        break;
      case Kind::kDeadLetter:
        if (held) {
          const DeliveryRow& d = it->second;
          DeadLetterRow dl;
          dl.id = next_dead_letter_id_++;
          dl.subscription = d.subscription;
          dl.event = d.event;
          dl.reason = p.reason;
          dl.attempts = p.attempts;
          dl.last_status = p.last_status;
          dl.last_error = p.last_error;
          dl.last_response = p.last_response;
          if (d.event.key) blocked_keys.emplace(d.subscription, *d.event.key);
          dead_letter_.emplace(dl.id, std::move(dl));
        }
        deliveries_done.push_back(rec.delivery_id);
        break;
      case Kind::kAborted:
        deliveries_release.push_back(rec.delivery_id);
        break;
      case Kind::kDeferred:
        // A deferred part keeps its attempt count and last error: only the next attempt moves.
        if (held) {
          DeliveryRow& d = it->second;
          d.next_attempt_at = now + p.retry_in;
          d.lease_owner.reset();
          d.lease_until.reset();
        }
        if (p.behind_key) due_if_first_locked(rec.delivery_id, now);  // no lease fence in the SQL
        break;
    }
  }
  std::set<std::pair<std::string, std::string>> keys;  // of the deleted rows
  for (std::int64_t id : deliveries_done) {
    auto it = delivery_.find(id);
    if (it == delivery_.end() || !owned_locked(it->second.lease_owner)) continue;
    if (it->second.event.key) keys.emplace(it->second.subscription, *it->second.event.key);
    delivery_.erase(it);
  }
  for (const auto& [sub, key] : keys) {
    // A dead-lettered head of a `block` subscription keeps holding its key: no promotion.
    if (is_blocking(sub) && blocked_keys.count({sub, key}) != 0) continue;
    promote_next_locked(sub, key, now);
  }
  for (std::int64_t id : deliveries_release) {
    auto it = delivery_.find(id);
    if (it != delivery_.end() && owned_locked(it->second.lease_owner)) {
      it->second.lease_owner.reset();
      it->second.lease_until.reset();
    }
  }
  return {};
}

// ---- test helpers ---------------------------------------------------------------------------

std::int64_t FakeStore::publish(const std::string& topic, std::optional<std::string> key,
                                std::string payload, PublishOptions options) {
  std::lock_guard lock(mu_);
  ++publishes_;
  OutboxRow r;
  const std::int64_t id = next_outbox_id_++;
  r.event.outbox_id = id;
  r.event.event_id = fmt::format("00000000-0000-4000-8000-{:012d}", id);
  r.event.topic = topic;
  r.event.key = std::move(key);
  r.event.payload = std::move(payload);
  r.event.content_type = std::move(options.content_type);
  r.event.created_at = clock_.wall_now();
  r.event.expires_at = options.expires_at;
  r.deliver_after = options.deliver_after;
  outbox_.emplace(id, std::move(r));
  notify_locked();  // the outbox trigger's NOTIFY
  return id;
}

bool FakeStore::drop_dead_letter(std::int64_t id) {
  std::lock_guard lock(mu_);
  if (dead_letter_.erase(id) != 1) return false;
  notify_locked();
  return true;
}

FakeStore::Counts FakeStore::counts() const {
  std::lock_guard lock(mu_);
  return {static_cast<long long>(outbox_.size()), static_cast<long long>(delivery_.size()),
          static_cast<long long>(dead_letter_.size())};
}

std::vector<OutboxRow> FakeStore::outbox() const {
  std::lock_guard lock(mu_);
  std::vector<OutboxRow> out;
  for (const auto& [id, r] : outbox_) out.push_back(r);
  return out;
}

std::vector<DeliveryRow> FakeStore::deliveries() const {
  std::lock_guard lock(mu_);
  std::vector<DeliveryRow> out;
  for (const auto& [id, d] : delivery_) out.push_back(d);
  return out;
}

std::vector<DeadLetterRow> FakeStore::dead_letters() const {
  std::lock_guard lock(mu_);
  std::vector<DeadLetterRow> out;
  for (const auto& [id, d] : dead_letter_) out.push_back(d);
  return out;
}

int FakeStore::leased() const {
  std::lock_guard lock(mu_);
  return leased_locked();
}

int FakeStore::max_leased() const {
  std::lock_guard lock(mu_);
  return max_leased_;
}

FakeStore::Calls FakeStore::calls() const {
  std::lock_guard lock(mu_);
  return calls_;
}

long long FakeStore::activity() const {
  std::lock_guard lock(mu_);
  return calls_.claim_outbox + calls_.claim_deliveries + calls_.record + calls_.renew_leases +
         calls_.release_all + calls_.release_unheld + calls_.park + calls_.unpark + calls_.wake +
         publishes_;
}

}  // namespace relay::testing
