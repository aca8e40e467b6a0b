#include "relay/inbox/inbox_stats.h"

namespace relay::inbox {

using prometheus::BuildCounter;

InboxStats::InboxStats(prometheus::Registry& registry, const std::vector<std::string>& sources)
    : received_(BuildCounter()
                    .Name("relay_inbox_received_total")
                    .Help("Inbox events stored, by source")
                    .Register(registry)),
      duplicates_(BuildCounter()
                      .Name("relay_inbox_duplicates_total")
                      .Help("Inbox events received again after they were stored (answered 200)")
                      .Register(registry)),
      rejected_(BuildCounter()
                    .Name("relay_inbox_rejected_total")
                    .Help("Inbox requests refused, by source and reason")
                    .Register(registry)),
      server_rejected_(BuildCounter()
                           .Name("relay_inbox_server_rejected_total")
                           .Help("Inbox requests the HTTP server refused before the handler "
                                 "(queue full, timeouts, oversized or malformed requests)")
                           .Register(registry)),
      idle_evicted_(BuildCounter()
                        .Name("relay_inbox_idle_connections_evicted_total")
                        .Help("Idle inbox connections closed to make room for a new connection "
                              "when max_connections were open")
                        .Register(registry)
                        .Add({})),
      retention_deleted_(BuildCounter()
                             .Name("relay_inbox_retention_deleted_total")
                             .Help("Finished inbox rows deleted after inbox.retention")
                             .Register(registry)
                             .Add({})) {
  std::vector<std::string> names = sources;
  names.push_back(kUnknownSource);
  for (const auto& name : names) {
    Source s;
    if (name != kUnknownSource) {
      s.received = &received_.Add({{"source", name}});
      s.duplicates = &duplicates_.Add({{"source", name}});
    }
    for (const char* reason : kReasons)
      s.rejected[reason] = &rejected_.Add({{"source", name}, {"reason", reason}});
    sources_.emplace(name, std::move(s));
  }
}

const InboxStats::Source* InboxStats::find(const std::string& source) const {
  auto it = sources_.find(source);
  if (it == sources_.end()) it = sources_.find(kUnknownSource);
  return &it->second;
}

void InboxStats::received(const std::string& source, int n) {
  if (auto* s = find(source); s->received != nullptr && n > 0) s->received->Increment(n);
}

void InboxStats::duplicates(const std::string& source, int n) {
  if (auto* s = find(source); s->duplicates != nullptr && n > 0) s->duplicates->Increment(n);
}

void InboxStats::rejected(const std::string& source, const std::string& reason) {
  const Source* s = find(source);
  auto it = s->rejected.find(reason);
  if (it != s->rejected.end()) it->second->Increment();
}

void InboxStats::retention_deleted(int n) {
  if (n > 0) retention_deleted_.Increment(n);
}

void InboxStats::sync_server(const http::HttpServerStats& st) {
  const std::pair<const char*, std::uint64_t> current[] = {
      {"queue_full", st.rejected_queue_full},
      {"too_many_connections", st.connections_rejected},
      {"timeout", st.head_timeouts + st.body_timeouts},
      {"bad_request", st.bad_request},
      {"headers_too_large", st.headers_too_large},
      {"payload_too_large", st.payload_too_large},
      {"length_required", st.length_required},
      {"other", st.expectation_failed + st.version_not_supported + st.handler_errors}};
  std::lock_guard lock(mu_);
  for (const auto& [reason, value] : current) {
    std::uint64_t& seen = server_seen_[reason];
    auto& counter = server_rejected_.Add({{"reason", reason}});
    if (value > seen) counter.Increment(static_cast<double>(value - seen));
    seen = std::max(seen, value);
  }
  if (st.idle_evicted > idle_evicted_seen_) {
    idle_evicted_.Increment(static_cast<double>(st.idle_evicted - idle_evicted_seen_));
    idle_evicted_seen_ = st.idle_evicted;
  }
}

}  // namespace relay::inbox
