#pragma once
// PgMetricsReader: the small periodic query behind relay's database gauges (outbox backlog and
// oldest due age per topic, unreplayed dead letters per subscription). Keeps one connection and
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
  std::map<std::string, std::int64_t> dead_letters;  // unreplayed, by subscription
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
