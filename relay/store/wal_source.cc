#include "relay/store/wal_source.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <set>

#include "relay/common/backoff.h"
#include "relay/common/database_url.h"
#include "relay/common/fault_point.h"
#include "relay/store/outbox_rows.h"
#include "relay/store/pg_arrays.h"
#include "relay/store/pg_connection.h"
#include "relay/store/transaction.h"
#include "relay/store/wal_spill.h"
#include "relay/store/wal/outbox_row.h"
#include "relay/store/wal/pgoutput.h"
#include "relay/store/wal/replication_connection.h"

namespace relay::store {
namespace {

using SteadyClock = std::chrono::steady_clock;

// Rows read per catch-up page, at most: the page also waits for room among the held events.
constexpr int kCatchUpPage = 1000;
// Events moved to relay.delivery per spill transaction, at most.
constexpr int kSpillBatch = 1000;
// After a spill that moved nothing, the next one waits this long.
constexpr Millis kSpillRetry{50};
// A claim of relay.delivery that found nothing more due is not repeated before the next row falls
// due by the clock (asked once, right after that claim), unless something may have made a row due
// (see the header). At least kDeliveriesRecheck, at most kDeliveriesIdleRecheck: what nothing here
// hears of (another relay's lease running out) waits at most that long.
constexpr Millis kDeliveriesRecheck{5};
constexpr Millis kDeliveriesIdleRecheck{1000};
// How long one wait on the stream lasts at most, so lease renewal and status updates keep time.
constexpr Millis kStreamWait{1000};

// One statement, so one snapshot: which handed-out events still exist, what each is held for
// ($1 outbox ids, $2 ordered, $3 blocking: rows with `found` true) and whether rows are parked
// behind it (spilled by an earlier reader), and which of the events'
// transactions ($4, 32-bit xids from the stream) that snapshot does not see yet (`found` false).
// A transaction's commit reaches the WAL, and so the stream, a moment before other sessions can
// see it; a row missing from a snapshot that sees its transaction is gone for good (delivered
// before a restart, or cancelled), one missing from a snapshot that does not see it yet is not.
// The stream's xids carry no epoch: it is taken from the snapshot's xmax (a streamed transaction
// began before the snapshot, so it is at most one epoch behind).
std::string look_sql() {
  return R"(SELECT true AS found, o.id, )" + held_for_sql("$2", "$3", OutboxRowSource::kWal) +
         R"(, EXISTS (SELECT 1 FROM relay.delivery pk WHERE pk.behind_outbox_id = o.id)
    FROM relay.outbox o WHERE o.id = ANY($1::bigint[])
  UNION ALL
  SELECT false, x, NULL::text[], false
    FROM unnest($4::bigint[]) x,
         (SELECT s, pg_snapshot_xmax(s)::text::bigint >> 32 AS epoch,
                 pg_snapshot_xmax(s)::text::bigint & 4294967295 AS low
            FROM pg_current_snapshot() s) snap
   WHERE NOT pg_visible_in_snapshot(
           (CASE WHEN x <= snap.low THEN (snap.epoch << 32) | x
                 WHEN snap.epoch > 0 THEN ((snap.epoch - 1) << 32) | x
                 ELSE x END)::text::xid8, snap.s))";
}

// A claim that found streamed rows not yet visible looks again at once this many times, then
// puts them back and claims again this soon.
constexpr int kVisibilityLooks = 3;
constexpr Millis kRecheckVisibility{2};

// Takes the slot's lease, or renews it; returns a row only if this relay holds it now.
constexpr const char* kHoldLease = R"(
  INSERT INTO relay.wal_reader AS w (slot, owner, lease_until)
  VALUES ($1, $2, now() + $3 * interval '1 millisecond')
  ON CONFLICT (slot) DO UPDATE SET owner = EXCLUDED.owner, lease_until = EXCLUDED.lease_until
   WHERE w.owner = EXCLUDED.owner OR w.owner IS NULL OR w.lease_until IS NULL OR w.lease_until < now()
  RETURNING owner)";

Millis database_retry(int failures) {
  return backoff_ceiling({.initial_backoff = Millis(100), .max_backoff = Millis(5000)}, failures);
}

// Sleeps until `d` passes or `stop`; false on stop.
bool sleep_for(Millis d, std::stop_token stop) {
  std::mutex m;
  std::condition_variable_any cv;
  std::unique_lock lock(m);
  return !cv.wait_for(lock, stop, d, [] { return false; }) && !stop.stop_requested();
}

}  // namespace

PgWalSource::PgWalSource(std::string database_url, std::string owner,
                         const config::SourceConfig& source, std::vector<std::string> subscriptions,
                         std::vector<std::string> ordered, std::vector<std::string> blocking,
                         TopicRoutes routes)
    : database_url_(std::move(database_url)),
      owner_(std::move(owner)),
      config_(source.wal),
      ordered_(name_array(ordered)),
      blocking_(name_array(blocking)),
      parks_([&] {
        std::vector<std::string> both = ordered;
        both.insert(both.end(), blocking.begin(), blocking.end());
        return both;
      }()),
      routes_(std::move(routes)),
      deliveries_(database_url_, owner_, source.lease, std::move(subscriptions), std::move(ordered),
                  std::move(blocking), /*claims_outbox=*/false) {
  claim_conn_ = std::make_unique<PgConnection>(database_url_, [](pqxx::connection& c) {
    plan_for_queue_tables(c);
    c.prepare("wal_look", look_sql());
  });
  reader_conn_ = std::make_unique<PgConnection>(
      database_url_, [](pqxx::connection& c) { c.prepare("wal_hold_lease", kHoldLease); });
  keeper_conn_ = std::make_unique<PgConnection>(
      database_url_, [](pqxx::connection& c) { c.prepare("wal_hold_lease", kHoldLease); });
  release_conn_ = std::make_unique<PgConnection>(database_url_, [](pqxx::connection&) {});
  status_.slot = config_.slot;
}

PgWalSource::~PgWalSource() {
  reader_.request_stop();
  interrupt_stream();
  if (reader_.joinable()) reader_.join();
  keeper_.request_stop();
  if (keeper_.joinable()) keeper_.join();
}

// ---- setup -----------------------------------------------------------------------------------

Status PgWalSource::prepare() {
  auto c = reader_conn_->get();
  if (!c) return c.error();
  auto checked = run_nontransaction(**c, [&](pqxx::nontransaction& tx) -> Status {
    const auto wal_level = tx.exec("SHOW wal_level")[0][0].as<std::string>();
    if (wal_level != "logical") {
      return Error{ErrorCode::kInvalidArgument,
                   fmt::format("source.mode is wal, but the server runs with wal_level = {}: set "
                               "wal_level = logical in postgresql.conf and restart PostgreSQL",
                               wal_level)};
    }
    const auto role = tx.exec(
        "SELECT current_user, rolreplication OR rolsuper FROM pg_roles WHERE rolname = "
        "current_user")[0];
    if (!role[1].as<bool>()) {
      return Error{
          ErrorCode::kInvalidArgument,
          fmt::format("source.mode is wal, but the role {0} may not stream: ALTER ROLE {0} "
                      "REPLICATION (or connect as a role that has it)",
                      role[0].as<std::string>())};
    }
    const auto slots = tx.exec_params(
        "SELECT (SELECT count(*) FROM pg_replication_slots), "
        "current_setting('max_replication_slots')::int, "
        "EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1)",
        config_.slot)[0];
    if (!slots[2].as<bool>() && slots[0].as<long long>() >= slots[1].as<long long>()) {
      return Error{ErrorCode::kInvalidArgument,
                   fmt::format("source.mode is wal, but all {} replication slots are in use: raise "
                               "max_replication_slots (and restart PostgreSQL) or drop an unused "
                               "slot",
                               slots[1].as<long long>())};
    }
    const bool has_publication =
        tx.exec_params("SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1)",
                       config_.publication)[0][0]
            .as<bool>();
    if (!has_publication) {
      // The name was checked by the config loader ([a-z0-9_]), so it needs no quoting.
      tx.exec(fmt::format("CREATE PUBLICATION {} FOR TABLE relay.outbox WITH (publish = 'insert')",
                          config_.publication));
      log_.info("created the publication", {{"publication", config_.publication}});
    } else {
      const auto covers = tx.exec_params(
          "SELECT EXISTS (SELECT 1 FROM pg_publication_tables WHERE pubname = $1 AND "
          "schemaname = 'relay' AND tablename = 'outbox'), "
          "(SELECT pubinsert FROM pg_publication WHERE pubname = $1)",
          config_.publication)[0];
      if (!covers[0].as<bool>() || !covers[1].as<bool>()) {
        return Error{ErrorCode::kInvalidArgument,
                     fmt::format("the publication {0} does not publish inserts into relay.outbox: "
                                 "drop it or set source.wal.publication to another name, and relay "
                                 "creates it (CREATE PUBLICATION {0} FOR TABLE relay.outbox WITH "
                                 "(publish = 'insert'))",
                                 config_.publication)};
      }
    }
    tx.exec_params("INSERT INTO relay.wal_reader (slot) VALUES ($1) ON CONFLICT DO NOTHING",
                   config_.slot);
    return {};
  });
  if (!checked) {
    if (checked.error().code == ErrorCode::kUnavailable) reader_conn_->reset();
    if (checked.error().code == ErrorCode::kInternal) {
      // E.g. CREATE PUBLICATION without owning relay.outbox: a setting to change, not an outage.
      return Error{ErrorCode::kInvalidArgument,
                   fmt::format("cannot set up the WAL source: {} (the publication must be created "
                               "by relay.outbox's owner: CREATE PUBLICATION {} FOR TABLE "
                               "relay.outbox WITH (publish = 'insert'))",
                               checked.error().message, config_.publication)};
    }
    return checked.error();
  }
  return *checked;
}

void PgWalSource::set_interruptible(wal::ReplicationConnection* conn) {
  std::lock_guard lock(stream_mu_);
  streaming_ = conn;
}

void PgWalSource::interrupt_stream() {
  std::lock_guard lock(stream_mu_);
  if (streaming_ != nullptr) streaming_->interrupt();
}

void PgWalSource::start() {
  keeper_ = std::jthread([this](std::stop_token st) { keep(std::move(st)); });
  reader_ = std::jthread([this](std::stop_token st) { run(std::move(st)); });
}

// ---- the reader thread ----------------------------------------------------------------------

void PgWalSource::set_role(const char* role) {
  std::lock_guard lock(mu_);
  if (status_.role != role) log_.info("role", {{"role", role}, {"slot", config_.slot}});
  status_.role = role;
}

void PgWalSource::run(std::stop_token stop) {
  int failures = 0;
  while (!stop.stop_requested()) {
    const Outcome outcome = lead(stop);
    end_term();
    // Whatever was read and not handed out is read again by whoever streams next.
    {
      std::lock_guard lock(mu_);
      held_.clear();
      progress_.restart();
      catch_up_outstanding_ = 0;
      for (const auto& [id, f] : in_flight_) {
        if (f.txn == 0) ++catch_up_outstanding_;
      }
    }
    room_.notify_all();
    if (outcome == Outcome::kStopped) break;
    if (outcome == Outcome::kUnavailable) {
      ++failures;
      if (!sleep_for(database_retry(failures), stop)) break;
    } else {
      failures = 0;
    }
  }
  // The keeper first: a renewal after giving the lease up would take it again.
  keeper_.request_stop();
  if (keeper_.joinable()) keeper_.join();
  give_up_lease();
}

Result<bool> PgWalSource::hold_lease(PgConnection& conn) {
  auto c = conn.get();
  if (!c) return c.error();
  auto held = run_transaction(**c, [&](pqxx::work& txn) {
    return !txn.exec_prepared("wal_hold_lease", config_.slot, owner_,
                              static_cast<long long>(config_.takeover_after.count()))
                .empty();
  });
  if (!held && held.error().code == ErrorCode::kUnavailable) conn.reset();
  return held;
}

void PgWalSource::start_term() {
  lease_lost_ = false;
  lease_good_until_ =
      (SteadyClock::now() + config_.takeover_after * 2 / 3).time_since_epoch().count();
  holding_ = true;
}

void PgWalSource::end_term() { holding_ = false; }

bool PgWalSource::lease_stands() const {
  return !lease_lost_ && SteadyClock::now().time_since_epoch().count() < lease_good_until_.load();
}

void PgWalSource::keep(std::stop_token stop) {
  auto last_renew = SteadyClock::now();
  auto last_refresh = SteadyClock::time_point{};
  const Millis tick = std::min(config_.takeover_after / 3, config_.status_interval);
  while (sleep_for(tick, stop)) {
    const auto now = SteadyClock::now();
    if (holding_ && now - last_renew >= config_.takeover_after / 3) {
      // A database that is away: the lease lasts until lease_good_until_, then the reader steps
      // down (a standby may take over once the lease in the table runs out).
      auto h = hold_lease(*keeper_conn_);
      if (h && *h) {
        lease_good_until_ = (now + config_.takeover_after * 2 / 3).time_since_epoch().count();
        last_renew = now;
      } else if (h) {
        lease_lost_ = true;
      }
    } else if (!holding_) {
      last_renew = now - config_.takeover_after;  // renew at once in the next term's first tick
    }
    if (now - last_refresh >= config_.status_interval) {
      refresh_slot_state(*keeper_conn_);
      // Rows parked behind an event that was cancelled meanwhile (rare): release them.
      if (holding_) (void)release_orphans(*keeper_conn_);
      last_refresh = now;
    }
  }
}

void PgWalSource::give_up_lease() {
  auto c = reader_conn_->get();
  if (!c) return;
  (void)run_transaction(**c, [&](pqxx::work& txn) {
    txn.exec_params(
        "UPDATE relay.wal_reader SET owner = NULL, lease_until = NULL WHERE slot = $1 AND owner = "
        "$2",
        config_.slot, owner_);
  });
}

void PgWalSource::refresh_slot_state(PgConnection& conn) {
  auto c = conn.get();
  if (!c) return;
  auto row = run_transaction(**c, [&](pqxx::work& txn) -> std::optional<pqxx::row> {
    auto rows = txn.exec_params(
        "SELECT active, coalesce(wal_status, ''), "
        "coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn), 0)::bigint, "
        "coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn), 0)::bigint "
        "FROM pg_replication_slots WHERE slot_name = $1",
        config_.slot);
    if (rows.empty()) return std::nullopt;
    return rows[0];
  });
  if (!row) {
    if (row.error().code == ErrorCode::kUnavailable) conn.reset();
    return;
  }
  std::lock_guard lock(mu_);
  status_.slot_exists = row->has_value();
  status_.slot_active = *row && (**row)[0].as<bool>();
  status_.slot_wal_status = *row ? (**row)[1].as<std::string>() : "";
  status_.slot_lag_bytes = *row ? (**row)[2].as<long long>() : 0;
  status_.slot_retained_bytes = *row ? (**row)[3].as<long long>() : 0;
}

PgWalSource::Outcome PgWalSource::lead(std::stop_token stop) {
  auto held = hold_lease(*reader_conn_);
  if (!held) return Outcome::kUnavailable;
  if (!*held) {
    set_role("standby");
    // The active relay renews every third of takeover_after: look as often.
    if (!sleep_for(config_.takeover_after / 3, stop)) return Outcome::kStopped;
    return Outcome::kLeaseLost;
  }
  start_term();
  // Rows parked behind events whose outcome was recorded but whose release was not (relay stopped
  // in between, or the release failed) go first: nothing of their keys is handed out before.
  if (!release_orphans(*reader_conn_)) return Outcome::kUnavailable;
  {
    std::lock_guard lock(mu_);
    unreleased_keys_.clear();
  }
  auto c = reader_conn_->get();
  if (!c) return Outcome::kUnavailable;
  auto state = run_transaction(**c, [&](pqxx::work& txn) {
    const auto row = txn.exec_params(
        "SELECT (SELECT wal_status FROM pg_replication_slots WHERE slot_name = $1), "
        "(SELECT caught_up FROM relay.wal_reader WHERE slot = $1)",
        config_.slot)[0];
    const std::string wal_status = row[0].is_null() ? "" : row[0].as<std::string>();
    const bool caught_up = !row[1].is_null() && row[1].as<bool>();
    return wal_status.empty() || wal_status == "lost" || !caught_up;
  });
  if (!state) {
    if (state.error().code == ErrorCode::kUnavailable) reader_conn_->reset();
    log_.warn("cannot read the slot's state", {{"error", state.error().message}});
    return Outcome::kUnavailable;
  }
  if (*state) {
    const Outcome caught = catch_up(stop);
    if (caught != Outcome::kCaughtUp) return caught;
  }
  return stream(stop);
}

bool PgWalSource::wait_for_room(std::stop_token stop, const std::function<bool()>& keep_alive) {
  std::unique_lock lock(mu_);
  while (static_cast<int>(held_.size()) >= config_.max_held_events) {
    const auto spill_at = next_spill();
    if (spill_at && *spill_at <= SteadyClock::now()) {
      lock.unlock();
      const long long moved = spill_waiting();
      lock.lock();
      // Nothing could move (rows not visible yet, or the events they wait behind just finished):
      // look again shortly rather than at once.
      if (moved == 0) room_.wait_for(lock, stop, kSpillRetry, [] { return false; });
    } else {
      // Wakes for room, and for the moment a key's events become due to spill.
      auto wait = kStreamWait;
      if (spill_at) {
        wait = std::min(wait, std::chrono::ceil<Millis>(*spill_at - SteadyClock::now()));
      }
      room_.wait_for(lock, stop, wait, [&] {
        return static_cast<int>(held_.size()) < config_.max_held_events;
      });
    }
    if (stop.stop_requested()) return false;
    lock.unlock();
    const bool alive = keep_alive();
    lock.lock();
    if (!alive) return false;
  }
  return true;
}

void PgWalSource::add_held(Held&& h) {
  bool was_empty = false;
  {
    std::lock_guard lock(mu_);
    if (h.txn != 0) progress_.add_event(h.txn);
    auto it = in_flight_.find(h.event.outbox_id);
    if (it != in_flight_.end()) {
      // Sent again by the server (a new session after a broken one) while still on its way:
      // count it in the new transaction and let its outcome settle it.
      if (it->second.txn == 0) --catch_up_outstanding_;
      if (h.txn == 0) ++catch_up_outstanding_;
      it->second.txn = h.txn;
      return;
    }
    if (h.txn == 0) ++catch_up_outstanding_;
    was_empty = held_.empty();
    held_.push_back(std::move(h));
  }
  if (was_empty) deliveries_.wake();
}

// Returns kCaughtUp once caught up (the caller streams next); anything else ends the term.
PgWalSource::Outcome PgWalSource::catch_up(std::stop_token stop) {
  set_role("catching_up");
  {
    std::lock_guard lock(mu_);
    ++status_.catch_ups;
    status_.catch_up_read = 0;
  }
  auto reader = reader_conn_->get();
  if (!reader) return Outcome::kUnavailable;
  // From here until the end, a relay that stops starts over with a new slot.
  auto marked = run_transaction(**reader, [&](pqxx::work& txn) {
    return txn.exec_params(
                  "UPDATE relay.wal_reader SET caught_up = false, caught_up_at = NULL WHERE slot "
                  "= $1 AND owner = $2",
                  config_.slot, owner_)
               .affected_rows() == 1;
  });
  if (!marked) return Outcome::kUnavailable;
  if (!*marked) return Outcome::kLeaseLost;

  auto repl = wal::ReplicationConnection::open(database_url_, Millis(10'000));
  if (!repl) {
    log_.warn("cannot open a replication connection", {{"error", repl.error().message}});
    return Outcome::kUnavailable;
  }
  // A slot that is gone, invalidated or never caught up is replaced: its stream may miss rows.
  (void)(*repl)->drop_slot(config_.slot);
  // Creating waits for the transactions running now to end: shutdown may cut that short.
  set_interruptible(repl->get());
  auto created = (*repl)->create_slot(config_.slot, /*export_snapshot=*/true);
  set_interruptible(nullptr);
  if (!created) {
    log_.warn("cannot create the replication slot",
              {{"slot", config_.slot}, {"error", created.error().message}});
    return Outcome::kUnavailable;
  }
  log_.info(
      "created the replication slot; delivering the rows it does not cover from the table",
      {{"slot", config_.slot}, {"consistent_point", wal::format_lsn(created->consistent_point)}});

  // The rows the slot's snapshot sees are exactly those its stream leaves out.
  auto scan = connect(database_url_);
  if (!scan) return Outcome::kUnavailable;
  try {
    pqxx::nontransaction tx(**scan);
    tx.exec("BEGIN ISOLATION LEVEL REPEATABLE READ");
    tx.exec("SET TRANSACTION SNAPSHOT " + tx.quote(created->snapshot_name));
    repl->reset();  // the snapshot is imported: the replication connection may go
    (void)run_transaction(**reader, [&](pqxx::work& txn) {
      txn.exec_params("UPDATE relay.wal_reader SET slot_created_at = now() WHERE slot = $1",
                      config_.slot);
    });
    std::int64_t floor = 0;
    auto renew = [&] { return lease_stands(); };
    const std::string select = fmt::format(
        "SELECT o.id, {}, (extract(epoch FROM o.deliver_after) * 1000000)::bigint FROM "
        "relay.outbox o WHERE o.id > $1 ORDER BY o.id LIMIT $2",
        kEventColumns);
    while (true) {
      if (!wait_for_room(stop, renew))
        return stop.stop_requested() ? Outcome::kStopped : Outcome::kLeaseLost;
      if (!renew()) return Outcome::kLeaseLost;
      int room = 0;
      {
        std::lock_guard lock(mu_);
        room = config_.max_held_events - static_cast<int>(held_.size());
      }
      const auto rows = tx.exec_params(select, floor, std::min(room, kCatchUpPage));
      if (rows.empty()) break;
      for (const auto& row : rows) {
        Held h;
        h.event = read_event(row, row[0].as<std::int64_t>(), 1);
        if (!row[9].is_null()) {
          h.event.deliver_after = std::chrono::system_clock::time_point{
              std::chrono::microseconds(row[9].as<long long>())};
        }
        floor = h.event.outbox_id;
        add_held(std::move(h));
      }
      std::lock_guard lock(mu_);
      status_.catch_up_read += static_cast<long long>(rows.size());
      status_.catch_up_rows_total += static_cast<long long>(rows.size());
    }
    tx.exec("COMMIT");
  } catch (const std::exception& e) {
    log_.warn("the catch-up scan failed", {{"error", classify_exception(e).message}});
    return Outcome::kUnavailable;
  }
  // Streaming starts only once every row of the catch-up has an outcome: what the stream brings
  // is newer, so a key's order holds across the hand-over.
  while (true) {
    {
      std::unique_lock lock(mu_);
      room_.wait_for(lock, stop, kStreamWait, [&] { return catch_up_outstanding_ == 0; });
      if (catch_up_outstanding_ == 0) break;
    }
    if (stop.stop_requested()) return Outcome::kStopped;
    if (!lease_stands()) return Outcome::kLeaseLost;
  }
  auto again = reader_conn_->get();
  if (!again) return Outcome::kUnavailable;
  auto done = run_transaction(**again, [&](pqxx::work& txn) {
    return txn.exec_params(
                  "UPDATE relay.wal_reader SET caught_up = true, caught_up_at = now() WHERE slot "
                  "= $1 AND owner = $2",
                  config_.slot, owner_)
               .affected_rows() == 1;
  });
  if (!done) return Outcome::kUnavailable;
  if (!*done) return Outcome::kLeaseLost;
  {
    std::lock_guard lock(mu_);
    log_.info("caught up from the table", {{"rows", std::to_string(status_.catch_up_read)}});
  }
  return Outcome::kCaughtUp;
}

Status PgWalSource::send_status(wal::ReplicationConnection& conn, bool reply) {
  wal::Lsn received = 0, confirmed = 0;
  {
    std::lock_guard lock(mu_);
    confirmed = progress_.confirmed();
    received = std::max(status_.received_lsn, confirmed);
    status_.confirmed_lsn = confirmed;
  }
  return conn.send_status(received, confirmed, confirmed, reply);
}

PgWalSource::Outcome PgWalSource::stream(std::stop_token stop) {
  auto opened = wal::ReplicationConnection::open(database_url_, Millis(10'000));
  if (!opened) {
    log_.warn("cannot open a replication connection", {{"error", opened.error().message}});
    return Outcome::kUnavailable;
  }
  wal::ReplicationConnection& conn = **opened;
  {
    std::lock_guard lock(mu_);
    progress_.restart();
  }
  if (auto started = conn.start(config_.slot, config_.publication, 0); !started) {
    const auto failure = wal::classify_replication_error(started.error());
    log_.warn("cannot stream from the slot",
              {{"slot", config_.slot}, {"error", started.error().message}});
    // Gone or invalidated (max_slot_wal_keep_size): its stream misses rows; start over from the
    // table with a new slot. In use by another reader: wait and try again.
    if (failure == wal::ReplicationFailure::kSlotMissing ||
        failure == wal::ReplicationFailure::kSlotInvalidated) {
      auto c = reader_conn_->get();
      if (c) {
        (void)run_transaction(**c, [&](pqxx::work& txn) {
          txn.exec_params("UPDATE relay.wal_reader SET caught_up = false WHERE slot = $1",
                          config_.slot);
        });
      }
      return Outcome::kRestartSlot;
    }
    return Outcome::kUnavailable;
  }
  set_role("streaming");
  set_interruptible(&conn);
  struct Unset {
    PgWalSource& self;
    ~Unset() { self.set_interruptible(nullptr); }
  } unset{*this};

  std::unordered_map<std::uint32_t, wal::RelationMsg> relations;
  wal::WalProgress::Txn txn = 0;
  std::uint32_t xid = 0;
  auto last_status = SteadyClock::now();
  auto keep_alive = [&]() -> bool {
    if (!lease_stands()) return false;  // another relay has the slot, or the lease ran out
    const auto now = SteadyClock::now();
    if (now - last_status >= config_.status_interval) {
      if (!send_status(conn, false)) return false;
      last_status = now;
    }
    return true;
  };
  while (!stop.stop_requested()) {
    if (!keep_alive()) return Outcome::kLeaseLost;
    if (!wait_for_room(stop, keep_alive)) {
      return stop.stop_requested() ? Outcome::kStopped : Outcome::kLeaseLost;
    }
    auto next = conn.next(kStreamWait);
    if (!next) {
      log_.warn("the replication stream broke", {{"error", next.error().message}});
      return Outcome::kUnavailable;
    }
    if (!*next) continue;
    auto message = wal::decode_copy_data(**next);
    if (!message) {
      log_.error("cannot read the replication stream", {{"error", message.error().message}});
      return Outcome::kUnavailable;
    }
    if (const auto* k = std::get_if<wal::Keepalive>(&*message)) {
      {
        std::lock_guard lock(mu_);
        progress_.keepalive(k->wal_end);
      }
      if (k->reply_requested) {
        if (!send_status(conn, false)) return Outcome::kUnavailable;
        last_status = SteadyClock::now();
      }
      continue;
    }
    const auto& data = std::get<wal::XLogData>(*message);
    auto decoded = wal::decode_pgoutput(data.payload);
    if (!decoded) {
      log_.error("cannot decode a pgoutput message", {{"error", decoded.error().message}});
      return Outcome::kUnavailable;
    }
    if (const auto* begin = std::get_if<wal::BeginMsg>(&*decoded)) {
      xid = begin->xid;
      std::lock_guard lock(mu_);
      txn = progress_.begin(begin->commit_time);
    } else if (auto* r = std::get_if<wal::RelationMsg>(&*decoded)) {
      relations[r->oid] = std::move(*r);
    } else if (const auto* ins = std::get_if<wal::InsertMsg>(&*decoded)) {
      auto rel = relations.find(ins->relation_oid);
      if (rel == relations.end() || rel->second.nspname != "relay" ||
          rel->second.relname != "outbox") {
        continue;  // not ours (a publication may carry more tables)
      }
      auto row = wal::decode_outbox_row(rel->second, *ins);
      if (!row) {
        // The row stays in the table and this transaction unconfirmed: nothing is lost, and
        // relay does not skip past an event it cannot read.
        log_.error("cannot decode an outbox row from the stream", {{"error", row.error().message}});
        return Outcome::kUnavailable;
      }
      Held h;
      h.event = std::move(row->event);
      h.event.deliver_after = row->deliver_after;
      h.txn = txn;
      h.xid = xid;
      add_held(std::move(h));
    } else if (const auto* commit = std::get_if<wal::CommitMsg>(&*decoded)) {
      std::lock_guard lock(mu_);
      progress_.commit(txn, commit->end_lsn);
      status_.received_lsn = commit->end_lsn;
    }
  }
  (void)send_status(conn, false);  // confirm what is done before going
  return Outcome::kStopped;
}

// ---- spilling (the reader's side) ----------------------------------------------------------

std::optional<SteadyClock::time_point> PgWalSource::next_spill() const {
  // The reader asks after every event it adds to a full memory (a drain: every event), so first
  // the cheap bound from the keys in flight (at most max_in_flight); only once the oldest of them
  // passes spill_after is it worth scanning the held events for one that waits behind it.
  std::optional<SteadyClock::time_point> earliest;
  for (const auto& [key, use] : keys_in_flight_) {
    if (use.ids.empty()) continue;
    const auto due = use.since + config_.spill_after;
    if (!earliest || due < *earliest) earliest = due;
  }
  if (!earliest || *earliest > SteadyClock::now()) return earliest;
  std::optional<SteadyClock::time_point> at;
  for (const auto& h : held_) {
    if (!h.event.key || h.spilling) continue;
    auto k = keys_in_flight_.find(*h.event.key);
    if (k == keys_in_flight_.end() || k->second.ids.empty()) continue;
    const auto due = k->second.since + config_.spill_after;
    if (!at || due < *at) at = due;
  }
  return at;
}

long long PgWalSource::spill_waiting() {
  std::vector<SpillItem> items;
  {
    std::lock_guard lock(mu_);
    const auto now = SteadyClock::now();
    const auto wall_now = std::chrono::system_clock::now();
    std::set<std::string> stays;  // keys whose (remaining) events stay in memory
    for (auto& h : held_) {
      if (static_cast<int>(items.size()) >= kSpillBatch) break;
      if (!h.event.key || h.spilling) continue;
      const std::string& key = *h.event.key;
      if (stays.count(key) != 0) continue;
      auto k = keys_in_flight_.find(key);
      // relay.delivery has no deliver_after: an event scheduled for later stays in memory.
      if (k == keys_in_flight_.end() || k->second.ids.empty() ||
          now < k->second.since + config_.spill_after ||
          (h.event.deliver_after && *h.event.deliver_after > wall_now)) {
        stays.insert(key);
        continue;
      }
      SpillItem item;
      item.outbox_id = h.event.outbox_id;
      item.key = key;
      item.behind = k->second.ids.back();
      for (auto& sub : routes_(h.event.topic)) {
        item.parked.push_back(std::find(parks_.begin(), parks_.end(), sub) != parks_.end());
        item.subscriptions.push_back(std::move(sub));
      }
      if (item.subscriptions.empty()) {  // dead-lettered as no_subscription by the pipeline
        stays.insert(key);
        continue;
      }
      h.spilling = true;
      spilling_keys_.insert(key);
      // Before the spill commits: the event's outcome may be recorded at any moment from now on.
      parked_behind_.insert(item.behind);
      items.push_back(std::move(item));
    }
  }
  if (items.empty()) return 0;

  std::vector<std::int64_t> moved;
  auto c = reader_conn_->get();
  auto spilled = c ? spill_events(**c, items) : Result<std::vector<std::int64_t>>(c.error());
  if (spilled) {
    moved = std::move(*spilled);
  } else {
    if (spilled.error().code == ErrorCode::kUnavailable) reader_conn_->reset();
    log_.warn("cannot move waiting events to relay.delivery",
              {{"error", spilled.error().message}});
  }
  const std::set<std::int64_t> gone(moved.begin(), moved.end());
  {
    std::lock_guard lock(mu_);
    for (auto it = held_.begin(); it != held_.end();) {
      if (!it->spilling) {
        ++it;
        continue;
      }
      it->spilling = false;
      if (gone.count(it->event.outbox_id) == 0) {
        ++it;
        continue;
      }
      // Moved, so it has its outcome: its transaction may be confirmed once the rest is done.
      if (it->txn == 0) {
        --catch_up_outstanding_;
      } else {
        progress_.event_done(it->txn);
      }
      it = held_.erase(it);
    }
    for (const auto& item : items) spilling_keys_.erase(item.key);
    status_.spilled_events += static_cast<long long>(moved.size());
  }
  room_.notify_all();
  if (!moved.empty()) {
    log_.info("moved events waiting behind slow keys to relay.delivery",
              {{"events", std::to_string(moved.size())}});
    deliveries_dirty_ = true;
    deliveries_.wake();  // parts of subscriptions without per-key order are due at once
  }
  return static_cast<long long>(moved.size());
}

Status PgWalSource::release_orphans(PgConnection& conn) {
  auto c = conn.get();
  if (!c) return c.error();
  auto released = release_orphaned_parked(**c);
  if (!released) {
    if (released.error().code == ErrorCode::kUnavailable) conn.reset();
    log_.warn("cannot release parked rows", {{"error", released.error().message}});
    return released.error();
  }
  if (*released > 0) {
    deliveries_dirty_ = true;
    deliveries_.wake();
  }
  return {};
}

// ---- the claimer's side ---------------------------------------------------------------------

Result<std::vector<model::ClaimedEvent>> PgWalSource::claim_outbox(int limit, int /*held_items*/) {
  std::vector<Held> batch;
  {
    std::lock_guard lock(mu_);
    const std::uint64_t claim = ++claims_;
    const auto now = SteadyClock::now();
    for (auto it = held_.begin(); it != held_.end() && static_cast<int>(batch.size()) < limit;) {
      if (it->event.key) {
        // A key whose earlier event from an earlier claim is still on its way waits for its
        // outcome (a retry then holds it through held_for); within one claim KeyOrder orders it.
        // So does a key being spilled, or one whose parked rows still wait for their release.
        const std::string& key = *it->event.key;
        auto k = keys_in_flight_.find(key);
        if ((k != keys_in_flight_.end() && !k->second.ids.empty() && k->second.claim != claim) ||
            spilling_keys_.count(key) != 0 || unreleased_keys_.count(key) != 0) {
          ++it;
          continue;
        }
        auto& use = keys_in_flight_[key];
        if (use.ids.empty()) use.since = now;
        use.ids.push_back(it->event.outbox_id);
        use.claim = claim;
      }
      in_flight_[it->event.outbox_id] = InFlight{it->txn, it->event.key};
      batch.push_back(std::move(*it));
      it = held_.erase(it);
    }
  }
  if (batch.empty()) return std::vector<model::ClaimedEvent>{};
  room_.notify_all();

  std::vector<std::int64_t> ids;
  std::vector<std::int64_t> xids;
  ids.reserve(batch.size());
  for (const auto& h : batch) {
    ids.push_back(h.event.outbox_id);
    if (h.xid != 0 && (xids.empty() || xids.back() != h.xid)) xids.push_back(h.xid);
  }
  std::set<std::uint32_t> running;  // transactions the last look's snapshot did not see yet
  struct Present {
    std::vector<std::string> held_for;
    bool parked_behind = false;  // rows are parked behind it (spilled by an earlier reader)
  };
  std::unordered_map<std::int64_t, Present> present;
  auto look = [&](pqxx::nontransaction& txn, const std::vector<std::int64_t>& of_ids,
                  const std::vector<std::int64_t>& of_xids) {
    running.clear();
    for (const auto& r : txn.exec_prepared("wal_look", bigint_array(of_ids), ordered_, blocking_,
                                           bigint_array(of_xids))) {
      if (r[0].as<bool>()) {
        present.insert_or_assign(r[1].as<std::int64_t>(),
                                 Present{parse_name_array(r[2].as<std::string>()), r[3].as<bool>()});
      } else {
        running.insert(static_cast<std::uint32_t>(r[1].as<std::int64_t>()));
      }
    }
  };
  // No transaction around it: one round trip per look.
  auto c = claim_conn_->get();
  Status rows = c ? run_nontransaction(**c,
                                       [&](pqxx::nontransaction& txn) {
                                         look(txn, ids, xids);
                                         // Such a commit usually becomes visible within a fraction
                                         // of a millisecond: look again at once, a few times,
                                         // before putting its rows back for later.
                                         for (int i = 0; i < kVisibilityLooks; ++i) {
                                           std::vector<std::int64_t> again, again_xids;
                                           for (const auto& h : batch) {
                                             if (h.xid != 0 && running.count(h.xid) != 0 &&
                                                 present.count(h.event.outbox_id) == 0) {
                                               again.push_back(h.event.outbox_id);
                                               if (again_xids.empty() || again_xids.back() != h.xid)
                                                 again_xids.push_back(h.xid);
                                             }
                                           }
                                           if (again.empty()) break;
                                           look(txn, again, again_xids);
                                         }
                                       })
                  : Status(c.error());
  if (!rows) {
    if (rows.error().code == ErrorCode::kUnavailable) claim_conn_->reset();
    // Put them back, first in line, as they were.
    std::lock_guard lock(mu_);
    for (auto it = batch.rbegin(); it != batch.rend(); ++it) {
      in_flight_.erase(it->event.outbox_id);
      if (it->event.key) key_done(*it->event.key, it->event.outbox_id);
      held_.push_front(std::move(*it));
    }
    return rows.error();
  }
  std::vector<model::ClaimedEvent> out;
  out.reserve(batch.size());
  bool freed = false;
  {
    std::lock_guard lock(mu_);
    std::vector<Held> not_yet;  // committed, not visible yet: first in line again, in order
    std::set<std::string> keys_not_yet;  // a key's later events wait behind such an event
    std::set<std::string> keys_parked;   // ... or behind one that rows are parked behind
    bool recheck = false;
    for (auto& h : batch) {
      auto p = present.find(h.event.outbox_id);
      const bool invisible = p == present.end() && h.xid != 0 && running.count(h.xid) != 0;
      if (invisible || (h.event.key && (keys_not_yet.count(*h.event.key) != 0 ||
                                        keys_parked.count(*h.event.key) != 0))) {
        if (invisible) recheck = true;
        if (h.event.key && keys_parked.count(*h.event.key) == 0) keys_not_yet.insert(*h.event.key);
        not_yet.push_back(std::move(h));
        continue;
      }
      if (p == present.end()) {
        // Its row is gone: delivered before a restart, or cancelled. Nothing to do.
        finish_event(h.event.outbox_id, true);
        freed = true;
        continue;
      }
      if (p->second.parked_behind) {
        // Its outcome releases the rows parked behind it; the key's later events come after
        // those, so they wait in memory until then.
        parked_behind_.insert(h.event.outbox_id);
        if (h.event.key) keys_parked.insert(*h.event.key);
      }
      model::ClaimedEvent e;
      e.event = std::move(h.event);
      e.held_for = std::move(p->second.held_for);
      out.push_back(std::move(e));
    }
    for (auto it = not_yet.rbegin(); it != not_yet.rend(); ++it) {
      in_flight_.erase(it->event.outbox_id);
      if (it->event.key) key_done(*it->event.key, it->event.outbox_id);
      held_.push_front(std::move(*it));
    }
    if (recheck) recheck_soon_ = true;
  }
  if (freed) {
    room_.notify_all();
    deliveries_.wake();  // a key it held may free later events
  }
  return out;
}

void PgWalSource::finish_event(std::int64_t outbox_id, bool done) {
  auto it = in_flight_.find(outbox_id);
  if (it == in_flight_.end()) return;
  if (it->second.txn == 0) {
    if (done) --catch_up_outstanding_;
  } else if (done) {
    progress_.event_done(it->second.txn);
  }
  if (it->second.key) key_done(*it->second.key, outbox_id);
  in_flight_.erase(it);
}

void PgWalSource::key_done(const std::string& key, std::int64_t outbox_id) {
  auto k = keys_in_flight_.find(key);
  if (k == keys_in_flight_.end()) return;
  auto& ids = k->second.ids;
  ids.erase(std::remove(ids.begin(), ids.end(), outbox_id), ids.end());
  if (ids.empty()) keys_in_flight_.erase(k);
}

void PgWalSource::recorded(const model::OutcomeBatch& batch) {
  // What this relay wrote to relay.delivery may be due (a retry, an event queued behind its key, the
  // successor of a finished row).
  bool wrote_deliveries = !batch.deliveries.empty();
  for (const auto& o : batch.outbox) {
    for (const auto& p : o.parts) {
      wrote_deliveries = wrote_deliveries || p.kind != model::PartOutcome::Kind::kDelivered;
    }
  }
  if (wrote_deliveries) deliveries_dirty_ = true;
  if (batch.outbox.empty()) return;
  // An aborted part (shutdown) left the row as it was: its transaction is not done.
  auto is_done = [](const model::OutboxOutcome& o) {
    return std::none_of(o.parts.begin(), o.parts.end(), [](const auto& p) {
      return p.kind == model::PartOutcome::Kind::kAborted;
    });
  };
  // Rows parked behind these events go next in their keys' order, before the keys' events still
  // in memory may go (finish_event frees the keys below).
  std::vector<std::int64_t> release;
  std::vector<std::string> release_keys;
  {
    std::lock_guard lock(mu_);
    for (const auto& o : batch.outbox) {
      if (!is_done(o) || parked_behind_.erase(o.outbox_id) == 0) continue;
      release.push_back(o.outbox_id);
      auto f = in_flight_.find(o.outbox_id);
      if (f != in_flight_.end() && f->second.key) release_keys.push_back(*f->second.key);
    }
  }
  // Until they are released, the keys' events in memory must not go: try again while the database
  // is away (the recorder waits for it anyway). A relay that stops first leaves them to the next
  // term's release of orphans, and the keys blocked until then.
  for (int failures = 0; !release.empty();) {
    auto c = release_conn_->get();
    // The fault point (tests): as if the connection died before the statement.
    auto released = !c ? Result<long long>(c.error())
                    : fault_fires("wal.release_parked.lost")
                        ? Result<long long>(Error{ErrorCode::kUnavailable, "fault point"})
                        : release_parked(**c, release);
    if (released) {
      if (*released > 0) {
        deliveries_dirty_ = true;
        deliveries_.wake();
      }
      break;
    }
    if (released.error().code == ErrorCode::kUnavailable) release_conn_->reset();
    if (++failures == 1) {
      log_.warn("cannot release parked rows; trying again", {{"error", released.error().message}});
    }
    if (!sleep_for(database_retry(failures), reader_.get_stop_token())) {
      std::lock_guard lock(mu_);
      unreleased_keys_.insert(release_keys.begin(), release_keys.end());
      break;
    }
  }
  bool wake = false;
  {
    std::lock_guard lock(mu_);
    for (const auto& o : batch.outbox) finish_event(o.outbox_id, is_done(o));
    wake = !held_.empty();
  }
  room_.notify_all();
  if (wake) deliveries_.wake();  // events that waited for a key may go now
}

Result<std::vector<model::ClaimedDelivery>> PgWalSource::claim_deliveries(
    int limit, const std::vector<std::string>& subscriptions) {
  const auto now = SteadyClock::now();
  const std::uint64_t notifications = deliveries_.notifications();
  const bool dirty = deliveries_dirty_.exchange(false) || notifications != notifications_seen_ ||
                     subscriptions != last_sendable_;
  if (!dirty && now < skip_deliveries_until_) return std::vector<model::ClaimedDelivery>{};
  notifications_seen_ = notifications;
  last_sendable_ = subscriptions;
  auto claimed = deliveries_.claim_deliveries(limit, subscriptions);
  if (claimed && static_cast<int>(claimed->size()) < limit) {
    // In steady streaming, with no retries waiting, this turns ~200 empty claims a second (one
    // per kDeliveriesRecheck) into about one claim and one next-due query a second.
    Millis skip = kDeliveriesRecheck;
    if (auto next = deliveries_.time_until_next_due(); next) {
      skip = *next ? std::clamp(**next, kDeliveriesRecheck, kDeliveriesIdleRecheck)
                   : kDeliveriesIdleRecheck;
    }
    skip_deliveries_until_ = now + skip;
  } else {
    skip_deliveries_until_ = {};
    if (!claimed) deliveries_dirty_ = true;
  }
  return claimed;
}

Status PgWalSource::renew_leases() { return deliveries_.renew_leases(); }

Status PgWalSource::release_all() {
  reader_.request_stop();
  interrupt_stream();
  if (reader_.joinable()) reader_.join();
  keeper_.request_stop();
  if (keeper_.joinable()) keeper_.join();
  return deliveries_.release_all();
}

Result<long long> PgWalSource::release_unheld(const std::vector<std::int64_t>& outbox_ids,
                                              const std::vector<std::int64_t>& delivery_ids) {
  return deliveries_.release_unheld(outbox_ids, delivery_ids);
}

Status PgWalSource::park(Millis) { return {}; }
Status PgWalSource::unpark() { return {}; }

Result<std::optional<Millis>> PgWalSource::time_until_next_due() {
  auto next = deliveries_.time_until_next_due();
  // A row due while claims of relay.delivery are skipped is claimed when the skipping ends.
  const auto now = SteadyClock::now();
  if (next && *next && now < skip_deliveries_until_) {
    **next = std::max(**next, std::chrono::ceil<Millis>(skip_deliveries_until_ - now));
  }
  if (next && recheck_soon_.exchange(false)) {
    *next = *next ? std::min(**next, kRecheckVisibility) : kRecheckVisibility;
  }
  return next;
}

Result<bool> PgWalSource::wait_for_work(Millis timeout) {
  return deliveries_.wait_for_work(timeout);
}

void PgWalSource::wake() { deliveries_.wake(); }

WalSourceStatus PgWalSource::status() const {
  std::lock_guard lock(mu_);
  WalSourceStatus s = status_;
  s.held_events = static_cast<long long>(held_.size());
  s.in_flight = static_cast<long long>(in_flight_.size());
  s.pending_transactions = static_cast<long long>(progress_.pending());
  if (auto oldest = progress_.oldest_pending_commit_time()) {
    const auto age = std::chrono::system_clock::now() - wal::from_pg_micros(*oldest);
    s.lag_seconds = std::max(0.0, std::chrono::duration<double>(age).count());
  }
  return s;
}

}  // namespace relay::store
