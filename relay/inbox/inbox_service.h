#pragma once
// InboxService: the handler behind POST /inbox/{source}. For each request, in this order:
//   route     /inbox/{source} only, else 404; a method other than POST -> 405 (Allow: POST);
//             a source not in the config -> 404
//   verify    the source's scheme (`verify`, request_verifier.h: Standard Webhooks by default,
//             stripe, github, shopify), unless the source is configured unsigned -> 401 naming
//             what failed; 400 for a repeated header the scheme reads or a missing id
//   decode    binary mode or an envelope (inbox_request.h), with the scheme's id and topic and
//             the source's key_from / topic_from -> 400 malformed / missing id, 413 payload over
//             limits.max_payload_bytes
//   store     one INSERT ... ON CONFLICT DO NOTHING (InboxStore); answered only after it committed:
//             200 with "relay-duplicate: false" (stored) or "true" (already stored, nothing
//             written); 503 + Retry-After when the database is unavailable or slow; 429 +
//             Retry-After when every database connection stayed busy
// Every outcome is counted in InboxStats. A stored event of a pushing source wakes the pipeline.
//
// Thread-safe: handle() runs on the HTTP server's workers concurrently.

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "relay/common/clock.h"
#include "relay/common/log.h"
#include "relay/common/result.h"
#include "relay/config/config.h"
#include "relay/http/http_server.h"
#include "relay/inbox/inbox_stats.h"
#include "relay/inbox/request_verifier.h"
#include "relay/store/inbox_store.h"

namespace relay::inbox {

// Retry-After (seconds) on 429 and 503: soon, the condition is usually short.
inline constexpr int kRetryAfterSeconds = 1;
// Envelopes carry a payload in base64 or beside attributes, and a batch several: the HTTP body
// limit is this multiple of limits.max_payload_bytes plus kEnvelopeSlackBytes; each payload is
// then held to max_payload_bytes itself.
inline constexpr std::int64_t kBodyLimitFactor = 2;
inline constexpr std::int64_t kEnvelopeSlackBytes = 65'536;

class InboxService {
 public:
  // Builds the per-source settings from config.inbox (REQUIRES: set) and the synthesized
  // "inbox:<source>" subscriptions. `on_push_stored` is called after a pushed event committed.
  // kInvalidArgument if a signed source's secret is invalid or missing.
  static Result<std::unique_ptr<InboxService>> create(const config::Config& config,
                                                      store::InboxStore& store, InboxStats& stats,
                                                      Clock& clock,
                                                      std::function<void()> on_push_stored);
  InboxService(const InboxService&) = delete;
  InboxService& operator=(const InboxService&) = delete;

  http::HttpResponse handle(const http::HttpRequest& request);

  // The HTTP server limits for this config's inbox (workers, queue, timeouts, header bounds, body
  // limit as described at kBodyLimitFactor).
  static http::HttpServerLimits server_limits(const config::Config& config);

 private:
  struct Source {
    std::unique_ptr<RequestVerifier> verifier;  // nullptr: unsigned
    std::optional<config::FieldFrom> key_from;
    std::optional<config::FieldFrom> topic_from;
    std::optional<store::InboxPush> push;  // nullopt: the app claims with SQL
  };
  InboxService(std::map<std::string, Source> sources, std::int64_t max_payload_bytes,
               store::InboxStore& store, InboxStats& stats, Clock& clock,
               std::function<void()> on_push_stored);

  http::HttpResponse reject(const std::string& source, int status, const char* reason,
                            std::string message);

  const std::map<std::string, Source> sources_;
  const std::int64_t max_payload_bytes_;
  store::InboxStore& store_;
  InboxStats& stats_;
  Clock& clock_;
  const std::function<void()> on_push_stored_;
  const Logger log_{"inbox"};
  std::atomic<bool> database_down_{false};  // for logging the change only
};

}  // namespace relay::inbox
