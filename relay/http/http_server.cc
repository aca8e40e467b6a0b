#include "relay/http/http_server.h"

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
#include <deque>
#include <exception>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <variant>

#include "relay/common/check.h"
#include "relay/common/log.h"
#include "relay/common/time_format.h"
#include "relay/http/listener.h"
#include "relay/http/response_serializer.h"

namespace relay::http {
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

std::string errno_text(int err) { return std::strerror(err); }

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

}  // namespace

class HttpServer::Impl {
 public:
  Impl(const HttpServerLimits& limits, HttpHandler handler, Clock& clock,
       std::unique_ptr<Listener> listener, int wake_fd, const std::string& name)
      : limits_(limits),
        request_limits_(limits.request_limits()),
        handler_(std::move(handler)),
        clock_(clock),
        name_(name),
        log_(name),
        port_(listener->port()),
        listener_(std::move(listener)),
        wake_fd_(wake_fd) {}
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;
  ~Impl() {
    stop();
    ::close(wake_fd_);
  }

  void run() {
    loop_thread_ = std::jthread([this] { io_loop(); });
    for (int i = 0; i < limits_.workers; ++i) {
      workers_.emplace_back([this] { worker_loop(); });
    }
  }

  int port() const { return port_; }
  const Logger& logger() const { return log_; }

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
    explicit Connection(const RequestLimits& limits) : parser(limits) {}
    std::uint64_t id = 0;
    int fd = -1;
    std::string peer;
    ConnState state = ConnState::kReading;
    std::string in;              // received, not yet consumed
    RequestParser parser;        // resumes over `in` as it grows
    bool head_complete = false;  // `in` holds a whole accepted head; its body is arriving
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
      Completion done{.conn_id = job.conn_id,
                      .bytes = serialize_response(response, job.framing,
                                                  format_http_date(clock_.wall_now()), log_),
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
      log_.error(fmt::format("{} request handler threw; answered 500", name_),
                 {{"path", std::string(request.path())}, {"error", e.what()}});
    } catch (...) {
      log_.error(fmt::format("{} request handler threw a non-exception; answered 500", name_),
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
      fds.push_back({.fd = accepting ? listener_->fd() : -1, .events = POLLIN, .revents = 0});
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
    listener_->close();
  }

  // Stop taking work: no more accepts, queued requests and idle or half-read connections are
  // dropped unanswered; responses being written and handlers in progress get until stop_deadline.
  void begin_stop() {
    listener_->close();
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

  // REQUIRES: no pointer into conns_ is held (connections may be closed to make room).
  void accept_connections(TimePoint now, TimePoint& accept_paused_until) {
    close_marked();  // connections the socket events just ended free their slots first
    EvictionOrder eviction;
    for (int i = 0; i < kMaxAcceptsPerWake; ++i) {
      Listener::Accepted accepted = listener_->accept();
      const int fd = accepted.fd;
      if (fd < 0) {
        const int err = accepted.error;
        if (err == EAGAIN || err == EWOULDBLOCK) return;
        if (err == EINTR || err == ECONNABORTED) continue;
        if (err == EMFILE || err == ENFILE) {
          // accept() fails for want of a descriptor before it looks at the queue: make room only
          // for a connection that is waiting. An idle connection's descriptor is the room; each
          // retry closes one and the round is bounded by kMaxAcceptsPerWake, so this cannot spin.
          if (!listener_->connection_waiting()) return;
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
        const std::string bytes = serialize_response(busy_response("too many open connections"),
                                                     {.close = true}, "", log_);
        [[maybe_unused]] ssize_t n =
            ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        ::close(fd);
        continue;
      }
      ++stats_.connections_accepted;
      const int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      auto conn = std::make_unique<Connection>(request_limits_);
      conn->id = next_conn_id_++;
      conn->fd = fd;
      conn->peer = std::move(accepted.peer);
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
    ParseResult parsed = conn.parser.parse(conn.in);
    if (auto* error = std::get_if<ParseError>(&parsed)) {
      respond_error(conn, std::move(*error), now);
      return;
    }
    if (const auto* more = std::get_if<NeedMore>(&parsed)) {
      if (more->only_empty_lines) {
        // Only empty lines so far: not a request yet, so the idle clock still applies.
        conn.in.clear();
        conn.parser.reset();
      } else if (more->head_complete && !conn.head_complete) {
        conn.head_complete = true;
        if (more->expect_continue) {
          conn.out += "HTTP/1.1 100 Continue\r\n\r\n";
          flush(conn);
        }
      }
      return;
    }
    Complete& done = std::get<Complete>(parsed);
    Job job;
    job.conn_id = conn.id;
    job.request = std::move(done.request);
    job.request.peer = conn.peer;
    job.request.stop = stop_source_.get_token();
    ++conn.requests;
    job.framing = ResponseFraming{
        .head_only = job.request.method == "HEAD",
        .close = !done.keep_alive || conn.requests >= limits_.max_requests_per_connection,
        .keep_alive_header = done.keep_alive_header};
    conn.in.erase(0, done.consumed);  // what remains is the next (pipelined) request
    conn.head_complete = false;
    if (!try_enqueue(job)) {
      ++stats_.rejected_queue_full;
      start_write(conn,
                  serialize_response(busy_response("all workers busy"), {.close = true},
                                     format_http_date(clock_.wall_now()), log_),
                  /*close=*/true, now);
      return;
    }
    ++stats_.requests;
    conn.state = ConnState::kWithWorker;
  }

  void respond_error(Connection& conn, ParseError error, TimePoint now) {
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
        {{"status", std::to_string(error.status)}, {"reason", error.reason}, {"peer", conn.peer}});
    HttpResponse response{.status = error.status,
                          .headers = {{"Content-Type", "text/plain; charset=utf-8"}},
                          .body = error.reason + "\n"};
    start_write(
        conn,
        serialize_response(response, {.close = true}, format_http_date(clock_.wall_now()), log_),
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
            ++(conn->head_complete ? stats_.body_timeouts : stats_.head_timeouts);
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
  const RequestLimits request_limits_;
  const HttpHandler handler_;
  Clock& clock_;
  const std::string name_;
  const Logger log_;
  const int port_;

  // I/O thread only.
  std::unique_ptr<Listener> listener_;
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

Result<std::unique_ptr<HttpServer>> HttpServer::start(const std::string& listen,
                                                      const HttpServerLimits& limits,
                                                      HttpHandler handler, Clock& clock,
                                                      const std::string& name) {
  if (auto ok = validate(limits); !ok) return ok.error();
  RELAY_CHECK(handler != nullptr, "HttpServer::start needs a handler");
  auto listener = Listener::open(listen);
  if (!listener) return listener.error();
  const int wake_fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_fd < 0) {
    return Error{ErrorCode::kUnavailable, fmt::format("eventfd failed: {}", errno_text(errno))};
  }
  auto impl = std::make_unique<Impl>(limits, std::move(handler), clock, std::move(*listener),
                                     wake_fd, name);
  impl->run();
  impl->logger().info(fmt::format("{} http listening", name),
                      {{"listen", listen}, {"port", std::to_string(impl->port())}});
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
}

HttpServer::HttpServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
HttpServer::~HttpServer() { stop(); }
int HttpServer::port() const { return impl_->port(); }
HttpServerStats HttpServer::stats() const { return impl_->stats(); }
void HttpServer::stop() { impl_->stop(); }

}  // namespace relay::http
