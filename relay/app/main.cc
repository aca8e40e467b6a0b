// relay: the transactional outbox sidecar. main() only turns argv into a command.

#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <vector>

#include "relay/app/cli.h"

int main(int argc, char** argv) {
  // libpq and cpp-httplib write to sockets a peer may have closed: take EPIPE, not SIGPIPE.
  signal(SIGPIPE, SIG_IGN);
  try {
    return relay::app::run_cli(std::vector<std::string>(argv + 1, argv + argc));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "relay: fatal: %s\n", e.what());
    return 1;
  } catch (...) {
    std::fprintf(stderr, "relay: fatal: unknown exception\n");
    return 1;
  }
}
