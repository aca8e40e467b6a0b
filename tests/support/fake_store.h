#pragma once
// FakeStore: relay.outbox, relay.delivery and relay.dead_letter in memory, behind both of the
// pipeline's database seams (model::WorkSource and model::OutcomeSink), so the pipeline runs in a
// unit test with no Postgres. The specification is the SQL of the production pair,
// store::PgOutboxSource (claims) and store::PgOutcomeStore (outcomes); this class does the same,
// statement by statement, with time from the injected Clock in place of the database's now():
//
// - claim_outbox: in a window of the oldest rows, each key's head (its oldest row) plus a run of
//   up to kRunLength of its next rows, stopping before a row that is leased or not yet due; rows
//   with no key are heads of their own. `held_for` names the per_key subscriptions that still have
//   a relay.delivery row of the key, and the `block` subscriptions with an unreplayed dead letter
//   of an earlier event of the key.
// - claim_deliveries: due, unleased rows of the named subscriptions; for per_key subscriptions
//   only a (subscription, key)'s head, for `block` ones not behind an earlier dead letter; the
//   first `limit` by (next_attempt_at, id), returned in outbox id order.
// - time_until_next_due: the earliest unleased relay.delivery row of our subscriptions or future
//   deliver_after; after a claim_deliveries, a row counts only if it fell due after that claim
//   less PgOutboxSource::kBlockedMargin (one the claim left behind is blocked).
// - record: what PgOutcomeStore::record writes for each PartOutcome kind, fenced by the lease
//   owner (work this relay no longer holds changes nothing), including the behind-key hand-over
//   (a deferred row queued behind its key is due at once if no predecessor is left) and the
//   promotion of a key's next row when its head leaves relay.delivery.
// - leases expire on the Clock; renew_leases, release_all and release_unheld as the SQL does.
// - wait_for_work returns on wake(), on publish(), or when the Clock reaches the timeout (a
//   ManualClock drives it); a wake() before the call makes the call return at once.
//
// One owner: every claim is made for FakeStoreOptions::owner. Keys are grouped by their text (the
// SQL groups by hashtext(key), which can only hold back more). Not modelled: the doorbell (publish
// always wakes the waiter, parked or not; park/unpark are only counted), SKIP LOCKED (one mutex
// serializes everything), and the claim window's cost.
//
// Thread-safe: one mutex guards the tables; any thread may call anything.

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <vector>

#include "relay/common/clock.h"
#include "relay/common/duration.h"
#include "relay/common/event.h"
#include "relay/config/config.h"
#include "relay/model/dead_letter_reason.h"
#include "relay/model/outcome_sink.h"
#include "relay/model/work_source.h"
#include "relay/store/outbox_source.h"

namespace relay::testing {

struct FakeStoreOptions {
  std::string owner = "relay-under-test";  // lease_owner of every claim
  Millis lease{3'600'000};                 // source.lease
  std::vector<std::string> subscriptions;  // names this relay delivers to
  std::vector<std::string> ordered;        // those with ordering: per_key
  std::vector<std::string> blocking;       // those with on_dead_letter: block
};

// The options app/ gives the table source for `config`: its subscriptions, ordering and
// on_dead_letter, and source.lease.
FakeStoreOptions fake_store_options(const config::Config& config,
                                    std::string owner = "relay-under-test");

// Optional columns of a published event (relay.publish's p_deliver_after and p_expires_at).
struct PublishOptions {
  std::optional<Clock::TimePoint> deliver_after;  // not claimable before this
  std::optional<std::chrono::system_clock::time_point> expires_at;
  std::string content_type = "application/json";
};

struct OutboxRow {
  Event event;  // event.outbox_id is the row's id
  std::optional<Clock::TimePoint> deliver_after;
  std::optional<std::string> lease_owner;
  std::optional<Clock::TimePoint> lease_until;
  int claims = 0;
};

struct DeliveryRow {
  std::int64_t id = 0;
  std::string subscription;
  Event event;  // event.outbox_id is the row's outbox_id
  int attempts = 0;
  std::chrono::system_clock::time_point first_failed_at{};
  Clock::TimePoint next_attempt_at{};
  std::optional<int> last_status;
  std::string last_error;
  std::string last_response;
  std::optional<std::string> lease_owner;
  std::optional<Clock::TimePoint> lease_until;
};

struct DeadLetterRow {
  std::int64_t id = 0;
  std::string subscription;  // "(none)" for a topic nothing subscribes to
  Event event;
  model::DeadLetterReason reason = model::DeadLetterReason::kRetriesExhausted;
  int attempts = 0;
  std::optional<int> last_status;
  std::string last_error;
  std::string last_response;
  bool replayed = false;
};

class FakeStore final : public model::WorkSource, public model::OutcomeSink {
 public:
  // The run length and claim window of the table source (its header only: no libpqxx here).
  static constexpr int kRunLength = store::PgOutboxSource::kRunLength;
  static constexpr int kClaimWindowPerEvent = store::PgOutboxSource::kClaimWindowPerEvent;
  static constexpr int kMinClaimWindow = store::PgOutboxSource::kMinClaimWindow;

  FakeStore(Clock& clock, FakeStoreOptions options);
  FakeStore(const FakeStore&) = delete;
  FakeStore& operator=(const FakeStore&) = delete;

  // ---- model::WorkSource ----
  Result<std::vector<model::ClaimedEvent>> claim_outbox(int limit, int held_items) override;
  Result<std::vector<model::ClaimedDelivery>> claim_deliveries(
      int limit, const std::vector<std::string>& subscriptions) override;
  Status renew_leases() override;
  Status release_all() override;
  Result<long long> release_unheld(const std::vector<std::int64_t>& outbox_ids,
                                   const std::vector<std::int64_t>& delivery_ids) override;
  Status park(Millis ttl) override;
  Status unpark() override;
  Result<std::optional<Millis>> time_until_next_due() override;
  Result<bool> wait_for_work(Millis timeout) override;
  void wake() override;

  // ---- model::OutcomeSink ----
  Status record(const model::OutcomeBatch& batch) override;

  // ---- test helpers ----
  // Inserts an outbox row as relay.publish does and wakes a waiting wait_for_work(). Returns its
  // id (1, 2, 3, ... in publication order); its event_id is a UUID-shaped text made from the id.
  std::int64_t publish(const std::string& topic, std::optional<std::string> key,
                       std::string payload, PublishOptions options = {});
  // Deletes a dead letter, as `relay dlq drop` does (a `block` key behind it may go on), and wakes
  // a waiting wait_for_work() as its NOTIFY does. Returns false if there is no such row.
  bool drop_dead_letter(std::int64_t id);

  struct Counts {
    long long outbox = 0;
    long long delivery = 0;
    long long dead_letter = 0;
  };
  Counts counts() const;
  std::vector<OutboxRow> outbox() const;            // by id
  std::vector<DeliveryRow> deliveries() const;      // by id
  std::vector<DeadLetterRow> dead_letters() const;  // by id
  // Rows (outbox and delivery) leased to the owner now: claimed and not yet recorded or released.
  int leased() const;
  // The largest leased() seen right after any claim.
  int max_leased() const;
  // How many times each call was made (wake() counts only explicit wake() calls, not publish()).
  struct Calls {
    long long claim_outbox = 0;
    long long claim_deliveries = 0;
    long long record = 0;
    long long renew_leases = 0;
    long long release_all = 0;
    long long release_unheld = 0;
    long long park = 0;
    long long unpark = 0;
    long long wake = 0;
  };
  Calls calls() const;
  // Changes with every call above and every publish(): a cheap "did anything happen" probe.
  long long activity() const;

 private:
  bool owned_locked(const std::optional<std::string>& lease_owner) const;
  int leased_locked() const;
  // kDueIfFirst: a row queued behind its key is due at once when no earlier event of its
  // (subscription, key) is left in relay.delivery.
  void due_if_first_locked(std::int64_t delivery_id, Clock::TimePoint now);
  // kPromoteNext: the (subscription, key)'s head is due at once if it waits and is unleased.
  void promote_next_locked(const std::string& subscription, const std::string& key,
                           Clock::TimePoint now);
  void notify_locked();
  bool is_ordered(const std::string& subscription) const;
  bool is_blocking(const std::string& subscription) const;

  Clock& clock_;
  const FakeStoreOptions options_;

  mutable std::mutex mu_;
  std::map<std::int64_t, OutboxRow> outbox_;             // guarded by mu_
  std::map<std::int64_t, DeliveryRow> delivery_;         // guarded by mu_
  std::map<std::int64_t, DeadLetterRow> dead_letter_;    // guarded by mu_
  std::int64_t next_outbox_id_ = 1;                      // guarded by mu_
  std::int64_t next_delivery_id_ = 1;                    // guarded by mu_
  std::int64_t next_dead_letter_id_ = 1;                 // guarded by mu_
  int max_leased_ = 0;                                   // guarded by mu_
  std::optional<Clock::TimePoint> last_delivery_claim_;  // guarded by mu_
  Calls calls_;                                          // guarded by mu_
  long long publishes_ = 0;                              // guarded by mu_
  bool woken_ = false;                  // guarded by mu_: a wake or publish not yet consumed
  std::stop_source* waiter_ = nullptr;  // guarded by mu_: the wait_for_work in progress
};

}  // namespace relay::testing
