#pragma once
// The request a handler sees and the response it returns: the vocabulary shared by the request
// parser, the server and the handlers (the inbox, the ops endpoints). Plain values.

#include <stop_token>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace relay::http {

using HttpHeaders = std::vector<std::pair<std::string, std::string>>;

struct HttpRequest {
  std::string method;   // as sent, e.g. "POST" (case-sensitive per RFC 9110)
  std::string target;   // origin-form as sent: path plus "?query"
  std::string version;  // "HTTP/1.1" or "HTTP/1.0"
  HttpHeaders headers;  // in arrival order; names as sent, values trimmed of SP/HTAB
  std::string body;     // exactly Content-Length bytes (empty without one)
  std::string peer;     // client address "1.2.3.4:5678" or "[::1]:5678" (set by the server)
  // Requested when the server stops: a long handler should give up and return.
  std::stop_token stop;

  // The first header named `name` (ASCII case-insensitive), or nullptr.
  const std::string* header(std::string_view name) const;
  // target up to (not including) '?'.
  std::string_view path() const;
};

struct HttpResponse {
  int status = 200;  // 200..599; anything else is answered as 500
  // Content-Length, Transfer-Encoding, Connection and Date are set by the server; copies here are
  // dropped. Names must be tokens and values valid field values, or the header is dropped.
  HttpHeaders headers;
  std::string body;
};

// The standard reason phrase for `status` ("Not Found"), or "Unknown".
std::string_view reason_phrase(int status);

}  // namespace relay::http
