#pragma once
// Listener: a bound, listening, non-blocking TCP socket and accept(). Not thread-safe: the server's
// I/O thread owns it.

#include <memory>
#include <string>

#include "relay/common/result.h"

namespace relay::http {

class Listener {
 public:
  // Binds `listen` ("host:port", "[v6addr]:port", parsed by parse_listen_address; port 0 picks a
  // free one) with SO_REUSEADDR and listens. kInvalidArgument for a malformed address or a host
  // that does not resolve, kUnavailable when no resolved address can be bound (e.g. in use); each
  // message names the address.
  static Result<std::unique_ptr<Listener>> open(const std::string& listen);
  ~Listener();  // close()
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

  // The listening socket (for poll()), or -1 once closed.
  int fd() const { return fd_; }
  // The bound port (the one the OS picked for port 0).
  int port() const { return port_; }

  struct Accepted {
    int fd = -1;       // the connection (non-blocking, close-on-exec), or -1
    std::string peer;  // "1.2.3.4:5678" or "[::1]:5678"
    int error = 0;     // errno when fd is -1 (EAGAIN: none waiting)
  };
  // Accepts one waiting connection. The caller owns the returned descriptor.
  Accepted accept();
  // A connection waits in the accept queue (a zero-timeout poll).
  bool connection_waiting() const;
  // Stops listening. Idempotent.
  void close();

 private:
  Listener(int fd, int port) : fd_(fd), port_(port) {}
  int fd_;
  const int port_;
};

}  // namespace relay::http
