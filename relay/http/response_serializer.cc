#include "relay/http/response_serializer.h"

#include <fmt/format.h>

#include <iterator>

#include "relay/common/http_header.h"

namespace relay::http {
namespace {

bool is_server_managed_header(std::string_view name) {
  return iequals_ascii(name, "content-length") || iequals_ascii(name, "transfer-encoding") ||
         iequals_ascii(name, "connection") || iequals_ascii(name, "date");
}

}  // namespace

std::string serialize_response(const HttpResponse& response, const ResponseFraming& framing,
                               std::string_view date, const Logger& log) {
  int status = response.status;
  if (status < 200 || status > 599) {
    log.error("handler returned an invalid HTTP status; answering 500",
              {{"status", std::to_string(status)}});
    status = 500;
  }
  std::string out = fmt::format("HTTP/1.1 {} {}\r\n", status, reason_phrase(status));
  for (const auto& [name, value] : response.headers) {
    if (is_server_managed_header(name)) continue;
    if (!is_http_token(name) || !is_http_field_value(value)) {
      log.warn("handler set an invalid response header; dropped", {{"header", name}});
      continue;
    }
    out += name;
    out += ": ";
    out += value;
    out += "\r\n";
  }
  if (!date.empty()) fmt::format_to(std::back_inserter(out), "Date: {}\r\n", date);
  fmt::format_to(std::back_inserter(out), "Content-Length: {}\r\n", response.body.size());
  if (framing.close) {
    out += "Connection: close\r\n";
  } else if (framing.keep_alive_header) {
    out += "Connection: keep-alive\r\n";
  }
  out += "\r\n";
  if (!framing.head_only) out += response.body;
  return out;
}

}  // namespace relay::http
