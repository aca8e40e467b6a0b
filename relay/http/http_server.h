#pragma once
// HttpServer: relay's one HTTP/1.1 server (the inbox, the ops endpoints). Every read has a
// deadline, every buffer and queue a bound, so a slow or hostile client costs a connection slot
// but never a worker. The parts: request_parser.h (framing and every per-request bound and
// rejection, a pure function), listener.h (bind/accept), response_serializer.h, and here the I/O
// loop with its connection bounds and deadlines, and the handler threads.
//
// Threads: one I/O thread owns the listener and every socket (non-blocking, poll()). It reads each
// request in full -- head and body -- before a worker sees it, writes every response, and enforces
// the deadlines. `workers` handler threads only run the handler: they never touch a socket.
//
// Policy (what a client sees), beside the parser's rejections (request_parser.h), each answered
// with its status and the connection closed:
//  - read_timeout is a deadline for the whole request (head and body) counted from the request's
//    first byte, not a per-recv() timeout: a client trickling bytes gets 408 and is closed.
//  - A connection that sends nothing for idle_timeout (new or keep-alive) is closed silently.
//  - Expect: 100-continue -> "100 Continue" once the head is accepted, before the body is read;
//    a request that would be rejected gets its final status instead. Other Expect values -> 417.
//  - A complete request that finds max_queued_connections requests already waiting for a worker
//    (all workers busy) gets 503 with Retry-After: 1 and the connection is closed. (503, not 429:
//    the server is overloaded; it is not this client's rate.)
//  - A new connection that finds max_connections open closes the connection that has been idle
//    longest -- no request in progress: accepted and silent, or kept alive between requests --
//    silently, as at idle_timeout, so idle sockets alone cannot lock clients out. Only if none is
//    idle (each is mid-request, with a worker, or being answered) does the new connection get the
//    same 503, and is closed. accept() failing for want of descriptors also closes an idle one.
//  - Keep-alive per HTTP/1.1 (HTTP/1.0 only with "Connection: keep-alive"); "Connection: close" is
//    honoured; after max_requests_per_connection responses the server sends Connection: close.
//    Pipelined requests are served in order.
//  - A handler that throws -> 500 (logged). Server-made error responses always close the
//    connection, after a short lingering close so the client can read them.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <stop_token>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "relay/common/clock.h"
#include "relay/common/result.h"
#include "relay/http/message.h"
#include "relay/http/request_parser.h"

namespace relay::http {

// Runs on a worker thread, concurrently with other calls: it must be thread-safe. It may throw
// (the client gets 500); it should watch request.stop if it can block for long.
using HttpHandler = std::function<HttpResponse(const HttpRequest&)>;

struct HttpServerLimits {
  static constexpr int kDefaultWorkers = 16;
  static constexpr int kDefaultMaxQueuedConnections = 64;
  static constexpr int kDefaultMaxConnections = 1024;
  static constexpr std::chrono::milliseconds kDefaultReadTimeout{10'000};
  static constexpr std::chrono::milliseconds kDefaultIdleTimeout{30'000};
  static constexpr std::chrono::milliseconds kDefaultWriteTimeout{10'000};
  static constexpr std::chrono::milliseconds kDefaultStopTimeout{5'000};
  static constexpr std::int64_t kDefaultMaxHeaderBytes = RequestLimits::kDefaultMaxHeaderBytes;
  static constexpr int kDefaultMaxHeaders = RequestLimits::kDefaultMaxHeaders;
  static constexpr std::int64_t kDefaultMaxBodyBytes = RequestLimits::kDefaultMaxBodyBytes;
  static constexpr int kDefaultMaxRequestsPerConnection = 1000;

  int workers = kDefaultWorkers;  // handler threads, >= 1
  // Complete requests (one per connection) waiting for a free worker; beyond: 503. May be 0.
  int max_queued_connections = kDefaultMaxQueuedConnections;
  // Open sockets; beyond: the longest-idle connection is closed, or 503 at accept if none is idle.
  int max_connections = kDefaultMaxConnections;
  std::chrono::milliseconds read_timeout = kDefaultReadTimeout;    // whole request, from 1st byte
  std::chrono::milliseconds idle_timeout = kDefaultIdleTimeout;    // no bytes of a next request
  std::chrono::milliseconds write_timeout = kDefaultWriteTimeout;  // whole response
  // stop() waits this long for handlers in progress to return before closing their connections.
  std::chrono::milliseconds stop_timeout = kDefaultStopTimeout;
  std::int64_t max_header_bytes = kDefaultMaxHeaderBytes;  // request line + header lines
  int max_headers = kDefaultMaxHeaders;                    // header lines per request
  std::int64_t max_body_bytes = kDefaultMaxBodyBytes;      // Content-Length limit
  int max_requests_per_connection = kDefaultMaxRequestsPerConnection;

  RequestLimits request_limits() const {
    return {.max_header_bytes = max_header_bytes,
            .max_headers = max_headers,
            .max_body_bytes = max_body_bytes};
  }
};

// A snapshot of the server's counters (monotonic since start) for metrics.
struct HttpServerStats {
  std::uint64_t connections_accepted = 0;
  std::uint64_t connections_rejected = 0;  // 503 at accept: max_connections open
  std::uint64_t rejected_queue_full = 0;   // 503: max_queued_connections requests waiting
  std::uint64_t requests = 0;              // complete requests handed to the handler
  std::uint64_t handler_errors = 0;        // handler threw -> 500
  std::uint64_t head_timeouts = 0;         // 408: head incomplete at read_timeout
  std::uint64_t body_timeouts = 0;         // 408: body incomplete at read_timeout
  std::uint64_t idle_closed = 0;           // closed silently after idle_timeout
  std::uint64_t idle_evicted = 0;          // idle, closed silently to make room at max_connections
  std::uint64_t write_timeouts = 0;        // response not written within write_timeout
  // Error responses the server produced itself, by reason.
  std::uint64_t bad_request = 0;            // 400
  std::uint64_t length_required = 0;        // 411 (Transfer-Encoding)
  std::uint64_t payload_too_large = 0;      // 413
  std::uint64_t expectation_failed = 0;     // 417
  std::uint64_t headers_too_large = 0;      // 431 (bytes or count)
  std::uint64_t version_not_supported = 0;  // 505
};

// Thread-safe: port(), stats() and stop() may be called from any thread.
class HttpServer {
 public:
  // Binds `listen` ("host:port", "[v6addr]:port"; port 0 picks a free one) and starts the I/O
  // thread and the workers. `clock` (SystemClock in production) gives deadlines and the Date
  // header; poll() waits in real time, so it must track real time. It must outlive the server.
  // `name` is the log component and starts the server's own messages ("inbox http listening").
  // kInvalidArgument for a malformed address or limits, kUnavailable when the address cannot be
  // bound (e.g. in use), both naming the address.
  static Result<std::unique_ptr<HttpServer>> start(const std::string& listen,
                                                   const HttpServerLimits& limits,
                                                   HttpHandler handler, Clock& clock,
                                                   const std::string& name = "http");
  ~HttpServer();  // stop()
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  int port() const;
  HttpServerStats stats() const;

  // Closes the listener, requests stop on every in-progress request's stop token, closes idle and
  // reading connections and drops queued requests unanswered; waits up to stop_timeout for
  // in-progress handlers (writing their responses with Connection: close), then closes every
  // connection and joins the threads (a handler that ignores its stop token delays only the
  // join). Idempotent. REQUIRES: not called from a handler (it joins the workers).
  void stop();

 private:
  class Impl;
  explicit HttpServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace relay::http
