#pragma once
// ChromiumSession: headless Chromium (Debian's chromium) driven over the DevTools protocol through
// --remote-debugging-pipe (requests on the child's fd 3, replies and events on its fd 4, each a
// JSON text ended by NUL). One page target; the test navigates, evaluates JavaScript, waits on
// conditions in the page with a deadline, takes screenshots, and reads every problem the page
// reported: uncaught exceptions, console.error/warn/assert, and browser log errors (a load the
// Content-Security-Policy refused, a failed request). Not thread-safe; one owner. The
// destructor closes the browser and SIGKILLs its process group if it is still there.

#include <fcntl.h>
#include <openssl/evp.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <climits>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "tests/integration/see_helpers.h"
#include "tests/support/relay_process.h"
#include "tests/support/temp_dir.h"

namespace relay::testing {

class ChromiumSession {
 public:
  using json = nlohmann::json;

  // Starts chromium with a viewport of width x height CSS pixels. Throws std::runtime_error if
  // chromium is not installed or does not answer within 60 s.
  ChromiumSession(int width, int height) {
    const std::string program = find_program("chromium");
    if (program.empty())
      throw std::runtime_error("chromium not found: apt-get install chromium (scripts/bootstrap)");
    // A write to a browser that died must fail with EPIPE, not kill the test process.
    ::signal(SIGPIPE, SIG_IGN);
    int to_child[2], from_child[2];
    if (::pipe2(to_child, O_CLOEXEC) != 0 || ::pipe2(from_child, O_CLOEXEC) != 0)
      throw std::runtime_error("pipe failed");
    std::vector<std::string> args = chromium_args(
        profile_.path(), {"--remote-debugging-pipe",
                          "--window-size=" + std::to_string(width) + "," + std::to_string(height)});
    args[0] = program;
    args.push_back("about:blank");
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const std::string log_path = profile_.path() + "/chromium.log";
    const int log_fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    const int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    const pid_t parent = ::getpid();
    pid_ = ::fork();
    if (pid_ == 0) {
      ::setpgid(0, 0);
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(127);
      // fds 3 and 4 first into free slots above them, then into place (the pipes may sit at 3/4).
      const int in = ::fcntl(to_child[0], F_DUPFD, 10);
      const int out = ::fcntl(from_child[1], F_DUPFD, 10);
      ::dup2(null_fd, STDIN_FILENO);
      ::dup2(log_fd, STDOUT_FILENO);
      ::dup2(log_fd, STDERR_FILENO);
      ::dup2(in, 3);
      ::dup2(out, 4);
      ::close_range(5, UINT_MAX, 0);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    ::close(to_child[0]);
    ::close(from_child[1]);
    ::close(log_fd);
    ::close(null_fd);
    write_fd_ = to_child[1];
    read_fd_ = from_child[0];
    if (pid_ < 0) throw std::runtime_error("fork failed");
    ::setpgid(pid_, pid_);
    log_path_ = log_path;

    const json target = call("Target.createTarget", {{"url", "about:blank"}});
    const json attached =
        call("Target.attachToTarget", {{"targetId", target["targetId"]}, {"flatten", true}});
    session_ = attached["sessionId"];
    for (const char* domain : {"Runtime.enable", "Log.enable", "Page.enable"})
      call(domain, {}, true);
    call("Emulation.setDeviceMetricsOverride",
         {{"width", width}, {"height", height}, {"deviceScaleFactor", 1}, {"mobile", false}}, true);
  }

  ~ChromiumSession() {
    if (write_fd_ >= 0) {
      try {
        send("Browser.close", json::object(), false);
      } catch (const std::exception&) {
        // Chromium is gone already: nothing to close.
      }
      ::close(write_fd_);
    }
    if (read_fd_ >= 0) ::close(read_fd_);
    if (pid_ > 0) {
      // Browser.close ends it within a moment; whatever is left goes with its group.
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
      int status = 0;
      while (::waitpid(pid_, &status, WNOHANG) == 0) {
        if (std::chrono::steady_clock::now() >= deadline) {
          ::kill(-pid_, SIGKILL);
          ::waitpid(pid_, &status, 0);
          break;
        }
        ::poll(nullptr, 0, 20);  // re-check the exit status until the deadline
      }
    }
  }
  ChromiumSession(const ChromiumSession&) = delete;
  ChromiumSession& operator=(const ChromiumSession&) = delete;

  // Loads `url` and waits for its load event.
  void navigate(const std::string& url) {
    call("Page.navigate", {{"url", url}}, true);
    wait_event("Page.loadEventFired", std::chrono::seconds(60));
  }

  // The value of a JavaScript expression in the page (awaited if it is a promise).
  json evaluate(const std::string& expression) {
    const json r =
        call("Runtime.evaluate",
             {{"expression", expression}, {"returnByValue", true}, {"awaitPromise", true}}, true);
    if (r.contains("exceptionDetails"))
      throw std::runtime_error("evaluate threw: " + r["exceptionDetails"].dump());
    return r["result"].value("value", json());
  }

  // Re-evaluates `expression` (which must yield a boolean) until it is true or `timeout` passes;
  // meanwhile the page runs in real time.
  bool wait_for(const std::string& expression, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (true) {
      if (evaluate(expression) == true) return true;
      if (std::chrono::steady_clock::now() >= deadline) return false;
      pump(std::chrono::milliseconds(100));  // events only: a condition re-check interval
    }
  }

  // The page as a PNG, written to `path`.
  void screenshot(const std::string& path) {
    const json r = call("Page.captureScreenshot", {{"format", "png"}}, true);
    const std::string b64 = r["data"];
    std::string png(b64.size() / 4 * 3 + 3, '\0');
    const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(png.data()),
                                  reinterpret_cast<const unsigned char*>(b64.data()),
                                  static_cast<int>(b64.size()));
    if (n < 0) throw std::runtime_error("screenshot: bad base64");
    size_t pad = 0;
    for (size_t i = b64.size(); i > 0 && b64[i - 1] == '='; --i) ++pad;
    png.resize(static_cast<size_t>(n) - pad);
    std::ofstream(path, std::ios::binary) << png;
  }

  // Every problem the page reported so far, one line each.
  const std::vector<std::string>& problems() const { return problems_; }
  // What chromium wrote to stdout/stderr (for failure messages).
  std::string log() const { return read_file(log_path_); }

 private:
  void send(const std::string& method, const json& params, bool in_session) {
    json msg = {{"id", ++next_id_}, {"method", method}, {"params", params}};
    if (in_session) msg["sessionId"] = session_;
    const std::string text = msg.dump() + std::string(1, '\0');
    size_t done = 0;
    while (done < text.size()) {
      const ssize_t n = ::write(write_fd_, text.data() + done, text.size() - done);
      if (n <= 0) throw std::runtime_error("chromium: the pipe closed");
      done += static_cast<size_t>(n);
    }
  }

  json call(const std::string& method, const json& params, bool in_session = false) {
    send(method, params, in_session);
    const int id = next_id_;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (std::chrono::steady_clock::now() < deadline) {
      for (auto it = replies_.begin(); it != replies_.end(); ++it) {
        if ((*it)["id"] == id) {
          json reply = std::move(*it);
          replies_.erase(it);
          if (reply.contains("error"))
            throw std::runtime_error(method + ": " + reply["error"].dump());
          return reply["result"];
        }
      }
      pump(std::chrono::milliseconds(1000));
    }
    throw std::runtime_error(method + ": no answer from chromium within 60 s; log:\n" + log());
  }

  void wait_event(const std::string& method, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      for (auto it = events_.begin(); it != events_.end(); ++it) {
        if ((*it)["method"] == method) {
          events_.erase(it);
          return;
        }
      }
      pump(std::chrono::milliseconds(200));
    }
    throw std::runtime_error("chromium: no " + method + " within the deadline");
  }

  // Reads what chromium sent within `wait` and files replies, events and problems.
  void pump(std::chrono::milliseconds wait) {
    pollfd p{read_fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(wait.count())) <= 0) return;
    char buf[65536];
    const ssize_t n = ::read(read_fd_, buf, sizeof buf);
    if (n <= 0) throw std::runtime_error("chromium exited; log:\n" + log());
    in_.append(buf, static_cast<size_t>(n));
    for (size_t end = in_.find('\0'); end != std::string::npos; end = in_.find('\0')) {
      json msg = json::parse(in_.substr(0, end));
      in_.erase(0, end + 1);
      if (msg.contains("id")) {
        replies_.push_back(std::move(msg));
        continue;
      }
      note(msg);
      events_.push_back(std::move(msg));
    }
  }

  void note(const json& msg) {
    const std::string method = msg.value("method", "");
    const json& p = msg.contains("params") ? msg["params"] : json::object();
    if (method == "Runtime.exceptionThrown") {
      problems_.push_back("exception: " + p["exceptionDetails"].dump());
    } else if (method == "Runtime.consoleAPICalled") {
      const std::string type = p.value("type", "");
      if (type == "error" || type == "warning" || type == "assert")
        problems_.push_back("console." + type + ": " + p["args"].dump());
    } else if (method == "Log.entryAdded") {
      const json& e = p["entry"];
      if (e.value("level", "") == "error" || e.value("level", "") == "warning")
        problems_.push_back("log " + e.value("level", "") + ": " + e.value("text", "") + " " +
                            e.value("url", ""));
    }
  }

  TempDir profile_{"relay-chromium."};
  std::string log_path_;
  pid_t pid_ = -1;
  int write_fd_ = -1;
  int read_fd_ = -1;
  int next_id_ = 0;
  std::string session_;
  std::string in_;
  std::vector<json> replies_;
  std::vector<json> events_;
  std::vector<std::string> problems_;
};

}  // namespace relay::testing
