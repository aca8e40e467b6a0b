#pragma once
// PgMetricsReader: the small periodic query behind relay's database gauges (outbox backlog and
// oldest due age per topic, retries waiting and unreplayed dead letters per subscription, the
// outbox's dead tuples and
// the age of the oldest snapshot that keeps vacuum from removing them). Keeps one connection and
// reopens it after kUnavailable. Not thread-safe: one owner thread.

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "relay/common/result.h"

namespace relay::store {

class PgConnection;

struct MetricsSnapshot {
  struct Topic {
    std::string topic;
    std::int64_t pending = 0;
    double oldest_due_age_seconds = 0;  // 0 when no row is due
  };
  std::vector<Topic> topics;  // at most `max_topics` + 1 entries (the rest summed as "_other")
  std::map<std::string, std::int64_t> dead_letters;     // unreplayed, by subscription
  std::map<std::string, std::int64_t> retries_waiting;  // relay.delivery rows, by subscription
  // pg_stat_user_tables.n_dead_tup of relay.outbox (the statistics' estimate, refreshed by
  // PostgreSQL about once a second).
  std::int64_t outbox_dead_tuples = 0;
  // Age of the oldest transaction in this database that holds back vacuum's horizon (it holds a
  // snapshot or an xid: backend_xmin / backend_xid in pg_stat_activity, from xact_start, else
  // backend_start; walsenders of any database; prepared transactions), this reader's own left out.
  // 0 when there is none. Without pg_read_all_stats (or superuser), pg_stat_activity hides those
  // columns for other roles' sessions: then only sessions of relay's own role count.
  double oldest_snapshot_age_seconds = 0;
};

class PgMetricsReader {
 public:
  explicit PgMetricsReader(std::string database_url);
  ~PgMetricsReader();
  PgMetricsReader(const PgMetricsReader&) = delete;
  PgMetricsReader& operator=(const PgMetricsReader&) = delete;

  // The biggest `max_topics` topics by row count; the others summed under "_other".
  Result<MetricsSnapshot> read(size_t max_topics);

 private:
  std::unique_ptr<PgConnection> conn_;
};

}  // namespace relay::store
