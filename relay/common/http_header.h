#pragma once
// HTTP header name/value rules shared by config validation (subscription `headers`) and the
// request builder (the event's app headers).

#include <string_view>

namespace relay {

// RFC 9110 §5.6.2 token: a valid header name.
bool is_http_token(std::string_view name);

// RFC 9110 §5.5 field-value: visible characters, SP, HTAB and obs-text; no CR, LF, NUL or other
// controls (header injection).
bool is_http_field_value(std::string_view value);

// Headers relay sets itself (case-insensitive): Idempotency-Key, Content-Type, Content-Length,
// Host, Transfer-Encoding, Connection, TE and every webhook-*, ce-* and relay-* header. Neither an
// app header nor a subscription header may replace or duplicate them, or a consumer could be made
// to see a forged signature, id or framing.
bool is_relay_reserved_header(std::string_view name);

// ASCII case-insensitive equality (header names).
bool iequals_ascii(std::string_view a, std::string_view b);
// ASCII case-insensitive prefix test (header names).
bool istarts_with(std::string_view s, std::string_view prefix);

}  // namespace relay
