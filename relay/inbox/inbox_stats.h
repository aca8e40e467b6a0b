#pragma once
// InboxStats: the inbox's Prometheus metrics (STYLE.md section 7), built from the runner's
// Registry&. Label values are bounded: source names from the config (a request for any other name
// counts under source="_unknown") and fixed reason sets. Series for every configured source are
// created up front, so increase() sees the first event.
//
//   relay_inbox_received_total{source}             events stored (new)
//   relay_inbox_duplicates_total{source}           events already stored (answered 200, not stored)
//   relay_inbox_rejected_total{source,reason}      requests refused by the inbox handler
//   relay_inbox_server_rejected_total{reason}      requests the HTTP server refused itself
//                                                  (queue_full, too_many_connections, timeout,
//                                                  bad_request, headers_too_large,
//                                                  payload_too_large, length_required, other)
//   relay_inbox_idle_connections_evicted_total     idle connections the HTTP server closed to
//                                                  make room for a new one at max_connections
//   relay_inbox_retention_deleted_total            rows deleted by the retention task
//
// Thread-safe.

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/registry.h>

#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "relay/http/http_server.h"

namespace relay::inbox {

class InboxStats {
 public:
  static constexpr const char* kUnknownSource = "_unknown";
  // Every reason the handler rejects with.
  static constexpr const char* kReasons[] = {"unknown_source",
                                             "method_not_allowed",
                                             "payload_too_large",
                                             "malformed",
                                             "missing_id",
                                             "missing_signature",
                                             "bad_timestamp",
                                             "stale_timestamp",
                                             "bad_signature",
                                             "unavailable",
                                             "busy"};

  InboxStats(prometheus::Registry& registry, const std::vector<std::string>& sources);
  InboxStats(const InboxStats&) = delete;
  InboxStats& operator=(const InboxStats&) = delete;

  void received(const std::string& source, int n);
  void duplicates(const std::string& source, int n);
  // `reason` must be one of kReasons; an unconfigured `source` counts as kUnknownSource.
  void rejected(const std::string& source, const std::string& reason);
  void retention_deleted(int n);
  // Brings relay_inbox_server_rejected_total and relay_inbox_idle_connections_evicted_total up to
  // the server's own counters (call before a scrape). Counters only move forward.
  void sync_server(const http::HttpServerStats& stats);

 private:
  struct Source {
    prometheus::Counter* received = nullptr;
    prometheus::Counter* duplicates = nullptr;
    std::map<std::string, prometheus::Counter*> rejected;
  };
  const Source* find(const std::string& source) const;

  prometheus::Family<prometheus::Counter>& received_;
  prometheus::Family<prometheus::Counter>& duplicates_;
  prometheus::Family<prometheus::Counter>& rejected_;
  prometheus::Family<prometheus::Counter>& server_rejected_;
  prometheus::Counter& idle_evicted_;
  prometheus::Counter& retention_deleted_;
  std::map<std::string, Source> sources_;  // constant after construction (with kUnknownSource)

  std::mutex mu_;
  std::map<std::string, std::uint64_t> server_seen_;  // guarded by mu_: last synced values
  std::uint64_t idle_evicted_seen_ = 0;               // guarded by mu_
};

}  // namespace relay::inbox
