#include "relay/store/dead_letter_store.h"

#include <algorithm>
#include <map>

#include "relay/store/pg_arrays.h"
#include "relay/store/pg_connection.h"
#include "relay/store/transaction.h"

namespace relay::store {
namespace {

// Timestamps travel as microseconds since the epoch: no time-zone or text-format surprises.
constexpr const char* kColumns = R"(
  id, outbox_id, event_id::text, subscription, topic, key, payload, content_type, headers::text, reason, attempts,
  last_status, last_error, last_response,
  (extract(epoch FROM created_at) * 1000000)::bigint, (extract(epoch FROM deliver_after) * 1000000)::bigint,
  (extract(epoch FROM expires_at) * 1000000)::bigint, (extract(epoch FROM failed_at) * 1000000)::bigint,
  (extract(epoch FROM replayed_at) * 1000000)::bigint)";

// Every filter is a fixed parameter ($1..$9) that is NULL when unset, so the SQL text never
// depends on the operator's input. Statements append their own parameters from $10 on.
constexpr const char* kWhere = R"(
       ($1::text IS NULL OR subscription = $1::text)
   AND ($2::text IS NULL OR topic LIKE $2::text ESCAPE '\')
   AND ($3::text IS NULL OR reason = $3::text)
   AND ($4::text IS NULL OR key = $4::text)
   AND ($5::bigint IS NULL OR failed_at >= 'epoch'::timestamptz + $5::bigint * interval '1 microsecond')
   AND ($6::bigint IS NULL OR failed_at < 'epoch'::timestamptz + $6::bigint * interval '1 microsecond')
   AND ($7::bigint IS NULL OR id > $7::bigint)
   AND ($8::bigint IS NULL OR id <= $8::bigint)
   AND (NOT $9::boolean OR replayed_at IS NULL))";

// Byte order (COLLATE "C"), so the output does not depend on the server's locale.
constexpr const char* kStatsSelect = R"(
  SELECT subscription, reason, count(*), count(*) FILTER (WHERE replayed_at IS NULL),
         (extract(epoch FROM min(failed_at)) * 1000000)::bigint, (extract(epoch FROM max(failed_at)) * 1000000)::bigint
    FROM relay.dead_letter WHERE)";
constexpr const char* kStatsGroup = R"(
   GROUP BY subscription, reason ORDER BY subscription COLLATE "C", reason COLLATE "C")";

// The replay itself. Rows are already locked (FOR UPDATE, in id order) by the caller's
// transaction. Only rows still unreplayed are touched, so a second replay enqueues nothing.
constexpr const char* kReplay = R"(
  WITH dl AS (
    UPDATE relay.dead_letter SET replayed_at = now()
     WHERE id = ANY($1::bigint[]) AND replayed_at IS NULL
    RETURNING id, outbox_id, event_id, subscription, topic, key, payload, content_type, headers, created_at,
              expires_at),
  to_delivery AS (
    INSERT INTO relay.delivery (outbox_id, event_id, subscription, topic, key, payload, content_type, headers,
                                created_at, expires_at, attempts, first_failed_at, next_attempt_at)
    SELECT coalesce(outbox_id, nextval('relay.outbox_id_seq')), event_id, subscription, topic, key, payload,
           content_type, headers, created_at, expires_at, 0, now(), now()
      FROM dl
     WHERE subscription NOT IN ('*', '(none)')
    ON CONFLICT (event_id, subscription) DO NOTHING
    RETURNING event_id, subscription),
  to_outbox AS (
    INSERT INTO relay.outbox (event_id, topic, key, payload, content_type, headers, expires_at)
    SELECT event_id::uuid, topic, key, payload, content_type, headers, expires_at
      FROM dl
     WHERE subscription IN ('*', '(none)')
    ON CONFLICT (event_id) DO NOTHING
    RETURNING event_id::text AS event_id)
  SELECT dl.id,
         EXISTS (SELECT 1 FROM to_delivery t WHERE t.event_id = dl.event_id AND t.subscription = dl.subscription)
         OR (dl.subscription IN ('*', '(none)') AND EXISTS (SELECT 1 FROM to_outbox o WHERE o.event_id = dl.event_id))
    FROM dl)";

WallTime from_micros(long long us) {
  return WallTime{std::chrono::duration_cast<WallTime::duration>(std::chrono::microseconds(us))};
}

std::optional<WallTime> opt_time(const pqxx::field& f) {
  if (f.is_null()) return std::nullopt;
  return from_micros(f.as<long long>());
}

std::string to_micros_text(WallTime t) {
  return std::to_string(
      std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count());
}

// "order.*" -> "order.%", with LIKE's own wildcards and the escape character taken literally.
std::string glob_to_like(const std::string& glob) {
  std::string out;
  for (char c : glob) {
    if (c == '\\' || c == '%' || c == '_') {
      out += '\\';
      out += c;
    } else if (c == '*') {
      out += '%';
    } else if (c == '?') {
      out += '_';
    } else {
      out += c;
    }
  }
  return out;
}

// $1..$9 of kWhere as text, nullptr for NULL.
class FilterArgs {
 public:
  explicit FilterArgs(const DeadLetterFilter& f) {
    set(0, f.subscription);
    if (f.topic_glob) set(1, glob_to_like(*f.topic_glob));
    set(2, f.reason);
    set(3, f.key);
    if (f.failed_since) set(4, to_micros_text(*f.failed_since));
    if (f.failed_before) set(5, to_micros_text(*f.failed_before));
    if (f.after_id) set(6, std::to_string(*f.after_id));
    if (f.max_id) set(7, std::to_string(*f.max_id));
    set(8, std::string(f.unreplayed_only ? "true" : "false"));
  }
  const char* operator[](int i) const { return set_[i] ? values_[i].c_str() : nullptr; }

 private:
  void set(int i, const std::optional<std::string>& v) {
    if (v) set(i, *v);
  }
  void set(int i, std::string v) {
    values_[i] = std::move(v);
    set_[i] = true;
  }
  std::string values_[9];
  bool set_[9] = {};
};

template <typename... Extra>
pqxx::result exec_filtered(pqxx::work& txn, const std::string& sql, const DeadLetterFilter& filter,
                           Extra&&... extra) {
  const FilterArgs a(filter);
  return txn.exec_params(sql, a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8],
                         std::forward<Extra>(extra)...);
}

DeadLetter read_dead_letter(const pqxx::row& r) {
  DeadLetter d;
  d.id = r[0].as<std::int64_t>();
  if (!r[1].is_null()) d.outbox_id = r[1].as<std::int64_t>();
  d.event_id = r[2].as<std::string>();
  d.subscription = r[3].as<std::string>();
  d.topic = r[4].as<std::string>();
  if (!r[5].is_null()) d.key = r[5].as<std::string>();
  d.payload = pqxx::binarystring(r[6]).str();
  d.content_type = r[7].as<std::string>();
  d.headers_json = r[8].as<std::string>();
  d.reason = r[9].as<std::string>();
  d.attempts = r[10].as<int>();
  if (!r[11].is_null()) d.last_status = r[11].as<int>();
  if (!r[12].is_null()) d.last_error = r[12].as<std::string>();
  if (!r[13].is_null()) d.last_response = r[13].as<std::string>();
  d.created_at = from_micros(r[14].as<long long>());
  d.deliver_after = opt_time(r[15]);
  d.expires_at = opt_time(r[16]);
  d.failed_at = from_micros(r[17].as<long long>());
  d.replayed_at = opt_time(r[18]);
  return d;
}

std::vector<std::int64_t> select_ids(pqxx::work& txn, const DeadLetterFilter& filter, int batch) {
  auto rows = exec_filtered(
      txn,
      std::string("SELECT id FROM relay.dead_letter WHERE") + kWhere + " ORDER BY id LIMIT $10",
      filter, batch);
  std::vector<std::int64_t> ids;
  ids.reserve(rows.size());
  for (const auto& r : rows) ids.push_back(r[0].as<std::int64_t>());
  return ids;
}

BatchResult replay_in(pqxx::work& txn, const std::vector<std::int64_t>& ids) {
  BatchResult out;
  if (ids.empty()) return out;
  const std::string array = bigint_array(ids);
  // Lock in id order first: two replays running at once then queue behind each other instead of
  // deadlocking, and the second one sees replayed_at set by the first.
  auto locked = txn.exec_params(
      "SELECT id, event_id::text, subscription, (extract(epoch FROM replayed_at) * "
      "1000000)::bigint "
      "FROM relay.dead_letter WHERE id = ANY($1::bigint[]) ORDER BY id FOR UPDATE",
      array);
  std::map<std::int64_t, ReplayedRow> rows;
  for (const auto& r : locked) {
    ReplayedRow row;
    row.id = r[0].as<std::int64_t>();
    row.event_id = r[1].as<std::string>();
    row.subscription = r[2].as<std::string>();
    row.replayed_at = opt_time(r[3]);
    row.outcome = row.replayed_at ? ReplayedRow::Outcome::kAlreadyReplayed
                                  : ReplayedRow::Outcome::kAlreadyQueued;
    rows.emplace(row.id, std::move(row));
  }
  bool enqueued_any = false;
  for (const auto& r : txn.exec_params(kReplay, array)) {
    auto it = rows.find(r[0].as<std::int64_t>());
    if (it == rows.end()) continue;
    if (r[1].as<bool>()) {
      it->second.outcome = ReplayedRow::Outcome::kEnqueued;
      enqueued_any = true;
    }
  }
  // Wake an idle relay now rather than at its next safety-net poll. relay.delivery has no
  // trigger of its own; one notification per batch costs nothing worth counting.
  if (enqueued_any) txn.exec("SELECT pg_notify('relay_outbox', '')");
  for (auto& [id, row] : rows) {
    out.ids.push_back(id);
    out.rows.push_back(std::move(row));
  }
  return out;
}

// A dropped dead letter may unblock its key (on_dead_letter: block): wake an idle relay, which
// does not poll for rows its last claim left behind.
void notify_if_purged(pqxx::work& txn, const BatchResult& out) {
  if (!out.purged.empty()) txn.exec("SELECT pg_notify('relay_outbox', '')");
}

}  // namespace

DeadLetterStore::DeadLetterStore(std::unique_ptr<PgConnection> conn) : conn_(std::move(conn)) {}
DeadLetterStore::~DeadLetterStore() = default;

Result<std::unique_ptr<DeadLetterStore>> DeadLetterStore::open(const std::string& url) {
  auto conn = std::make_unique<PgConnection>(url);
  auto c = conn->get();
  if (!c) return c.error();
  return std::unique_ptr<DeadLetterStore>(new DeadLetterStore(std::move(conn)));
}

Result<std::vector<DeadLetter>> DeadLetterStore::list(const DeadLetterFilter& filter, int limit) {
  auto c = conn_->get();
  if (!c) return c.error();
  return run_transaction(**c, [&](pqxx::work& txn) {
    auto rows = exec_filtered(txn,
                              std::string("SELECT ") + kColumns + " FROM relay.dead_letter WHERE" +
                                  kWhere + " ORDER BY id LIMIT $10",
                              filter, limit);
    std::vector<DeadLetter> out;
    out.reserve(rows.size());
    for (const auto& r : rows) out.push_back(read_dead_letter(r));
    return out;
  });
}

Result<std::optional<DeadLetter>> DeadLetterStore::get(std::int64_t id) {
  auto c = conn_->get();
  if (!c) return c.error();
  return run_transaction(**c, [&](pqxx::work& txn) -> std::optional<DeadLetter> {
    auto rows = txn.exec_params(
        std::string("SELECT ") + kColumns + " FROM relay.dead_letter WHERE id = $1", id);
    if (rows.empty()) return std::nullopt;
    return read_dead_letter(rows[0]);
  });
}

Result<std::vector<DeadLetterGroup>> DeadLetterStore::stats(const DeadLetterFilter& filter) {
  auto c = conn_->get();
  if (!c) return c.error();
  return run_transaction(**c, [&](pqxx::work& txn) {
    auto rows = exec_filtered(txn, std::string(kStatsSelect) + kWhere + kStatsGroup, filter);
    std::vector<DeadLetterGroup> out;
    for (const auto& r : rows) {
      out.push_back({.subscription = r[0].as<std::string>(),
                     .reason = r[1].as<std::string>(),
                     .count = r[2].as<std::int64_t>(),
                     .unreplayed = r[3].as<std::int64_t>(),
                     .oldest_failed_at = from_micros(r[4].as<long long>()),
                     .newest_failed_at = from_micros(r[5].as<long long>())});
    }
    return out;
  });
}

Result<std::int64_t> DeadLetterStore::max_id() {
  auto c = conn_->get();
  if (!c) return c.error();
  return run_transaction(**c, [&](pqxx::work& txn) {
    return txn.exec("SELECT coalesce(max(id), 0) FROM relay.dead_letter")[0][0].as<std::int64_t>();
  });
}

Result<BatchResult> DeadLetterStore::replay(const std::vector<std::int64_t>& ids) {
  auto c = conn_->get();
  if (!c) return c.error();
  return run_transaction(**c, [&](pqxx::work& txn) { return replay_in(txn, ids); });
}

Result<BatchResult> DeadLetterStore::replay_next(const DeadLetterFilter& filter, int batch) {
  auto c = conn_->get();
  if (!c) return c.error();
  DeadLetterFilter f = filter;
  f.unreplayed_only = true;
  return run_transaction(**c, [&](pqxx::work& txn) {
    auto ids = select_ids(txn, f, batch);
    BatchResult out = replay_in(txn, ids);
    out.ids =
        std::move(ids);  // the cursor moves past every id looked at, even one replayed meanwhile
    return out;
  });
}

Result<BatchResult> DeadLetterStore::purge(const std::vector<std::int64_t>& ids) {
  auto c = conn_->get();
  if (!c) return c.error();
  return run_transaction(**c, [&](pqxx::work& txn) {
    BatchResult out;
    for (const auto& r :
         txn.exec_params("DELETE FROM relay.dead_letter WHERE id = ANY($1::bigint[]) RETURNING id",
                         bigint_array(ids))) {
      out.purged.push_back(r[0].as<std::int64_t>());
    }
    std::sort(out.purged.begin(), out.purged.end());
    out.ids = out.purged;
    notify_if_purged(txn, out);
    return out;
  });
}

Result<BatchResult> DeadLetterStore::purge_next(const DeadLetterFilter& filter, int batch) {
  auto c = conn_->get();
  if (!c) return c.error();
  return run_transaction(**c, [&](pqxx::work& txn) {
    BatchResult out;
    out.ids = select_ids(txn, filter, batch);
    if (out.ids.empty()) return out;
    for (const auto& r :
         txn.exec_params("DELETE FROM relay.dead_letter WHERE id = ANY($1::bigint[]) RETURNING id",
                         bigint_array(out.ids))) {
      out.purged.push_back(r[0].as<std::int64_t>());
    }
    std::sort(out.purged.begin(), out.purged.end());
    notify_if_purged(txn, out);
    return out;
  });
}

}  // namespace relay::store
