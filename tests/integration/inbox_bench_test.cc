// Benchmark (hidden tag, not run by CTest): inbox intake on loopback. Keep-alive clients post
// signed binary-mode events with distinct ids to the real binary; reports requests/s and the p50 /
// p99 latency of one request (send to 200, which is after the commit). Run with
//   relay_integration "[.bench][inbox]"

#include <algorithm>
#include <catch2/catch.hpp>
#include <thread>

#include "tests/integration/inbox_test_helpers.h"
#include "tests/support/fake_consumer.h"
#include "tests/support/relay_process.h"
#include "tests/support/test_database.h"
#include "tests/support/wait.h"

using namespace std::chrono_literals;
using namespace relay::testing;

TEST_CASE("inbox intake throughput and latency with keep-alive clients", "[.bench][inbox]") {
  constexpr int kPerClient = 4000;
  for (int clients : {1, 4}) {
    auto db = TestDatabase::create();
    const int port = FakeConsumer::unused_port();
    RelayProcess relay(inbox_yaml(port, {{.name = "bench", .secrets = {kSecretA}}}), {},
                       {{"DATABASE_URL", db.url()}});
    REQUIRE(wait_until([&] { return InboxClient(port).get("/inbox/x").status == 405; }, 60s));

    const std::string body = R"({"order_id":12345,"amount":"19.99","currency":"EUR"})";
    std::vector<std::vector<double>> latencies(static_cast<size_t>(clients));
    std::vector<int> failures(static_cast<size_t>(clients), 0);
    const auto begin = std::chrono::steady_clock::now();
    std::vector<std::thread> threads;
    for (int c = 0; c < clients; ++c) {
      threads.emplace_back([&, c] {
        InboxClient client(port);
        auto& lat = latencies[static_cast<size_t>(c)];
        lat.reserve(kPerClient);
        for (int i = 0; i < kPerClient; ++i) {
          const std::string id = fmt::format("bench-{}-{}", c, i);
          const Headers h = signed_headers(kKeyA, id, body);
          const auto t0 = std::chrono::steady_clock::now();
          const auto r = client.post("/inbox/bench", body, h);
          const auto t1 = std::chrono::steady_clock::now();
          if (r.status != 200) ++failures[static_cast<size_t>(c)];
          lat.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
        }
      });
    }
    for (auto& t : threads) t.join();
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
    std::vector<double> all;
    for (const auto& l : latencies) all.insert(all.end(), l.begin(), l.end());
    std::sort(all.begin(), all.end());
    auto pct = [&](double p) { return all[static_cast<size_t>(p * (all.size() - 1))]; };
    const int total = clients * kPerClient;
    int failed = 0;
    for (int f : failures) failed += f;
    CHECK(failed == 0);
    CHECK(db.count("relay.inbox") == total);
    WARN(
        fmt::format("inbox intake, {} keep-alive client(s): {} requests in {:.2f}s = {:.0f} req/s; "
                    "latency p50 {:.2f} ms, p99 {:.2f} ms, max {:.2f} ms",
                    clients, total, seconds, total / seconds, pct(0.50), pct(0.99), all.back()));
  }
}
