#pragma once
// Shared by the tests of what an operator sees (issue 17): the Grafana dashboard against a real
// Prometheus (dashboard_test.cc) and the status page in headless Chromium (status_page_test.cc).
// A consumer that delivers, retries and dead-letters by event type; a publisher of events spread
// over the next seconds (deliver_after), so relay delivers a steady flow in real time and the
// test never sleeps; headless Chromium; where screenshots go.

#include <fmt/format.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "tests/support/fake_consumer.h"
#include "tests/support/relay_process.h"
#include "tests/support/test_database.h"

namespace relay::testing {

// t.ok: 200; t.retry: 503 on the first attempt, then 200; t.dead: 400 (dead-lettered at once).
inline Reply mixed_reply(const ReceivedRequest& r) {
  auto header = [&](const char* name) {
    auto it = r.headers.find(name);
    return it == r.headers.end() ? std::string() : it->second;
  };
  const std::string type = header("ce-type");
  if (type == "t.retry") return Reply{header("relay-attempt") == "1" ? 503 : 200};
  if (type == "t.dead") return Reply{400};
  return Reply{200};
}

// Publishes `n` events due one after another over `spread_ms` from now: 8 of 10 on t.ok, one
// t.retry, one t.dead (see mixed_reply), plus `down` events on b.down (for a failing
// subscription). Keys cycle over 10.
inline void publish_flow(TestDatabase& db, int n, int spread_ms, int down = 0) {
  db.exec(fmt::format(
      "SELECT relay.publish(CASE i % 10 WHEN 3 THEN 't.retry' WHEN 7 THEN 't.dead' ELSE 't.ok' END,"
      " 'k' || (i % 10), jsonb_build_object('i', i), '{{}}'::jsonb,"
      " now() + (i * {} / {}) * interval '1 millisecond') FROM generate_series(0, {}) i",
      spread_ms, std::max(n, 1), n - 1));
  if (down > 0)
    db.exec(fmt::format(
        "SELECT relay.publish('b.down', 'b' || i, '{{}}'::jsonb) FROM generate_series(1, {}) i",
        down));
}

// Where the tests write their screenshots: $RELAY_SCREENSHOT_DIR, else <build dir>/screenshots
// (README: "Seeing relay" says how they reach docs/).
inline std::string screenshot_dir() {
  const char* dir = std::getenv("RELAY_SCREENSHOT_DIR");
  std::string path = dir != nullptr && *dir != '\0' ? dir : RELAY_DEFAULT_SCREENSHOT_DIR;
  std::string cmd = "mkdir -p '" + path + "'";
  if (std::system(cmd.c_str()) != 0) throw std::runtime_error("cannot create " + path);
  return path;
}

// Debian's chromium, headless, with a throw-away profile and nothing that phones home. Chromium
// as root needs --no-sandbox. `extra`: e.g. {"--dump-dom", url}.
inline std::vector<std::string> chromium_args(const std::string& profile_dir,
                                              std::vector<std::string> extra) {
  std::vector<std::string> args{"chromium",
                                "--headless=new",
                                "--no-sandbox",
                                "--disable-gpu",
                                "--disable-dev-shm-usage",
                                "--user-data-dir=" + profile_dir,
                                "--no-first-run",
                                "--no-default-browser-check",
                                "--disable-extensions",
                                "--disable-background-networking",
                                "--disable-component-update",
                                "--disable-sync",
                                "--hide-scrollbars"};
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

}  // namespace relay::testing
