#include "relay/store/metrics_store.h"

#include <algorithm>

#include "relay/store/pg_connection.h"
#include "relay/store/transaction.h"

namespace relay::store {
namespace {

constexpr const char* kOutbox = R"(
  SELECT topic, count(*),
         COALESCE(extract(epoch FROM now() - min(created_at)
                  FILTER (WHERE deliver_after IS NULL OR deliver_after <= now())), 0)::float8
    FROM relay.outbox GROUP BY topic ORDER BY count(*) DESC, topic)";

constexpr const char* kDeadLetters = R"(
  SELECT subscription, count(*) FROM relay.dead_letter WHERE replayed_at IS NULL
   GROUP BY subscription)";

constexpr const char* kRetries = R"(
  SELECT subscription, count(*) FROM relay.delivery GROUP BY subscription)";

// One row: the outbox's dead tuples, and the age of the oldest snapshot or xid holder (see
// MetricsSnapshot).
constexpr const char* kVacuum = R"(
  SELECT COALESCE((SELECT n_dead_tup FROM pg_stat_user_tables
                    WHERE relid = 'relay.outbox'::regclass), 0)::bigint,
         COALESCE(extract(epoch FROM now() - (
           SELECT min(started) FROM (
             SELECT COALESCE(xact_start, backend_start) AS started FROM pg_stat_activity
              WHERE (backend_xmin IS NOT NULL OR backend_xid IS NOT NULL)
                AND pid <> pg_backend_pid()
                AND (datname = current_database() OR backend_type = 'walsender')
             UNION ALL
             SELECT prepared FROM pg_prepared_xacts WHERE database = current_database()) h)),
           0)::float8)";

}  // namespace

PgMetricsReader::PgMetricsReader(std::string database_url)
    : conn_(std::make_unique<PgConnection>(std::move(database_url))) {}

PgMetricsReader::~PgMetricsReader() = default;

Result<MetricsSnapshot> PgMetricsReader::read(size_t max_topics) {
  auto c = conn_->get();
  if (!c) {
    conn_->reset();
    return c.error();
  }
  auto r = run_transaction(**c, [&](pqxx::work& txn) {
    MetricsSnapshot snap;
    MetricsSnapshot::Topic other{.topic = "_other"};
    bool any_other = false;
    for (const auto& row : txn.exec(kOutbox)) {
      MetricsSnapshot::Topic t{.topic = row[0].as<std::string>(),
                               .pending = row[1].as<std::int64_t>(),
                               .oldest_due_age_seconds = std::max(0.0, row[2].as<double>())};
      if (snap.topics.size() < max_topics && t.topic != "_other") {
        snap.topics.push_back(std::move(t));
      } else {
        any_other = true;
        other.pending += t.pending;
        other.oldest_due_age_seconds =
            std::max(other.oldest_due_age_seconds, t.oldest_due_age_seconds);
      }
    }
    if (any_other) snap.topics.push_back(std::move(other));
    for (const auto& row : txn.exec(kDeadLetters))
      snap.dead_letters[row[0].as<std::string>()] = row[1].as<std::int64_t>();
    for (const auto& row : txn.exec(kRetries))
      snap.retries_waiting[row[0].as<std::string>()] = row[1].as<std::int64_t>();
    const auto vacuum = txn.exec1(kVacuum);
    snap.outbox_dead_tuples = vacuum[0].as<std::int64_t>();
    snap.oldest_snapshot_age_seconds = std::max(0.0, vacuum[1].as<double>());
    return snap;
  });
  if (!r && r.error().code == ErrorCode::kUnavailable) conn_->reset();
  return r;
}

}  // namespace relay::store
