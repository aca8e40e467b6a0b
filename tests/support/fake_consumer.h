#pragma once
// FakeConsumer: a real HTTP server on 127.0.0.1 (an ephemeral port) that plays an event consumer.
// It answers POST on any path with what its handler returns (200 by default) and records every
// request, so tests assert on what was received:
//
//   FakeConsumer consumer;                          // 200 to everything
//   FakeConsumer failing{{.status = 503}};          // a fixed reply
//   FakeConsumer flaky{[&](const ReceivedRequest& r) { return Reply{r.sequence < 3 ? 500 : 200};
//   }};
//   ... consumer.url() ... consumer.received_ids() ...
//
// HTTPS mode (certificates from TlsFixture): url() is then https://127.0.0.1:PORT/...
//
//   FakeConsumer secure{TlsServerOptions{.cert_file = pki.server_cert(),
//                                        .key_file = pki.server_key(),
//                                        .client_ca_file = pki.ca_cert()}};  // mTLS required
//
// Thread-safe: accessors and set_handler() may be called from any thread while requests arrive.
// The handler runs on the server's worker threads (up to 16 at once) and must return on its own;
// the destructor stops the server and waits for handlers in progress.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace httplib {
class Server;
}

namespace relay::testing {

// Members have default initializers so that designated initializers may omit any of them
// (-Wmissing-field-initializers).
struct ReceivedRequest {
  std::string path{};
  std::map<std::string, std::string>
      headers{};  // names lower-cased; repeated headers joined by ", "
  std::string body{};
  std::uint64_t sequence = 0;  // 0, 1, 2, ... in arrival order
  std::chrono::steady_clock::time_point received_at{};
  int status = 0;  // the status answered; 0 while the handler is still running
};

struct Reply {
  int status = 200;
  std::string body{};
  std::map<std::string, std::string> headers{};  // e.g. {{"Retry-After", "1"}}
};

using ConsumerHandler = std::function<Reply(const ReceivedRequest&)>;

// Serve HTTPS instead of HTTP. Paths to PEM files.
struct TlsServerOptions {
  std::string cert_file{};  // server certificate (chain)
  std::string key_file{};   // its private key
  // Non-empty: every client must present a certificate that this CA signed, or the handshake
  // fails and no request is recorded.
  std::string client_ca_file{};
};

class FakeConsumer {
 public:
  // Answers 200 to every request.
  FakeConsumer();
  // Answers `fixed` to every request.
  explicit FakeConsumer(Reply fixed);
  // Answers what `handler` returns. Throws std::runtime_error if the server does not start.
  explicit FakeConsumer(ConsumerHandler handler);
  // Serves HTTPS with `tls`; answers 200, or what `handler` returns. Throws std::runtime_error if
  // the certificate or key cannot be loaded or the server does not start.
  explicit FakeConsumer(const TlsServerOptions& tls);
  FakeConsumer(const TlsServerOptions& tls, ConsumerHandler handler);
  ~FakeConsumer();
  FakeConsumer(const FakeConsumer&) = delete;
  FakeConsumer& operator=(const FakeConsumer&) = delete;

  // Replaces the behaviour for requests that arrive from now on.
  void set_handler(ConsumerHandler handler);

  // "http://127.0.0.1:PORT" + path ("https://..." in HTTPS mode).
  std::string url(const std::string& path = "/events") const;
  int port() const { return port_; }

  // Snapshot of every request received so far, in arrival order.
  std::vector<ReceivedRequest> requests() const;
  std::size_t count() const;
  // Idempotency-Key header of each request, in arrival order (retries included).
  std::vector<std::string> received_ids() const;
  // Idempotency-Key of each request that was answered 2xx, in arrival order.
  std::vector<std::string> successful_ids() const;

  // A 127.0.0.1 port that nothing listens on right now: a socket is bound to port 0 and closed.
  // Use it as "a consumer that is down" (connection refused). Throws if no socket can be bound.
  static int unused_port();

 private:
  FakeConsumer(std::unique_ptr<httplib::Server> server, ConsumerHandler handler, bool tls);
  Reply handle(ReceivedRequest request);

  mutable std::mutex mu_;
  ConsumerHandler handler_;                // guarded by mu_
  std::vector<ReceivedRequest> received_;  // guarded by mu_
  int port_ = 0;
  bool tls_ = false;
  std::unique_ptr<httplib::Server> server_;
  std::thread listener_;  // last: joined before the state it uses goes away
};

}  // namespace relay::testing
