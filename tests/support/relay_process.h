#pragma once
// RelayProcess: the relay binary ($RELAY_BINARY, set by CTest) running as a child process, the way
// an operator runs it: `relay run --config <file> [extra args]`. The YAML text is written to a temp
// file; stdout and stderr go to a log file in the same temp dir. The child is the leader of its
// own process group and inherits no descriptor but 0-2 (stdin is /dev/null).
//
//   RelayProcess relay(config_yaml, {}, {{"DATABASE_URL", db.url()}});
//   REQUIRE(wait_until([&] { return db.count("relay.outbox") == 0; }, 60s));
//   relay.signal(SIGTERM);
//   REQUIRE(relay.wait_exit(10s) == 0);
//
// Not thread-safe; one owner. The destructor SIGKILLs the process group and reaps the child if it
// is still running; if the test process dies first, the kernel SIGKILLs relay (PR_SET_PDEATHSIG).
// That signal follows the *thread* that started the child: create a RelayProcess on a thread that
// outlives it (normally the test's main thread). Failures to start throw std::runtime_error.

#include <sys/types.h>

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "tests/support/temp_dir.h"

namespace relay::testing {

using EnvVars = std::map<std::string, std::string>;

class RelayProcess {
 public:
  // Starts `$RELAY_BINARY run --config <tmp>/relay.yaml <extra_args...>` with the test's
  // environment plus `env` (which overrides inherited variables). `binary_path`, if not empty,
  // runs that binary instead of $RELAY_BINARY (e.g. a Release build). Throws if RELAY_BINARY is
  // unset and no path is given, or fork fails.
  explicit RelayProcess(const std::string& config_yaml, std::vector<std::string> extra_args = {},
                        const EnvVars& env = {}, const std::string& binary_path = {});
  ~RelayProcess();
  RelayProcess(const RelayProcess&) = delete;
  RelayProcess& operator=(const RelayProcess&) = delete;

  pid_t pid() const { return pid_; }
  std::string config_path() const { return config_path_; }
  std::string log_path() const { return log_path_; }

  // Sends `sig` to the relay process (not its group). No-op once it has been reaped.
  void signal(int sig);
  // SIGKILLs the whole process group and reaps the child: returns once it is gone.
  void kill9();
  // Waits up to `timeout` for the process to exit. Returns its exit code, or 128 + signal number
  // if a signal ended it; nullopt if it is still running at the deadline.
  std::optional<int> wait_exit(std::chrono::milliseconds timeout);
  // True until the child has exited.
  bool running();
  // Everything the process wrote so far (for failure messages, never for assertions).
  std::string log() const;

  // Runs `$RELAY_BINARY <args...>` to completion, e.g. {"migrate", "--config", path}, with the
  // test's environment plus `env`. Stores stdout+stderr in *output (if not null) and returns the
  // exit code (128 + signal if killed). After `timeout` the child is SIGKILLed and 128 + 9
  // returned.
  static int run_cli(const std::vector<std::string>& args, std::string* output,
                     std::chrono::milliseconds timeout = std::chrono::seconds(60),
                     const EnvVars& env = {});

  // $RELAY_BINARY, or throws with a clear message if it is unset.
  static std::string binary();

 private:
  bool reap(bool block);

  TempDir dir_{"relay-it."};
  std::string config_path_;
  std::string log_path_;
  pid_t pid_ = -1;
  std::optional<int> exit_code_;
};

// The full path of `name` found in $PATH (then /usr/sbin, /sbin), or "" if it is not there.
std::string find_program(const std::string& name);

// ChildProcess: any other program a test runs beside relay (prometheus, chromium), started the
// same way: its own process group, stdin /dev/null, no descriptor but 0-2, SIGKILLed if the test
// process dies. stdout and stderr go to two files in a temp dir. Not thread-safe; one owner.
// The destructor SIGKILLs the process group and reaps the child if it still runs.
class ChildProcess {
 public:
  // Starts argv[0] (a path, or a name looked up with find_program) with `argv`, the test's
  // environment plus `env`. Throws std::runtime_error if the program is not found or fork fails.
  explicit ChildProcess(std::vector<std::string> argv, const EnvVars& env = {});
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  // Sends `sig` to the process (not its group). No-op once it has been reaped.
  void signal(int sig);
  // SIGKILLs the whole process group and reaps the child.
  void kill9();
  // Exit code (128 + signal if a signal ended it), or nullopt if it still runs at the deadline.
  std::optional<int> wait_exit(std::chrono::milliseconds timeout);
  bool running();
  std::string out() const;  // what it wrote to stdout so far
  std::string err() const;  // what it wrote to stderr so far

 private:
  bool reap(bool block);

  TempDir dir_{"relay-child."};
  std::string out_path_;
  std::string err_path_;
  pid_t pid_ = -1;
  std::optional<int> exit_code_;
};

}  // namespace relay::testing
