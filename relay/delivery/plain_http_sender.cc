#include "relay/delivery/plain_http_sender.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <utility>

#include "relay/common/version.h"
#include "relay/delivery/classify.h"
#include "relay/delivery/http_response_parser.h"
#include "relay/delivery/http_sender_factory.h"

namespace relay::delivery {

namespace {

using SteadyClock = std::chrono::steady_clock;
using std::chrono::duration_cast;
using std::chrono::microseconds;
using std::chrono::milliseconds;

constexpr std::size_t kReadBufferBytes = 16 * 1024;
// A socket timeout already set within this of the time left is left alone: re-arming it before
// every call would cost a system call per request.
constexpr microseconds kTimeoutSlack{5000};
// A connect waits in slices this long so that stop() ends it promptly (shutdown() does not wake
// a connect in progress).
constexpr milliseconds kConnectSlice{50};

std::string host_header(const Endpoint& endpoint) {
  const bool ipv6 = endpoint.host.find(':') != std::string::npos;
  const std::string host = ipv6 ? "[" + endpoint.host + "]" : endpoint.host;
  return endpoint.port == 80 ? host : fmt::format("{}:{}", host, endpoint.port);
}

}  // namespace

// How one write-and-read on one connection ended.
struct PlainHttpSender::Try {
  DeliveryOutcome outcome;
  // The kept-alive connection ended before any response byte: worth one more try on a new one.
  bool closed_before_response = false;
};

Result<std::unique_ptr<PlainHttpSender>> PlainHttpSender::create(
    const config::SubscriptionConfig& sub, Clock& clock) {
  auto signers = check_subscription_and_make_signers(sub);
  if (!signers) return signers.error();
  if (sub.endpoint.tls) {
    return Error{
        ErrorCode::kInvalidArgument,
        fmt::format("subscription \"{}\": endpoint: https:// needs the TLS sender", sub.name)};
  }
  return std::unique_ptr<PlainHttpSender>(new PlainHttpSender(sub, clock, std::move(*signers)));
}

PlainHttpSender::PlainHttpSender(const config::SubscriptionConfig& sub, Clock& clock,
                                 std::vector<Signer> signers)
    : sub_(sub),
      clock_(clock),
      signers_(std::move(signers)),
      context_(request_context(sub, signers_)),
      request_line_(fmt::format("POST {} HTTP/1.1\r\nHost: {}\r\n", sub.endpoint.path,
                                host_header(sub.endpoint))),
      snippet_limit_(static_cast<std::size_t>(std::max<std::int64_t>(sub.max_response_bytes, 0))),
      buffer_(kReadBufferBytes) {}

PlainHttpSender::~PlainHttpSender() { close_connection(); }

void PlainHttpSender::stop() {
  std::lock_guard lock(mu_);
  stop_flag_ = true;
  // Wakes a blocking send or recv on the sending thread; it sees the flag and gives up.
  if (fd_ >= 0) ::shutdown(fd_, SHUT_RDWR);
}

DeliveryOutcome PlainHttpSender::send(const Event& event, int attempt) {
  return post(build_request(event, attempt, clock_.wall_now(), context_));
}

DeliveryOutcome PlainHttpSender::send_batch(std::span<const BatchItem> items) {
  return post(build_batch_request(items, clock_.wall_now(), context_));
}

void PlainHttpSender::close_connection() {
  std::lock_guard lock(mu_);
  if (fd_ < 0) return;
  ::close(fd_);
  fd_ = -1;
}

bool PlainHttpSender::idle_connection_usable() const {
  // Nothing to read and not closed: EAGAIN. 0 is the consumer's FIN (it closed the idle
  // connection); bytes are something it sent unasked (e.g. a 408 before closing).
  char byte = 0;
  const ssize_t n = ::recv(fd_, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

std::optional<DeliveryOutcome> PlainHttpSender::connect() {
  const auto canceled = [&] {
    return transport_failure(TransportFailure::kCanceled, sub_.timeout, sub_.connect_timeout);
  };
  const auto failed = [&](TransportFailure f) {
    return transport_failure(f, sub_.timeout, sub_.connect_timeout);
  };
  const auto deadline = SteadyClock::now() + sub_.connect_timeout;

  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const std::string port = std::to_string(sub_.endpoint.port);
  if (::getaddrinfo(sub_.endpoint.host.c_str(), port.c_str(), &hints, &found) != 0) {
    return failed(TransportFailure::kConnect);
  }
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> addresses(found, &::freeaddrinfo);

  bool timed_out = false;
  for (const addrinfo* a = addresses.get(); a != nullptr; a = a->ai_next) {
    const int fd =
        ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    {
      // stop() sets the flag under mu_: either it sees this descriptor, or this sees the flag.
      std::lock_guard lock(mu_);
      if (stop_flag_) {
        ::close(fd);
        return canceled();
      }
      fd_ = fd;
    }
    bool connected = ::connect(fd, a->ai_addr, a->ai_addrlen) == 0;
    if (!connected && errno == EINPROGRESS) {
      while (!stop_flag_) {
        const auto left = duration_cast<milliseconds>(deadline - SteadyClock::now());
        if (left.count() <= 0) {
          timed_out = true;
          break;
        }
        pollfd p{.fd = fd, .events = POLLOUT, .revents = 0};
        const int ready = ::poll(&p, 1, static_cast<int>(std::min(left, kConnectSlice).count()));
        if (ready < 0 && errno != EINTR) break;
        if (ready > 0) {
          int err = 0;
          socklen_t len = sizeof err;
          connected = ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0;
          break;
        }
      }
    }
    if (stop_flag_) {
      close_connection();
      return canceled();
    }
    if (connected) {
      const int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      // Blocking from here on, with SO_RCVTIMEO/SO_SNDTIMEO bounding each call: a blocking recv
      // waits in the kernel, where a non-blocking one would add a poll per response.
      ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
      rcv_timeout_ = microseconds{0};
      snd_timeout_ = microseconds{0};
      ++connections_opened_;
      return std::nullopt;
    }
    close_connection();
    if (timed_out) break;
  }
  return failed(timed_out ? TransportFailure::kConnectTimeout : TransportFailure::kConnect);
}

bool PlainHttpSender::arm_timeout(int option, SteadyClock::time_point deadline) {
  const auto left = duration_cast<microseconds>(deadline - SteadyClock::now());
  if (left.count() <= 0) return false;
  microseconds& armed = option == SO_RCVTIMEO ? rcv_timeout_ : snd_timeout_;
  // 0 means "never" to the kernel, so an unset timeout is always armed. One armed shorter than
  // the time left is kept: the call may return early, and the caller re-arms then.
  if (armed.count() > 0 && armed <= left + kTimeoutSlack) return true;
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(left.count() / 1'000'000);
  tv.tv_usec = static_cast<suseconds_t>(left.count() % 1'000'000);
  ::setsockopt(fd_, SOL_SOCKET, option, &tv, sizeof tv);
  armed = left;
  return true;
}

PlainHttpSender::Try PlainHttpSender::exchange(const std::string& head, const std::string& body,
                                               SteadyClock::time_point deadline) {
  const auto failed = [&](TransportFailure f, bool before_response = false) {
    close_connection();
    if (stop_flag_) f = TransportFailure::kCanceled;
    return Try{transport_failure(f, sub_.timeout, sub_.connect_timeout),
               before_response && f != TransportFailure::kCanceled};
  };

  // The whole request in one call: head and body leave together, and the consumer wakes once.
  iovec parts[2] = {{const_cast<char*>(head.data()), head.size()},
                    {const_cast<char*>(body.data()), body.size()}};
  std::size_t sent = 0;
  const std::size_t total = head.size() + body.size();
  while (sent < total) {
    if (stop_flag_) return failed(TransportFailure::kCanceled);
    if (!arm_timeout(SO_SNDTIMEO, deadline)) return failed(TransportFailure::kWriteTimeout);
    iovec rest[2];
    int count = 0;
    if (sent < head.size()) {
      rest[count++] = {const_cast<char*>(head.data()) + sent, head.size() - sent};
      if (!body.empty()) rest[count++] = parts[1];
    } else {
      const std::size_t off = sent - head.size();
      rest[count++] = {const_cast<char*>(body.data()) + off, body.size() - off};
    }
    msghdr msg{};
    msg.msg_iov = rest;
    msg.msg_iovlen = static_cast<decltype(msg.msg_iovlen)>(count);
    const ssize_t n = ::sendmsg(fd_, &msg, MSG_NOSIGNAL);
    if (n >= 0) {
      sent += static_cast<std::size_t>(n);
      continue;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      if (SteadyClock::now() >= deadline) return failed(TransportFailure::kWriteTimeout);
      snd_timeout_ = microseconds{0};  // woke early (or the armed time was too short): re-arm
      continue;
    }
    return failed(TransportFailure::kWriteClosed, true);
  }

  std::string snippet;
  std::uint64_t discarded = 0;
  HttpResponseParser parser([&](std::string_view bytes) {
    const std::size_t keep = std::min(bytes.size(), snippet_limit_ - snippet.size());
    snippet.append(bytes.data(), keep);
    discarded += bytes.size() - keep;
  });
  bool keep_connection = true;
  while (!parser.complete()) {
    if (stop_flag_) return failed(TransportFailure::kCanceled);
    if (!arm_timeout(SO_RCVTIMEO, deadline)) return failed(TransportFailure::kReadTimeout);
    const ssize_t n = ::recv(fd_, buffer_.data(), buffer_.size(), 0);
    if (n > 0) {
      const auto bytes = static_cast<std::size_t>(n);
      const std::size_t used = parser.feed(std::string_view(buffer_.data(), bytes));
      if (parser.state() == HttpResponseParser::State::kError) {
        close_connection();
        return Try{retryable_failure("invalid HTTP response: " + parser.error())};
      }
      // Bytes after the response were not asked for: the connection is out of step.
      if (used < bytes) keep_connection = false;
      if (!parser.complete() && discarded > kDrainBytes) {
        keep_connection = false;  // too long to drain: the status is known, the rest is dropped
        break;
      }
      continue;
    }
    if (n == 0) {
      parser.finish();
      if (parser.complete()) {
        keep_connection = false;
        break;
      }
      return failed(TransportFailure::kReadClosed, !parser.started());
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      if (SteadyClock::now() >= deadline) return failed(TransportFailure::kReadTimeout);
      rcv_timeout_ = microseconds{0};  // armed shorter than the time left: re-arm
      continue;
    }
    return failed(TransportFailure::kReadClosed, !parser.started());
  }

  const ResponseHead& response = parser.head();
  if (response.connection_close || parser.framing() == BodyFraming::kUntilClose) {
    keep_connection = false;
  }
  if (!keep_connection) close_connection();

  Try done;
  DeliveryOutcome& outcome = done.outcome;
  outcome.kind = classify_status(response.status);
  outcome.status = response.status;
  if (outcome.kind != DeliveryOutcome::Kind::kDelivered) {
    outcome.error = fmt::format("HTTP {}", response.status);
  }
  outcome.response_snippet = std::move(snippet);
  if (response.retry_after) {
    // The retry policy caps it by max_backoff (pipeline/retry_policy.h).
    outcome.retry_after = parse_retry_after(*response.retry_after, clock_.wall_now());
  }
  return done;
}

DeliveryOutcome PlainHttpSender::post(const OutgoingRequest& out) {
  std::string head = request_line_;
  std::size_t size = head.size() + out.content_type.size() + 128;
  for (const auto& [name, value] : out.headers) size += name.size() + value.size() + 4;
  head.reserve(size);
  for (const auto& [name, value] : out.headers) {
    head.append(name).append(": ").append(value).append("\r\n");
  }
  head.append("Content-Type: ").append(out.content_type).append("\r\n");
  head.append("Content-Length: ").append(std::to_string(out.body.size())).append("\r\n");
  head.append("Accept: */*\r\nUser-Agent: relay/").append(kVersion).append("\r\n\r\n");

  std::optional<SteadyClock::time_point> deadline;
  for (int attempt = 0;; ++attempt) {
    if (stop_flag_) {
      return transport_failure(TransportFailure::kCanceled, sub_.timeout, sub_.connect_timeout);
    }
    bool reused = fd_ >= 0;
    if (reused && !idle_connection_usable()) {
      close_connection();
      reused = false;
    }
    if (!reused) {
      if (auto failure = connect()) return *failure;
    }
    // One deadline for the request, from when its first connection was ready; the retry on a new
    // connection shares it.
    if (!deadline) deadline = SteadyClock::now() + sub_.timeout;
    Try result = exchange(head, out.body, *deadline);
    if (result.closed_before_response && reused && attempt == 0) continue;
    return std::move(result.outcome);
  }
}

}  // namespace relay::delivery
