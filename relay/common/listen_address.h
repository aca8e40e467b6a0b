#pragma once
// Listen addresses ("host:port"): the one parser that the config loader (check-config, and run
// before it starts anything) and the HTTP server's listener (inbox.listen, ops.listen) use, so
// whatever check-config accepts, run can bind. Pure functions; thread-safe.

#include <string>
#include <string_view>

#include "relay/common/result.h"

namespace relay {

// A listen address split for bind().
struct ListenAddress {
  std::string host;  // a name or an address; an IPv6 literal without its brackets
  int port = 0;      // 0..65535; 0 asks the OS for any free port
};

// Parses "host:port" or "[ipv6]:port" (port decimal 0..65535). kInvalidArgument for whitespace
// anywhere, an unterminated '[', no port, an empty host, an unbracketed IPv6 host or a port that is
// not a number in range; the message starts "listen address ..." and does not repeat the input.
Result<ListenAddress> parse_listen_address(std::string_view listen);

}  // namespace relay
