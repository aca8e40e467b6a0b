// Integration: the Grafana dashboard (charts/relay/dashboards/relay.json) against a real
// Prometheus. relay (WAL source, an inbox, a consumer that delivers, retries and dead-letters, a
// subscription whose consumer is down) is scraped every second by Debian's prometheus server,
// with the namespace and pod labels a Kubernetes ServiceMonitor adds. Then every panel's query,
// with the dashboard's variables substituted as Grafana would, goes through Prometheus' HTTP API:
// it must parse and return series that carry every label its legend names. A panel that returns
// nothing fails the test. The panels' data are also drawn into an HTML page and screenshot with
// headless Chromium (docs/dashboard.png): Debian has no Grafana, so that picture is the panels'
// real query results, not Grafana's rendering.

#include <httplib.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <csignal>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>
#include <regex>
#include <set>

#include "tests/integration/see_helpers.h"
#include "tests/integration/test_config.h"
#include "tests/integration/wal_test_helpers.h"
#include "tests/support/fake_consumer.h"
#include "tests/support/ops_probe.h"
#include "tests/support/relay_process.h"
#include "tests/support/temp_dir.h"
#include "tests/support/test_database.h"
#include "tests/support/wait.h"

using namespace std::chrono_literals;
using namespace relay::testing;
using nlohmann::json;

namespace {

const std::string kNamespace = "relay-test";
const std::set<std::string> kPods = {"relay-0", "relay-1"};
// Both pods chosen: Grafana substitutes a multi-value variable inside =~ as (a|b).
const std::string kPodRegex = "(relay-0|relay-1)";
const std::string kSubscription = "s";

// Debian's prometheus on a free loopback port, scraping relay's ops port every second.
class Prometheus {
 public:
  // `relays`: {ops port, pod name}.
  explicit Prometheus(const std::vector<std::pair<int, std::string>>& relays)
      : port_(FakeConsumer::unused_port()) {
    std::string config =
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: relay\n    static_configs:\n";
    for (const auto& [port, pod] : relays)
      // The labels are what the ServiceMonitor's Kubernetes discovery adds.
      config += fmt::format(
          "      - targets: ['127.0.0.1:{}']\n        labels: {{namespace: {}, pod: {}}}\n", port,
          kNamespace, pod);
    const std::string config_path = dir_.write("prometheus.yml", config);
    process_ = std::make_unique<ChildProcess>(std::vector<std::string>{
        "prometheus", "--config.file=" + config_path,
        "--storage.tsdb.path=" + dir_.path() + "/data",
        fmt::format("--web.listen-address=127.0.0.1:{}", port_), "--log.level=warn"});
    client_ = std::make_unique<httplib::Client>("127.0.0.1", port_);
    client_->set_connection_timeout(2);
    client_->set_read_timeout(10);
  }
  ~Prometheus() {
    process_->signal(SIGTERM);
    if (!process_->wait_exit(10s)) process_->kill9();
  }

  // The decoded answer of GET /api/v1/<path> with `params`; {} if nothing answered.
  json api(const std::string& path, const httplib::Params& params) {
    auto res = client_->Get(("/api/v1/" + path).c_str(), params, httplib::Headers{});
    if (!res) return json();
    return json::parse(res->body, nullptr, /*allow_exceptions=*/false);
  }
  // The instant vector for `expr` now (data.result), or a json string with the error.
  json query(const std::string& expr) {
    json r = api("query", {{"query", expr}});
    if (r.is_discarded() || r.is_null()) return json("no answer");
    if (r.value("status", "") != "success") return json(r.value("error", r.dump()));
    return r["data"]["result"];
  }
  json query_range(const std::string& expr, double start, double end, double step) {
    json r = api("query_range", {{"query", expr},
                                 {"start", fmt::format("{:.3f}", start)},
                                 {"end", fmt::format("{:.3f}", end)},
                                 {"step", fmt::format("{}", step)}});
    if (r.is_discarded() || r.is_null() || r.value("status", "") != "success") return json::array();
    return r["data"]["result"];
  }
  std::string log() const { return process_->err(); }

 private:
  TempDir dir_{"relay-prometheus."};
  int port_;
  std::unique_ptr<ChildProcess> process_;
  std::unique_ptr<httplib::Client> client_;
};

// The dashboard's variables as Grafana substitutes them (the subscription may be ".*", the "All"
// value); the interval variables for a 1 s scrape interval.
std::string substitute(std::string expr, const std::string& subscription = kSubscription) {
  const std::vector<std::pair<std::string, std::string>> vars = {{"$__rate_interval", "5s"},
                                                                 {"$__interval", "1s"},
                                                                 {"${namespace}", kNamespace},
                                                                 {"$namespace", kNamespace},
                                                                 {"${pod}", kPodRegex},
                                                                 {"$pod", kPodRegex},
                                                                 {"${subscription}", subscription},
                                                                 {"$subscription", subscription}};
  for (const auto& [name, value] : vars) {
    for (size_t at = expr.find(name); at != std::string::npos; at = expr.find(name, at))
      expr.replace(at, name.size(), value);
  }
  return expr;
}

// The label names a legend format uses: "{{subscription}} {{outcome}}" -> {subscription, outcome}.
std::set<std::string> legend_labels(const std::string& legend) {
  std::set<std::string> out;
  static const std::regex kLabel(R"(\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\})");
  for (std::sregex_iterator it(legend.begin(), legend.end(), kLabel), end; it != end; ++it)
    out.insert((*it)[1]);
  return out;
}

std::string legend_text(const std::string& legend, const json& metric) {
  std::string out = legend;
  for (const auto& label : legend_labels(legend)) {
    const std::string value = metric.value(label, "");
    out = std::regex_replace(out, std::regex("\\{\\{\\s*" + label + "\\s*\\}\\}"), value);
  }
  return out;
}

std::string html_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '&':
        out += "&amp;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

// One panel drawn as an SVG line chart of its targets' range results.
std::string panel_html(const json& panel, Prometheus& prom, double start, double end) {
  static const char* kColours[] = {"#1f6feb", "#d97706", "#c62828", "#1a7f37", "#7c3aed",
                                   "#0e7490", "#be185d", "#4d7c0f", "#92400e", "#475569"};
  struct Line {
    std::string name;
    std::vector<std::pair<double, double>> points;
  };
  std::vector<Line> lines;
  for (const auto& target : panel["targets"]) {
    const json result =
        prom.query_range(substitute(target["expr"].get<std::string>(), ".*"), start, end, 1);
    for (const auto& series : result) {
      Line line{legend_text(target.value("legendFormat", ""), series["metric"]), {}};
      for (const auto& v : series["values"]) {
        const double y = std::stod(v[1].get<std::string>());
        if (std::isfinite(y)) line.points.emplace_back(v[0].get<double>(), y);
      }
      lines.push_back(std::move(line));
    }
  }
  double max = 0;
  for (const auto& l : lines)
    for (const auto& [x, y] : l.points) max = std::max(max, y);
  if (max <= 0) max = 1;
  std::string svg;
  std::string legend;
  for (size_t i = 0; i < lines.size() && i < 10; ++i) {
    std::string pts;
    for (const auto& [x, y] : lines[i].points)
      pts += fmt::format("{:.1f},{:.1f} ", (x - start) / (end - start) * 560 + 30,
                         150 - y / max * 140);
    svg += fmt::format(R"(<polyline fill="none" stroke="{}" stroke-width="1.6" points="{}"/>)",
                       kColours[i], pts);
    const double last = lines[i].points.empty() ? NAN : lines[i].points.back().second;
    legend += fmt::format(R"(<div><i style="background:{}"></i>{} <b>{:.3g}</b></div>)",
                          kColours[i], html_escape(lines[i].name), last);
  }
  return fmt::format(
      R"(<section><h2>{}</h2><svg viewBox="0 0 600 160" preserveAspectRatio="none"><text x="2" y="12">{:.3g}</text>)"
      R"(<text x="2" y="152">0</text><line x1="30" y1="150" x2="590" y2="150" stroke="#ccc"/>{}</svg>)"
      R"(<div class="legend">{}</div></section>)",
      html_escape(panel.value("title", "")), max, svg, legend);
}

double unix_now_s() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

TEST_CASE(
    "dashboard: every panel's query, run by a real Prometheus against a running relay, returns "
    "series with the labels its legend names",
    "[integration][dashboard][wal]") {
  std::ifstream in(std::string(RELAY_ENVELOPE_SOURCE_DIR) + "/charts/relay/dashboards/relay.json");
  REQUIRE(in.good());
  const json dashboard = json::parse(in);

  // The dashboard's shape: a datasource variable every panel uses, the three query variables.
  REQUIRE(dashboard["schemaVersion"].get<int>() >= 36);
  std::map<std::string, json> vars;
  for (const auto& v : dashboard["templating"]["list"]) vars[v["name"]] = v;
  REQUIRE(vars.count("datasource"));
  CHECK(vars["datasource"]["type"] == "datasource");
  CHECK(vars["datasource"]["query"] == "prometheus");
  for (const char* name : {"namespace", "pod", "subscription"}) {
    INFO(name);
    REQUIRE(vars.count(name));
    CHECK(vars[name]["type"] == "query");
    CHECK(vars[name]["datasource"]["uid"] == "${datasource}");
  }
  std::vector<json> panels;
  std::set<int> ids;
  for (const auto& p : dashboard["panels"]) {
    CHECK(ids.insert(p["id"].get<int>()).second);
    if (p["type"] == "row") continue;
    INFO(p["title"]);
    CHECK(p["datasource"]["uid"] == "${datasource}");
    REQUIRE(!p["targets"].empty());
    panels.push_back(p);
  }

  // relay-0: table source, an inbox, subscription s (delivers, retries, dead-letters) and b (its
  // consumer is down: the breaker opens). relay-1: the WAL source on a database of its own (its
  // slot's gauges), subscription s.
  auto db = TestDatabase::create();
  auto wal_db = TestDatabase::create();
  FakeConsumer consumer{mixed_reply};
  FakeConsumer down{{.status = 503}};
  const int ops_port = FakeConsumer::unused_port();
  const int inbox_port = FakeConsumer::unused_port();
  TestRelayConfig cfg;
  cfg.subscriptions = {
      {.name = "s", .topics = {"t.*"}, .endpoint = consumer.url(), .max_attempts = 5},
      {.name = "b",
       .topics = {"b.*"},
       .endpoint = down.url(),
       .max_attempts = 100,
       .max_in_flight = 1,
       .extra = "    circuit_breaker: { failure_threshold: 2, open_for: 1h, max_open_for: 1h }\n"}};
  cfg.extra = fmt::format(
      "ops:\n  listen: 127.0.0.1:{}\n"
      "inbox:\n  listen: 127.0.0.1:{}\n  sources:\n    - name: hooks\n      unsigned: true\n"
      "    - name: signed\n      signing_secret: "
      "[\"whsec_c2VjcmV0LWEtMDEyMzQ1Njc4OWFiY2RlZg==\"]\n",
      ops_port, inbox_port);
  RelayProcess relay(to_yaml(cfg), {}, {{"DATABASE_URL", db.url()}});
  const int wal_ops_port = FakeConsumer::unused_port();
  TestRelayConfig wal_cfg = wal_config(wal_db, consumer.url());
  wal_cfg.extra = fmt::format("ops:\n  listen: 127.0.0.1:{}\n", wal_ops_port);
  RelayProcess wal_relay(to_yaml(wal_cfg), {}, {{"DATABASE_URL", wal_db.url()}});
  OpsProbe ops(ops_port);
  std::string last;
  auto scraped = [&](const std::string& series) {
    last = ops.metrics();
    auto v = OpsProbe::sample(last, series);
    return v && *v > 0;
  };
  REQUIRE(wait_until([&] { return scraped("relay_ready"); }, 60s));
  REQUIRE(wait_until([&] { return caught_up(wal_db); }, 60s));

  Prometheus prom({{ops_port, "relay-0"}, {wal_ops_port, "relay-1"}});
  const double started = unix_now_s();
  // 3 events for the subscription whose consumer is down, 5 due in an hour (a backlog that
  // stays), 50 for the WAL relay.
  publish_flow(db, 0, 0, 3);
  db.exec(
      "SELECT relay.publish('t.later', 'l', '{}'::jsonb, '{}'::jsonb, now() + interval '1 hour') "
      "FROM generate_series(1, 5)");
  publish_flow(wal_db, 50, 0);
  httplib::Client inbox("127.0.0.1", inbox_port);
  inbox.set_connection_timeout(2);
  auto post = [&](const std::string& source, const std::string& id) {
    auto res = inbox.Post(("/inbox/" + source).c_str(), {{"webhook-id", id}}, R"({"a":1})",
                          "application/json");
    return res ? res->status : 0;
  };
  // The inbox's three outcomes, once per batch of the flow below.
  auto post_inbox = [&](int batch) {
    CHECK(post("hooks", fmt::format("in-{}", batch)) / 100 == 2);
    CHECK(post("hooks", fmt::format("in-{}", batch)) / 100 == 2);   // a duplicate
    CHECK(post("signed", fmt::format("in-{}", batch)) / 100 == 4);  // no signature: rejected
  };
  post_inbox(0);

  // Database errors: relay's database refuses connections for a moment (its sessions are ended,
  // so relay must reconnect, and cannot until connections are allowed again).
  REQUIRE(wait_until([&] { return scraped(R"(relay_breaker_state{subscription="b"})"); }, 60s));
  {
    // From the cluster's maintenance database: a database cannot refuse its own sessions.
    std::string url = db.url();
    url.replace(url.rfind("/" + db.name()), db.name().size() + 1, "/postgres");
    pqxx::connection admin(url);
    pqxx::nontransaction sql(admin);
    sql.exec("ALTER DATABASE " + db.name() + " WITH ALLOW_CONNECTIONS false");
    sql.exec("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '" +
             db.name() + "'");
    const bool failed = wait_until(
        [&] {
          last = ops.metrics();
          return last.find("relay_database_errors_total{") != std::string::npos;
        },
        60s);
    sql.exec("ALTER DATABASE " + db.name() + " WITH ALLOW_CONNECTIONS true");
    REQUIRE(failed);
  }
  REQUIRE(wait_until([&] { return scraped("relay_ready"); }, 60s));
  INFO(last);
  INFO(prom.log());

  // The flow: 12 batches of 20 events (16 delivered, 2 after a retry, 2 dead-lettered), each
  // published once Prometheus has scraped the outcomes of the one before: about one a second.
  auto outcomes = [&]() -> double {
    const json r = prom.query(
        "sum(relay_deliveries_total{pod=\"relay-0\", subscription=\"s\", "
        "outcome=~\"delivered|dead_lettered\"})");
    return r.is_array() && !r.empty() ? std::stod(r[0]["value"][1].get<std::string>()) : -1;
  };
  for (int batch = 1; batch <= 12; ++batch) {
    publish_flow(db, 20, 0);
    post_inbox(batch);
    REQUIRE(wait_until([&] { return outcomes() >= 20 * batch; }, 60s));
  }
  REQUIRE(wait_until(
      [&] {
        return scraped(
                   R"(relay_dead_letters_created_total{reason="non_retryable_status",subscription="s"})") &&
               scraped(R"(relay_inbox_duplicates_total{source="hooks"})");
      },
      60s));

  // Prometheus has scraped all of that (its own view of the newest counters).
  INFO(prom.log());
  REQUIRE(wait_until(
      [&] {
        const json r = prom.query(
            "sum(relay_deliveries_total{pod=\"relay-0\", subscription=\"s\", "
            "outcome=~\"delivered|dead_lettered\"}) >= 240 and on() "
            "relay_dead_letters_created_total{reason=\"non_retryable_status\"} > 0 and "
            "on() relay_database_errors_total > 0 and on() relay_inbox_duplicates_total > 0 and "
            "on() relay_wal_slot_lag_bytes >= 0 and on() count_over_time(relay_ready[1m]) >= 10");
        return r.is_array() && !r.empty();
      },
      60s));

  int targets = 0;
  for (const auto& panel : panels) {
    for (const auto& target : panel["targets"]) {
      const std::string expr = substitute(target["expr"].get<std::string>());
      INFO("panel \"" << panel["title"].get<std::string>() << "\" target "
                      << target["refId"].get<std::string>() << ": " << expr);
      CHECK(expr.find('$') == std::string::npos);  // every variable substituted
      const json result = prom.query(expr);
      INFO("answer: " << result.dump());
      REQUIRE(result.is_array());  // else Prometheus' error (it did not parse or evaluate)
      CHECK(!result.empty());
      const auto wanted = legend_labels(target.value("legendFormat", ""));
      for (const auto& series : result) {
        const json& metric = series["metric"];
        for (const auto& label : wanted) {
          INFO("label " << label << " in " << metric.dump());
          CHECK(!metric.value(label, "").empty());
        }
        // The variables filter: any namespace, pod or subscription left is the chosen one.
        if (metric.contains("namespace")) CHECK(metric["namespace"] == kNamespace);
        if (metric.contains("pod")) CHECK(kPods.count(metric["pod"]) == 1);
        if (metric.contains("subscription")) CHECK(metric["subscription"] == kSubscription);
      }
      ++targets;
    }
  }
  CHECK(targets >= static_cast<int>(panels.size()));

  // The variables' own queries: label_values(<selector>, <label>) finds the chosen value.
  static const std::regex kLabelValues(R"(^label_values\((.*),\s*([a-z_]+)\)$)");
  for (const char* name : {"namespace", "pod", "subscription"}) {
    const std::string query = vars[name]["query"]["query"];
    std::smatch m;
    REQUIRE(std::regex_match(query, m, kLabelValues));
    const std::string expr = "count by (" + m[2].str() + ") (" + substitute(m[1].str()) + ")";
    INFO(name << ": " << expr);
    const json result = prom.query(expr);
    REQUIRE(result.is_array());
    std::set<std::string> values;
    for (const auto& s : result) values.insert(s["metric"].value(m[2].str(), ""));
    CHECK(values.count(name == std::string("namespace") ? kNamespace
                       : name == std::string("pod")     ? "relay-1"
                                                        : kSubscription));
  }

  // The picture: every panel's range results since the flow began, drawn in Chromium.
  const double ended = unix_now_s();
  std::string page =
      "<!doctype html><html><head><meta charset=utf-8><style>"
      "body{margin:0;font:13px 'DejaVu Sans',sans-serif;background:#111217;color:#ccccdc}"
      "header{padding:10px 16px;font-size:15px;background:#181b1f;border-bottom:1px solid #2c3235}"
      "main{display:grid;grid-template-columns:1fr 1fr;gap:8px;padding:8px}"
      "section{background:#181b1f;border:1px solid #2c3235;border-radius:2px;padding:6px 8px}"
      "h2{font-size:13px;margin:0 0 4px;font-weight:500}svg{width:100%;height:150px}"
      "svg text{fill:#8e8e8e;font-size:10px}.legend{font-size:11px;columns:2}"
      ".legend i{display:inline-block;width:10px;height:3px;margin:0 5px 3px 0}"
      "</style></head><body><header>relay.json: each panel's query from a real Prometheus "
      "scraping relay (tests/integration/dashboard_test.cc; drawn by the test, not by Grafana). "
      "namespace=" +
      kNamespace + " pod=" + kPodRegex + " subscription=All" + "</header><main>";
  for (const auto& panel : panels) page += panel_html(panel, prom, started, ended);
  page += "</main></body></html>";
  TempDir view("relay-dashboard-view.");
  const std::string html = view.write("dashboard.html", page);
  const std::string png = screenshot_dir() + "/dashboard.png";
  std::remove(png.c_str());
  ChildProcess chromium(
      chromium_args(view.path() + "/profile",
                    {"--window-size=1400,2000", "--screenshot=" + png, "file://" + html}));
  REQUIRE(chromium.wait_exit(60s) == 0);
  CHECK(read_file(png).size() > 10'000);
}
