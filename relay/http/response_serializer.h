#pragma once
// Response bytes: the status line, the handler's headers (minus those the server manages), Date,
// Content-Length and Connection. Pure functions apart from logging what they drop; thread-safe.

#include <chrono>
#include <string>
#include <string_view>

#include "relay/common/log.h"
#include "relay/http/message.h"

namespace relay::http {

struct ResponseFraming {
  bool head_only = false;          // HEAD: headers as for GET, no body
  bool close = false;              // send Connection: close
  bool keep_alive_header = false;  // HTTP/1.0 keep-alive: send Connection: keep-alive
};

// The bytes of `response` as HTTP/1.1. A status outside 200..599 becomes 500 and a header that is
// server-managed (Content-Length, Transfer-Encoding, Connection, Date) or not a valid name/value is
// dropped; `log` says so for the latter two. No Date header when `date` is empty.
std::string serialize_response(const HttpResponse& response, const ResponseFraming& framing,
                               std::string_view date, const Logger& log);

}  // namespace relay::http
