#include "tests/support/relay_process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <thread>

extern char** environ;

namespace relay::testing {
namespace {

constexpr auto kPollEvery = std::chrono::milliseconds(5);

int decode_status(int status) {
  if (WIFEXITED(status)) {
    return WEXITSTATUS(status);
  }
  if (WIFSIGNALED(status)) {
    return 128 + WTERMSIG(status);
  }
  return -1;
}

// Collects the child's exit status into `exit_code` (once): true when it has exited, or is not our
// child any more (ECHILD: -1, nothing left to wait for).
bool reap_child(pid_t pid, bool block, std::optional<int>& exit_code) {
  if (exit_code) return true;
  int status = 0;
  pid_t r;
  do {
    r = ::waitpid(pid, &status, block ? 0 : WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r == pid) {
    exit_code = decode_status(status);
    return true;
  }
  if (r < 0) {
    exit_code = -1;
    return true;
  }
  return false;
}

// argv/envp storage built before fork(): the child only calls async-signal-safe functions.
struct ExecImage {
  std::vector<std::string> args;
  std::vector<std::string> env;
  std::vector<char*> argv;
  std::vector<char*> envp;

  ExecImage(std::vector<std::string> a, const EnvVars& overrides) : args(std::move(a)) {
    for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
      const std::string entry(*e);
      const std::string name = entry.substr(0, entry.find('='));
      if (overrides.count(name) == 0) {
        env.push_back(entry);
      }
    }
    for (const auto& [name, value] : overrides) {
      env.push_back(name + "=" + value);
    }
    for (auto& s : args) {
      argv.push_back(s.data());
    }
    argv.push_back(nullptr);
    for (auto& s : env) {
      envp.push_back(s.data());
    }
    envp.push_back(nullptr);
  }
};

// Forks and execs `image` in a new process group with stdout appended to `log_path` and stderr
// to `err_path` (the same file when empty).
pid_t spawn(ExecImage& image, const std::string& log_path, const std::string& err_path = {}) {
  const int log_fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) {
    throw std::runtime_error("cannot open " + log_path + ": " + std::strerror(errno));
  }
  const int err_fd =
      err_path.empty() ? log_fd
                       : ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (err_fd < 0) {
    ::close(log_fd);
    throw std::runtime_error("cannot open " + err_path + ": " + std::strerror(errno));
  }
  const int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (null_fd < 0) {
    ::close(log_fd);
    if (err_fd != log_fd) ::close(err_fd);
    throw std::runtime_error(std::string("cannot open /dev/null: ") + std::strerror(errno));
  }
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::setpgid(0, 0);
    // Its own process group keeps a Ctrl-C for the test run away from relay, so if the test
    // binary dies before its destructors run, the kernel must kill relay instead of orphaning it.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) {
      ::_exit(127);  // the parent died before prctl took effect
    }
    ::dup2(null_fd, STDIN_FILENO);
    ::dup2(log_fd, STDOUT_FILENO);
    ::dup2(err_fd, STDERR_FILENO);
    // Leave the child nothing of ours (listening sockets, DB connections) beyond 0-2.
    if (::close_range(3, UINT_MAX, 0) != 0) {
      for (int fd = 3; fd < 65536; ++fd) {
        ::close(fd);
      }
    }
    ::execve(image.argv[0], image.argv.data(), image.envp.data());
    const char msg[] = "RelayProcess: execve failed\n";
    (void)!::write(STDERR_FILENO, msg, sizeof(msg) - 1);
    ::_exit(127);
  }
  const int fork_errno = errno;
  ::close(log_fd);
  if (err_fd != log_fd) ::close(err_fd);
  ::close(null_fd);
  if (pid < 0) {
    throw std::runtime_error(std::string("fork failed: ") + std::strerror(fork_errno));
  }
  // Also set it from the parent, so the group exists before we might signal it.
  ::setpgid(pid, pid);
  return pid;
}

}  // namespace

std::string RelayProcess::binary() {
  const char* path = std::getenv("RELAY_BINARY");
  if (path == nullptr || *path == '\0') {
    throw std::runtime_error(
        "RELAY_BINARY is not set: run integration tests through ctest, or export "
        "RELAY_BINARY=<build dir>/relay/relay");
  }
  if (::access(path, X_OK) != 0) {
    throw std::runtime_error(std::string("RELAY_BINARY=") + path + " is not an executable file");
  }
  return path;
}

RelayProcess::RelayProcess(const std::string& config_yaml, std::vector<std::string> extra_args,
                           const EnvVars& env, const std::string& binary_path) {
  config_path_ = dir_.write("relay.yaml", config_yaml);
  log_path_ = dir_.path() + "/relay.log";
  std::vector<std::string> args{binary_path.empty() ? binary() : binary_path, "run", "--config",
                                config_path_};
  args.insert(args.end(), extra_args.begin(), extra_args.end());
  ExecImage image(std::move(args), env);
  pid_ = spawn(image, log_path_);
}

RelayProcess::~RelayProcess() {
  if (pid_ > 0 && !exit_code_) {
    kill9();
  }
}

bool RelayProcess::reap(bool block) {
  return reap_child(pid_, block, exit_code_);
}

void RelayProcess::signal(int sig) {
  if (!exit_code_) {
    ::kill(pid_, sig);
  }
}

void RelayProcess::kill9() {
  if (exit_code_) {
    return;
  }
  ::kill(-pid_, SIGKILL);
  ::kill(pid_, SIGKILL);
  reap(/*block=*/true);
}

std::optional<int> RelayProcess::wait_exit(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!reap(/*block=*/false)) {
    if (std::chrono::steady_clock::now() >= deadline) {
      return std::nullopt;
    }
    // Re-check the child's exit status until the deadline.
    std::this_thread::sleep_for(kPollEvery);  // ok-sleep
  }
  return exit_code_;
}

bool RelayProcess::running() { return !reap(/*block=*/false); }

std::string RelayProcess::log() const { return read_file(log_path_); }

int RelayProcess::run_cli(const std::vector<std::string>& args, std::string* output,
                          std::chrono::milliseconds timeout, const EnvVars& env) {
  TempDir dir("relay-cli.");
  const std::string out_path = dir.path() + "/output";
  std::vector<std::string> argv{binary()};
  argv.insert(argv.end(), args.begin(), args.end());
  ExecImage image(std::move(argv), env);
  const pid_t pid = spawn(image, out_path);

  const auto deadline = std::chrono::steady_clock::now() + timeout;
  int status = 0;
  int code = -1;
  bool timed_out = false;
  while (true) {
    const pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) {
      code = decode_status(status);
      break;
    }
    if (r < 0 && errno != EINTR) {
      break;
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      ::kill(-pid, SIGKILL);
      ::kill(pid, SIGKILL);
      while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
      }
      code = 128 + SIGKILL;
      timed_out = true;
      break;
    }
    // Re-check the child's exit status until the deadline.
    std::this_thread::sleep_for(kPollEvery);  // ok-sleep
  }
  if (output != nullptr) {
    *output = read_file(out_path);
    if (timed_out) {
      *output += "\n[run_cli: killed after the timeout]\n";
    }
  }
  return code;
}

std::string find_program(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::string dirs = path != nullptr && *path != '\0' ? path : "/usr/local/bin:/usr/bin:/bin";
  dirs += ":/usr/sbin:/sbin";
  size_t at = 0;
  while (at <= dirs.size()) {
    const size_t end = std::min(dirs.find(':', at), dirs.size());
    const std::string candidate = dirs.substr(at, end - at) + "/" + name;
    if (end > at && ::access(candidate.c_str(), X_OK) == 0) return candidate;
    at = end + 1;
  }
  return "";
}

ChildProcess::ChildProcess(std::vector<std::string> argv, const EnvVars& env) {
  if (argv.empty()) throw std::runtime_error("ChildProcess: no program");
  if (argv[0].find('/') == std::string::npos) {
    const std::string path = find_program(argv[0]);
    if (path.empty()) throw std::runtime_error("ChildProcess: " + argv[0] + " is not in PATH");
    argv[0] = path;
  }
  out_path_ = dir_.path() + "/stdout";
  err_path_ = dir_.path() + "/stderr";
  ExecImage image(std::move(argv), env);
  pid_ = spawn(image, out_path_, err_path_);
}

ChildProcess::~ChildProcess() { kill9(); }

bool ChildProcess::reap(bool block) {
  return reap_child(pid_, block, exit_code_);
}

void ChildProcess::signal(int sig) {
  if (!exit_code_) ::kill(pid_, sig);
}

void ChildProcess::kill9() {
  if (pid_ <= 0 || exit_code_) return;
  ::kill(-pid_, SIGKILL);
  ::kill(pid_, SIGKILL);
  reap(/*block=*/true);
}

std::optional<int> ChildProcess::wait_exit(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!reap(/*block=*/false)) {
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    // Re-check the child's exit status until the deadline.
    std::this_thread::sleep_for(kPollEvery);  // ok-sleep
  }
  return exit_code_;
}

bool ChildProcess::running() { return !reap(/*block=*/false); }

std::string ChildProcess::out() const { return read_file(out_path_); }

std::string ChildProcess::err() const { return read_file(err_path_); }

}  // namespace relay::testing
