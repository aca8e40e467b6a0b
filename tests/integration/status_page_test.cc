// Integration: the status page (GET / on the ops listener) in a real browser. relay runs with a
// subscription whose consumer is down (its breaker opens) and one whose consumer dead-letters
// some events; headless Chromium (Debian's chromium, driven over the DevTools protocol) loads
// http://127.0.0.1:<ops port>/, and the test reads the DOM the page's script built from /status and
// /metrics. The page must run without a JavaScript exception, a console error or warning, or a
// load the browser refused. Then, in real time while events flow, the page keeps polling and the
// test takes a screenshot once the throughput chart has 8 samples (docs/status-page.png).

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <regex>

#include "tests/integration/chromium_cdp.h"
#include "tests/integration/see_helpers.h"
#include "tests/integration/test_config.h"
#include "tests/support/fake_consumer.h"
#include "tests/support/ops_probe.h"
#include "tests/support/relay_process.h"
#include "tests/support/temp_dir.h"
#include "tests/support/test_database.h"
#include "tests/support/wait.h"

using namespace std::chrono_literals;
using namespace relay::testing;

namespace {

// The text of the first element whose opening tag contains `attrs` (e.g. data-subscription="b"),
// tags stripped; "" if none. Enough for the page's flat table rows.
std::string element_text(const std::string& dom, const std::string& tag, const std::string& attrs) {
  const std::regex open("<" + tag + "[^>]*" + attrs + "[^>]*>");
  std::smatch m;
  if (!std::regex_search(dom, m, open)) return "";
  const size_t from = m.position(0) + m.length(0);
  const size_t to = dom.find("</" + tag + ">", from);
  const std::string inner =
      dom.substr(from, to == std::string::npos ? std::string::npos : to - from);
  return std::regex_replace(std::regex_replace(inner, std::regex("<[^>]*>"), " "),
                            std::regex("\\s+"), " ");
}

}  // namespace

TEST_CASE(
    "status page: headless Chromium shows the open breaker and the dead letters, with no console "
    "error",
    "[integration][ops][status_page]") {
  auto db = TestDatabase::create();
  FakeConsumer consumer{mixed_reply};
  FakeConsumer down{{.status = 503}};
  const int ops_port = FakeConsumer::unused_port();
  TestRelayConfig cfg;
  cfg.subscriptions = {
      {.name = "billing", .topics = {"t.*"}, .endpoint = consumer.url(), .max_attempts = 5},
      {.name = "b",
       .topics = {"b.*"},
       .endpoint = down.url(),
       .max_attempts = 100,
       .max_in_flight = 1,
       .extra = "    circuit_breaker: { failure_threshold: 2, open_for: 1h, max_open_for: 1h }\n"}};
  cfg.extra = fmt::format("ops:\n  listen: 127.0.0.1:{}\n", ops_port);
  RelayProcess relay(to_yaml(cfg), {}, {{"DATABASE_URL", db.url()}});
  OpsProbe ops(ops_port);
  std::string metrics;
  auto sample = [&](const std::string& series) {
    metrics = ops.metrics();
    return OpsProbe::sample(metrics, series).value_or(0);
  };
  REQUIRE(wait_until([&] { return sample("relay_ready") == 1; }, 60s));

  // 40 events now (4 dead-lettered, 4 retried once), 3 for the dead consumer: its breaker opens
  // and the 3rd event waits behind it (a retry waiting).
  publish_flow(db, 40, 0, 3);
  REQUIRE(wait_until([&] { return sample(R"(relay_breaker_state{subscription="b"})") == 1; }, 60s));
  // The database gauges (refreshed every 5 s) show the dead letters and the waiting retries.
  REQUIRE(wait_until(
      [&] {
        return sample(R"(relay_dead_letters{subscription="billing"})") == 4 &&
               OpsProbe::sample(metrics, R"(relay_retries_waiting{subscription="billing"})") == 0 &&
               OpsProbe::sample(metrics, R"(relay_retries_waiting{subscription="b"})") >= 1 &&
               db.count("relay.outbox WHERE topic LIKE 't.%'") == 0;
      },
      60s));
  INFO(metrics);

  ChromiumSession chromium(1280, 640);
  INFO(chromium.log());
  chromium.navigate(fmt::format("http://127.0.0.1:{}/", ops_port));
  // The page renders after its first poll of /status and /metrics.
  REQUIRE(
      chromium.wait_for(R"(document.querySelector('tr[data-subscription="b"]') !== null)", 60s));
  const std::string dom = chromium.evaluate("document.documentElement.outerHTML");
  INFO(dom);

  const std::string b = element_text(dom, "tr", R"(data-subscription="b")");
  CHECK(dom.find(R"(data-subscription="b" data-breaker="open")") != std::string::npos);
  CHECK(b.find("open") != std::string::npos);
  // b: 2+ failures in a row, 1 trip, the 3rd event's retry waiting.
  CHECK(std::regex_search(b, std::regex(R"(^ b open \d+ 1 \S+ (s|min|h) \d+ [1-3] 0 )")));
  const std::string billing = element_text(dom, "tr", R"(data-subscription="billing")");
  CHECK(dom.find(R"(data-subscription="billing" data-breaker="closed")") != std::string::npos);
  // billing: 4 unreplayed dead letters, nothing waiting.
  CHECK(std::regex_search(billing, std::regex(R"(^ billing closed \d+ \d+ - \d+ 0 4 )")));
  // Dead letters by reason: billing's 4 final answers (400).
  const std::string reason =
      element_text(dom, "tr", R"(data-subscription="billing" data-reason="non_retryable_status")");
  CHECK(reason == " billing non_retryable_status 4 ");
  CHECK(dom.find(R"(id="ready" class="badge ready")") != std::string::npos);
  CHECK(dom.find(R"(<div id="problem" role="alert" class="">)") != std::string::npos);
  // No JavaScript exception, console error or warning, or refused load.
  CHECK(chromium.problems() == std::vector<std::string>{});

  // The screenshot, in real time while events flow: 300 events due over the next 16 s, the page
  // polling every 2 s; taken once the throughput chart has 8 samples.
  publish_flow(db, 300, 16'000);
  const bool sampled =
      chromium.wait_for("Number(document.getElementById('sparkline').dataset.samples) >= 8", 60s);
  CHECK(chromium.problems() == std::vector<std::string>{});
  REQUIRE(sampled);
  CHECK(chromium.evaluate("document.querySelectorAll('#sparkline polyline').length") == 3);
  const std::string png = screenshot_dir() + "/status-page.png";
  std::remove(png.c_str());
  chromium.screenshot(png);
  CHECK(read_file(png).size() > 10'000);
  CHECK(chromium.problems() == std::vector<std::string>{});
}
