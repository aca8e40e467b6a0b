#pragma once
// The HTTP/1.1 request parser: a pure function over the bytes a connection has buffered. No I/O,
// no clock, no globals; thread-safe. It holds every bound and rejection of the server (what a
// client sees, with http_server.h's time and connection rules):
//  - Head over max_header_bytes or more than max_headers header lines -> 431.
//  - Content-Length over max_body_bytes -> 413, decided from the head alone (before the body).
//  - Malformed request line / header / Content-Length, conflicting Content-Lengths, obs-fold, bare
//    CR or LF, missing or repeated Host on HTTP/1.1 -> 400. A version other than HTTP/1.0 or
//    HTTP/1.1 -> 505.
//  - Transfer-Encoding (chunked or any other) -> 411 Length Required: the inbox's senders (Standard
//    Webhooks) always send Content-Length, and one framing rule is one less to get wrong.
//  - Expect other than 100-continue -> 417.
//  - Empty lines before a request line are ignored (RFC 9112 §2.2).
// A request that fits is complete once Content-Length body bytes follow its head; what follows is
// the next (pipelined) request.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "relay/http/message.h"

namespace relay::http {

struct RequestLimits {
  static constexpr std::int64_t kDefaultMaxHeaderBytes = 16'384;
  static constexpr int kDefaultMaxHeaders = 64;
  static constexpr std::int64_t kDefaultMaxBodyBytes = 1'048'576;

  // Request line + header lines, each with its CRLF (not the final empty line), counted from the
  // first buffered byte: leading empty lines count too.
  std::int64_t max_header_bytes = kDefaultMaxHeaderBytes;
  int max_headers = kDefaultMaxHeaders;                // header lines per request
  std::int64_t max_body_bytes = kDefaultMaxBodyBytes;  // Content-Length limit
};

// Not a complete request yet.
struct NeedMore {
  // Everything buffered is empty lines (or nothing): no request has started, so the caller may drop
  // the bytes and treat the connection as idle.
  bool only_empty_lines = false;
  // The head is complete and accepted; body bytes are still missing.
  bool head_complete = false;
  // head_complete, and an HTTP/1.1 client sent "Expect: 100-continue": it may wait for
  // "100 Continue" before it sends the body.
  bool expect_continue = false;
};

// One request, framed.
struct Complete {
  HttpRequest request;  // method, target, version, headers and body; peer and stop unset
  // The connection stays open after the response: HTTP/1.1 unless "Connection: close"; HTTP/1.0
  // only with "Connection: keep-alive" (and not close).
  bool keep_alive = false;
  // HTTP/1.0 kept alive: the response says "Connection: keep-alive".
  bool keep_alive_header = false;
  // Bytes of `buffered` the request took (leading empty lines, head and body). <= buffered.size().
  std::size_t consumed = 0;
};

// The request cannot be served: the server answers `status` with `reason` and closes.
struct ParseError {
  int status = 400;    // 400, 411, 413, 417, 431 or 505
  std::string reason;  // one line for the client, e.g. "malformed request method"
};

using ParseResult = std::variant<NeedMore, Complete, ParseError>;

// Parses the request at the start of `buffered`. Once the result is Complete or ParseError,
// appending bytes to `buffered` does not change it (a request is decided by a prefix).
ParseResult parse_request(std::string_view buffered, const RequestLimits& limits);

// parse_request() for bytes that arrive in pieces: it resumes where the previous call stopped
// (and keeps the parsed head while the body arrives), so a client trickling bytes costs O(bytes),
// not O(bytes^2). parse(b) returns exactly what parse_request(b, limits) returns.
// Not thread-safe; one per connection.
class RequestParser {
 public:
  explicit RequestParser(const RequestLimits& limits) : limits_(limits) {}

  // REQUIRES: since the last reset() (or construction), every call's `buffered` starts with the
  // previous call's `buffered` (the buffer only grew). After Complete or ParseError the parser is
  // reset, ready for the bytes after `consumed`.
  ParseResult parse(std::string_view buffered);
  // Forgets the buffered request: the next parse() starts from scratch.
  void reset();

 private:
  struct Head {
    HttpRequest request;  // without body
    std::int64_t content_length = 0;
    bool keep_alive = false;
    bool keep_alive_header = false;
    bool expect_continue = false;
  };

  std::variant<Head, ParseError> parse_head(std::string_view head) const;

  const RequestLimits limits_;
  // Scan for the end of the head.
  std::size_t pos_ = 0;            // next byte to scan
  std::size_t line_start_ = 0;     // start of the line being scanned
  std::size_t request_start_ = 0;  // after leading empty lines
  int lines_ = 0;                  // complete non-empty lines: request line + header lines
  // Set once the head is parsed, while the body arrives; the body starts at pos_.
  std::optional<Head> head_;
};

}  // namespace relay::http
