// A database host that accepts TCP but never answers (a hung server, a black-holed address behind
// a proxy): libpq alone would wait forever. database.connect_timeout bounds each attempt, so
// `relay migrate` fails with a clear error and `relay run` keeps retrying and still stops on
// SIGTERM.

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/relay_process.h"
#include "tests/support/wait.h"

using namespace std::chrono_literals;
using relay::testing::RelayProcess;
using relay::testing::wait_until;

namespace {

// Listens on 127.0.0.1, accepts every connection and never writes a byte; connections stay open
// until the server is destroyed. Counts how many were opened.
class SilentServer {
 public:
  SilentServer() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd_ < 0) throw std::runtime_error("socket failed");
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    socklen_t len = sizeof addr;
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(fd_, 64) != 0 ||
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      ::close(fd_);
      throw std::runtime_error("bind/listen on 127.0.0.1 failed");
    }
    port_ = ntohs(addr.sin_port);
    acceptor_ = std::thread([this] {
      while (true) {
        const int c = ::accept(fd_, nullptr, nullptr);
        if (c < 0) return;  // shutdown() in the destructor
        std::lock_guard lock(mu_);
        open_.push_back(c);
        ++accepted_;
      }
    });
  }
  ~SilentServer() {
    ::shutdown(fd_, SHUT_RDWR);  // wakes accept()
    acceptor_.join();
    ::close(fd_);
    for (int c : open_) ::close(c);
  }
  SilentServer(const SilentServer&) = delete;
  SilentServer& operator=(const SilentServer&) = delete;

  int port() const { return port_; }
  int accepted() const { return accepted_.load(); }
  std::string url() const {
    return "postgresql://postgres@127.0.0.1:" + std::to_string(port_) + "/app";
  }

 private:
  int fd_ = -1;
  int port_ = 0;
  std::thread acceptor_;
  std::mutex mu_;
  std::vector<int> open_;
  std::atomic<int> accepted_{0};
};

// relay's config for a database at `url`, each connection attempt bounded at 2 s.
std::string config_for(const std::string& url) {
  return "database:\n"
         "  url: " +
         url +
         "\n"
         "  connect_timeout: 2s\n"
         "subscriptions:\n"
         "  - name: s\n"
         "    topics: [\"*\"]\n"
         "    endpoint: http://127.0.0.1:9/events\n";
}

}  // namespace

TEST_CASE("relay migrate gives up on a database that accepts TCP but never answers",
          "[integration][connect]") {
  SilentServer db;
  relay::testing::TempDir dir("relay-connect.");
  const std::string config = dir.write("relay.yaml", config_for(db.url()));
  std::string output;
  // Without a connect timeout this would hang until run_cli's deadline SIGKILLs it (137).
  const int rc = RelayProcess::run_cli({"migrate", "--config", config}, &output, 120s);
  INFO(output);
  CHECK(rc == 1);
  CHECK(db.accepted() >= 1);
  CHECK_THAT(output, Catch::Contains("timeout expired"));  // libpq's words for connect_timeout
}

TEST_CASE("relay run keeps retrying a silent database and still stops on SIGTERM",
          "[integration][connect]") {
  SilentServer db;
  RelayProcess relay(config_for(db.url()));
  // A second connection means the first attempt timed out and relay retried.
  REQUIRE(wait_until([&] { return db.accepted() >= 2 || !relay.running(); }, 60s));
  INFO(relay.log());
  REQUIRE(relay.running());
  relay.signal(SIGTERM);
  CHECK(relay.wait_exit(30s) == 0);
}
