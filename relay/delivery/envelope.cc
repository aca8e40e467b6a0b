#include "relay/delivery/envelope.h"

#include <fmt/format.h>
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/wire_format_lite.h>

#include <algorithm>
#include <cctype>
#include <limits>
#include <nlohmann/json.hpp>

#include "relay/common/base64.h"
#include "relay/common/http_header.h"
#include "relay/common/time_format.h"
#include "relay/v1/event.pb.h"

namespace relay::delivery {
namespace {

using Json = nlohmann::json;

Error invalid(std::string message) {
  return Error{ErrorCode::kInvalidArgument, std::move(message)};
}

Error with_prefix(std::string_view prefix, const Error& error) {
  return Error{error.code, fmt::format("{}: {}", prefix, error.message)};
}

std::string lowercase(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view trim(std::string_view s) {
  const auto is_space = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

// CloudEvents JSON format §3.1: a JSON media type is */json or */*+json (parameters ignored).
bool is_json_media_type(std::string_view content_type) {
  const std::string type = lowercase(trim(content_type.substr(0, content_type.find(';'))));
  const auto slash = type.find('/');
  if (slash == std::string::npos) return false;
  const std::string_view subtype = std::string_view(type).substr(slash + 1);
  return subtype == "json" || (subtype.size() > 5 && subtype.ends_with("+json"));
}

// A JSON string literal. Invalid UTF-8 (impossible for PostgreSQL text) is replaced, not thrown.
std::string json_string(std::string_view s) {
  return Json(std::string(s)).dump(-1, ' ', false, Json::error_handler_t::replace);
}

// The app's headers from outbox.headers, with the same rules as binary mode's HTTP headers (valid
// names and values, never one of relay's own): an envelope must not carry what the HTTP request
// would refuse. Malformed JSON yields none. Sorted by name (nlohmann's object order).
std::vector<std::pair<std::string, std::string>> app_headers(std::string_view headers_json) {
  std::vector<std::pair<std::string, std::string>> out;
  const Json json = Json::parse(headers_json, /*cb=*/nullptr, /*allow_exceptions=*/false);
  if (!json.is_object()) return out;
  for (const auto& [name, value] : json.items()) {
    if (!value.is_string()) continue;
    const auto& text = value.get_ref<const std::string&>();
    if (is_http_token(name) && !is_relay_reserved_header(name) && is_http_field_value(text))
      out.emplace_back(name, text);
  }
  return out;
}

// ---- JSON scanning without building a tree: raw spans (so `data` keeps its exact bytes), batch
// element boundaries (so a batch is counted before it is parsed) and the nesting bound.

std::size_t skip_ws(std::string_view text, std::size_t pos) {
  while (pos < text.size() &&
         (text[pos] == ' ' || text[pos] == '\t' || text[pos] == '\n' || text[pos] == '\r'))
    ++pos;
  return pos;
}

// `pos` is at an opening quote; returns the offset after the closing one.
std::optional<std::size_t> skip_string(std::string_view text, std::size_t pos) {
  for (++pos; pos < text.size(); ++pos) {
    if (text[pos] == '\\') {
      ++pos;
    } else if (text[pos] == '"') {
      return pos + 1;
    }
  }
  return std::nullopt;
}

// The end of the JSON value that starts at `pos` (after whitespace). Iterative, so hostile
// nesting cannot exhaust the stack. Checks bracket balance and the depth bound only; callers
// still parse the span with nlohmann, which checks everything else.
Result<std::size_t> skip_value(std::string_view text, std::size_t pos) {
  std::size_t depth = 0;
  do {
    pos = skip_ws(text, pos);
    if (pos >= text.size()) return invalid("body is not JSON: unexpected end of input");
    const char c = text[pos];
    if (c == '"') {
      const auto end = skip_string(text, pos);
      if (!end) return invalid("body is not JSON: unterminated string");
      pos = *end;
    } else if (c == '{' || c == '[') {
      if (++depth > kMaxJsonDepth)
        return invalid(fmt::format("JSON is nested deeper than {} levels", kMaxJsonDepth));
      ++pos;
    } else if (c == '}' || c == ']') {
      if (depth == 0) return invalid(fmt::format("body is not JSON: unexpected '{}'", c));
      --depth;
      ++pos;
    } else if (c == ',' || c == ':') {
      if (depth == 0) return invalid(fmt::format("body is not JSON: unexpected '{}'", c));
      ++pos;
    } else {
      const std::size_t start = pos;
      while (pos < text.size() &&
             std::string_view(" \t\r\n,:[]{}\"").find(text[pos]) == std::string_view::npos)
        ++pos;
      if (pos == start) return invalid("body is not JSON");
    }
  } while (depth > 0);
  return pos;
}

// The raw text of member `name` of the top-level object in `doc`, which nlohmann has already
// accepted as a JSON object. The last occurrence wins, as in nlohmann's parse.
std::optional<std::string_view> member_span(std::string_view doc, std::string_view name) {
  std::optional<std::string_view> found;
  std::size_t pos = skip_ws(doc, 0) + 1;  // past '{'
  while (true) {
    pos = skip_ws(doc, pos);
    if (pos >= doc.size() || doc[pos] == '}') return found;
    const auto key_end = skip_string(doc, pos);
    if (!key_end) return found;
    const std::string_view raw_key = doc.substr(pos + 1, *key_end - pos - 2);
    // Escaped keys ("d\u0061ta") are rare; decode them with nlohmann rather than by hand.
    const bool matches =
        raw_key.find('\\') == std::string_view::npos
            ? raw_key == name
            : Json::parse(doc.substr(pos, *key_end - pos), nullptr, false) == Json(name);
    pos = skip_ws(doc, *key_end) + 1;  // past ':'
    const std::size_t value_begin = skip_ws(doc, pos);
    const auto value_end = skip_value(doc, value_begin);
    if (!value_end) return found;
    if (matches) found = doc.substr(value_begin, *value_end - value_begin);
    pos = skip_ws(doc, *value_end);
    if (pos < doc.size() && doc[pos] == ',') ++pos;
  }
}

Result<Json> parse_json(std::string_view text) {
  try {
    return Json::parse(text);
  } catch (const Json::parse_error& e) {
    // e.what() quotes the input; the byte offset locates the problem without leaking it.
    return invalid(fmt::format("body is not JSON (syntax error at byte {})", e.byte));
  } catch (const Json::exception& e) {
    return invalid(fmt::format("body is not JSON ({})", e.id));
  }
}

// Attribute `name` as a string: nullopt when absent; an error when present but not a string.
Result<std::optional<std::string>> optional_string(const Json& doc, const char* name) {
  const auto it = doc.find(name);
  if (it == doc.end() || it->is_null()) return std::optional<std::string>{};
  if (!it->is_string()) return invalid(fmt::format("attribute \"{}\" is not a string", name));
  return std::optional<std::string>{it->get<std::string>()};
}

Result<std::string> required_string(const Json& doc, const char* name) {
  auto value = optional_string(doc, name);
  if (!value) return value.error();
  if (!value->has_value()) return invalid(fmt::format("missing required attribute \"{}\"", name));
  if ((*value)->empty()) return invalid(fmt::format("attribute \"{}\" is empty", name));
  return std::move(**value);
}

Result<std::vector<std::pair<std::string, std::string>>> headers_from_json_text(
    std::string_view text) {
  const Json json = Json::parse(text, nullptr, false);
  if (!json.is_object()) return invalid("attribute \"relayheaders\" is not a JSON object");
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& [name, value] : json.items()) {
    if (!value.is_string())
      return invalid(fmt::format("relayheaders: header \"{}\" is not a string", name));
    out.emplace_back(name, value.get<std::string>());
  }
  return out;
}

Result<DecodedEvent> decode_cloudevents_document(std::string_view body) {
  // nlohmann skips a UTF-8 byte order mark; so must the span scanners below.
  if (body.starts_with("\xEF\xBB\xBF")) body.remove_prefix(3);
  const auto end = skip_value(body, 0);  // the depth bound, before nlohmann builds a tree
  if (!end) return end.error();
  auto parsed = parse_json(body);
  if (!parsed) return parsed.error();
  const Json& doc = *parsed;
  if (!doc.is_object()) return invalid("body is not a JSON object");

  const auto specversion = optional_string(doc, "specversion");
  if (!specversion) return specversion.error();
  if (!specversion->has_value()) return invalid("missing required attribute \"specversion\"");
  if (**specversion != "1.0") return invalid("specversion is not \"1.0\"");

  DecodedEvent event;
  auto id = required_string(doc, "id");
  if (!id) return id.error();
  event.id = std::move(*id);
  auto source = required_string(doc, "source");
  if (!source) return source.error();
  event.source = std::move(*source);
  auto type = required_string(doc, "type");
  if (!type) return type.error();
  event.topic = std::move(*type);

  auto subject = optional_string(doc, "subject");
  if (!subject) return subject.error();
  event.key = std::move(*subject);

  auto time = optional_string(doc, "time");
  if (!time) return time.error();
  if (time->has_value()) {
    event.created_at = parse_rfc3339(**time);  // RFC 3339 §5.6 only
    if (!event.created_at) return invalid("attribute \"time\" is not an RFC 3339 timestamp");
  }

  auto content_type = optional_string(doc, "datacontenttype");
  if (!content_type) return content_type.error();
  event.content_type = content_type->value_or("application/json");

  if (const auto it = doc.find("relayattempt"); it != doc.end()) {
    if (!it->is_number_integer() || *it < 0 || *it > std::numeric_limits<int>::max())
      return invalid("attribute \"relayattempt\" is not a non-negative integer");
    event.attempt = it->get<int>();
  }
  auto headers = optional_string(doc, "relayheaders");
  if (!headers) return headers.error();
  if (headers->has_value()) {
    auto parsed_headers = headers_from_json_text(**headers);
    if (!parsed_headers) return parsed_headers.error();
    event.headers = std::move(*parsed_headers);
  }

  const bool has_data = doc.contains("data");
  const bool has_base64 = doc.contains("data_base64");
  if (has_data && has_base64) return invalid("both \"data\" and \"data_base64\" are present");
  if (has_base64) {
    const auto& value = *doc.find("data_base64");
    if (!value.is_string()) return invalid("attribute \"data_base64\" is not a string");
    auto bytes = base64_decode(value.get_ref<const std::string&>());
    if (!bytes) return invalid("data_base64 is not valid base64");
    event.payload = std::move(*bytes);
  } else if (has_data) {
    const auto& value = *doc.find("data");
    if (value.is_string() && !is_json_media_type(event.content_type)) {
      event.payload = value.get<std::string>();  // text data of a non-JSON type
    } else {
      const auto raw = member_span(body, "data");
      if (!raw) return Error{ErrorCode::kInternal, "data: lost track of the member"};
      event.payload = std::string(*raw);  // JSON data, byte for byte as sent
    }
  }
  return event;
}

// Protobuf ---------------------------------------------------------------------------------------

void fill_protobuf(const Event& event, int attempt, relay::v1::Event& msg) {
  msg.set_id(event.event_id);
  msg.set_topic(event.topic);
  if (event.key) msg.set_key(*event.key);
  msg.set_payload(event.payload);
  msg.set_content_type(event.content_type);
  for (auto& [name, value] : app_headers(event.headers_json))
    (*msg.mutable_headers())[name] = std::move(value);
  const auto since_epoch = event.created_at.time_since_epoch();
  const auto seconds = std::chrono::floor<std::chrono::seconds>(since_epoch);
  msg.mutable_created_at()->set_seconds(seconds.count());
  msg.mutable_created_at()->set_nanos(static_cast<std::int32_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(since_epoch - seconds).count()));
  msg.set_attempt(attempt);
}

// Deterministic so that the same event always yields the same bytes (map order is otherwise
// unspecified); the signature covers these exact bytes either way.
std::string serialize(const google::protobuf::MessageLite& msg) {
  std::string out;
  {
    google::protobuf::io::StringOutputStream stream(&out);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    msg.SerializeToCodedStream(&coded);
  }
  return out;
}

Result<DecodedEvent> from_protobuf(const relay::v1::Event& msg) {
  if (msg.id().empty()) return invalid("missing id");
  if (msg.topic().empty()) return invalid("missing topic");
  if (msg.attempt() < 0) return invalid("attempt is negative");
  DecodedEvent event;
  event.id = msg.id();
  event.topic = msg.topic();
  if (msg.has_key()) event.key = msg.key();
  event.payload = msg.payload();
  event.content_type = msg.content_type();
  event.headers.assign(msg.headers().begin(), msg.headers().end());
  std::sort(event.headers.begin(), event.headers.end());
  if (msg.has_created_at()) {
    const auto& ts = msg.created_at();
    if (ts.nanos() < 0 || ts.nanos() > 999'999'999) return invalid("created_at.nanos out of range");
    event.created_at = wall_time_from_unix(ts.seconds(), ts.nanos());
    if (!event.created_at) return invalid("created_at is out of range");
  }
  event.attempt = msg.attempt();
  return event;
}

Status check_body_size(std::string_view body) {
  if (body.size() > kMaxEnvelopeBytes)
    return invalid(
        fmt::format("body is {} bytes, more than the limit of {}", body.size(), kMaxEnvelopeBytes));
  return {};
}

// Counts EventBatch.events (field 1) without parsing them, so a hostile batch of millions of tiny
// events is refused before it is materialized. Errors on malformed wire data.
Result<std::size_t> count_batch_events(std::string_view body) {
  using google::protobuf::internal::WireFormatLite;
  google::protobuf::io::CodedInputStream input(reinterpret_cast<const std::uint8_t*>(body.data()),
                                               static_cast<int>(body.size()));
  std::size_t count = 0;
  while (const std::uint32_t tag = input.ReadTag()) {
    if (WireFormatLite::GetTagFieldNumber(tag) == 1) {
      if (++count > kMaxEnvelopeEvents)
        return invalid(fmt::format("batch has more than {} events", kMaxEnvelopeEvents));
    }
    if (!WireFormatLite::SkipField(&input, tag))
      return invalid("body is not a valid relay.v1.EventBatch (malformed protobuf)");
  }
  if (!input.ConsumedEntireMessage() || input.CurrentPosition() != static_cast<int>(body.size()))
    return invalid("body is not a valid relay.v1.EventBatch (malformed protobuf)");
  return count;
}

}  // namespace

// ---- Encoders -----------------------------------------------------------------------------------

std::string encode_cloudevents_json(const Event& event, int attempt,
                                    std::string_view subscription) {
  const std::string content_type =
      event.content_type.empty() ? "application/octet-stream" : event.content_type;
  std::string out = R"({"specversion":"1.0","id":)";
  out += json_string(event.event_id);
  out += R"(,"source":)";
  out += json_string(fmt::format("relay/{}", subscription));
  out += R"(,"type":)";
  out += json_string(event.topic);
  out += R"(,"time":")";
  // Microseconds: PostgreSQL's precision, so created_at round-trips exactly.
  out += format_rfc3339(event.created_at, 6);
  out += '"';
  if (event.key) {
    out += R"(,"subject":)";
    out += json_string(*event.key);
  }
  out += R"(,"datacontenttype":)";
  out += json_string(content_type);
  out += fmt::format(R"(,"relayattempt":{})", attempt);
  if (const auto headers = app_headers(event.headers_json); !headers.empty()) {
    Json object = Json::object();
    for (const auto& [name, value] : headers) object[name] = value;
    out += R"(,"relayheaders":)";
    out += json_string(object.dump());
  }
  if (!event.payload.empty()) {
    const std::string_view payload = trim(event.payload);
    // accept() is iterative, validates UTF-8 and builds no tree; inline data keeps its bytes.
    if (is_json_media_type(content_type) && Json::accept(payload)) {
      out += R"(,"data":)";
      out += payload;
    } else {
      out += R"(,"data_base64":")";
      out += base64_encode(event.payload);
      out += '"';
    }
  }
  out += '}';
  return out;
}

std::string encode_cloudevents_batch(std::span<const BatchItem> items,
                                     std::string_view subscription) {
  std::string out = "[";
  for (const BatchItem& item : items) {
    if (out.size() > 1) out += ',';
    out += encode_cloudevents_json(*item.event, item.attempt, subscription);
  }
  out += ']';
  return out;
}

std::string encode_protobuf_event(const Event& event, int attempt) {
  relay::v1::Event msg;
  fill_protobuf(event, attempt, msg);
  return serialize(msg);
}

std::string encode_protobuf_batch(std::span<const BatchItem> items) {
  relay::v1::EventBatch batch;
  for (const BatchItem& item : items) fill_protobuf(*item.event, item.attempt, *batch.add_events());
  return serialize(batch);
}

// ---- Decoders -----------------------------------------------------------------------------------

Result<DecodedEvent> decode_cloudevents_json(std::string_view body) {
  if (auto size = check_body_size(body); !size) return size.error();
  return decode_cloudevents_document(body);
}

Result<std::vector<DecodedEvent>> decode_cloudevents_batch(std::string_view body) {
  if (auto size = check_body_size(body); !size) return size.error();
  // Walk the array element by element: each is bounded-checked and decoded on its own, and the
  // count is enforced before the next element is touched.
  std::size_t pos = skip_ws(body, 0);
  if (pos >= body.size() || body[pos] != '[') return invalid("body is not a JSON array");
  pos = skip_ws(body, pos + 1);
  std::vector<DecodedEvent> events;
  if (pos < body.size() && body[pos] == ']') {
    ++pos;
  } else {
    while (true) {
      if (events.size() == kMaxEnvelopeEvents)
        return invalid(fmt::format("batch has more than {} events", kMaxEnvelopeEvents));
      const std::size_t begin = skip_ws(body, pos);
      const auto end = skip_value(body, begin);
      const std::string where = fmt::format("event {}", events.size());
      if (!end) return with_prefix(where, end.error());
      auto event = decode_cloudevents_document(body.substr(begin, *end - begin));
      if (!event) return with_prefix(where, event.error());
      events.push_back(std::move(*event));
      pos = skip_ws(body, *end);
      if (pos < body.size() && body[pos] == ',') {
        ++pos;
        continue;
      }
      if (pos < body.size() && body[pos] == ']') {
        ++pos;
        break;
      }
      return invalid(fmt::format("body is not a JSON array: expected ',' or ']' at byte {}", pos));
    }
  }
  if (pos = skip_ws(body, pos); pos != body.size())
    return invalid(fmt::format("unexpected data after the JSON array at byte {}", pos));
  if (events.empty()) return invalid("batch is empty");
  return events;
}

Result<DecodedEvent> decode_protobuf_event(std::string_view body) {
  if (auto size = check_body_size(body); !size) return size.error();
  relay::v1::Event msg;
  if (!msg.ParseFromArray(body.data(), static_cast<int>(body.size())))
    return invalid("body is not a valid relay.v1.Event (malformed protobuf)");
  return from_protobuf(msg);
}

Result<std::vector<DecodedEvent>> decode_protobuf_batch(std::string_view body) {
  if (auto size = check_body_size(body); !size) return size.error();
  const auto count = count_batch_events(body);
  if (!count) return count.error();
  if (*count == 0) return invalid("batch is empty");
  relay::v1::EventBatch batch;
  if (!batch.ParseFromArray(body.data(), static_cast<int>(body.size())))
    return invalid("body is not a valid relay.v1.EventBatch (malformed protobuf)");
  std::vector<DecodedEvent> events;
  events.reserve(static_cast<std::size_t>(batch.events_size()));
  for (int i = 0; i < batch.events_size(); ++i) {
    auto event = from_protobuf(batch.events(i));
    if (!event) return with_prefix(fmt::format("event {}", i), event.error());
    events.push_back(std::move(*event));
  }
  return events;
}

Result<std::vector<DecodedEvent>> decode_envelope(std::string_view content_type,
                                                  std::string_view body) {
  const auto semicolon = content_type.find(';');
  const std::string media_type = lowercase(trim(content_type.substr(0, semicolon)));
  const auto single = [](Result<DecodedEvent> event) -> Result<std::vector<DecodedEvent>> {
    if (!event) return event.error();
    std::vector<DecodedEvent> events;
    events.push_back(std::move(*event));
    return events;
  };
  if (media_type == kCloudEventsJsonContentType) return single(decode_cloudevents_json(body));
  if (media_type == kCloudEventsBatchContentType) return decode_cloudevents_batch(body);
  if (media_type == kProtobufContentType) {
    // Parameters: ;-separated name=value, value optionally quoted; the name is case-insensitive.
    std::string_view params =
        semicolon == std::string_view::npos ? std::string_view{} : content_type.substr(semicolon);
    std::string message_type;
    while (!params.empty()) {
      params.remove_prefix(1);  // ';'
      const auto next = params.find(';');
      const std::string_view param = trim(params.substr(0, next));
      params = next == std::string_view::npos ? std::string_view{} : params.substr(next);
      const auto eq = param.find('=');
      if (eq == std::string_view::npos || lowercase(trim(param.substr(0, eq))) != "messagetype")
        continue;
      std::string_view value = trim(param.substr(eq + 1));
      if (value.size() >= 2 && value.front() == '"' && value.back() == '"')
        value = value.substr(1, value.size() - 2);
      message_type = std::string(value);
    }
    if (message_type.empty() || message_type == "relay.v1.Event")
      return single(decode_protobuf_event(body));
    if (message_type == "relay.v1.EventBatch") return decode_protobuf_batch(body);
    return invalid("unsupported protobuf messageType (expected relay.v1.Event or EventBatch)");
  }
  return invalid(
      "unsupported content type (expected application/cloudevents+json, "
      "application/cloudevents-batch+json or application/x-protobuf)");
}

}  // namespace relay::delivery
