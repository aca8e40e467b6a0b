#include "relay/inbox/http_server.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <condition_variable>
#include <cstring>
#include <ctime>
#include <deque>
#include <exception>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>

#include "relay/common/http_header.h"
#include "relay/common/log.h"

namespace relay::inbox {
namespace {

using TimePoint = Clock::TimePoint;
using std::chrono::milliseconds;

// One recv() per readable event: with it, a connection's input buffer never holds more than the
// current request's bound plus this.
constexpr size_t kReadChunk = 16 * 1024;
constexpr int kMaxAcceptsPerWake = 64;
// After EMFILE/ENFILE with no idle connection to close, the listener stays readable; pausing
// accept() avoids a busy loop.
constexpr milliseconds kAcceptPause{100};
// After a response that closes the connection, input is read and discarded this long (after
// shutdown(SHUT_WR)) so that unread request bytes do not turn close() into a reset that destroys
// the response before the client reads it.
constexpr milliseconds kLingerTimeout{1000};
// A Content-Length with more digits cannot be a size we accept (and would overflow int64).
constexpr size_t kMaxContentLengthDigits = 18;

const Logger& logger() {
  static const Logger log{"inbox"};
  return log;
}

std::string errno_text(int err) { return std::strerror(err); }

// RFC 9110 OWS.
std::string_view trim_ows(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool all_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// A comma-separated header value (Connection) contains `token`, case-insensitively.
bool has_list_token(std::string_view list, std::string_view token) {
  while (!list.empty()) {
    const size_t comma = list.find(',');
    if (iequals_ascii(trim_ows(list.substr(0, comma)), token)) return true;
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return false;
}

std::string http_date(std::chrono::system_clock::time_point t) {
  const std::time_t secs = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  const size_t n = std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  return std::string(buf, n);
}

bool is_server_managed_header(std::string_view name) {
  return iequals_ascii(name, "content-length") || iequals_ascii(name, "transfer-encoding") ||
         iequals_ascii(name, "connection") || iequals_ascii(name, "date");
}

struct ResponseFraming {
  bool head_only = false;          // HEAD: headers as for GET, no body
  bool close = false;              // send Connection: close
  bool keep_alive_header = false;  // HTTP/1.0 keep-alive: send Connection: keep-alive
};

std::string serialize_response(const HttpResponse& response, const ResponseFraming& framing,
                               std::string_view date) {
  int status = response.status;
  if (status < 200 || status > 599) {
    logger().error("handler returned an invalid HTTP status; answering 500",
                   {{"status", std::to_string(status)}});
    status = 500;
  }
  std::string out = fmt::format("HTTP/1.1 {} {}\r\n", status, reason_phrase(status));
  for (const auto& [name, value] : response.headers) {
    if (is_server_managed_header(name)) continue;
    if (!is_http_token(name) || !is_http_field_value(value)) {
      logger().warn("handler set an invalid response header; dropped", {{"header", name}});
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

std::string format_peer(const sockaddr_storage& addr) {
  char host[INET6_ADDRSTRLEN] = {};
  if (addr.ss_family == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&addr);
    inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
    return fmt::format("{}:{}", host, ntohs(a->sin_port));
  }
  if (addr.ss_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&addr);
    inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
    return fmt::format("[{}]:{}", host, ntohs(a->sin6_port));
  }
  return "unknown";
}

// ---- Request head parsing ----

// A parse failure: the status the server answers and the reason, which becomes the body.
struct HttpError {
  int status = 400;
  std::string message;
};

struct ParsedHead {
  HttpRequest request;  // method, target, version, headers
  std::int64_t content_length = 0;
  bool keep_alive = false;
  bool keep_alive_header = false;  // HTTP/1.0 with Connection: keep-alive
  bool expect_continue = false;
};

// Incremental scan for the end of a request head, so a client trickling bytes costs O(bytes).
struct HeadScan {
  size_t pos = 0;            // next byte to scan
  size_t line_start = 0;     // start of the line being scanned
  size_t request_start = 0;  // after leading empty lines (RFC 9112 §2.2 allows them)
  int lines = 0;             // complete non-empty lines: request line + header lines
};

enum class ScanResult { kIncomplete, kComplete, kError };

// Advances `scan` over `in`. kComplete: the head is in[request_start, pos) and ends with an empty
// line. kError: `error` says why (bare LF, too many lines, too many bytes).
ScanResult scan_head(std::string_view in, HeadScan& scan, const HttpServerLimits& limits,
                     HttpError& error) {
  const auto too_large = [&] {
    error = {431,
             fmt::format("request head exceeds max_header_bytes ({})", limits.max_header_bytes)};
    return ScanResult::kError;
  };
  while (true) {
    const size_t lf = in.find('\n', scan.pos);
    if (lf == std::string_view::npos) {
      scan.pos = in.size();
      if (static_cast<std::int64_t>(in.size()) > limits.max_header_bytes) return too_large();
      return ScanResult::kIncomplete;
    }
    if (static_cast<std::int64_t>(lf + 1) > limits.max_header_bytes + 2) return too_large();
    if (lf == scan.line_start || in[lf - 1] != '\r') {
      error = {400, "line not terminated by CRLF (bare LF)"};
      return ScanResult::kError;
    }
    const bool empty_line = lf - 1 == scan.line_start;
    scan.pos = lf + 1;
    scan.line_start = lf + 1;
    if (empty_line) {
      if (scan.lines == 0) {
        scan.request_start = scan.pos;  // an empty line before the request line is ignored
        continue;
      }
      return ScanResult::kComplete;
    }
    ++scan.lines;
    if (scan.lines - 1 > limits.max_headers) {
      error = {431, fmt::format("more than max_headers ({}) header lines", limits.max_headers)};
      return ScanResult::kError;
    }
  }
}

std::optional<HttpError> parse_request_line(std::string_view line, HttpRequest& request) {
  const size_t sp1 = line.find(' ');
  const size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos) {
    return HttpError{400, "malformed request line: expected \"METHOD SP target SP HTTP/x.y\""};
  }
  const std::string_view method = line.substr(0, sp1);
  const std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  const std::string_view version = line.substr(sp2 + 1);
  if (!is_http_token(method)) return HttpError{400, "malformed request method"};
  const bool target_chars_ok =
      !target.empty() &&
      std::all_of(target.begin(), target.end(), [](char c) { return c > 0x20 && c < 0x7f; });
  if (!target_chars_ok) return HttpError{400, "malformed request target"};
  if (target.front() != '/' && !(target == "*" && method == "OPTIONS")) {
    return HttpError{400, "request target must be a path (origin-form, starting with '/')"};
  }
  const bool version_syntax_ok = version.size() == 8 && version.substr(0, 5) == "HTTP/" &&
                                 version[5] >= '0' && version[5] <= '9' && version[6] == '.' &&
                                 version[7] >= '0' && version[7] <= '9';
  if (!version_syntax_ok) return HttpError{400, "malformed HTTP version"};
  if (version != "HTTP/1.1" && version != "HTTP/1.0") {
    return HttpError{505, fmt::format("HTTP version {} is not supported; use HTTP/1.1", version)};
  }
  request.method = std::string(method);
  request.target = std::string(target);
  request.version = std::string(version);
  return std::nullopt;
}

// Parses the head in `head` (lines ending in CRLF, without the final empty line) and applies the
// framing rules. On success `parsed` is filled.
std::optional<HttpError> parse_head(std::string_view head, const HttpServerLimits& limits,
                                    ParsedHead& parsed) {
  HttpRequest& request = parsed.request;
  const size_t first_eol = head.find("\r\n");
  if (auto err = parse_request_line(head.substr(0, first_eol), request)) return err;
  head.remove_prefix(first_eol + 2);

  std::optional<std::int64_t> content_length;
  bool transfer_encoding = false;
  int host_count = 0;
  bool connection_close = false;
  bool connection_keep_alive = false;
  while (!head.empty()) {
    const size_t eol = head.find("\r\n");
    const std::string_view line = head.substr(0, eol);
    head.remove_prefix(eol + 2);
    if (line.front() == ' ' || line.front() == '\t') {
      return HttpError{400, "obsolete header line folding is not allowed"};
    }
    const size_t colon = line.find(':');
    const std::string_view name = line.substr(0, colon);
    if (colon == std::string_view::npos || !is_http_token(name)) {
      return HttpError{
          400, fmt::format("malformed header line (header #{})", request.headers.size() + 1)};
    }
    const std::string_view value = trim_ows(line.substr(colon + 1));
    if (!is_http_field_value(value)) {
      return HttpError{400, fmt::format("invalid characters in header {}", name)};
    }
    request.headers.emplace_back(std::string(name), std::string(value));
    if (iequals_ascii(name, "content-length")) {
      if (!all_digits(value) || value.size() > kMaxContentLengthDigits) {
        return HttpError{400, "Content-Length must be one decimal number"};
      }
      const std::int64_t n = std::stoll(std::string(value));
      if (content_length && *content_length != n) {
        return HttpError{400, "conflicting Content-Length headers"};
      }
      content_length = n;
    } else if (iequals_ascii(name, "transfer-encoding")) {
      transfer_encoding = true;
    } else if (iequals_ascii(name, "host")) {
      ++host_count;
    } else if (iequals_ascii(name, "connection")) {
      connection_close = connection_close || has_list_token(value, "close");
      connection_keep_alive = connection_keep_alive || has_list_token(value, "keep-alive");
    } else if (iequals_ascii(name, "expect")) {
      parsed.expect_continue = iequals_ascii(value, "100-continue");
      if (!parsed.expect_continue) {
        return HttpError{417, "only \"Expect: 100-continue\" is supported"};
      }
    }
  }
  const bool http11 = request.version == "HTTP/1.1";
  if (host_count > 1 || (http11 && host_count == 0)) {
    return HttpError{400, "an HTTP/1.1 request needs exactly one Host header"};
  }
  if (transfer_encoding) {
    return HttpError{411, "Transfer-Encoding is not supported; send the body with Content-Length"};
  }
  parsed.content_length = content_length.value_or(0);
  if (parsed.content_length > limits.max_body_bytes) {
    return HttpError{413, fmt::format("Content-Length {} exceeds the limit of {} bytes",
                                      parsed.content_length, limits.max_body_bytes)};
  }
  // RFC 9110 §10.1.1: a server ignores 100-continue from an HTTP/1.0 client.
  parsed.expect_continue = parsed.expect_continue && http11;
  parsed.keep_alive = http11 ? !connection_close : (connection_keep_alive && !connection_close);
  parsed.keep_alive_header = !http11 && parsed.keep_alive;
  return std::nullopt;
}

}  // namespace

std::string_view reason_phrase(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 202:
      return "Accepted";
    case 204:
      return "No Content";
    case 301:
      return "Moved Permanently";
    case 302:
      return "Found";
    case 304:
      return "Not Modified";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 409:
      return "Conflict";
    case 410:
      return "Gone";
    case 411:
      return "Length Required";
    case 413:
      return "Content Too Large";
    case 415:
      return "Unsupported Media Type";
    case 417:
      return "Expectation Failed";
    case 422:
      return "Unprocessable Content";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return "Unknown";
  }
}

const std::string* HttpRequest::header(std::string_view name) const {
  for (const auto& [n, v] : headers) {
    if (iequals_ascii(n, name)) return &v;
  }
  return nullptr;
}

std::string_view HttpRequest::path() const {
  const std::string_view t = target;
  return t.substr(0, t.find('?'));
}

// ---- The server ----

class HttpServer::Impl {
 public:
  Impl(const HttpServerLimits& limits, HttpHandler handler, Clock& clock, int listen_fd,
       int wake_fd, int port)
      : limits_(limits),
        handler_(std::move(handler)),
        clock_(clock),
        port_(port),
        listen_fd_(listen_fd),
        wake_fd_(wake_fd) {}
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;
  ~Impl() {
    stop();
    if (listen_fd_ >= 0) ::close(listen_fd_);
    ::close(wake_fd_);
  }

  void run() {
    loop_thread_ = std::jthread([this] { io_loop(); });
    for (int i = 0; i < limits_.workers; ++i) {
      workers_.emplace_back([this] { worker_loop(); });
    }
  }

  int port() const { return port_; }

  HttpServerStats stats() const {
    HttpServerStats s;
    s.connections_accepted = stats_.connections_accepted.load();
    s.connections_rejected = stats_.connections_rejected.load();
    s.rejected_queue_full = stats_.rejected_queue_full.load();
    s.requests = stats_.requests.load();
    s.handler_errors = stats_.handler_errors.load();
    s.head_timeouts = stats_.head_timeouts.load();
    s.body_timeouts = stats_.body_timeouts.load();
    s.idle_closed = stats_.idle_closed.load();
    s.idle_evicted = stats_.idle_evicted.load();
    s.write_timeouts = stats_.write_timeouts.load();
    s.bad_request = stats_.bad_request.load();
    s.length_required = stats_.length_required.load();
    s.payload_too_large = stats_.payload_too_large.load();
    s.expectation_failed = stats_.expectation_failed.load();
    s.headers_too_large = stats_.headers_too_large.load();
    s.version_not_supported = stats_.version_not_supported.load();
    return s;
  }

  void stop() {
    std::call_once(stop_once_, [this] {
      stop_source_.request_stop();
      wake();
      if (loop_thread_.joinable()) loop_thread_.join();
      {
        std::lock_guard lock(jobs_mu_);
        jobs_closed_ = true;
      }
      jobs_cv_.notify_all();
      for (auto& w : workers_) {
        if (w.joinable()) w.join();
      }
    });
  }

 private:
  enum class ConnState {
    kReading,     // waiting for (the rest of) a request; also idle between requests
    kWithWorker,  // a complete request is queued or being handled; the socket is not watched
    kWriting,     // a response is being written
    kLingering,   // response written, write side shut; discarding input until EOF
  };

  // Owned and touched only by the I/O thread.
  struct Connection {
    std::uint64_t id = 0;
    int fd = -1;
    std::string peer;
    ConnState state = ConnState::kReading;
    std::string in;  // received, not yet consumed
    HeadScan scan;
    std::optional<ParsedHead> head;  // set once the head is parsed, while the body arrives
    size_t body_start = 0;
    TimePoint idle_deadline{};
    // Orders idle connections: set from next_idle_seq_ each time the connection becomes idle (at
    // accept and after a keep-alive response), so the smallest value has been idle longest.
    std::uint64_t idle_seq = 0;
    TimePoint read_deadline{};  // valid while `in` holds part of a request
    std::string out;
    size_t out_pos = 0;
    bool close_after_write = false;
    TimePoint write_deadline{};
    TimePoint linger_deadline{};
    int requests = 0;
  };

  struct Job {
    std::uint64_t conn_id = 0;
    HttpRequest request;
    ResponseFraming framing;
  };

  struct Completion {
    std::uint64_t conn_id = 0;
    std::string bytes;
    bool close = false;
  };

  struct AtomicStats {
    std::atomic<std::uint64_t> connections_accepted{0}, connections_rejected{0},
        rejected_queue_full{0}, requests{0}, handler_errors{0}, head_timeouts{0}, body_timeouts{0},
        idle_closed{0}, idle_evicted{0}, write_timeouts{0}, bad_request{0}, length_required{0},
        payload_too_large{0}, expectation_failed{0}, headers_too_large{0}, version_not_supported{0};
  };

  void wake() {
    const std::uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(wake_fd_, &one, sizeof one);
  }

  // ---- Workers ----

  void worker_loop() {
    bool had_job = false;
    while (true) {
      Job job;
      {
        std::unique_lock lock(jobs_mu_);
        if (had_job) --busy_workers_;
        jobs_cv_.wait(lock, [&] { return jobs_closed_ || !jobs_.empty(); });
        if (jobs_.empty()) return;  // closed
        job = std::move(jobs_.front());
        jobs_.pop_front();
        ++busy_workers_;
        had_job = true;
      }
      const HttpResponse response = call_handler(job.request);
      // Once stopping, the I/O thread closes every connection after its response: say so.
      job.framing.close = job.framing.close || stop_source_.stop_requested();
      Completion done{
          .conn_id = job.conn_id,
          .bytes = serialize_response(response, job.framing, http_date(clock_.wall_now())),
          .close = job.framing.close};
      {
        std::lock_guard lock(completions_mu_);
        completions_.push_back(std::move(done));
      }
      wake();
    }
  }

  HttpResponse call_handler(const HttpRequest& request) {
    try {
      return handler_(request);
    } catch (const std::exception& e) {
      logger().error("inbox request handler threw; answered 500",
                     {{"path", std::string(request.path())}, {"error", e.what()}});
    } catch (...) {
      logger().error("inbox request handler threw a non-exception; answered 500",
                     {{"path", std::string(request.path())}});
    }
    ++stats_.handler_errors;
    return HttpResponse{.status = 500,
                        .headers = {{"Content-Type", "text/plain; charset=utf-8"}},
                        .body = "internal server error\n"};
  }

  // False when the request must be refused: max_queued_connections requests already wait beyond
  // what the free workers will take. Counting busy workers (not idle ones) means a worker that has
  // not reached its first wait yet still counts as free.
  bool try_enqueue(Job& job) {
    {
      std::lock_guard lock(jobs_mu_);
      const size_t capacity = static_cast<size_t>(limits_.workers) +
                              static_cast<size_t>(limits_.max_queued_connections);
      if (jobs_closed_ || jobs_.size() + static_cast<size_t>(busy_workers_) >= capacity) {
        return false;
      }
      jobs_.push_back(std::move(job));
    }
    jobs_cv_.notify_one();
    return true;
  }

  // ---- I/O thread ----

  void io_loop() {
    std::vector<pollfd> fds;
    std::vector<Connection*> polled;  // polled[i] is fds[i + 2]'s connection
    bool stopping = false;
    TimePoint stop_deadline{};
    TimePoint accept_paused_until{};
    while (true) {
      TimePoint now = clock_.now();
      if (!stopping && stop_source_.stop_requested()) {
        stopping = true;
        stop_deadline = now + limits_.stop_timeout;
        begin_stop();
      }
      if (stopping && (conns_.empty() || now >= stop_deadline)) break;

      fds.clear();
      polled.clear();
      // The earliest deadline to wake up for; TimePoint::max() = none. (A std::optional here trips
      // GCC 12's -Wmaybe-uninitialized at -O2.)
      TimePoint next = stopping ? stop_deadline : TimePoint::max();
      const auto consider = [&](TimePoint t) { next = std::min(next, t); };
      const bool accepting = !stopping && now >= accept_paused_until;
      fds.push_back({.fd = wake_fd_, .events = POLLIN, .revents = 0});
      fds.push_back({.fd = accepting ? listen_fd_ : -1, .events = POLLIN, .revents = 0});
      if (!stopping && !accepting) consider(accept_paused_until);
      for (auto& [id, conn] : conns_) {
        short events = 0;
        switch (conn->state) {
          case ConnState::kReading:
            events = POLLIN;
            if (conn->out_pos < conn->out.size()) events |= POLLOUT;  // 100 Continue
            consider(conn->in.empty() ? conn->idle_deadline : conn->read_deadline);
            break;
          case ConnState::kWithWorker:
            break;
          case ConnState::kWriting:
            events = POLLOUT;
            consider(conn->write_deadline);
            break;
          case ConnState::kLingering:
            events = POLLIN;
            consider(conn->linger_deadline);
            break;
        }
        if (events == 0) continue;
        fds.push_back({.fd = conn->fd, .events = events, .revents = 0});
        polled.push_back(conn.get());
      }
      int timeout_ms = -1;
      if (next != TimePoint::max()) {
        const auto left = std::chrono::ceil<milliseconds>(next - now).count();
        timeout_ms = static_cast<int>(std::clamp<long long>(left, 0, INT_MAX));
      }
      const int ready = ::poll(fds.data(), fds.size(), timeout_ms);
      if (ready < 0 && errno != EINTR) {
        logger().error("poll failed", {{"error", errno_text(errno)}});
        break;
      }
      now = clock_.now();
      if (ready > 0) {
        if (fds[0].revents != 0) {
          std::uint64_t count = 0;
          [[maybe_unused]] ssize_t n = ::read(wake_fd_, &count, sizeof count);
        }
        for (size_t i = 0; i < polled.size(); ++i) {
          const short revents = fds[i + 2].revents;
          if (revents != 0) on_socket_event(*polled[i], revents, now);
        }
        // After the socket events: a connection whose request just started arriving is no longer
        // idle, and accepting may close connections, which `polled` must not point to any more.
        if (fds[1].revents != 0) accept_connections(now, accept_paused_until);
      }
      take_completions(now);
      enforce_deadlines(now);
      close_marked();
    }
    for (auto& [id, conn] : conns_) ::close(conn->fd);
    conns_.clear();
    if (listen_fd_ >= 0) ::close(listen_fd_);
    listen_fd_ = -1;
  }

  // Stop taking work: no more accepts, queued requests and idle or half-read connections are
  // dropped unanswered; responses being written and handlers in progress get until stop_deadline.
  void begin_stop() {
    ::close(listen_fd_);
    listen_fd_ = -1;
    std::deque<Job> dropped;
    {
      std::lock_guard lock(jobs_mu_);
      dropped.swap(jobs_);
    }
    for (const Job& job : dropped) mark_close(job.conn_id);
    for (auto& [id, conn] : conns_) {
      if (conn->state == ConnState::kReading || conn->state == ConnState::kLingering) {
        mark_close(id);
      }
    }
    close_marked();
  }

  // Making room (why idle sockets alone cannot deny service): a client holds a connection slot by
  // connecting and sending nothing, for idle_timeout each time. When max_connections are open (or
  // accept() runs out of descriptors), a new connection closes the connection that has been idle
  // longest instead of being refused. Idle means no request in progress: accepted with no bytes
  // yet, or kept alive between requests -- state kReading with nothing received (empty lines
  // between requests are not a request) and no input waiting in the socket (a request that has
  // started to arrive but is not read yet). A connection mid-request, with a worker, writing a
  // response or lingering after an error response is never evicted. The evicted connection is
  // closed silently, as at idle_timeout (HTTP lets a server close an idle keep-alive connection at
  // any time; clients retry on a new one), and counted in idle_evicted. Only when no connection is
  // idle does the new one get 503.
  //
  // Idle connections, oldest first, for one accept round: built on the first eviction of the round
  // (O(n log n), and only when the server is full), then connections accepted in the round are
  // appended, being the youngest.
  struct EvictionOrder {
    bool built = false;
    std::deque<std::pair<std::uint64_t, std::uint64_t>> idle;  // (idle_seq, conn id)
  };

  static bool is_idle(const Connection& conn) {
    return conn.state == ConnState::kReading && conn.in.empty() && conn.out_pos == conn.out.size();
  }

  // Bytes the client sent that the server has not read yet.
  static bool has_unread_input(int fd) {
    int pending = 0;
    return ::ioctl(fd, FIONREAD, &pending) == 0 && pending > 0;
  }

  // Closes the longest-idle connection (see above); false if no connection is idle.
  bool evict_longest_idle(EvictionOrder& order) {
    if (!order.built) {
      for (const auto& [id, conn] : conns_) {
        if (is_idle(*conn)) order.idle.emplace_back(conn->idle_seq, id);
      }
      std::sort(order.idle.begin(), order.idle.end());
      order.built = true;
    }
    while (!order.idle.empty()) {
      const auto [seq, id] = order.idle.front();
      order.idle.pop_front();
      auto it = conns_.find(id);
      if (it == conns_.end()) continue;
      Connection& conn = *it->second;
      if (!is_idle(conn) || conn.idle_seq != seq || has_unread_input(conn.fd)) continue;
      ++stats_.idle_evicted;
      ::close(conn.fd);
      conns_.erase(it);
      return true;
    }
    return false;
  }

  // A connection waits in the listener's accept queue.
  bool connection_waiting() const {
    pollfd p{.fd = listen_fd_, .events = POLLIN, .revents = 0};
    return ::poll(&p, 1, 0) > 0 && (p.revents & POLLIN) != 0;
  }

  // REQUIRES: no pointer into conns_ is held (connections may be closed to make room).
  void accept_connections(TimePoint now, TimePoint& accept_paused_until) {
    close_marked();  // connections the socket events just ended free their slots first
    EvictionOrder eviction;
    for (int i = 0; i < kMaxAcceptsPerWake; ++i) {
      sockaddr_storage addr{};
      socklen_t len = sizeof addr;
      const int fd = ::accept4(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len,
                               SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        const int err = errno;
        if (err == EAGAIN || err == EWOULDBLOCK) return;
        if (err == EINTR || err == ECONNABORTED) continue;
        if (err == EMFILE || err == ENFILE) {
          // accept() fails for want of a descriptor before it looks at the queue: make room only
          // for a connection that is waiting. An idle connection's descriptor is the room; each
          // retry closes one and the round is bounded by kMaxAcceptsPerWake, so this cannot spin.
          if (!connection_waiting()) return;
          if (evict_longest_idle(eviction)) continue;
        }
        logger().warn("accept failed; pausing accepts", {{"error", errno_text(err)}});
        accept_paused_until = now + kAcceptPause;
        return;
      }
      if (conns_.size() >= static_cast<size_t>(limits_.max_connections) &&
          !evict_longest_idle(eviction)) {
        // Best effort: one non-blocking send, then close. Holding the socket to linger would
        // exceed the very bound being enforced.
        ++stats_.connections_rejected;
        const std::string bytes =
            serialize_response(busy_response("too many open connections"), {.close = true}, "");
        [[maybe_unused]] ssize_t n =
            ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        ::close(fd);
        continue;
      }
      ++stats_.connections_accepted;
      const int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      auto conn = std::make_unique<Connection>();
      conn->id = next_conn_id_++;
      conn->fd = fd;
      conn->peer = format_peer(addr);
      conn->idle_deadline = now + limits_.idle_timeout;
      conn->idle_seq = next_idle_seq_++;
      if (eviction.built) eviction.idle.emplace_back(conn->idle_seq, conn->id);
      conns_.emplace(conn->id, std::move(conn));
    }
  }

  static HttpResponse busy_response(std::string_view why) {
    return HttpResponse{
        .status = 503,
        .headers = {{"Retry-After", "1"}, {"Content-Type", "text/plain; charset=utf-8"}},
        .body = fmt::format("server busy: {}; retry later\n", why)};
  }

  void on_socket_event(Connection& conn, short revents, TimePoint now) {
    if (conn.state == ConnState::kReading && (revents & POLLOUT)) {
      if (!flush(conn)) return;
    }
    if (conn.state == ConnState::kWriting) {
      if ((revents & (POLLOUT | POLLERR | POLLHUP)) && flush(conn) &&
          conn.out_pos == conn.out.size()) {
        after_write(conn, now);
      }
      return;
    }
    if (revents & (POLLIN | POLLERR | POLLHUP)) {
      if (conn.state == ConnState::kLingering) {
        discard_input(conn);
      } else if (conn.state == ConnState::kReading) {
        read_input(conn, now);
      }
    }
  }

  // Writes what it can. False (and the connection marked to close) on a socket error.
  bool flush(Connection& conn) {
    while (conn.out_pos < conn.out.size()) {
      const ssize_t n = ::send(conn.fd, conn.out.data() + conn.out_pos,
                               conn.out.size() - conn.out_pos, MSG_NOSIGNAL);
      if (n > 0) {
        conn.out_pos += static_cast<size_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
      mark_close(conn.id);
      return false;
    }
    conn.out.clear();
    conn.out_pos = 0;
    return true;
  }

  void discard_input(Connection& conn) {
    char buf[kReadChunk];
    const ssize_t n = ::recv(conn.fd, buf, sizeof buf, 0);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
      mark_close(conn.id);
    }
  }

  void read_input(Connection& conn, TimePoint now) {
    char buf[kReadChunk];
    const ssize_t n = ::recv(conn.fd, buf, sizeof buf, 0);
    if (n < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) mark_close(conn.id);
      return;
    }
    if (n == 0) {  // the client closed; a partial request is abandoned with it
      mark_close(conn.id);
      return;
    }
    if (conn.in.empty()) conn.read_deadline = now + limits_.read_timeout;  // a request's 1st byte
    conn.in.append(buf, static_cast<size_t>(n));
    process_input(conn, now);
  }

  // Parses what `in` holds; dispatches a complete request or answers an error.
  void process_input(Connection& conn, TimePoint now) {
    if (!conn.head) {
      HttpError error;
      switch (scan_head(conn.in, conn.scan, limits_, error)) {
        case ScanResult::kIncomplete:
          if (conn.scan.lines == 0 && conn.scan.request_start == conn.in.size()) {
            // Only empty lines so far: not a request yet, so the idle clock still applies.
            conn.in.clear();
            conn.scan = {};
          }
          return;
        case ScanResult::kError:
          respond_error(conn, std::move(error), now);
          return;
        case ScanResult::kComplete:
          break;
      }
      // Without the final CRLF: every line in it ends in CRLF.
      const std::string_view head = std::string_view(conn.in).substr(
          conn.scan.request_start, conn.scan.pos - 2 - conn.scan.request_start);
      ParsedHead parsed;
      if (auto err = parse_head(head, limits_, parsed)) {
        respond_error(conn, std::move(*err), now);
        return;
      }
      parsed.request.peer = conn.peer;
      conn.body_start = conn.scan.pos;
      conn.head = std::move(parsed);
      const auto have = static_cast<std::int64_t>(conn.in.size() - conn.body_start);
      if (conn.head->expect_continue && have < conn.head->content_length) {
        conn.out += "HTTP/1.1 100 Continue\r\n\r\n";
        if (!flush(conn)) return;
      }
    }
    const auto need = static_cast<size_t>(conn.head->content_length);
    if (conn.in.size() - conn.body_start < need) return;

    Job job;
    job.conn_id = conn.id;
    job.request = std::move(conn.head->request);
    job.request.body = conn.in.substr(conn.body_start, need);
    job.request.stop = stop_source_.get_token();
    ++conn.requests;
    job.framing = ResponseFraming{
        .head_only = job.request.method == "HEAD",
        .close = !conn.head->keep_alive || conn.requests >= limits_.max_requests_per_connection,
        .keep_alive_header = conn.head->keep_alive_header};
    conn.in.erase(0, conn.body_start + need);  // what remains is the next (pipelined) request
    conn.head.reset();
    conn.scan = {};
    conn.body_start = 0;
    if (!try_enqueue(job)) {
      ++stats_.rejected_queue_full;
      start_write(conn,
                  serialize_response(busy_response("all workers busy"), {.close = true},
                                     http_date(clock_.wall_now())),
                  /*close=*/true, now);
      return;
    }
    ++stats_.requests;
    conn.state = ConnState::kWithWorker;
  }

  void respond_error(Connection& conn, HttpError error, TimePoint now) {
    switch (error.status) {
      case 400:
        ++stats_.bad_request;
        break;
      case 408:
        break;  // counted as a head or body timeout
      case 411:
        ++stats_.length_required;
        break;
      case 413:
        ++stats_.payload_too_large;
        break;
      case 417:
        ++stats_.expectation_failed;
        break;
      case 431:
        ++stats_.headers_too_large;
        break;
      case 505:
        ++stats_.version_not_supported;
        break;
      default:
        break;
    }
    logger().debug(
        "rejected request",
        {{"status", std::to_string(error.status)}, {"reason", error.message}, {"peer", conn.peer}});
    HttpResponse response{.status = error.status,
                          .headers = {{"Content-Type", "text/plain; charset=utf-8"}},
                          .body = error.message + "\n"};
    start_write(conn, serialize_response(response, {.close = true}, http_date(clock_.wall_now())),
                /*close=*/true, now);
  }

  void start_write(Connection& conn, std::string bytes, bool close, TimePoint now) {
    conn.out.erase(0, conn.out_pos);
    conn.out_pos = 0;
    conn.out += bytes;
    conn.close_after_write = close;
    conn.state = ConnState::kWriting;
    conn.write_deadline = now + limits_.write_timeout;
    if (flush(conn) && conn.out_pos == conn.out.size()) after_write(conn, now);
  }

  void after_write(Connection& conn, TimePoint now) {
    if (stop_source_.stop_requested()) {  // nothing more is read; no need to linger
      mark_close(conn.id);
      return;
    }
    if (conn.close_after_write) {
      ::shutdown(conn.fd, SHUT_WR);
      conn.state = ConnState::kLingering;
      conn.linger_deadline = now + kLingerTimeout;
      return;
    }
    conn.state = ConnState::kReading;
    conn.idle_deadline = now + limits_.idle_timeout;
    conn.idle_seq = next_idle_seq_++;
    if (!conn.in.empty()) {  // pipelined: its bytes are here already
      conn.read_deadline = now + limits_.read_timeout;
      process_input(conn, now);
    }
  }

  void take_completions(TimePoint now) {
    std::vector<Completion> done;
    {
      std::lock_guard lock(completions_mu_);
      done.swap(completions_);
    }
    for (Completion& c : done) {
      auto it = conns_.find(c.conn_id);
      if (it == conns_.end()) continue;  // closed meanwhile (stop)
      Connection& conn = *it->second;
      start_write(conn, std::move(c.bytes), c.close, now);
    }
  }

  void enforce_deadlines(TimePoint now) {
    for (auto& [id, conn] : conns_) {
      switch (conn->state) {
        case ConnState::kReading:
          if (conn->in.empty()) {
            if (now >= conn->idle_deadline) {
              ++stats_.idle_closed;
              mark_close(id);
            }
          } else if (now >= conn->read_deadline) {
            ++(conn->head ? stats_.body_timeouts : stats_.head_timeouts);
            respond_error(*conn,
                          {408, fmt::format("request not received within read_timeout ({} ms)",
                                            limits_.read_timeout.count())},
                          now);
          }
          break;
        case ConnState::kWriting:
          if (now >= conn->write_deadline) {
            ++stats_.write_timeouts;
            mark_close(id);
          }
          break;
        case ConnState::kLingering:
          if (now >= conn->linger_deadline) mark_close(id);
          break;
        case ConnState::kWithWorker:
          break;
      }
    }
  }

  void mark_close(std::uint64_t id) { to_close_.push_back(id); }

  void close_marked() {
    for (std::uint64_t id : to_close_) {
      auto it = conns_.find(id);
      if (it == conns_.end()) continue;
      ::close(it->second->fd);
      conns_.erase(it);
    }
    to_close_.clear();
  }

  // Constant after construction.
  const HttpServerLimits limits_;
  const HttpHandler handler_;
  Clock& clock_;
  const int port_;

  // I/O thread only.
  int listen_fd_;
  std::unordered_map<std::uint64_t, std::unique_ptr<Connection>> conns_;
  std::vector<std::uint64_t> to_close_;
  std::uint64_t next_conn_id_ = 1;
  std::uint64_t next_idle_seq_ = 1;

  const int wake_fd_;  // eventfd: workers and stop() wake the I/O thread
  std::stop_source stop_source_;
  std::once_flag stop_once_;
  AtomicStats stats_;

  std::mutex jobs_mu_;
  std::condition_variable jobs_cv_;
  std::deque<Job> jobs_;      // guarded by jobs_mu_
  int busy_workers_ = 0;      // running a handler; guarded by jobs_mu_
  bool jobs_closed_ = false;  // guarded by jobs_mu_

  std::mutex completions_mu_;
  std::vector<Completion> completions_;  // guarded by completions_mu_

  // Last: joined (by stop()) before the state above goes.
  std::jthread loop_thread_;
  std::vector<std::jthread> workers_;
};

namespace {

// "host:port" or "[v6]:port" -> host, port. Port: decimal 0..65535.
Result<std::pair<std::string, std::string>> split_listen(const std::string& listen) {
  const auto bad = [&](std::string_view why) {
    return Error{ErrorCode::kInvalidArgument,
                 fmt::format("invalid listen address \"{}\": {}", listen, why)};
  };
  std::string host;
  std::string port;
  if (!listen.empty() && listen.front() == '[') {
    const size_t close = listen.find(']');
    if (close == std::string::npos || close + 1 >= listen.size() || listen[close + 1] != ':') {
      return bad("expected [ipv6]:port");
    }
    host = listen.substr(1, close - 1);
    port = listen.substr(close + 2);
  } else {
    const size_t colon = listen.rfind(':');
    if (colon == std::string::npos) return bad("expected host:port");
    host = listen.substr(0, colon);
    port = listen.substr(colon + 1);
    if (host.find(':') != std::string::npos) return bad("write an IPv6 address as [addr]:port");
  }
  if (host.empty()) return bad("missing host");
  if (!all_digits(port) || port.size() > 5 || std::stoi(port) > 65535) {
    return bad("port must be a number 0..65535");
  }
  return std::pair{host, port};
}

Status validate(const HttpServerLimits& l) {
  const auto bad = [](std::string_view what) {
    return Error{ErrorCode::kInvalidArgument, fmt::format("http server limits: {}", what)};
  };
  if (l.workers < 1) return bad("workers must be at least 1");
  if (l.max_queued_connections < 0) return bad("max_queued_connections must be >= 0");
  if (l.max_connections < 1) return bad("max_connections must be at least 1");
  if (l.read_timeout.count() <= 0 || l.idle_timeout.count() <= 0 || l.write_timeout.count() <= 0 ||
      l.stop_timeout.count() < 0) {
    return bad("timeouts must be positive");
  }
  if (l.max_header_bytes < 64) return bad("max_header_bytes must be at least 64");
  if (l.max_headers < 1) return bad("max_headers must be at least 1");
  if (l.max_body_bytes < 0) return bad("max_body_bytes must be >= 0");
  if (l.max_requests_per_connection < 1) return bad("max_requests_per_connection must be >= 1");
  return {};
}

// A bound, listening, non-blocking socket.
Result<int> open_listener(const std::string& listen) {
  auto parts = split_listen(listen);
  if (!parts) return parts.error();
  const auto& [host, port] = *parts;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  if (const int rc = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &found); rc != 0) {
    return Error{
        ErrorCode::kInvalidArgument,
        fmt::format("listen address \"{}\": cannot resolve host: {}", listen, gai_strerror(rc))};
  }
  std::string last_error = "no address";
  int fd = -1;
  for (addrinfo* ai = found; ai != nullptr; ai = ai->ai_next) {
    fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
      last_error = errno_text(errno);
      continue;
    }
    const int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && ::listen(fd, SOMAXCONN) == 0) break;
    last_error = errno_text(errno);
    ::close(fd);
    fd = -1;
  }
  ::freeaddrinfo(found);
  if (fd < 0) {
    return Error{ErrorCode::kUnavailable,
                 fmt::format("cannot listen on \"{}\": {}", listen, last_error)};
  }
  return fd;
}

int bound_port(int fd) {
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return 0;
  if (addr.ss_family == AF_INET) return ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
  if (addr.ss_family == AF_INET6) return ntohs(reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port);
  return 0;
}

}  // namespace

Result<std::unique_ptr<HttpServer>> HttpServer::start(const std::string& listen,
                                                      const HttpServerLimits& limits,
                                                      HttpHandler handler, Clock& clock) {
  if (auto ok = validate(limits); !ok) return ok.error();
  RELAY_CHECK(handler != nullptr, "HttpServer::start needs a handler");
  auto fd = open_listener(listen);
  if (!fd) return fd.error();
  const int wake_fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_fd < 0) {
    const std::string why = errno_text(errno);
    ::close(*fd);
    return Error{ErrorCode::kUnavailable, fmt::format("eventfd failed: {}", why)};
  }
  auto impl =
      std::make_unique<Impl>(limits, std::move(handler), clock, *fd, wake_fd, bound_port(*fd));
  impl->run();
  logger().info("inbox http listening",
                {{"listen", listen}, {"port", std::to_string(impl->port())}});
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
}

HttpServer::HttpServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
HttpServer::~HttpServer() { stop(); }
int HttpServer::port() const { return impl_->port(); }
HttpServerStats HttpServer::stats() const { return impl_->stats(); }
void HttpServer::stop() { impl_->stop(); }

}  // namespace relay::inbox
