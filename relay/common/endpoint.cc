#include "relay/common/endpoint.h"

#include <algorithm>
#include <cctype>

namespace relay {
namespace {

bool iequals_prefix(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(s[i])) != prefix[i]) return false;
  }
  return true;
}

Error bad(std::string message) { return Error{ErrorCode::kInvalidArgument, std::move(message)}; }

}  // namespace

Result<Endpoint> parse_endpoint(std::string_view url) {
  constexpr std::string_view kHttp = "http://";
  constexpr std::string_view kHttps = "https://";
  Endpoint ep;
  ep.url = std::string(url);
  if (iequals_prefix(url, kHttps)) {
    ep.tls = true;
    ep.port = 443;
    url.remove_prefix(kHttps.size());
  } else if (iequals_prefix(url, kHttp)) {
    url.remove_prefix(kHttp.size());
  } else {
    return bad("must be an http:// or https:// URL, e.g. http://127.0.0.1:8080/events");
  }
  if (url.find_first_of(" \t\r\n") != std::string_view::npos)
    return bad("must not contain whitespace");
  const size_t authority_end = std::min(url.find_first_of("/?#"), url.size());
  std::string_view authority = url.substr(0, authority_end);
  const std::string_view rest = url.substr(authority_end);
  // Credentials in a URL end up in logs and in every error that quotes it.
  if (authority.find('@') != std::string_view::npos) {
    return bad(
        "must not carry credentials (user@ or user:password@); send them in headers, e.g. "
        "Authorization");
  }
  if (authority.empty()) return bad("must name a host, e.g. http://127.0.0.1:8080/events");
  std::string_view port_text;
  bool has_port = false;
  if (authority.front() == '[') {  // IPv6 literal
    const size_t close = authority.find(']');
    if (close == std::string_view::npos) return bad("has an unterminated IPv6 address");
    ep.host = std::string(authority.substr(1, close - 1));
    if (ep.host.empty()) return bad("must name a host, e.g. http://127.0.0.1:8080/events");
    for (char c : ep.host) {
      if (!std::isxdigit(static_cast<unsigned char>(c)) && c != ':' && c != '.')
        return bad("has an invalid IPv6 address");
    }
    authority.remove_prefix(close + 1);
    if (!authority.empty()) {
      if (authority.front() != ':') return bad("has unexpected text after the IPv6 address");
      port_text = authority.substr(1);
      has_port = true;
    }
  } else {
    const size_t colon = authority.find(':');
    ep.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) {
      port_text = authority.substr(colon + 1);
      has_port = true;
    }
    if (ep.host.empty()) return bad("must name a host, e.g. http://127.0.0.1:8080/events");
    for (char c : ep.host) {
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '.' && c != '_') {
        return bad(
            "has a host with characters other than letters, digits, '-', '.' and '_' (write an "
            "IPv6 address in brackets)");
      }
    }
  }
  if (has_port) {
    int port = 0;
    bool ok = !port_text.empty() && port_text.size() <= 5;
    for (char c : port_text) {
      if (!std::isdigit(static_cast<unsigned char>(c))) ok = false;
      if (ok) port = port * 10 + (c - '0');
    }
    if (!ok || port < 1 || port > 65535) return bad("has an invalid port (expected 1..65535)");
    ep.port = port;
  }
  if (rest.find('#') != std::string_view::npos) return bad("must not have a #fragment");
  for (unsigned char c : rest) {
    if (c <= 0x20 || c >= 0x7f)
      return bad("has characters in its path or query that must be percent-encoded");
  }
  // A query without a path gets "/". (Built with push_back and append: GCC 12 at -O3 reports a
  // -Wrestrict false positive for "/" + std::string(rest) and for assigning "/", which breaks the
  // Release build.)
  std::string path;
  if (rest.empty() || rest.front() != '/') path.push_back('/');
  path.append(rest);
  ep.path = std::move(path);
  return ep;
}

}  // namespace relay
