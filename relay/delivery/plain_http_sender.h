#pragma once
// PlainHttpSender: HttpSender for http:// endpoints over its own lean HTTP/1.1 client, with the
// outcomes of HttplibSender (classify.h) at fewer system calls per request: on a kept-alive
// connection a request costs one recv(MSG_PEEK) to see that the consumer has not closed the idle
// connection, one sendmsg for the whole request (head and body in one TCP segment when it fits),
// and one blocking recv per segment of the response. Not thread-safe except stop(); give each lane
// its own.
//
//  - One keep-alive TCP connection (TCP_NODELAY), opened on first use with a non-blocking connect
//    bounded by connect_timeout. A connection is closed after a response with "Connection: close",
//    an HTTP/1.0 response, a body that ran until close, a malformed response, a timeout, or a body
//    longer than max_response_bytes + kDrainBytes.
//  - One deadline for the whole request, write and response: `timeout` after the connection is
//    ready. A consumer that trickles bytes cannot stretch it.
//  - A kept-alive connection that ends (EOF or reset) before any byte of a response is retried
//    once on a new connection; the new connection's failure is the outcome.
//  - The body's first max_response_bytes are kept as response_snippet; the rest is read and
//    discarded (up to kDrainBytes, then the connection is closed instead).
//  - The request carries Host, the request builder's headers, Content-Type, Content-Length,
//    Accept: */* and User-Agent: relay/<version>; no Expect.
// I/O deadlines use the steady clock (the socket waits are in real time); the injected Clock gives
// the wall time for webhook-timestamp and Retry-After dates.

#include <atomic>
#include <chrono>
#include <cstddef>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "relay/common/clock.h"
#include "relay/common/result.h"
#include "relay/config/config.h"
#include "relay/delivery/request_builder.h"
#include "relay/delivery/sender.h"
#include "relay/delivery/signer.h"

namespace relay::delivery {

class PlainHttpSender final : public HttpSender {
 public:
  // Body bytes past max_response_bytes that are read and thrown away to keep the connection; a
  // longer body closes the connection instead (its status still counts).
  static constexpr std::size_t kDrainBytes = 1 << 20;

  // Returns kInvalidArgument, naming the subscription and the key, for an unset endpoint or a bad
  // signing secret (the errors of HttplibSender::create), or an https:// endpoint. Makes no
  // connection.
  static Result<std::unique_ptr<PlainHttpSender>> create(const config::SubscriptionConfig& sub,
                                                         Clock& clock);
  ~PlainHttpSender() override;
  PlainHttpSender(const PlainHttpSender&) = delete;
  PlainHttpSender& operator=(const PlainHttpSender&) = delete;

  DeliveryOutcome send(const Event& event, int attempt) override;
  DeliveryOutcome send_batch(std::span<const BatchItem> items) override;
  // Aborts an in-flight send (it returns kRetryable "request canceled") and every later one.
  void stop() override;

  // For tests: connections opened so far.
  int connections_opened() const { return connections_opened_; }

 private:
  struct Try;

  PlainHttpSender(const config::SubscriptionConfig& sub, Clock& clock, std::vector<Signer> signers);
  DeliveryOutcome post(const OutgoingRequest& request);
  // Opens connection_fd_; returns a failure outcome, or nullopt when connected.
  std::optional<DeliveryOutcome> connect();
  // A kept-alive connection is still open and has nothing unread.
  bool idle_connection_usable() const;
  void close_connection();
  // Writes the request and reads the response on the open connection, by `deadline`.
  Try exchange(const std::string& head, const std::string& body,
               std::chrono::steady_clock::time_point deadline);
  // Sets SO_RCVTIMEO or SO_SNDTIMEO so that a blocking call returns by about `deadline`; false
  // when the deadline has passed.
  bool arm_timeout(int option, std::chrono::steady_clock::time_point deadline);

  const config::SubscriptionConfig sub_;
  Clock& clock_;
  const std::vector<Signer> signers_;  // one per signing secret, in config order
  // Made once here rather than per request (it copies the subscription's headers).
  const RequestContext context_;
  const std::string request_line_;     // "POST <path> HTTP/1.1\r\nHost: ...\r\n"
  const std::size_t snippet_limit_;    // max_response_bytes

  // Only the sending thread changes fd_, always under mu_, so that stop() never shuts down a
  // descriptor number that was closed and reused.
  mutable std::mutex mu_;
  int fd_ = -1;
  std::atomic<bool> stop_flag_{false};  // set by stop(), under mu_
  // The sending thread's own state.
  std::chrono::microseconds rcv_timeout_{0};  // SO_RCVTIMEO as last set on fd_
  std::chrono::microseconds snd_timeout_{0};  // SO_SNDTIMEO as last set on fd_
  std::vector<char> buffer_;
  int connections_opened_ = 0;
};

}  // namespace relay::delivery
