#include "relay/inbox/inbox_request.h"

#include <fmt/format.h>

#include <array>
#include <nlohmann/json.hpp>
#include <optional>
#include <tuple>

#include "relay/common/http_header.h"
#include "relay/common/utf8.h"
#include "relay/delivery/envelope.h"
#include "relay/inbox/request_verifier.h"

namespace relay::inbox {
namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Headers that describe this hop (transport, content negotiation, proxies) or carry credentials.
bool is_hop_header(std::string_view name) {
  constexpr std::array<std::string_view, 19> kExact = {"accept",
                                                       "accept-charset",
                                                       "accept-encoding",
                                                       "accept-language",
                                                       "authorization",
                                                       "proxy-authorization",
                                                       "cookie",
                                                       "user-agent",
                                                       "keep-alive",
                                                       "upgrade",
                                                       "trailer",
                                                       "expect",
                                                       "via",
                                                       "forwarded",
                                                       "date",
                                                       "content-encoding",
                                                       "origin",
                                                       "referer",
                                                       "max-forwards"};
  for (auto n : kExact) {
    if (iequals_ascii(name, n)) return true;
  }
  // Providers' signature headers (request_verifier.h's schemes): they only authenticate this hop.
  constexpr std::array<std::string_view, 4> kSignatures = {
      "stripe-signature", "x-hub-signature", "x-hub-signature-256", "x-shopify-hmac-sha256"};
  for (auto n : kSignatures) {
    if (iequals_ascii(name, n)) return true;
  }
  // svix-*: the Svix names of this hop's signature headers (aliases of webhook-*).
  return istarts_with(name, "x-forwarded-") || istarts_with(name, "proxy-") ||
         istarts_with(name, "x-real-ip") || istarts_with(name, "svix-");
}

Rejection reject(int status, const char* reason, std::string message) {
  return Rejection{.status = status, .reason = reason, .message = std::move(message)};
}

// CloudEvents HTTP binding: %XX escapes in ce-* header values. nullopt for a broken escape.
std::optional<std::string> percent_decode(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out += in[i];
      continue;
    }
    if (i + 2 >= in.size()) return std::nullopt;
    const int hi = hex(in[i + 1]);
    const int lo = hex(in[i + 2]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out += static_cast<char>(hi * 16 + lo);
    i += 2;
  }
  return out;
}

// The kept app headers as a JSON object; repeated names are joined with ", " (RFC 9110 §5.3).
std::string app_headers_json(const std::vector<std::pair<std::string, std::string>>& headers) {
  nlohmann::json obj = nlohmann::json::object();
  for (const auto& [name, value] : headers) {
    if (!is_http_token(name) || is_relay_reserved_header(name) || is_hop_header(name)) continue;
    if (!is_http_field_value(value) || !is_storable_text(value)) continue;
    const std::string key = lower(name);
    auto it = obj.find(key);
    if (it == obj.end()) {
      obj[key] = value;
    } else {
      *it = it->get<std::string>() + ", " + value;
    }
  }
  return obj.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::optional<Rejection> check_id(const std::string& id, const std::string& from) {
  if (id.empty()) return reject(400, "missing_id", fmt::format("{} is empty", from));
  if (id.size() > kMaxEventIdBytes) {
    return reject(
        400, "missing_id",
        fmt::format("{} is {} bytes; at most {} are accepted", from, id.size(), kMaxEventIdBytes));
  }
  if (!is_storable_text(id))
    return reject(400, "malformed", fmt::format("{} is not valid UTF-8", from));
  return std::nullopt;
}

std::optional<Rejection> check_payload(std::string_view payload, std::int64_t max) {
  if (static_cast<std::int64_t>(payload.size()) > max) {
    return reject(
        413, "payload_too_large",
        fmt::format("payload is {} bytes; limits.max_payload_bytes is {}", payload.size(), max));
  }
  return std::nullopt;
}

// The value key_from / topic_from names (`what` is the config key, for messages): nullopt when it
// is absent or null; `body` is the parsed body (discarded when it is not JSON), parsed on first
// use.
using Resolved = std::variant<std::optional<std::string>, Rejection>;
Resolved resolve(const config::FieldFrom& from, const char* what, const http::HttpRequest& request,
                 std::optional<nlohmann::json>& body) {
  if (!from.from_body()) {
    const HeaderLookup header = find_header(request.headers, from.header);
    if (header.count > 1) {
      return reject(400, "malformed",
                    fmt::format("{} reads the {} header, and the request carries {}", what,
                                from.header, header.count));
    }
    if (header.value == nullptr) return std::optional<std::string>();
    return std::optional<std::string>(*header.value);
  }
  if (!body) body = nlohmann::json::parse(request.body, nullptr, /*allow_exceptions=*/false);
  if (body->is_discarded()) {
    return reject(400, "malformed",
                  fmt::format("the body is not JSON, and {} reads {}", what, from.describe()));
  }
  const nlohmann::json* value = nullptr;
  try {
    const nlohmann::json::json_pointer pointer(from.pointer);
    // contains() first: at() on a pointer through a missing member or index throws.
    if (body->contains(pointer)) value = &body->at(pointer);
  } catch (const nlohmann::json::exception&) {
    // An array index that is not a number, "-", or a leading zero: it names nothing here.
    value = nullptr;
  }
  if (value == nullptr || value->is_null()) return std::optional<std::string>();
  if (value->is_string()) return std::optional<std::string>(value->get<std::string>());
  if (value->is_number() || value->is_boolean()) return std::optional<std::string>(value->dump());
  return reject(400, "malformed",
                fmt::format("{} {} is {} in the body; it must be a string, number or boolean", what,
                            from.describe(), value->is_object() ? "an object" : "an array"));
}

DecodedRequest decode_binary(const std::string& source, const http::HttpRequest& request,
                             std::int64_t max_payload_bytes, const EventMapping& mapping) {
  if (auto r = check_payload(request.body, max_payload_bytes)) return *r;
  store::InboxEvent e;
  e.source = source;
  const std::string* id = signature_headers(request).id;
  std::string id_from =
      id != nullptr && id != request.header("webhook-id") ? "svix-id" : "webhook-id";
  if (mapping.id) {
    e.event_id = *mapping.id;
    id_from = mapping.id_from;
  } else if (id != nullptr) {
    e.event_id = *id;
  } else if (const std::string* ce_id = request.header("ce-id")) {
    id_from = "ce-id";
    auto decoded = percent_decode(*ce_id);
    if (!decoded) return reject(400, "malformed", "ce-id has a broken %-escape");
    e.event_id = std::move(*decoded);
  } else {
    return reject(400, "missing_id", "missing event id: send a webhook-id (or ce-id) header");
  }
  if (auto r = check_id(e.event_id, id_from)) return *r;
  for (auto [header, field] : {std::pair{"ce-type", &e.topic}, std::pair{"ce-subject", &e.key}}) {
    const std::string* value = request.header(header);
    if (value == nullptr) continue;
    auto decoded = percent_decode(*value);
    if (!decoded) return reject(400, "malformed", fmt::format("{} has a broken %-escape", header));
    if (!is_storable_text(*decoded))
      return reject(400, "malformed", fmt::format("{} is not valid UTF-8", header));
    *field = std::move(*decoded);
  }
  if (mapping.topic) {
    // A provider's header or body text: PostgreSQL's text takes no NUL and only UTF-8.
    if (!is_storable_text(*mapping.topic))
      return reject(400, "malformed", "the event's topic is not valid UTF-8");
    e.topic = *mapping.topic;
  }
  std::optional<nlohmann::json> body;
  for (auto [from, what, field] : {std::tuple{mapping.topic_from, "topic_from", &e.topic},
                                   std::tuple{mapping.key_from, "key_from", &e.key}}) {
    if (from == nullptr) continue;
    auto resolved = resolve(*from, what, request, body);
    if (auto* r = std::get_if<Rejection>(&resolved)) return *r;
    auto& value = std::get<std::optional<std::string>>(resolved);
    if (!value) continue;  // absent or null: the default stays
    if (!is_storable_text(*value)) {
      return reject(400, "malformed",
                    fmt::format("{} ({}) is not valid UTF-8", what, from->describe()));
    }
    *field = std::move(*value);
  }
  const std::string* content_type = request.header("content-type");
  e.content_type =
      content_type && !content_type->empty() ? *content_type : "application/octet-stream";
  if (!is_storable_text(e.content_type))
    return reject(400, "malformed", "Content-Type is not valid UTF-8");
  e.headers_json = app_headers_json(request.headers);
  e.payload = request.body;
  std::vector<store::InboxEvent> events;
  events.push_back(std::move(e));
  return events;
}

DecodedRequest decode_envelopes(const std::string& source, const http::HttpRequest& request,
                                std::int64_t max_payload_bytes) {
  const std::string* content_type = request.header("content-type");
  auto decoded = delivery::decode_envelope(content_type ? *content_type : "", request.body);
  if (!decoded) return reject(400, "malformed", decoded.error().message);
  std::vector<store::InboxEvent> events;
  events.reserve(decoded->size());
  for (size_t i = 0; i < decoded->size(); ++i) {
    auto& d = (*decoded)[i];
    const std::string where = decoded->size() == 1 ? "event id" : fmt::format("event {} id", i);
    if (auto r = check_id(d.id, where.c_str())) return *r;
    if (auto r = check_payload(d.payload, max_payload_bytes)) return *r;
    if (!is_storable_text(d.topic) || (d.key && !is_storable_text(*d.key)) ||
        !is_storable_text(d.content_type)) {
      return reject(400, "malformed",
                    fmt::format("event {}: type, subject or content type is not valid UTF-8", i));
    }
    store::InboxEvent e;
    e.source = source;
    e.event_id = std::move(d.id);
    e.topic = std::move(d.topic);
    e.key = std::move(d.key);
    e.payload = std::move(d.payload);
    e.content_type = d.content_type.empty() ? "application/octet-stream" : d.content_type;
    e.headers_json = app_headers_json(d.headers);
    e.created_at = d.created_at;
    events.push_back(std::move(e));
  }
  return events;
}

}  // namespace

SignatureHeaders signature_headers(const http::HttpRequest& request) {
  SignatureHeaders h{request.header("webhook-id"), request.header("webhook-timestamp"),
                     request.header("webhook-signature")};
  // Any webhook-* header means the sender speaks the standard's names: never mix in svix-*.
  if (h.id != nullptr || h.timestamp != nullptr || h.signature != nullptr) return h;
  return SignatureHeaders{request.header("svix-id"), request.header("svix-timestamp"),
                          request.header("svix-signature")};
}

bool is_storable_text(std::string_view s) {
  // PostgreSQL's text refuses NUL and what is not well-formed UTF-8 (overlongs, surrogates).
  return s.find('\0') == std::string_view::npos && is_valid_utf8(s);
}

bool is_envelope_content_type(std::string_view content_type) {
  const size_t semi = content_type.find(';');
  std::string_view media = content_type.substr(0, semi);
  while (!media.empty() && (media.back() == ' ' || media.back() == '\t')) media.remove_suffix(1);
  while (!media.empty() && (media.front() == ' ' || media.front() == '\t')) media.remove_prefix(1);
  return iequals_ascii(media, delivery::kCloudEventsJsonContentType) ||
         iequals_ascii(media, delivery::kCloudEventsBatchContentType) ||
         iequals_ascii(media, delivery::kProtobufContentType);
}

DecodedRequest decode_request(const std::string& source, const http::HttpRequest& request,
                              std::int64_t max_payload_bytes, const EventMapping& mapping) {
  const std::string* content_type = request.header("content-type");
  if (!mapping.id && content_type && is_envelope_content_type(*content_type))
    return decode_envelopes(source, request, max_payload_bytes);
  return decode_binary(source, request, max_payload_bytes, mapping);
}

}  // namespace relay::inbox
