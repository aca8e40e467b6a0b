#include "relay/inbox/inbox_service.h"

#include <fmt/format.h>

#include "relay/inbox/inbox_request.h"

namespace relay::inbox {
namespace {

constexpr std::string_view kRoutePrefix = "/inbox/";

http::HttpResponse text_response(int status, std::string message) {
  http::HttpResponse r;
  r.status = status;
  r.headers.emplace_back("Content-Type", "text/plain; charset=utf-8");
  r.body = std::move(message);
  r.body += '\n';
  return r;
}

}  // namespace

Result<std::unique_ptr<InboxService>> InboxService::create(const config::Config& config,
                                                           store::InboxStore& store,
                                                           InboxStats& stats, Clock& clock,
                                                           std::function<void()> on_push_stored) {
  RELAY_CHECK(config.inbox.has_value(), "InboxService needs an inbox config");
  const config::InboxConfig& inbox = *config.inbox;
  std::map<std::string, Source> sources;
  for (const auto& s : inbox.sources) {
    Source source;
    if (!s.unsigned_requests) {
      auto verifier = make_request_verifier(s.verify, s.signing_secrets, inbox.timestamp_tolerance);
      if (!verifier) {
        return Error{ErrorCode::kInvalidArgument,
                     fmt::format("inbox source {}: {}", s.name, verifier.error().message)};
      }
      source.verifier = std::move(*verifier);
    }
    source.key_from = s.key_from;
    source.topic_from = s.topic_from;
    for (const auto& sub : config.subscriptions) {
      if (sub.inbox_source != s.name) continue;
      source.push = store::InboxPush{.subscription = sub.name,
                                     .ordered = sub.ordering == model::Ordering::kPerKey,
                                     .queued_recheck = sub.retry.max_backoff};
    }
    sources.emplace(s.name, std::move(source));
  }
  return std::unique_ptr<InboxService>(new InboxService(std::move(sources),
                                                        config.limits.max_payload_bytes, store,
                                                        stats, clock, std::move(on_push_stored)));
}

InboxService::InboxService(std::map<std::string, Source> sources, std::int64_t max_payload_bytes,
                           store::InboxStore& store, InboxStats& stats, Clock& clock,
                           std::function<void()> on_push_stored)
    : sources_(std::move(sources)),
      max_payload_bytes_(max_payload_bytes),
      store_(store),
      stats_(stats),
      clock_(clock),
      on_push_stored_(std::move(on_push_stored)) {}

http::HttpServerLimits InboxService::server_limits(const config::Config& config) {
  RELAY_CHECK(config.inbox.has_value(), "server_limits needs an inbox config");
  const config::InboxConfig& inbox = *config.inbox;
  http::HttpServerLimits limits;
  limits.workers = inbox.workers;
  limits.max_queued_connections = inbox.max_queued_connections;
  limits.read_timeout = inbox.read_timeout;
  limits.idle_timeout = inbox.idle_timeout;
  limits.max_header_bytes = inbox.max_header_bytes;
  limits.max_headers = inbox.max_headers;
  limits.max_body_bytes = kBodyLimitFactor * config.limits.max_payload_bytes + kEnvelopeSlackBytes;
  return limits;
}

http::HttpResponse InboxService::reject(const std::string& source, int status, const char* reason,
                                        std::string message) {
  stats_.rejected(source, reason);
  http::HttpResponse r = text_response(status, std::move(message));
  if (status == 405) r.headers.emplace_back("Allow", "POST");
  if (status == 429 || status == 503)
    r.headers.emplace_back("Retry-After", std::to_string(kRetryAfterSeconds));
  return r;
}

http::HttpResponse InboxService::handle(const http::HttpRequest& request) {
  const std::string_view path = request.path();
  if (path.substr(0, kRoutePrefix.size()) != kRoutePrefix) {
    return reject(InboxStats::kUnknownSource, 404, "unknown_source",
                  "not found: the inbox listens on POST /inbox/{source}");
  }
  const std::string name(path.substr(kRoutePrefix.size()));
  if (request.method != "POST") {
    return reject(name, 405, "method_not_allowed",
                  fmt::format("method {} not allowed: use POST", request.method));
  }
  auto it = sources_.find(name);
  if (it == sources_.end()) {
    return reject(name, 404, "unknown_source",
                  "unknown inbox source: not in inbox.sources of relay's config");
  }
  const Source& source = it->second;

  EventMapping mapping;
  if (source.verifier) {
    auto verified = source.verifier->verify(request.headers, request.body, clock_.wall_now());
    if (auto* failure = std::get_if<VerifyFailure>(&verified)) {
      return reject(name, http_status(failure->reason), to_string(failure->reason),
                    std::move(failure->message));
    }
    auto& event = std::get<VerifiedEvent>(verified);
    mapping.id = std::move(event.id);
    mapping.id_from = std::move(event.id_from);
    mapping.topic = std::move(event.topic);
  }
  mapping.key_from = source.key_from ? &*source.key_from : nullptr;
  mapping.topic_from = source.topic_from ? &*source.topic_from : nullptr;

  auto decoded = decode_request(name, request, max_payload_bytes_, mapping);
  if (auto* r = std::get_if<Rejection>(&decoded))
    return reject(name, r->status, r->reason, std::move(r->message));
  const auto& events = std::get<std::vector<store::InboxEvent>>(decoded);

  auto written = store_.insert(events, source.push ? &*source.push : nullptr);
  if (!written) {
    if (!database_down_.exchange(true)) {
      log_.warn("cannot store inbox events; answering 503 until the database is back",
                {{"error", written.error().message}});
    }
    return reject(name, 503, "unavailable", "the database is unavailable; retry later");
  }
  if (database_down_.exchange(false)) log_.info("storing inbox events again");
  if (written->busy) {
    return reject(name, 429, "busy", "every database connection is busy; retry later");
  }
  stats_.received(name, written->stored);
  stats_.duplicates(name, written->duplicates);
  if (written->stored > 0 && source.push && on_push_stored_) on_push_stored_();
  const bool duplicate = written->stored == 0;
  http::HttpResponse r = text_response(200, duplicate ? "duplicate: already stored" : "stored");
  r.headers.emplace_back("relay-duplicate", duplicate ? "true" : "false");
  return r;
}

}  // namespace relay::inbox
