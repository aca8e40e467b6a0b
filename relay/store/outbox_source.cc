#include "relay/store/outbox_source.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "relay/common/check.h"
#include "relay/common/fault_point.h"
#include "relay/store/outbox_rows.h"
#include "relay/store/pg_arrays.h"
#include "relay/store/pg_connection.h"
#include "relay/store/transaction.h"
#include "relay/store/wal_spill.h"
#include "relay/store/wakeup.h"

namespace relay::store {
namespace {

// Timestamps travel as microseconds since the epoch: no time-zone or text-format surprises.
// Head + run: a key's oldest event (its head) is claimable when unleased and due; the same claim
// takes up to $5 - 1 of that key's next events, stopping before a leased or delayed one. Events
// behind a head are never heads themselves, so one relay owns a key's run at a time and per-key
// order holds across relays.
// Everything is decided inside a window of the oldest $4 rows from this relay's floor ($8) on (no
// row below it exists or can still appear: ClaimFloor; the scan skips the delivered prefix, which a
// long-running snapshot elsewhere keeps as dead tuples): a key's first row in the window is
// its oldest row in the table, so one sort of the window finds every head and run (no per-row
// lookups), and a hot key's deep queue cannot make a claim walk the whole table. Keys are grouped
// by hashtext(key): two keys sharing a hash are ordered as one, which only ever holds back more.
// Rows are locked with SKIP LOCKED (another relay is claiming them now), and a run is taken only
// behind a head this claim locked, so a run never overtakes its head.
// For each event, the last column lists the subscriptions that must not receive it directly
// (held_for_sql in outbox_rows.h: $6 ordered, $7 blocking).
constexpr const char* kClaimOutbox = R"(
  WITH win AS MATERIALIZED (
    SELECT id, key,
           (lease_until IS NOT NULL AND lease_until >= now())
             OR (deliver_after IS NOT NULL AND deliver_after > now()) AS stuck
      FROM relay.outbox WHERE id >= $8 ORDER BY id LIMIT $4
  ), ranked AS (
    SELECT id,
           row_number() OVER by_id AS pos,
           min(id) OVER by_key AS head_id,
           min(id) FILTER (WHERE stuck) OVER by_key AS first_stuck
      FROM win
    -- A NULL key is its own group: each such event is a head.
    WINDOW by_key AS (PARTITION BY hashtext(key), CASE WHEN key IS NULL THEN id END),
           by_id AS (by_key ORDER BY id)
  ), candidates AS MATERIALIZED (
    SELECT id, head_id, pos FROM ranked
     WHERE (first_stuck IS NULL OR id < first_stuck) AND pos <= $5
     ORDER BY id LIMIT $3
  ), locked AS (
    SELECT o.id FROM relay.outbox o
     WHERE o.id = ANY (ARRAY(SELECT id FROM candidates))
       AND (o.lease_until IS NULL OR o.lease_until < now())
       AND (o.deliver_after IS NULL OR o.deliver_after <= now())
     FOR UPDATE OF o SKIP LOCKED
  ), claimed AS (
    -- Per head, the unbroken prefix of its run that this claim locked, head first: a skipped
    -- head or a gap ends it.
    SELECT id FROM (
      SELECT id, pos, row_number() OVER (PARTITION BY head_id ORDER BY id) AS locked_pos
        FROM candidates WHERE id = ANY (ARRAY(SELECT id FROM locked))) l
     WHERE locked_pos = pos
  )
  -- The outbox is reached only through `id = ANY (array)` (index probes), never through a join:
  -- a queue table's row estimates are unreliable (reltuples is 0 after a vacuum of the drained
  -- table), and a join planned on them once walked a 100k-row backlog 500 times in one claim.
  UPDATE relay.outbox o
     SET lease_owner = $1, lease_until = now() + $2 * interval '1 millisecond', claims = o.claims + 1
   WHERE o.id = ANY (ARRAY(SELECT id FROM claimed))
  RETURNING o.id, o.event_id::text, o.topic, o.key, o.payload, o.content_type, o.headers::text,
            (extract(epoch FROM o.created_at) * 1000000)::bigint,
            (extract(epoch FROM o.expires_at) * 1000000)::bigint,
  )";  // + held_for_sql("$6", "$7", kTable)

// Due relay.delivery rows of the sendable subscriptions ($4), except parked ones (WAL mode: see
// sql/0007_wal_spill.sql). For per_key subscriptions ($5) only a (subscription, key)'s head (lowest
// outbox_id, parked rows included) is claimable, and for on_dead_letter: block ones
// ($6) not while an earlier unreplayed dead letter of that key exists.
constexpr const char* kClaimDeliveries = R"(
  WITH due AS (
    SELECT d.id FROM relay.delivery d
     WHERE d.next_attempt_at <= now()
       AND (d.lease_until IS NULL OR d.lease_until < now())
       AND d.behind_outbox_id IS NULL
       AND d.subscription = ANY($4::text[])
       AND (d.key IS NULL OR d.subscription <> ALL($5::text[]) OR NOT EXISTS (
             SELECT 1 FROM relay.delivery p
              WHERE p.key = d.key AND p.subscription = d.subscription AND p.outbox_id < d.outbox_id))
       AND (d.key IS NULL OR d.subscription <> ALL($6::text[]) OR NOT EXISTS (
             SELECT 1 FROM relay.dead_letter dl
              WHERE dl.key = d.key AND dl.subscription = d.subscription AND dl.replayed_at IS NULL
                AND dl.outbox_id < d.outbox_id))
     ORDER BY d.next_attempt_at, d.id
     LIMIT $3
     FOR UPDATE SKIP LOCKED)
  UPDATE relay.delivery d
     SET lease_owner = $1, lease_until = now() + $2 * interval '1 millisecond'
    FROM due
   WHERE d.id = due.id
  RETURNING d.id, d.subscription, d.attempts, (extract(epoch FROM d.first_failed_at) * 1000000)::bigint,
            d.outbox_id, d.event_id::text, d.topic, d.key, d.payload, d.content_type, d.headers::text,
            (extract(epoch FROM d.created_at) * 1000000)::bigint,
            (extract(epoch FROM d.expires_at) * 1000000)::bigint)";

constexpr const char* kRenewOutbox =
    "UPDATE relay.outbox SET lease_until = now() + $2 * interval '1 millisecond' WHERE lease_owner "
    "= $1";
constexpr const char* kRenewDeliveries =
    "UPDATE relay.delivery SET lease_until = now() + $2 * interval '1 millisecond' WHERE "
    "lease_owner = $1";

// $2: rows due more than this many milliseconds ago were due when the last delivery claim ran and
// it left them (blocked): they don't count. -1 before any claim: every row counts.
constexpr const char* kNextDue = R"(
  SELECT (extract(epoch FROM least(
            (SELECT min(next_attempt_at) FROM relay.delivery WHERE lease_until IS NULL AND behind_outbox_id IS NULL AND subscription = ANY($1::text[])
                AND ($2::bigint < 0 OR next_attempt_at > now() - $2::bigint * interval '1 millisecond')),
            (SELECT min(deliver_after) FROM relay.outbox WHERE deliver_after > now())) - now()) * 1000)::bigint)";

// ClaimFloor's statements (see relay/store/claim_floor.h), each run in its own snapshot.
// The outbox's id sequence and its CACHE: the floor needs CACHE 1.
constexpr const char* kFloorSequence = R"(
  SELECT s.seqrelid::bigint, s.seqcache FROM pg_sequence s
   WHERE s.seqrelid = pg_get_serial_sequence('relay.outbox', 'id')::regclass)";
// Step 1: the last id handed out (NULL before the first).
constexpr const char* kFloorLastId = "SELECT pg_sequence_last_value($1::bigint::oid::regclass)";
// Steps 2 and 3, after step 1: the transactions (virtual ids) holding a lock on the sequence, i.e.
// every one that took an id and may still commit (our own step 1 took one too, for its own
// autocommit transaction: left out); and whether any of the pending writers ($2) still runs (each
// holds its virtualxid lock to its end) or a prepared transaction holds the sequence (PREPARE
// moves the locks to another virtual id).
constexpr const char* kFloorWriters = R"(
  WITH seq_locks AS (
    SELECT virtualtransaction, pid FROM pg_locks
     WHERE locktype = 'relation' AND relation = $1::bigint::oid
       AND database = (SELECT oid FROM pg_database WHERE datname = current_database()))
  SELECT ARRAY(SELECT DISTINCT virtualtransaction FROM seq_locks
                WHERE pid IS DISTINCT FROM pg_backend_pid() AND virtualtransaction IS NOT NULL),
         NOT EXISTS (SELECT 1 FROM pg_locks WHERE virtualtransaction = ANY($2::text[]))
           AND NOT EXISTS (SELECT 1 FROM seq_locks WHERE pid IS NULL))";
// Step 4: the lowest row at or above $1: an index scan that stops at the first live row. (Not
// min(id): with a queue table's statistics the planner may aggregate over every row >= $1 instead,
// measured reading a 90k-row backlog each round.)
constexpr const char* kFloorLowest =
    "SELECT id FROM relay.outbox WHERE id >= $1 ORDER BY id LIMIT 1";

// One ClaimFloor round on `c` (autocommit statements outside the claim's transaction). Errors
// other than a lost connection disable the floor for good (e.g. no privilege on the sequence):
// claims then scan from 0, as they did without one.
Status advance_floor(ClaimFloor& floor, std::optional<long long>& sequence, pqxx::connection& c) {
  const auto now = std::chrono::steady_clock::now();
  Status r = run_nontransaction(c, [&](pqxx::nontransaction& tx) {
    if (!sequence) {
      auto rows = tx.exec(kFloorSequence);
      if (rows.empty()) {  // no sequence behind relay.outbox.id (yet): try again next round
        floor.round_failed();
        return;
      }
      if (rows[0][1].as<long long>() != 1) {  // a cached id may be used long after it was taken
        floor.disable();
        return;
      }
      sequence = rows[0][0].as<long long>();
    }
    ClaimFloor::Probe probe;
    auto last = tx.exec_prepared("floor_last_id", *sequence);
    if (!last[0][0].is_null()) probe.last_id = last[0][0].as<std::int64_t>();
    // Virtual transaction ids look like 3/1042: nothing in them needs quoting.
    auto writers =
        tx.exec_prepared("floor_writers", *sequence, name_array(floor.pending_writers()));
    probe.writers = parse_name_array(writers[0][0].as<std::string>());
    probe.pending_ended = writers[0][1].as<bool>();
    if (auto from = floor.probe(probe, now)) {
      auto lowest = tx.exec_prepared("floor_lowest", *from);
      floor.lowest_live(lowest.empty()
                            ? std::nullopt
                            : std::optional<std::int64_t>(lowest[0][0].as<std::int64_t>()));
    }
  });
  if (!r) {
    floor.round_failed();
    if (r.error().code != ErrorCode::kUnavailable) floor.disable();
  }
  return r;
}

std::chrono::system_clock::time_point from_micros(long long us) {
  return std::chrono::system_clock::time_point{std::chrono::microseconds(us)};
}

}  // namespace

PgOutboxSource::PgOutboxSource(std::string database_url, std::string owner, Millis lease,
                               std::vector<std::string> subscriptions,
                               std::vector<std::string> ordered, std::vector<std::string> blocking,
                               bool claims_outbox)
    : owner_(std::move(owner)),
      lease_(lease),
      claims_outbox_(claims_outbox),
      subscriptions_(name_array(subscriptions)),
      ordered_(name_array(ordered)),
      blocking_(name_array(blocking)) {
  conn_ = std::make_unique<PgConnection>(
      std::move(database_url),
      [this](pqxx::connection& c) {
        // The claim's window must walk the primary key in order from the floor and stop after $4
        // rows (measured with a bitmap scan instead: 44k rows read per claim of 500).
        plan_for_queue_tables(c);
        c.prepare("claim_outbox",
                  std::string(kClaimOutbox) + held_for_sql("$6", "$7", OutboxRowSource::kTable));
        c.prepare("claim_deliveries", kClaimDeliveries);
        c.prepare("renew_outbox", kRenewOutbox);
        c.prepare("renew_deliveries", kRenewDeliveries);
        c.prepare("next_due", kNextDue);
        c.prepare("floor_last_id", kFloorLastId);
        c.prepare("floor_writers", kFloorWriters);
        c.prepare("floor_lowest", kFloorLowest);
        // LISTEN before the first claim: a wake-up sent between the claim and the wait is not lost.
        listener_ = std::make_unique<OutboxListener>(c, notified_);
      },
      [this] { listener_.reset(); });
  wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  RELAY_CHECK(wake_fd_ >= 0, "eventfd failed");
}

PgOutboxSource::~PgOutboxSource() {
  conn_.reset();  // closes the connection, then drops listener_ (before_drop), then destroys it
  ::close(wake_fd_);
}

void PgOutboxSource::wake() { (void)eventfd_write(wake_fd_, 1); }

// Runs fn on the live connection; on kUnavailable drops it (and its listener) so the next call
// reconnects, re-prepares and re-LISTENs.
template <typename Fn>
auto PgOutboxSource::with_connection(Fn&& fn) {
  using R = decltype(fn(std::declval<pqxx::connection&>()));
  auto c = conn_->get();
  if (!c) {
    conn_->reset();  // drops listener_ too (before_drop)
    return R(c.error());
  }
  R result = fn(**c);
  // In doubt means the connection died during COMMIT: it is as gone as after kUnavailable.
  if (!result.has_value() && (result.error().code == ErrorCode::kUnavailable ||
                              result.error().code == ErrorCode::kInDoubt)) {
    conn_->reset();  // drops listener_ too (before_drop)
  }
  return result;
}

Result<std::vector<model::ClaimedEvent>> PgOutboxSource::claim_outbox(int limit, int held_items) {
  auto result =
      with_connection([&](pqxx::connection& c) -> Result<std::vector<model::ClaimedEvent>> {
        if (floor_.round_due(std::chrono::steady_clock::now())) {
          if (auto moved = advance_floor(floor_, floor_sequence_, c);
              !moved && moved.error().code == ErrorCode::kUnavailable)
            return moved.error();
        }
        return run_transaction(c, [&](pqxx::work& txn) {
          // The window covers what this relay already holds plus room to find new heads.
          const int heads = std::max(1, limit);
          const int window = std::max(kMinClaimWindow, held_items + kClaimWindowPerEvent * limit);
          auto rows = txn.exec_prepared(
              "claim_outbox", owner_, static_cast<long long>(lease_.count()), heads, window,
              kRunLength, ordered_, blocking_, static_cast<long long>(floor_.floor()));
          std::vector<model::ClaimedEvent> out;
          out.reserve(rows.size());
          for (const auto& row : rows) {
            model::ClaimedEvent c;
            c.event = read_event(row, row[0].as<std::int64_t>(), 1);
            c.held_for = parse_name_array(row[9].as<std::string>());
            out.push_back(std::move(c));
          }
          // UPDATE ... RETURNING has no order; delivery wants id order (per-key order within a
          // claim).
          std::sort(out.begin(), out.end(),
                    [](const model::ClaimedEvent& a, const model::ClaimedEvent& b) {
                      return a.event.outbox_id < b.event.outbox_id;
                    });
          return out;
        });
      });
  return in_doubt_if_injected(std::move(result), "claim_outbox.ack_lost");
}

Result<std::vector<model::ClaimedDelivery>> PgOutboxSource::claim_deliveries(
    int limit, const std::vector<std::string>& subscriptions) {
  const std::string names = name_array(subscriptions);
  const auto started = std::chrono::steady_clock::now();
  // One statement, so no transaction around it: one round trip instead of three, and a claim that
  // finds nothing writes nothing. A connection lost before its answer is kUnavailable, which the
  // claimer treats as in doubt, as it does a lost COMMIT.
  auto result = with_connection([&](pqxx::connection& c) {
    return run_nontransaction(c, [&](pqxx::nontransaction& txn) {
      auto rows =
          txn.exec_prepared("claim_deliveries", owner_, static_cast<long long>(lease_.count()),
                            limit, names, ordered_, blocking_);
      std::vector<model::ClaimedDelivery> out;
      out.reserve(rows.size());
      for (const auto& row : rows) {
        model::ClaimedDelivery d;
        d.delivery_id = row[0].as<std::int64_t>();
        d.subscription = row[1].as<std::string>();
        d.attempts = row[2].as<int>();
        d.first_failed_at = from_micros(row[3].as<long long>());
        d.event = read_event(row, row[4].as<std::int64_t>(), 5);
        out.push_back(std::move(d));
      }
      std::sort(out.begin(), out.end(),
                [](const model::ClaimedDelivery& a, const model::ClaimedDelivery& b) {
                  return a.event.outbox_id < b.event.outbox_id;
                });
      return out;
    });
  });
  auto claimed = in_doubt_if_injected(std::move(result), "claim_deliveries.ack_lost");
  if (claimed) last_delivery_claim_ = started;
  return claimed;
}

Status PgOutboxSource::renew_leases() {
  return with_connection([&](pqxx::connection& c) -> Status {
    auto renewed = run_transaction(c, [&](pqxx::work& txn) {
      const auto ms = static_cast<long long>(lease_.count());
      if (claims_outbox_) txn.exec_prepared("renew_outbox", owner_, ms);
      txn.exec_prepared("renew_deliveries", owner_, ms);
    });
    if (!renewed || !claims_outbox_) return renewed;
    // Rows a WAL-mode relay parked (store/wal_spill.h) before this database went back to the table
    // source: released once the event they wait behind is delivered, or they would wait forever.
    auto released = release_orphaned_parked(c);
    if (!released) return released.error();
    if (*released > 0) wake();
    return {};
  });
}

// Fault point: the claim committed, but its acknowledgement is lost on the way back, as when the
// server restarts during COMMIT. Fires only for claims that took rows, so a test can aim it.
template <typename T>
Result<std::vector<T>> PgOutboxSource::in_doubt_if_injected(Result<std::vector<T>>&& claimed,
                                                            const char* point) {
  if (!claimed || claimed->empty() || !fault_fires(point)) return std::move(claimed);
  conn_->reset();  // drops listener_ too (before_drop)
  return Error{ErrorCode::kInDoubt,
               std::string("connection lost during COMMIT (injected fault ") + point + ")"};
}

Result<long long> PgOutboxSource::release_unheld(const std::vector<std::int64_t>& outbox_ids,
                                                 const std::vector<std::int64_t>& delivery_ids) {
  const std::string outbox = bigint_array(outbox_ids);
  const std::string deliveries = bigint_array(delivery_ids);
  return with_connection([&](pqxx::connection& c) {
    return run_transaction(c, [&](pqxx::work& txn) {
      // Plain UPDATEs, no SKIP LOCKED: a row still locked by the in-doubt claim (its backend not
      // yet gone) is waited for and then seen as that claim left it.
      long long n = 0;
      if (claims_outbox_) {
        n += txn.exec_params(
                    "UPDATE relay.outbox SET lease_owner = NULL, lease_until = NULL "
                    "WHERE lease_owner = $1 AND id <> ALL($2::bigint[])",
                    owner_, outbox)
                 .affected_rows();
      }
      n += txn.exec_params(
                  "UPDATE relay.delivery SET lease_owner = NULL, lease_until = NULL "
                  "WHERE lease_owner = $1 AND id <> ALL($2::bigint[])",
                  owner_, deliveries)
               .affected_rows();
      return n;
    });
  });
}

Status PgOutboxSource::release_all() {
  return with_connection([&](pqxx::connection& c) {
    return run_transaction(c, [&](pqxx::work& txn) {
      if (claims_outbox_) {
        txn.exec_params(
            "UPDATE relay.outbox SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = $1",
            owner_);
      }
      txn.exec_params(
          "UPDATE relay.delivery SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = $1",
          owner_);
      txn.exec_params("DELETE FROM relay.parked WHERE owner = $1", owner_);
      // What this relay gives back is due at once, but an idle relay does not count rows that were
      // due before its last claim (time_until_next_due): wake them rather than leave it to their
      // poll.
      txn.exec("SELECT pg_notify('relay_outbox', '')");
    });
  });
}

Status PgOutboxSource::park(Millis ttl) {
  return with_connection([&](pqxx::connection& c) {
    return run_nontransaction(c, [&](pqxx::nontransaction& tx) {
      tx.exec_params(
          "INSERT INTO relay.parked (owner, until) VALUES ($1, now() + $2 * interval '1 "
          "millisecond') "
          "ON CONFLICT (owner) DO UPDATE SET until = EXCLUDED.until",
          owner_, static_cast<long long>(ttl.count()));
    });
  });
}

Status PgOutboxSource::unpark() {
  return with_connection([&](pqxx::connection& c) {
    return run_nontransaction(c, [&](pqxx::nontransaction& tx) {
      tx.exec_params("DELETE FROM relay.parked WHERE owner = $1", owner_);
    });
  });
}

Result<std::optional<Millis>> PgOutboxSource::time_until_next_due() {
  return with_connection([&](pqxx::connection& c) {
    return run_transaction(c, [&](pqxx::work& txn) -> std::optional<Millis> {
      long long look_back = -1;
      if (last_delivery_claim_) {
        look_back = std::chrono::ceil<Millis>(std::chrono::steady_clock::now() -
                                              *last_delivery_claim_ + kBlockedMargin)
                        .count();
      }
      auto rows = txn.exec_prepared("next_due", subscriptions_, look_back);
      if (rows.empty() || rows[0][0].is_null()) return std::nullopt;
      return Millis(std::max<long long>(0, rows[0][0].as<long long>()));
    });
  });
}

Result<bool> PgOutboxSource::wait_for_work(Millis timeout) {
  const int kick_fd = wake_fd_;
  bool stray_input = false;
  auto woke = with_connection([&](pqxx::connection& c) -> Result<bool> {
    try {
      c.get_notifs();  // anything that arrived during earlier statements
      if (notified_) {
        notified_ = false;
        ++notifications_;
        return true;
      }
      pollfd fds[2] = {{c.sock(), POLLIN, 0}, {kick_fd, POLLIN, 0}};
      int n = ::poll(fds, kick_fd >= 0 ? 2 : 1,
                     static_cast<int>(std::min<long long>(timeout.count(), 3'600'000)));
      if (n < 0 && errno != EINTR) return Error{ErrorCode::kInternal, "poll failed"};
      bool kicked = false;
      if (kick_fd >= 0 && n > 0 && (fds[1].revents & POLLIN) != 0) {
        eventfd_t value = 0;
        (void)eventfd_read(kick_fd, &value);
        kicked = true;
      }
      // get_notifs() throws broken_connection if the server went away.
      if (n > 0 && fds[0].revents != 0 && c.get_notifs() == 0) stray_input = true;
      const bool woke = notified_ || kicked;
      if (notified_) ++notifications_;
      notified_ = false;
      return woke;
    } catch (const std::exception& e) {
      return classify_exception(e);
    }
  });
  // Input that is no notification on a connection that only listens between statements is most
  // likely the server ending the session: its FATAL message arrives before the socket closes.
  // Replace the connection now instead of finding out with a statement (libpqxx 6.4 leaks that
  // statement's result); the caller claims at once on the new one.
  if (woke && stray_input) {
    conn_->reset();  // drops listener_ too (before_drop)
    return true;
  }
  return woke;
}

}  // namespace relay::store
