#include "relay/http/request_parser.h"

#include <fmt/format.h>

#include <algorithm>
#include <utility>

#include "relay/common/http_header.h"

namespace relay::http {
namespace {

// A Content-Length with more digits cannot be a size we accept (and would overflow int64).
constexpr std::size_t kMaxContentLengthDigits = 18;

// RFC 9110 OWS.
std::string_view trim_ows(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool all_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// A comma-separated header value (Connection) contains `token`, case-insensitively.
bool has_list_token(std::string_view list, std::string_view token) {
  while (!list.empty()) {
    const std::size_t comma = list.find(',');
    if (iequals_ascii(trim_ows(list.substr(0, comma)), token)) return true;
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return false;
}

std::optional<ParseError> parse_request_line(std::string_view line, HttpRequest& request) {
  const std::size_t sp1 = line.find(' ');
  const std::size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos) {
    return ParseError{400, "malformed request line: expected \"METHOD SP target SP HTTP/x.y\""};
  }
  const std::string_view method = line.substr(0, sp1);
  const std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  const std::string_view version = line.substr(sp2 + 1);
  if (!is_http_token(method)) return ParseError{400, "malformed request method"};
  const bool target_chars_ok =
      !target.empty() &&
      std::all_of(target.begin(), target.end(), [](char c) { return c > 0x20 && c < 0x7f; });
  if (!target_chars_ok) return ParseError{400, "malformed request target"};
  if (target.front() != '/' && !(target == "*" && method == "OPTIONS")) {
    return ParseError{400, "request target must be a path (origin-form, starting with '/')"};
  }
  const bool version_syntax_ok = version.size() == 8 && version.substr(0, 5) == "HTTP/" &&
                                 version[5] >= '0' && version[5] <= '9' && version[6] == '.' &&
                                 version[7] >= '0' && version[7] <= '9';
  if (!version_syntax_ok) return ParseError{400, "malformed HTTP version"};
  if (version != "HTTP/1.1" && version != "HTTP/1.0") {
    return ParseError{505, fmt::format("HTTP version {} is not supported; use HTTP/1.1", version)};
  }
  request.method = std::string(method);
  request.target = std::string(target);
  request.version = std::string(version);
  return std::nullopt;
}

}  // namespace

ParseResult parse_request(std::string_view buffered, const RequestLimits& limits) {
  RequestParser parser(limits);
  return parser.parse(buffered);
}

void RequestParser::reset() {
  pos_ = 0;
  line_start_ = 0;
  request_start_ = 0;
  lines_ = 0;
  head_.reset();
}

ParseResult RequestParser::parse(std::string_view in) {
  if (!head_) {
    // Scan for the empty line that ends the head, from where the previous call stopped.
    const auto too_large = [&] {
      reset();
      return ParseError{
          431, fmt::format("request head exceeds max_header_bytes ({})", limits_.max_header_bytes)};
    };
    while (true) {
      const std::size_t lf = in.find('\n', pos_);
      if (lf == std::string_view::npos) {
        pos_ = in.size();
        // The line's LF is at in.size() or later, so the head is certainly over the bound (the
        // check below) once in.size() + 1 > max_header_bytes + 2. Deciding no earlier keeps the
        // answer independent of how the bytes were split into reads.
        if (static_cast<std::int64_t>(in.size()) > limits_.max_header_bytes + 1) {
          return too_large();
        }
        return NeedMore{.only_empty_lines = lines_ == 0 && request_start_ == in.size()};
      }
      if (static_cast<std::int64_t>(lf + 1) > limits_.max_header_bytes + 2) return too_large();
      if (lf == line_start_ || in[lf - 1] != '\r') {
        reset();
        return ParseError{400, "line not terminated by CRLF (bare LF)"};
      }
      const bool empty_line = lf - 1 == line_start_;
      pos_ = lf + 1;
      line_start_ = lf + 1;
      if (empty_line) {
        if (lines_ == 0) {
          request_start_ = pos_;  // an empty line before the request line is ignored
          continue;
        }
        break;
      }
      ++lines_;
      if (lines_ - 1 > limits_.max_headers) {
        const int max_headers = limits_.max_headers;
        reset();
        return ParseError{431, fmt::format("more than max_headers ({}) header lines", max_headers)};
      }
    }
    // Without the final CRLF: every line in it ends in CRLF.
    auto parsed = parse_head(in.substr(request_start_, pos_ - 2 - request_start_));
    if (auto* error = std::get_if<ParseError>(&parsed)) {
      reset();
      return std::move(*error);
    }
    head_ = std::move(std::get<Head>(parsed));
  }
  const std::size_t body_start = pos_;
  const auto need = static_cast<std::size_t>(head_->content_length);
  if (in.size() - body_start < need) {
    return NeedMore{.head_complete = true, .expect_continue = head_->expect_continue};
  }
  Complete done{.request = std::move(head_->request),
                .keep_alive = head_->keep_alive,
                .keep_alive_header = head_->keep_alive_header,
                .consumed = body_start + need};
  done.request.body = std::string(in.substr(body_start, need));
  reset();
  return done;
}

// Parses `head` (lines ending in CRLF, without the final empty line) and applies the framing rules.
std::variant<RequestParser::Head, ParseError> RequestParser::parse_head(
    std::string_view head) const {
  Head parsed;
  HttpRequest& request = parsed.request;
  const std::size_t first_eol = head.find("\r\n");
  if (auto err = parse_request_line(head.substr(0, first_eol), request)) return std::move(*err);
  head.remove_prefix(first_eol + 2);

  std::optional<std::int64_t> content_length;
  bool transfer_encoding = false;
  int host_count = 0;
  bool connection_close = false;
  bool connection_keep_alive = false;
  while (!head.empty()) {
    const std::size_t eol = head.find("\r\n");
    const std::string_view line = head.substr(0, eol);
    head.remove_prefix(eol + 2);
    if (line.front() == ' ' || line.front() == '\t') {
      return ParseError{400, "obsolete header line folding is not allowed"};
    }
    const std::size_t colon = line.find(':');
    const std::string_view name = line.substr(0, colon);
    if (colon == std::string_view::npos || !is_http_token(name)) {
      return ParseError{
          400, fmt::format("malformed header line (header #{})", request.headers.size() + 1)};
    }
    const std::string_view value = trim_ows(line.substr(colon + 1));
    if (!is_http_field_value(value)) {
      return ParseError{400, fmt::format("invalid characters in header {}", name)};
    }
    request.headers.emplace_back(std::string(name), std::string(value));
    if (iequals_ascii(name, "content-length")) {
      if (!all_digits(value) || value.size() > kMaxContentLengthDigits) {
        return ParseError{400, "Content-Length must be one decimal number"};
      }
      const std::int64_t n = std::stoll(std::string(value));
      if (content_length && *content_length != n) {
        return ParseError{400, "conflicting Content-Length headers"};
      }
      content_length = n;
    } else if (iequals_ascii(name, "transfer-encoding")) {
      transfer_encoding = true;
    } else if (iequals_ascii(name, "host")) {
      ++host_count;
    } else if (iequals_ascii(name, "connection")) {
      connection_close = connection_close || has_list_token(value, "close");
      connection_keep_alive = connection_keep_alive || has_list_token(value, "keep-alive");
    } else if (iequals_ascii(name, "expect")) {
      parsed.expect_continue = iequals_ascii(value, "100-continue");
      if (!parsed.expect_continue) {
        return ParseError{417, "only \"Expect: 100-continue\" is supported"};
      }
    }
  }
  const bool http11 = request.version == "HTTP/1.1";
  if (host_count > 1 || (http11 && host_count == 0)) {
    return ParseError{400, "an HTTP/1.1 request needs exactly one Host header"};
  }
  if (transfer_encoding) {
    return ParseError{411, "Transfer-Encoding is not supported; send the body with Content-Length"};
  }
  parsed.content_length = content_length.value_or(0);
  if (parsed.content_length > limits_.max_body_bytes) {
    return ParseError{413, fmt::format("Content-Length {} exceeds the limit of {} bytes",
                                       parsed.content_length, limits_.max_body_bytes)};
  }
  // RFC 9110 §10.1.1: a server ignores 100-continue from an HTTP/1.0 client.
  parsed.expect_continue = parsed.expect_continue && http11;
  parsed.keep_alive = http11 ? !connection_close : (connection_keep_alive && !connection_close);
  parsed.keep_alive_header = !http11 && parsed.keep_alive;
  return parsed;
}

}  // namespace relay::http
