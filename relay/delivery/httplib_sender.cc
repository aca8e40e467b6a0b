#include "relay/delivery/httplib_sender.h"

#include <fmt/format.h>
#include <httplib.h>

#include <algorithm>
#include <cctype>
#include <exception>
#include <string_view>
#include <utility>

#include "relay/delivery/classify.h"
#include "relay/delivery/request_builder.h"

namespace relay::delivery {
namespace {

struct Endpoint {
  std::string host;  // without brackets for an IPv6 literal
  int port = 80;
  std::string path;  // starts with '/', may carry a query
};

bool iequals_prefix(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(s[i])) != prefix[i]) return false;
  }
  return true;
}

// http://host[:port][/path[?query]]. No https (TLS is a later feature), no userinfo (credentials
// in a URL end up in logs), no fragment. The path must already be in its on-the-wire form.
std::optional<Endpoint> parse_endpoint(std::string_view url) {
  constexpr std::string_view kScheme = "http://";
  if (!iequals_prefix(url, kScheme)) return std::nullopt;
  url.remove_prefix(kScheme.size());
  const size_t authority_end = std::min(url.find_first_of("/?#"), url.size());
  std::string_view authority = url.substr(0, authority_end);
  std::string_view rest = url.substr(authority_end);
  Endpoint ep;
  if (authority.empty() || authority.find('@') != std::string_view::npos) return std::nullopt;
  std::string_view port_text;
  if (authority.front() == '[') {  // IPv6 literal
    const size_t close = authority.find(']');
    if (close == std::string_view::npos || close == 1) return std::nullopt;
    ep.host = std::string(authority.substr(1, close - 1));
    for (char c : ep.host) {
      if (!std::isxdigit(static_cast<unsigned char>(c)) && c != ':' && c != '.')
        return std::nullopt;
    }
    authority.remove_prefix(close + 1);
    if (!authority.empty()) {
      if (authority.front() != ':') return std::nullopt;
      port_text = authority.substr(1);
      if (port_text.empty()) return std::nullopt;
    }
  } else {
    const size_t colon = authority.find(':');
    ep.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) {
      port_text = authority.substr(colon + 1);
      if (port_text.empty()) return std::nullopt;
    }
    if (ep.host.empty()) return std::nullopt;
    for (char c : ep.host) {
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '.' && c != '_')
        return std::nullopt;
    }
  }
  if (!port_text.empty()) {
    if (port_text.size() > 5) return std::nullopt;
    int port = 0;
    for (char c : port_text) {
      if (!std::isdigit(static_cast<unsigned char>(c))) return std::nullopt;
      port = port * 10 + (c - '0');
    }
    if (port < 1 || port > 65535) return std::nullopt;
    ep.port = port;
  }
  if (rest.find('#') != std::string_view::npos) return std::nullopt;
  for (unsigned char c : rest) {
    if (c <= 0x20 || c >= 0x7f) return std::nullopt;  // must be percent-encoded already
  }
  ep.path = rest.empty() ? "/" : rest.front() == '?' ? "/" + std::string(rest) : std::string(rest);
  return ep;
}

DeliveryOutcome retryable(std::string error) {
  DeliveryOutcome outcome;
  outcome.kind = DeliveryOutcome::Kind::kRetryable;
  outcome.status = 0;
  outcome.error = std::move(error);
  return outcome;
}

// httplib reports a read timeout and a peer that closed or reset the connection both as
// Error::Read (Write likewise), so the time the request took tells them apart.
DeliveryOutcome transport_failure(httplib::Error err, Clock::Duration elapsed, Millis timeout,
                                  Millis connect_timeout) {
  const bool timed_out = elapsed >= timeout * 9 / 10;
  switch (err) {
    case httplib::Error::Connection:
      return retryable("connection refused or host unreachable");
    case httplib::Error::ConnectionTimeout:
      return retryable(fmt::format("connect timeout after {}", format_duration(connect_timeout)));
    case httplib::Error::Read:
      return retryable(timed_out
                           ? fmt::format("timeout: no response within {}", format_duration(timeout))
                           : "connection closed or reset before a complete response");
    case httplib::Error::Write:
      return retryable(timed_out ? fmt::format("timeout while sending the request ({})",
                                               format_duration(timeout))
                                 : "connection closed or reset while sending the request");
    case httplib::Error::Canceled:
      return retryable("request canceled");
    default:
      return retryable("http client error: " + httplib::to_string(err));
  }
}

}  // namespace

Result<std::unique_ptr<HttplibSender>> HttplibSender::create(const config::SubscriptionConfig& sub,
                                                             Clock& clock) {
  const auto endpoint = parse_endpoint(sub.endpoint);
  if (!endpoint) {
    // Only the scheme is shown when the URL may carry credentials: messages end up in logs.
    const bool may_have_credentials = sub.endpoint.find('@') != std::string::npos;
    return Error{
        ErrorCode::kInvalidArgument,
        fmt::format("subscription \"{}\": endpoint {} is not an http://host[:port][/path] URL",
                    sub.name,
                    may_have_credentials ? std::string("(with user@ credentials)")
                                         : fmt::format("\"{}\"", sub.endpoint))};
  }
  std::vector<Signer> signers;
  for (std::size_t i = 0; i < sub.signing_secrets.size(); ++i) {
    auto created = Signer::create(sub.signing_secrets[i]);
    if (!created) {
      return Error{ErrorCode::kInvalidArgument,
                   fmt::format("subscription \"{}\": signing_secret[{}]: {}", sub.name, i,
                               created.error().message)};
    }
    signers.push_back(std::move(*created));
  }
  auto client = std::make_unique<httplib::Client>(endpoint->host, endpoint->port);
  client->set_keep_alive(true);
  client->set_tcp_nodelay(true);  // without it every request waits ~40 ms on Nagle + delayed ACK
  client->set_follow_location(false);  // Standard Webhooks: a redirect is a failure, never followed
  client->set_connection_timeout(sub.connect_timeout);
  // cpp-httplib 0.11 has no whole-request deadline, only per-socket-operation timeouts: a consumer
  // that trickles bytes slower than `timeout` apart can keep one request going longer than
  // `timeout`. Each wait is still bounded, and stop() aborts the request at shutdown.
  client->set_read_timeout(sub.timeout);
  client->set_write_timeout(sub.timeout);
  return std::unique_ptr<HttplibSender>(
      new HttplibSender(sub, clock, endpoint->path, std::move(client), std::move(signers)));
}

HttplibSender::HttplibSender(const config::SubscriptionConfig& sub, Clock& clock, std::string path,
                             std::unique_ptr<httplib::Client> client, std::vector<Signer> signers)
    : sub_(sub),
      clock_(clock),
      path_(std::move(path)),
      client_(std::move(client)),
      signers_(std::move(signers)) {}

HttplibSender::~HttplibSender() = default;

void HttplibSender::stop() { client_->stop(); }

RequestContext HttplibSender::context() const {
  return RequestContext{.subscription = sub_.name,
                        .format = format_from_config(sub_.format),
                        .signers = signers_,
                        .subscription_headers = sub_.headers};
}

DeliveryOutcome HttplibSender::send(const Event& event, int attempt) {
  return post(build_request(event, attempt, clock_.wall_now(), context()));
}

DeliveryOutcome HttplibSender::send_batch(std::span<const BatchItem> items) {
  return post(build_batch_request(items, clock_.wall_now(), context()));
}

DeliveryOutcome HttplibSender::post(OutgoingRequest out) {
  try {
    httplib::Request req;
    req.method = "POST";
    req.path = path_;
    for (auto& [name, value] : out.headers) req.headers.emplace(std::move(name), std::move(value));
    req.headers.emplace("Content-Type", std::move(out.content_type));
    req.body = std::move(out.body);

    // Keep the head of the body for the dead letter and drain the rest: returning false would
    // cancel the request (and turn a 200 into a failure), and throwing from a receiver breaks
    // cpp-httplib 0.11's in-flight accounting (#1498).
    const size_t limit = static_cast<size_t>(std::max<std::int64_t>(sub_.max_response_bytes, 0));
    std::string snippet;
    req.content_receiver = [&snippet, limit](const char* data, size_t len, std::uint64_t,
                                             std::uint64_t) {
      if (snippet.size() < limit) snippet.append(data, std::min(len, limit - snippet.size()));
      return true;
    };

    httplib::Response res;
    httplib::Error err = httplib::Error::Success;
    const auto started = clock_.now();
    if (!client_->send(req, res, err)) {
      return transport_failure(err, clock_.now() - started, sub_.timeout, sub_.connect_timeout);
    }

    DeliveryOutcome outcome;
    outcome.kind = classify_status(res.status);
    outcome.status = res.status;
    if (outcome.kind != DeliveryOutcome::Kind::kDelivered)
      outcome.error = fmt::format("HTTP {}", res.status);
    outcome.response_snippet = std::move(snippet);
    if (res.has_header("Retry-After")) {
      if (auto after = parse_retry_after(res.get_header_value("Retry-After"), clock_.wall_now())) {
        outcome.retry_after = std::min(*after, sub_.retry.max_backoff);
      }
    }
    return outcome;
  } catch (const std::bad_alloc&) {
    throw;  // fatal by policy (STYLE.md §4)
  } catch (const std::exception& e) {
    // cpp-httplib is not documented to throw here; this is the library-edge net.
    return retryable(std::string("http client exception: ") + e.what());
  }
}

}  // namespace relay::delivery
