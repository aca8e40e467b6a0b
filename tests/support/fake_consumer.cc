#include "tests/support/fake_consumer.h"

#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <stdexcept>

#include "tests/support/wait.h"

namespace relay::testing {
namespace {

constexpr std::size_t kWorkerThreads = 16;
constexpr std::size_t kKeepAliveMaxCount = 100000;
// cpp-httplib 0.11 listens with a backlog of 5. When relay opens many lane connections at once on a
// loaded machine, SYNs beyond it are dropped and retried after 1 s, then 3 s: past relay's connect
// timeout, which then counts a failed attempt the test did not cause.
constexpr int kListenBacklog = 1024;

std::string lower(std::string s) {
  for (char& c : s) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return s;
}

std::unique_ptr<httplib::Server> make_tls_server(const TlsServerOptions& tls) {
  auto server = std::make_unique<httplib::SSLServer>(
      tls.cert_file.c_str(), tls.key_file.c_str(),
      tls.client_ca_file.empty() ? nullptr : tls.client_ca_file.c_str());
  if (!server->is_valid()) {
    throw std::runtime_error(
        "FakeConsumer: cannot load TLS certificate " + tls.cert_file + ", key " + tls.key_file +
        (tls.client_ca_file.empty() ? "" : " or client CA " + tls.client_ca_file));
  }
  return server;
}

}  // namespace

FakeConsumer::FakeConsumer() : FakeConsumer(Reply{}) {}

FakeConsumer::FakeConsumer(Reply fixed)
    : FakeConsumer(ConsumerHandler([fixed](const ReceivedRequest&) { return fixed; })) {}

FakeConsumer::FakeConsumer(ConsumerHandler handler)
    : FakeConsumer(std::make_unique<httplib::Server>(), std::move(handler), false) {}

FakeConsumer::FakeConsumer(const TlsServerOptions& tls)
    : FakeConsumer(tls, [](const ReceivedRequest&) { return Reply{}; }) {}

FakeConsumer::FakeConsumer(const TlsServerOptions& tls, ConsumerHandler handler)
    : FakeConsumer(make_tls_server(tls), std::move(handler), true) {}

FakeConsumer::FakeConsumer(std::unique_ptr<httplib::Server> server, ConsumerHandler handler,
                           bool tls)
    : handler_(std::move(handler)), tls_(tls), server_(std::move(server)) {
  server_->new_task_queue = [] { return new httplib::ThreadPool(kWorkerThreads); };
  server_->set_keep_alive_max_count(kKeepAliveMaxCount);
  server_->set_tcp_nodelay(true);
  server_->Post(R"(.*)", [this](const httplib::Request& req, httplib::Response& res) {
    ReceivedRequest r;
    r.path = req.path;
    for (const auto& [name, value] : req.headers) {
      auto [it, inserted] = r.headers.emplace(lower(name), value);
      if (!inserted) {
        it->second += ", " + value;
      }
    }
    r.body = req.body;
    const Reply reply = handle(std::move(r));
    res.status = reply.status;
    std::string content_type = "text/plain";
    for (const auto& [name, value] : reply.headers) {
      if (lower(name) == "content-type") {
        content_type = value;
      } else {
        res.set_header(name, value);
      }
    }
    if (!reply.body.empty()) {
      res.set_content(reply.body, content_type);
    }
  });

  int listen_fd = -1;
  server_->set_socket_options([&listen_fd](int sock) {
    httplib::default_socket_options(sock);
    listen_fd = sock;
  });
  port_ = server_->bind_to_any_port("127.0.0.1");
  server_->set_socket_options(httplib::default_socket_options);  // drop the reference to listen_fd
  if (port_ <= 0) {
    throw std::runtime_error("FakeConsumer: cannot bind 127.0.0.1:0");
  }
  if (listen_fd < 0 || ::listen(listen_fd, kListenBacklog) != 0) {
    throw std::runtime_error("FakeConsumer: cannot raise the listen backlog");
  }
  listener_ = std::thread([this] { server_->listen_after_bind(); });
  if (!wait_until([this] { return server_->is_running(); }, std::chrono::seconds(60))) {
    server_->stop();
    listener_.join();
    throw std::runtime_error("FakeConsumer: server did not start");
  }
}

FakeConsumer::~FakeConsumer() {
  server_->stop();
  if (listener_.joinable()) {
    listener_.join();
  }
}

Reply FakeConsumer::handle(ReceivedRequest request) {
  ConsumerHandler handler;
  std::size_t index = 0;
  {
    std::lock_guard lock(mu_);
    request.sequence = received_.size();
    request.received_at = std::chrono::steady_clock::now();
    index = received_.size();
    received_.push_back(request);
    handler = handler_;
  }
  // Run the handler without the lock: a slow consumer must not block the accessors.
  const Reply reply = handler(request);
  {
    std::lock_guard lock(mu_);
    received_[index].status = reply.status;
  }
  return reply;
}

void FakeConsumer::set_handler(ConsumerHandler handler) {
  std::lock_guard lock(mu_);
  handler_ = std::move(handler);
}

std::string FakeConsumer::url(const std::string& path) const {
  return (tls_ ? "https://127.0.0.1:" : "http://127.0.0.1:") + std::to_string(port_) + path;
}

std::vector<ReceivedRequest> FakeConsumer::requests() const {
  std::lock_guard lock(mu_);
  return received_;
}

std::size_t FakeConsumer::count() const {
  std::lock_guard lock(mu_);
  return received_.size();
}

std::vector<std::string> FakeConsumer::received_ids() const {
  std::lock_guard lock(mu_);
  std::vector<std::string> ids;
  ids.reserve(received_.size());
  for (const auto& r : received_) {
    auto it = r.headers.find("idempotency-key");
    ids.push_back(it == r.headers.end() ? "" : it->second);
  }
  return ids;
}

std::vector<std::string> FakeConsumer::successful_ids() const {
  std::lock_guard lock(mu_);
  std::vector<std::string> ids;
  for (const auto& r : received_) {
    if (r.status >= 200 && r.status < 300) {
      auto it = r.headers.find("idempotency-key");
      ids.push_back(it == r.headers.end() ? "" : it->second);
    }
  }
  return ids;
}

int FakeConsumer::unused_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    throw std::runtime_error("unused_port: socket() failed");
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ::close(fd);
    throw std::runtime_error("unused_port: bind/getsockname failed");
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

}  // namespace relay::testing
