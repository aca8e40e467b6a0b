// relay-demo-consumer: a tiny HTTP consumer for the quickstart (scripts/quickstart).
//
//   relay-demo-consumer --listen 127.0.0.1:PORT [--port-file F]
//
//   POST /events   answers 200: the event is accepted (what a healthy consumer does)
//   POST /strict   answers 400 {"error":"refund amount missing"}: the consumer rejects the event,
//                  so relay dead-letters it with reason non_retryable_status
//
// Prints one line per request to stdout (flushed at once): time, relay-subscription, the status
// it answered, ce-type, ce-subject, Idempotency-Key, relay-attempt and the body (at most 200
// characters). PORT 0 picks a free port; it is printed, and written to F with --port-file.
// SIGTERM or SIGINT stops the server and exits 0.

#include <fmt/core.h>
#include <httplib.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

namespace {

constexpr std::size_t kMaxBodyChars = 200;
constexpr std::size_t kKeepAliveMaxCount = 1'000'000;
constexpr std::string_view kStrictReply = R"({"error":"refund amount missing"})";

struct Options {
  std::string host = "127.0.0.1";
  int port = 0;
  std::string port_file;
};

[[noreturn]] void usage(const std::string& problem) {
  if (!problem.empty()) std::fprintf(stderr, "relay-demo-consumer: %s\n", problem.c_str());
  std::fprintf(stderr, "usage: relay-demo-consumer --listen HOST:PORT [--port-file FILE]\n");
  std::exit(2);
}

Options parse_args(int argc, char** argv) {
  Options o;
  bool have_listen = false;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") usage("");
    if (arg != "--listen" && arg != "--port-file") usage(fmt::format("unknown argument '{}'", arg));
    if (i + 1 >= argc) usage(fmt::format("{} needs a value", arg));
    const std::string value = argv[++i];
    if (arg == "--port-file") {
      o.port_file = value;
      continue;
    }
    const auto colon = value.rfind(':');
    if (colon == std::string::npos || colon == 0)
      usage(fmt::format("--listen wants HOST:PORT, got '{}'", value));
    o.host = value.substr(0, colon);
    const std::string port = value.substr(colon + 1);
    try {
      std::size_t used = 0;
      o.port = std::stoi(port, &used);
      if (used != port.size() || o.port < 0 || o.port > 65535) throw std::out_of_range("port");
    } catch (const std::exception&) {
      usage(fmt::format("bad port '{}'", port));
    }
    have_listen = true;
  }
  if (!have_listen) usage("--listen is required");
  return o;
}

std::string now_hms() {
  const auto now = std::chrono::system_clock::now();
  const std::time_t t = std::chrono::system_clock::to_time_t(now);
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  localtime_r(&t, &tm);
  char buf[16];
  std::strftime(buf, sizeof buf, "%H:%M:%S", &tm);
  return fmt::format("{}.{:03}", buf, ms);
}

// The body on one line: control characters become spaces, long bodies end with "...".
std::string one_line(const std::string& body) {
  std::string out;
  for (const char c : body) {
    if (out.size() >= kMaxBodyChars) {
      out += "...";
      break;
    }
    out += (static_cast<unsigned char>(c) < 0x20) ? ' ' : c;
  }
  return out;
}

std::string header(const httplib::Request& req, const char* name) {
  return req.has_header(name) ? req.get_header_value(name) : std::string("-");
}

std::mutex print_mu;

void print_event(const httplib::Request& req, int status) {
  const std::string line = fmt::format(
      "{} [{}] {} {} key={} attempt={} id={} {}\n", now_hms(), header(req, "relay-subscription"),
      status, header(req, "ce-type"), header(req, "ce-subject"), header(req, "relay-attempt"),
      header(req, "Idempotency-Key"), one_line(req.body));
  std::lock_guard lock(print_mu);
  std::fwrite(line.data(), 1, line.size(), stdout);
  std::fflush(stdout);
}

void write_port_file(const std::string& path, int port) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::trunc);
    f << port << '\n';
    if (!f) throw std::runtime_error("cannot write " + tmp);
  }
  std::filesystem::rename(tmp, path);  // atomic: a reader never sees a half-written port
}

}  // namespace

int main(int argc, char** argv) {
  const Options opts = parse_args(argc, argv);

  // Block the stop signals in every thread (the server's workers inherit this mask); the main
  // thread takes them with sigwait and stops the server outside any signal handler.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  httplib::Server server;
  server.set_tcp_nodelay(true);
  server.set_keep_alive_max_count(kKeepAliveMaxCount);
  server.Post("/events", [](const httplib::Request& req, httplib::Response& res) {
    res.status = 200;
    print_event(req, res.status);
  });
  server.Post("/strict", [](const httplib::Request& req, httplib::Response& res) {
    res.status = 400;
    res.set_content(std::string(kStrictReply), "application/json");
    print_event(req, res.status);
  });

  const int port = opts.port == 0 ? server.bind_to_any_port(opts.host)
                                  : (server.bind_to_port(opts.host, opts.port) ? opts.port : -1);
  if (port <= 0) {
    std::fprintf(stderr, "relay-demo-consumer: cannot listen on %s:%d\n", opts.host.c_str(),
                 opts.port);
    return 1;
  }
  if (!opts.port_file.empty()) {
    try {
      write_port_file(opts.port_file, port);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "relay-demo-consumer: %s\n", e.what());
      return 1;
    }
  }
  std::printf(
      "relay-demo-consumer: listening on http://%s:%d (POST /events -> 200, POST /strict -> 400)\n",
      opts.host.c_str(), port);
  std::fflush(stdout);

  std::atomic<bool> stopping{false};
  std::atomic<bool> listen_failed{false};
  const pthread_t main_thread = pthread_self();
  std::thread listener([&] {
    server.listen_after_bind();
    if (!stopping.load()) {
      // The server ended on its own: wake the main thread so that the process exits with an error.
      listen_failed.store(true);
      pthread_kill(main_thread, SIGTERM);
    }
  });

  int sig = 0;
  sigwait(&stop_signals, &sig);
  stopping.store(true);
  server.stop();
  listener.join();
  if (listen_failed.load()) {
    std::fprintf(stderr, "relay-demo-consumer: the server stopped unexpectedly\n");
    return 1;
  }
  std::printf("relay-demo-consumer: stopped (%s)\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
  std::fflush(stdout);
  return 0;
}
