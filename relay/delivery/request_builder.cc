#include "relay/delivery/request_builder.h"

#include <fmt/format.h>

#include <array>
#include <cctype>
#include <nlohmann/json.hpp>
#include <string_view>

namespace relay::delivery {
namespace {

// CloudEvents HTTP binding §3.1.3.2: space, '"', '%' and every byte outside printable ASCII
// (U+0021..U+007E) are percent-encoded; UTF-8 is encoded byte by byte. This also makes CR/LF in
// an app-controlled key or topic harmless.
std::string percent_encode(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (unsigned char c : value) {
    if (c <= 0x20 || c >= 0x7f || c == '"' || c == '%') {
      out += fmt::format("%{:02X}", c);
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

// RFC 3339 UTC with milliseconds: "2024-01-02T03:04:05.678Z". floor, not duration_cast, so
// instants before 1970 still format as the correct (earlier) second.
std::string rfc3339_millis(std::chrono::system_clock::time_point tp) {
  using namespace std::chrono;
  const auto day = floor<days>(tp);
  const year_month_day ymd{day};
  const hh_mm_ss hms{floor<milliseconds>(tp - day)};
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", static_cast<int>(ymd.year()),
                     static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                     hms.hours().count(), hms.minutes().count(), hms.seconds().count(),
                     hms.subseconds().count());
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i])))
      return false;
  }
  return true;
}

bool istarts_with(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && iequals(s.substr(0, prefix.size()), prefix);
}

// Headers relay owns: an app header may not replace or duplicate them, or a consumer could be
// made to see a forged signature, id or framing.
bool is_reserved(std::string_view name) {
  constexpr std::array<std::string_view, 7> kExact = {"idempotency-key",
                                                      "content-type",
                                                      "content-length",
                                                      "host",
                                                      "transfer-encoding",
                                                      "connection",
                                                      "te"};
  constexpr std::array<std::string_view, 3> kPrefixes = {"webhook-", "ce-", "relay-"};
  for (auto n : kExact) {
    if (iequals(name, n)) return true;
  }
  for (auto p : kPrefixes) {
    if (istarts_with(name, p)) return true;
  }
  return false;
}

// RFC 9110 §5.6.2 token.
bool is_token(std::string_view name) {
  if (name.empty()) return false;
  for (unsigned char c : name) {
    if (std::isalnum(c)) continue;
    if (std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos)
      continue;
    return false;
  }
  return true;
}

// RFC 9110 §5.5 field-value: visible characters, SP, HTAB and obs-text; no CR, LF, NUL or other
// controls (header injection).
bool is_field_value(std::string_view value) {
  for (unsigned char c : value) {
    if ((c < 0x20 && c != '\t') || c == 0x7f) return false;
  }
  return true;
}

// The app's extra headers from outbox.headers (a JSON object of strings). Anything malformed is
// skipped, never fatal: one bad row must not stop delivery of the event.
void append_app_headers(std::string_view headers_json,
                        std::vector<std::pair<std::string, std::string>>& headers) {
  try {
    const auto json =
        nlohmann::json::parse(headers_json, /*cb=*/nullptr, /*allow_exceptions=*/false);
    if (!json.is_object()) return;  // also covers a parse failure (json is then "discarded")
    for (const auto& [name, value] : json.items()) {
      if (!value.is_string()) continue;
      const auto& text = value.get_ref<const std::string&>();
      if (!is_token(name) || is_reserved(name) || !is_field_value(text)) continue;
      headers.emplace_back(name, text);
    }
  } catch (const nlohmann::json::exception&) {
    // Not expected with allow_exceptions=false; the library-edge rule says we catch anyway.
  }
}

}  // namespace

OutgoingRequest build_request(const Event& event, const std::string& subscription, int attempt,
                              std::chrono::system_clock::time_point now,
                              const std::optional<Signer>& signer) {
  const long long timestamp =
      std::chrono::floor<std::chrono::seconds>(now.time_since_epoch()).count();
  OutgoingRequest req;
  // content_type comes from the outbox row; a value that could split the header block is replaced.
  req.content_type = is_field_value(event.content_type) && !event.content_type.empty()
                         ? event.content_type
                         : "application/octet-stream";
  req.body = event.payload;
  auto& h = req.headers;
  h.emplace_back("Idempotency-Key", event.event_id);
  h.emplace_back("webhook-id", event.event_id);
  h.emplace_back("webhook-timestamp", std::to_string(timestamp));
  if (signer)
    h.emplace_back("webhook-signature", signer->sign(event.event_id, timestamp, event.payload));
  h.emplace_back("ce-specversion", "1.0");
  h.emplace_back("ce-id", percent_encode(event.event_id));
  h.emplace_back("ce-type", percent_encode(event.topic));
  h.emplace_back("ce-source", percent_encode("relay/" + subscription));
  h.emplace_back("ce-time", rfc3339_millis(event.created_at));
  if (event.key) h.emplace_back("ce-subject", percent_encode(*event.key));
  h.emplace_back("relay-attempt", std::to_string(attempt));
  h.emplace_back("relay-subscription", subscription);
  append_app_headers(event.headers_json, h);
  return req;
}

}  // namespace relay::delivery
