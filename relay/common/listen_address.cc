#include "relay/common/listen_address.h"

#include <fmt/format.h>

#include <charconv>
#include <system_error>

namespace relay {

Result<ListenAddress> parse_listen_address(std::string_view listen) {
  constexpr std::string_view kExample = "expected host:port, e.g. 127.0.0.1:9090";
  const auto bad = [](std::string message) {
    return Error{ErrorCode::kInvalidArgument, std::move(message)};
  };
  if (listen.find_first_of(" \t\r\n") != std::string_view::npos)
    return bad(fmt::format("listen address must not contain whitespace ({})", kExample));
  std::string_view host;
  std::string_view port;
  if (!listen.empty() && listen.front() == '[') {
    const std::size_t close = listen.find(']');
    if (close == std::string_view::npos)
      return bad("listen address has an unterminated IPv6 address");
    host = listen.substr(1, close - 1);
    const std::string_view rest = listen.substr(close + 1);
    if (rest.empty() || rest.front() != ':')
      return bad(fmt::format("listen address has no port ({})", kExample));
    port = rest.substr(1);
  } else {
    const std::size_t colon = listen.rfind(':');
    if (colon == std::string_view::npos)
      return bad(fmt::format("listen address has no port ({})", kExample));
    host = listen.substr(0, colon);
    port = listen.substr(colon + 1);
    if (host.find(':') != std::string_view::npos)
      return bad("listen address: write an IPv6 host in brackets, e.g. [::1]:9090");
  }
  if (host.empty()) return bad(fmt::format("listen address has no host ({})", kExample));
  int value = 0;
  const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (port.empty() || ec != std::errc() || end != port.data() + port.size() || value < 0 ||
      value > 65535) {
    return bad("listen address has an invalid port (expected 0..65535; 0 picks any free port)");
  }
  return ListenAddress{.host = std::string(host), .port = value};
}

}  // namespace relay
