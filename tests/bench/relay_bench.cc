// relay_bench: the end-to-end benchmark a developer runs by hand (tests/bench/README.md).
//
//   relay_bench --database-url URL --relay PATH/TO/relay --mode
//   throughput|batch|steady|idle|app-cost|publish-cost|raw-http|long-transaction|all
//               [--long-transaction] [--long-transaction-rounds R] [--source table|wal]
//               [--cost-rounds R] [--cost-seconds S] [--cost-rows N] [--cost-setup SQL]
//               [--events N] [--keys K] [--batch B] [--rate R] [--seconds S] [--idle-seconds S]
//               [--app-seconds S] [--app-threads T] [--lanes L] [--relay-batch B] [--timeout S]
//               [--format F] [--batch-max-events N] [--batch-max-bytes N] [--batch-linger D]
//               [--sink-keep-alive-timeout S] [--work-dir DIR]
//
// publish-cost measures the app's side alone: no relay, no sink (see publish_cost()).
// Each other mode (except raw-http) gets a fresh database, runs `relay migrate`, starts an
// in-process HTTP sink that records every request's Idempotency-Key with a steady_clock receipt
// time, and runs relay as a child process pointed at that sink. The load generator lives in this
// process too, so commit times and receipt times come from the same steady_clock. Waits on remote
// work are condition waits with deadlines; the only timed sleeps are the load generator's pacing
// (steady mode) and the idle period that idle mode exists to measure.
//
// Everything competes for the same cores: relay, PostgreSQL, the sink and the load generator. The
// summary shows each one's CPU so that the numbers can be read with that in mind.

#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <httplib.h>
#include <poll.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <iostream>
#include <latch>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <pqxx/pqxx>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "relay/v1/event.pb.h"

extern char** environ;

namespace {

using Clock = std::chrono::steady_clock;
using Ns = std::int64_t;  // steady_clock nanoseconds

Ns now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}
double ns_to_ms(double ns) { return ns / 1e6; }
double ns_to_s(double ns) { return ns / 1e9; }

[[noreturn]] void fail(const std::string& what) { throw std::runtime_error(what); }

// ---- options ------------------------------------------------------------------------------------

struct Options {
  std::string database_url;
  std::string relay;
  std::string mode = "all";
  long events = 100000;
  int keys = 1000;
  int batch = 500;
  // How the load generator writes a transaction's events (throughput and batch modes): "publish"
  // calls relay.publish once per event, "bulk" writes them with one multi-row INSERT into
  // relay.outbox (DESIGN's other way in), which costs PostgreSQL a third as much per event.
  std::string insert = "publish";
  int rate = 1000;
  int seconds = 10;
  int idle_seconds = 60;
  int idle_repeats = 5;
  int idle_gap_seconds = 2;
  int app_seconds = 10;
  int app_threads = 8;
  int lanes = 64;
  int relay_batch = 500;
  // The subscription's body format and batching (batch mode, or any mode with --batch-max-events).
  std::string format = "binary";  // binary | cloudevents-json | protobuf
  int batch_max_events = 0;       // 0: one event per request
  long batch_max_bytes = 1'048'576;
  std::string batch_linger = "10ms";
  // fillfactor set on relay.outbox after `relay migrate` (0: as migrated). An experiment knob: room
  // on each page lets a claim's lease update be HOT (no new index entries).
  int outbox_fillfactor = 0;
  int timeout = 600;                  // deadline for any one wait on relay, seconds
  int sink_keep_alive_timeout = 300;  // seconds the sink keeps an idle keep-alive connection open
  int sink_backlog = 1024;            // the sink's listen backlog (cpp-httplib's own is 5)
  std::string work_dir;
  // long-transaction mode: drains with the snapshot held (after one without).
  int long_transaction_rounds = 2;
  // source.mode written into relay's config: table | wal.
  std::string source = "table";
  // publish-cost mode: interleaved rounds, seconds per statement per round, rows per transaction.
  int cost_rounds = 5;
  int cost_seconds = 3;
  int cost_rows = 100;
  // publish-cost: SQL run after migrating, before measuring (an experiment knob: take one cost
  // away, e.g. "DROP TRIGGER outbox_wakeup ON relay.outbox").
  std::string cost_setup;
};

const char* const kUsage = R"(usage: relay_bench --database-url URL --relay PATH [options]

  --mode M                 throughput | batch | steady | idle | app-cost | publish-cost |
                           raw-http | long-transaction | all
                           (default all; batch = throughput with a batch subscription;
                           long-transaction and publish-cost are not part of all)
  --cost-rounds R          publish-cost: interleaved rounds                         (5)
  --cost-seconds S         publish-cost: seconds per statement per round             (3)
  --cost-rows N            publish-cost: rows per transaction                       (100)
  --cost-setup SQL         publish-cost: run SQL after migrating (an experiment: take one
                           cost away and compare)                                   (none)
  --long-transaction       = --mode long-transaction: drain --events N with relay paused
                           during the inserts, once without and then R times with a
                           REPEATABLE READ transaction open elsewhere whose snapshot
                           predates the events; each drain's events/s, the outbox's dead
                           tuples, and with/without ratios
  --long-transaction-rounds R   drains with the transaction open                 (2)
  --source S               source.mode in relay's config: table | wal           (table)
  --events N               events (throughput) / requests (raw-http)                 (100000)
  --keys K                 distinct ordering keys                                   (1000)
  --batch B                events per insert transaction (throughput)               (500)
  --insert I               throughput/batch: publish (relay.publish per event) or bulk
                           (one multi-row INSERT INTO relay.outbox per transaction) (publish)
  --rate R --seconds S     steady mode: R events/s, one per transaction, for S s    (1000, 10)
  --idle-seconds S         idle mode: relay idle this long before the lone event    (60)
  --idle-repeats N         idle mode: then N more lone events ...                   (5)
  --idle-gap-seconds S     ... each after S idle seconds                            (2)
  --app-seconds S          app-cost mode: seconds per run                           (10)
  --app-threads T          app-cost mode: concurrent app connections                (8)
  --lanes L                relay max_in_flight; raw-http client threads              (64)
  --relay-batch B          relay source.batch_size                                  (500)
  --format F               subscription format: binary | cloudevents-json | protobuf
                           (binary; batch mode: cloudevents-json)
  --batch-max-events N     batch: max_events; 0 = no batching (0; batch mode: 100)
  --batch-max-bytes N      batch: max_bytes                                         (1048576)
  --batch-linger D         batch: linger                                            (10ms)
  --outbox-fillfactor N    ALTER TABLE relay.outbox SET (fillfactor = N) after migrating
                           (an experiment; 0 = leave the schema as migrated)        (0)
  --timeout S              deadline for any wait on relay                           (600)
  --sink-keep-alive-timeout S   how long the sink keeps an idle connection          (300)
  --sink-backlog N         the sink's listen backlog; 5 = cpp-httplib's default   (1024)
  --work-dir DIR           configs and logs (default: a new /tmp/relay_bench.XXXXXX)
)";

Options parse_options(int argc, char** argv) {
  Options o;
  std::map<std::string, std::function<void(const std::string&)>> opts = {
      {"--database-url", [&](const std::string& v) { o.database_url = v; }},
      {"--relay", [&](const std::string& v) { o.relay = v; }},
      {"--mode", [&](const std::string& v) { o.mode = v; }},
      {"--events", [&](const std::string& v) { o.events = std::stol(v); }},
      {"--keys", [&](const std::string& v) { o.keys = std::stoi(v); }},
      {"--batch", [&](const std::string& v) { o.batch = std::stoi(v); }},
      {"--insert", [&](const std::string& v) { o.insert = v; }},
      {"--rate", [&](const std::string& v) { o.rate = std::stoi(v); }},
      {"--seconds", [&](const std::string& v) { o.seconds = std::stoi(v); }},
      {"--idle-seconds", [&](const std::string& v) { o.idle_seconds = std::stoi(v); }},
      {"--idle-repeats", [&](const std::string& v) { o.idle_repeats = std::stoi(v); }},
      {"--idle-gap-seconds", [&](const std::string& v) { o.idle_gap_seconds = std::stoi(v); }},
      {"--app-seconds", [&](const std::string& v) { o.app_seconds = std::stoi(v); }},
      {"--app-threads", [&](const std::string& v) { o.app_threads = std::stoi(v); }},
      {"--lanes", [&](const std::string& v) { o.lanes = std::stoi(v); }},
      {"--relay-batch", [&](const std::string& v) { o.relay_batch = std::stoi(v); }},
      {"--format", [&](const std::string& v) { o.format = v; }},
      {"--batch-max-events", [&](const std::string& v) { o.batch_max_events = std::stoi(v); }},
      {"--batch-max-bytes", [&](const std::string& v) { o.batch_max_bytes = std::stol(v); }},
      {"--batch-linger", [&](const std::string& v) { o.batch_linger = v; }},
      {"--outbox-fillfactor", [&](const std::string& v) { o.outbox_fillfactor = std::stoi(v); }},
      {"--timeout", [&](const std::string& v) { o.timeout = std::stoi(v); }},
      {"--sink-keep-alive-timeout",
       [&](const std::string& v) { o.sink_keep_alive_timeout = std::stoi(v); }},
      {"--sink-backlog", [&](const std::string& v) { o.sink_backlog = std::stoi(v); }},
      {"--work-dir", [&](const std::string& v) { o.work_dir = v; }},
      {"--long-transaction-rounds",
       [&](const std::string& v) { o.long_transaction_rounds = std::stoi(v); }},
      {"--source", [&](const std::string& v) { o.source = v; }},
      {"--cost-rounds", [&](const std::string& v) { o.cost_rounds = std::stoi(v); }},
      {"--cost-seconds", [&](const std::string& v) { o.cost_seconds = std::stoi(v); }},
      {"--cost-rows", [&](const std::string& v) { o.cost_rows = std::stoi(v); }},
      {"--cost-setup", [&](const std::string& v) { o.cost_setup = v; }},
  };
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      std::cout << kUsage;
      std::exit(0);
    }
    if (a == "--long-transaction") {  // a flag: takes no value
      o.mode = "long-transaction";
      continue;
    }
    std::string value;
    bool have_value = false;
    if (auto eq = a.find('='); eq != std::string::npos && a.rfind("--", 0) == 0) {
      value = a.substr(eq + 1);
      a = a.substr(0, eq);
      have_value = true;
    }
    auto it = opts.find(a);
    if (it == opts.end()) {
      std::cerr << "relay_bench: unknown option " << a << "\n\n" << kUsage;
      std::exit(2);
    }
    if (!have_value) {
      if (i + 1 >= argc) {
        std::cerr << "relay_bench: " << a << " needs a value\n";
        std::exit(2);
      }
      value = argv[++i];
    }
    try {
      it->second(value);
    } catch (const std::exception&) {
      std::cerr << "relay_bench: bad value for " << a << ": " << value << "\n";
      std::exit(2);
    }
  }
  const std::vector<std::string> modes = {
      "throughput",   "batch",    "steady",           "idle", "app-cost",
      "publish-cost", "raw-http", "long-transaction", "all"};
  if (std::find(modes.begin(), modes.end(), o.mode) == modes.end()) {
    std::cerr << "relay_bench: unknown mode " << o.mode << "\n\n" << kUsage;
    std::exit(2);
  }
  if (o.database_url.empty() && o.mode != "raw-http") {
    std::cerr << "relay_bench: --database-url is required\n\n" << kUsage;
    std::exit(2);
  }
  if (o.relay.empty() && o.mode != "raw-http") {  // publish-cost runs `relay migrate`
    std::cerr << "relay_bench: --relay is required\n\n" << kUsage;
    std::exit(2);
  }
  if (o.events < 1 || o.keys < 1 || o.batch < 1 || o.rate < 1 || o.seconds < 1 ||
      o.idle_seconds < 0 || o.app_seconds < 1 || o.app_threads < 1 || o.lanes < 1 ||
      o.relay_batch < 1 || o.timeout < 1 || o.batch_max_events < 0 || o.batch_max_bytes < 1 ||
      o.outbox_fillfactor < 0 || o.outbox_fillfactor > 100 || o.long_transaction_rounds < 1 ||
      o.cost_rounds < 1 || o.cost_seconds < 1 || o.cost_rows < 1) {
    std::cerr << "relay_bench: numeric options must be positive\n";
    std::exit(2);
  }
  if (o.mode == "batch") {
    if (o.batch_max_events == 0) o.batch_max_events = 100;
    if (o.format == "binary") o.format = "cloudevents-json";
  }
  if (o.source != "table" && o.source != "wal") {
    std::cerr << "relay_bench: unknown --source " << o.source << " (table or wal)\n";
    std::exit(2);
  }
  if (o.insert != "publish" && o.insert != "bulk") {
    std::cerr << "relay_bench: unknown --insert " << o.insert << " (publish or bulk)\n";
    std::exit(2);
  }
  if (o.format != "binary" && o.format != "cloudevents-json" && o.format != "protobuf") {
    std::cerr << "relay_bench: unknown format " << o.format << "\n";
    std::exit(2);
  }
  if (o.batch_max_events > 0 && o.format == "binary") {
    std::cerr << "relay_bench: batches need --format cloudevents-json or protobuf\n";
    std::exit(2);
  }
  return o;
}

// ---- ids ----------------------------------------------------------------------------------------

struct Uuid {
  std::uint64_t hi = 0, lo = 0;
  bool operator==(const Uuid&) const = default;
};
struct UuidHash {
  size_t operator()(const Uuid& u) const {
    return std::hash<std::uint64_t>{}(u.hi * 0x9E3779B97F4A7C15ULL ^ u.lo);
  }
};

std::optional<Uuid> parse_uuid(std::string_view s) {
  Uuid u;
  int digits = 0;
  for (char c : s) {
    if (c == '-') continue;
    int v;
    if (c >= '0' && c <= '9')
      v = c - '0';
    else if (c >= 'a' && c <= 'f')
      v = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F')
      v = c - 'A' + 10;
    else
      return std::nullopt;
    if (digits < 16)
      u.hi = (u.hi << 4) | static_cast<std::uint64_t>(v);
    else if (digits < 32)
      u.lo = (u.lo << 4) | static_cast<std::uint64_t>(v);
    else
      return std::nullopt;
    ++digits;
  }
  if (digits != 32) return std::nullopt;
  return u;
}

Uuid uuid_or_throw(std::string_view s) {
  auto u = parse_uuid(s);
  if (!u) fail(fmt::format("not a uuid: '{}'", s));
  return *u;
}

// ---- statistics ---------------------------------------------------------------------------------

struct Percentiles {
  size_t n = 0;
  double p50 = 0, p90 = 0, p95 = 0, p99 = 0, max = 0, min = 0;  // milliseconds
};

Percentiles percentiles(std::vector<Ns> v) {
  Percentiles p;
  p.n = v.size();
  if (v.empty()) return p;
  std::sort(v.begin(), v.end());
  auto rank = [&](double q) {  // nearest rank
    size_t idx = static_cast<size_t>(std::ceil(q * static_cast<double>(v.size())));
    idx = std::clamp<size_t>(idx, 1, v.size()) - 1;
    return ns_to_ms(static_cast<double>(v[idx]));
  };
  p.p50 = rank(0.50);
  p.p90 = rank(0.90);
  p.p95 = rank(0.95);
  p.p99 = rank(0.99);
  p.max = ns_to_ms(static_cast<double>(v.back()));
  p.min = ns_to_ms(static_cast<double>(v.front()));
  return p;
}

std::string fmt_ms(double ms) {
  return ms < 10 ? fmt::format("{:.2f} ms", ms) : fmt::format("{:.1f} ms", ms);
}
std::string fmt_pct(const Percentiles& p) {
  return fmt::format("p50 {}  p90 {}  p95 {}  p99 {}  max {}  (n={})", fmt_ms(p.p50), fmt_ms(p.p90),
                     fmt_ms(p.p95), fmt_ms(p.p99), fmt_ms(p.max), p.n);
}

// ---- summary ------------------------------------------------------------------------------------

struct Section {
  std::string title;
  std::vector<std::pair<std::string, std::string>> rows;
  void add(std::string label, std::string value) {
    rows.emplace_back(std::move(label), std::move(value));
  }
};

void print_section(const Section& s, size_t width) {
  std::cout << "\n[" << s.title << "]\n";
  for (const auto& [label, value] : s.rows)
    std::cout << "  " << fmt::format("{:<{}}", label, width) << "  " << value << "\n";
  std::cout.flush();
}

size_t label_width(const std::vector<Section>& sections) {
  size_t w = 0;
  for (const auto& s : sections)
    for (const auto& r : s.rows) w = std::max(w, r.first.size());
  return w;
}

// ---- /proc --------------------------------------------------------------------------------------

const double kTicks = static_cast<double>(sysconf(_SC_CLK_TCK));

// Fields of /proc/PID/stat after the command name: [0] = state (field 3), [1] = ppid, [11] = utime,
// [12] = stime, [13] = cutime, [14] = cstime.
std::optional<std::vector<std::string>> proc_stat_fields(pid_t pid) {
  std::ifstream f(fmt::format("/proc/{}/stat", pid));
  std::string line;
  if (!f || !std::getline(f, line)) return std::nullopt;
  auto close = line.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream in(line.substr(close + 2));
  std::vector<std::string> out;
  std::string tok;
  while (in >> tok) out.push_back(tok);
  if (out.size() < 15) return std::nullopt;
  return out;
}

// User + system CPU seconds of a process (and, with children, of its reaped children).
std::optional<double> proc_cpu_seconds(pid_t pid, bool with_children = false) {
  auto f = proc_stat_fields(pid);
  if (!f) return std::nullopt;
  double ticks = std::stod((*f)[11]) + std::stod((*f)[12]);
  if (with_children) ticks += std::stod((*f)[13]) + std::stod((*f)[14]);
  return ticks / kTicks;
}

std::optional<long> proc_status_kb(pid_t pid, const std::string& field) {
  std::ifstream f(fmt::format("/proc/{}/status", pid));
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind(field + ":", 0) == 0) return std::stol(line.substr(field.size() + 1));
  }
  return std::nullopt;
}

// CPU of the whole PostgreSQL cluster: the postmaster, its reaped children (backends that exited)
// and its live children. Only meaningful when the server runs on this machine.
std::optional<double> postgres_cpu_seconds(pid_t postmaster) {
  if (postmaster <= 0) return std::nullopt;
  auto total = proc_cpu_seconds(postmaster, true);
  if (!total) return std::nullopt;
  DIR* d = opendir("/proc");
  if (d == nullptr) return std::nullopt;
  while (dirent* e = readdir(d)) {
    char* end = nullptr;
    long pid = std::strtol(e->d_name, &end, 10);
    if (end == e->d_name || *end != '\0') continue;
    auto f = proc_stat_fields(static_cast<pid_t>(pid));
    if (!f || std::stol((*f)[1]) != postmaster) continue;
    *total += (std::stod((*f)[11]) + std::stod((*f)[12])) / kTicks;
  }
  closedir(d);
  return total;
}

double self_cpu_seconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  auto tv = [](const timeval& t) {
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6;
  };
  return tv(ru.ru_utime) + tv(ru.ru_stime);
}

double thread_cpu_seconds() {
  rusage ru{};
  getrusage(RUSAGE_THREAD, &ru);
  auto tv = [](const timeval& t) {
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6;
  };
  return tv(ru.ru_utime) + tv(ru.ru_stime);
}

// Busy and total CPU seconds of the machine (all cores), from /proc/stat.
std::pair<double, double> machine_cpu_seconds() {
  std::ifstream f("/proc/stat");
  std::string cpu;
  double v[8] = {};
  f >> cpu;
  for (double& x : v) f >> x;
  double total = 0;
  for (double x : v) total += x;
  const double idle = v[3] + v[4];
  return {(total - idle) / kTicks, total / kTicks};
}

struct CpuSample {
  Ns at = 0;
  std::optional<double> relay, postgres;
  double bench = 0, machine_busy = 0, machine_total = 0;
};

struct CpuDelta {
  double wall = 0;
  std::optional<double> relay, postgres;
  double bench = 0, machine_busy = 0, machine_total = 0;
};

CpuDelta operator-(const CpuSample& b, const CpuSample& a) {
  CpuDelta d;
  d.wall = ns_to_s(static_cast<double>(b.at - a.at));
  if (a.relay && b.relay) d.relay = *b.relay - *a.relay;
  if (a.postgres && b.postgres) d.postgres = *b.postgres - *a.postgres;
  d.bench = b.bench - a.bench;
  d.machine_busy = b.machine_busy - a.machine_busy;
  d.machine_total = b.machine_total - a.machine_total;
  return d;
}

// A WAL-mode run leaves its replication slot behind, and a slot keeps its database from being
// dropped: end its reader (relay has stopped; a stray walsender may linger) and drop it.
void drop_slots(pqxx::nontransaction& tx, const std::string& db) {
  const std::string slots = "FROM pg_replication_slots WHERE database = " + tx.quote(db);
  for (int i = 0; i < 500 && !tx.exec("SELECT 1 " + slots).empty(); ++i) {
    tx.exec("SELECT pg_terminate_backend(active_pid) " + slots + " AND active_pid IS NOT NULL");
    try {
      tx.exec("SELECT pg_drop_replication_slot(slot_name) " + slots + " AND NOT active");
    } catch (const pqxx::sql_error&) {
      // still active for a moment: look again
    }
    tx.exec("SELECT pg_sleep(0.01)");
  }
}

std::string fmt_cpu(std::optional<double> s, double wall) {
  if (!s) return "n/a";
  return fmt::format("{:.2f} s ({:.2f} cores)", *s, wall > 0 ? *s / wall : 0.0);
}

void add_cpu_rows(Section& sec, const CpuDelta& d) {
  sec.add("  relay CPU", fmt_cpu(d.relay, d.wall));
  sec.add("  postgres CPU (all backends)", fmt_cpu(d.postgres, d.wall));
  sec.add("  bench CPU (sink + load gen)", fmt_cpu(d.bench, d.wall));
  const double cores = d.machine_total > 0 && d.wall > 0 ? d.machine_total / d.wall : 0;
  sec.add("  machine busy", d.machine_total > 0
                                ? fmt::format("{:.0f}% of {:.0f} cores",
                                              100.0 * d.machine_busy / d.machine_total, cores)
                                : std::string("n/a"));
  if (d.relay && d.postgres && d.machine_total > 0) {
    // Whatever else ran on the machine meanwhile (other builds and tests skew every number here).
    const double others = std::max(0.0, d.machine_busy - *d.relay - *d.postgres - d.bench);
    sec.add("  other processes + kernel", fmt_cpu(others, d.wall));
  }
}

// relay's and PostgreSQL's CPU over a phase, scaled to 10,000 events.
void add_cpu_per_10k_rows(Section& sec, const CpuDelta& d, long events) {
  const double scale = 1e4 / static_cast<double>(events);
  if (d.relay) sec.add("relay CPU per 10,000 events", fmt::format("{:.3f} s", *d.relay * scale));
  if (d.postgres)
    sec.add("postgres CPU per 10,000 events", fmt::format("{:.3f} s", *d.postgres * scale));
}

// ---- child processes ----------------------------------------------------------------------------

std::string describe_status(int status) {
  if (WIFEXITED(status)) return fmt::format("exit code {}", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return fmt::format("killed by signal {}", WTERMSIG(status));
  return "unknown status";
}

class Child {
 public:
  // Starts argv[0] with stdin from /dev/null and stdout+stderr appended to log_path.
  Child(const std::vector<std::string>& argv, const std::string& log_path) : log_path_(log_path) {
    int fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) fail(fmt::format("cannot open {}: {}", log_path, std::strerror(errno)));
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, fd, 1);
    posix_spawn_file_actions_adddup2(&fa, fd, 2);
    posix_spawn_file_actions_addclosefrom_np(&fa,
                                             3);  // not our sockets, not our database connections
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    int rc = posix_spawn(&pid_, args[0], &fa, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    ::close(fd);
    if (rc != 0) fail(fmt::format("cannot start {}: {}", argv[0], std::strerror(rc)));
    pidfd_ = static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0));
  }
  ~Child() {
    if (!exited_) {
      ::kill(pid_, SIGKILL);
      (void)wait_exit(Clock::now() + std::chrono::seconds(10));
    }
    if (pidfd_ >= 0) ::close(pidfd_);
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  pid_t pid() const { return pid_; }
  const std::string& log_path() const { return log_path_; }

  bool alive() {
    if (exited_) return false;
    int st = 0;
    if (::waitpid(pid_, &st, WNOHANG) == pid_) {
      exited_ = true;
      status_ = st;
    }
    return !exited_;
  }

  // Waits for the child to exit until the deadline; true once it has been reaped.
  bool wait_exit(Clock::time_point deadline) {
    while (alive()) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      if (left <= 0) return false;
      if (pidfd_ >= 0) {
        pollfd p{pidfd_, POLLIN, 0};
        (void)::poll(&p, 1, static_cast<int>(std::min<long long>(left, 1000)));
      } else {
        // No pidfd (old kernel): re-check the exit status a few times a second until the deadline.
        const std::chrono::milliseconds recheck(std::min<long long>(left, 20));
        std::this_thread::sleep_for(recheck);  // ok-sleep: bounded by the deadline
      }
    }
    return true;
  }

  // SIGTERM, then SIGKILL if it has not exited by the deadline. Returns how it ended.
  std::string stop(std::chrono::seconds grace) {
    if (alive()) ::kill(pid_, SIGTERM);
    if (!wait_exit(Clock::now() + grace)) {
      ::kill(pid_, SIGKILL);
      (void)wait_exit(Clock::now() + std::chrono::seconds(10));
      return "did not exit after SIGTERM; SIGKILLed";
    }
    return describe_status(status_);
  }
  int status() const { return status_; }

 private:
  std::string log_path_;
  pid_t pid_ = -1;
  int pidfd_ = -1;
  bool exited_ = false;
  int status_ = 0;
};

std::string tail_file(const std::string& path, size_t max_lines = 20) {
  std::ifstream f(path);
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(f, line)) {
    lines.push_back(line);
    if (lines.size() > max_lines) lines.erase(lines.begin());
  }
  std::string out;
  for (const auto& l : lines) out += "    | " + l + "\n";
  return out;
}

// ---- sink ---------------------------------------------------------------------------------------

// The event ids in a batch body (application/cloudevents-batch+json: a JSON array of CloudEvents;
// relay.v1.EventBatch), in body order; nullopt for an event without a uuid id. Empty if the body
// does not parse.
std::vector<std::optional<Uuid>> batch_ids(std::string_view content_type, const std::string& body) {
  std::vector<std::optional<Uuid>> ids;
  if (content_type.rfind("application/cloudevents-batch+json", 0) == 0) {
    const auto json = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
    if (!json.is_array()) return ids;
    ids.reserve(json.size());
    for (const auto& ce : json) {
      const auto id = ce.is_object() ? ce.find("id") : ce.end();
      ids.push_back(id != ce.end() && id->is_string()
                        ? parse_uuid(id->get_ref<const std::string&>())
                        : std::nullopt);
    }
  } else {
    relay::v1::EventBatch batch;
    if (!batch.ParseFromString(body)) return ids;
    ids.reserve(static_cast<size_t>(batch.events_size()));
    for (const auto& e : batch.events()) ids.push_back(parse_uuid(e.id()));
  }
  return ids;
}

bool is_batch(std::string_view content_type) {
  return content_type.rfind("application/cloudevents-batch+json", 0) == 0 ||
         content_type.find("relay.v1.EventBatch") != std::string_view::npos;
}

// The consumer: answers 200 with an empty body as fast as cpp-httplib allows, and records every
// event's id with its steady_clock receipt time: the Idempotency-Key of a single-event request (it
// is the event id), each event id inside a batch body.
class Sink {
 public:
  Sink(int threads, size_t expected, int keep_alive_timeout, int backlog) {
    records_.reserve(expected + expected / 4 + 1024);
    first_.reserve(expected + 1024);
    svr_.new_task_queue = [threads] {
      return new httplib::ThreadPool(static_cast<size_t>(threads));
    };
    svr_.set_tcp_nodelay(true);  // else ~40 ms per request (Nagle + delayed ACK)
    svr_.set_keep_alive_max_count(size_t{1} << 30);  // default 5: a reconnect every 5 requests
    svr_.set_keep_alive_timeout(keep_alive_timeout);
    svr_.Post("/events", [this](const httplib::Request& req, httplib::Response& res) {
      on_request(req, res);
    });
    svr_.set_socket_options([this](int sock) {
      httplib::default_socket_options(sock);
      listen_fd_ = sock;
    });
    port_ = svr_.bind_to_any_port("127.0.0.1");
    if (port_ <= 0) fail("sink: cannot bind 127.0.0.1:0");
    // cpp-httplib 0.11 listens with a backlog of 5: when relay opens its lanes' connections at
    // once, SYNs beyond the accept queue are dropped and those lanes connect only after the 1 s
    // SYN retransmit, stalling the pipeline. A second listen() on the bound socket raises it.
    if (backlog > 5 && listen_fd_ >= 0 && ::listen(listen_fd_, backlog) != 0)
      fail("sink: listen() failed");
    thread_ = std::thread([this] { svr_.listen_after_bind(); });
    // The socket already listens (connections queue in the backlog); wait only so that stop() below
    // is never called before listen_after_bind() marked the server running.
    const auto deadline = Clock::now() + std::chrono::seconds(10);
    while (!svr_.is_running()) {
      if (Clock::now() > deadline) fail("sink: server did not start");
      std::this_thread::yield();
    }
  }
  ~Sink() { stop(); }

  void stop() {
    if (!thread_.joinable()) return;
    svr_.stop();
    thread_.join();
  }

  int port() const { return port_; }
  std::string endpoint() const { return fmt::format("http://127.0.0.1:{}/events", port_); }

  // Waits until `distinct` different ids have arrived, or the deadline passes.
  bool wait_distinct(size_t distinct, Clock::time_point deadline) {
    std::unique_lock lock(mu_);
    notify_at_ = distinct;
    bool ok = cv_.wait_until(lock, deadline, [&] { return first_.size() >= distinct; });
    notify_at_ = SIZE_MAX;
    return ok;
  }
  // Waits until `id` has arrived, or the deadline passes.
  bool wait_id(const Uuid& id, Clock::time_point deadline) {
    std::unique_lock lock(mu_);
    watched_ = id;
    bool ok = cv_.wait_until(lock, deadline, [&] { return first_.count(id) != 0; });
    watched_.reset();
    return ok;
  }

  std::optional<Ns> receipt(const Uuid& id) {
    std::lock_guard lock(mu_);
    auto it = first_.find(id);
    if (it == first_.end()) return std::nullopt;
    return it->second;
  }
  size_t distinct() {
    std::lock_guard lock(mu_);
    return first_.size();
  }
  size_t requests() {
    std::lock_guard lock(mu_);
    return requests_;
  }
  size_t duplicates() {
    std::lock_guard lock(mu_);
    return records_.size() - first_.size() - bad_;
  }
  size_t bad() {
    std::lock_guard lock(mu_);
    return bad_;
  }
  Ns last_receipt() {
    std::lock_guard lock(mu_);
    return records_.empty() ? 0 : records_.back().at;
  }

 private:
  struct Record {
    Uuid id;
    Ns at;
  };

  void on_request(const httplib::Request& req, httplib::Response& res) {
    const Ns at = now_ns();
    const std::string content_type = req.get_header_value("Content-Type");
    std::vector<std::optional<Uuid>> ids;
    if (is_batch(content_type)) {
      ids = batch_ids(content_type, req.body);       // parsed outside the lock
      if (ids.empty()) ids.push_back(std::nullopt);  // an unreadable batch counts as one bad
    } else {
      ids.push_back(parse_uuid(req.get_header_value("Idempotency-Key")));
    }
    bool wake = false;
    {
      std::lock_guard lock(mu_);
      ++requests_;
      for (const auto& id : ids) {
        records_.push_back({id.value_or(Uuid{}), at});
        if (!id) {
          ++bad_;
        } else {
          first_.try_emplace(*id, at);
          wake = wake || first_.size() >= notify_at_ || (watched_ && *watched_ == *id);
        }
      }
    }
    if (wake) cv_.notify_all();
    res.status = 200;
  }

  httplib::Server svr_;
  std::thread thread_;
  int port_ = 0;
  int listen_fd_ = -1;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Record> records_;  // one per event received (a batch adds one per event)
  size_t requests_ = 0;
  std::unordered_map<Uuid, Ns, UuidHash> first_;
  size_t bad_ = 0;
  size_t notify_at_ = SIZE_MAX;
  std::optional<Uuid> watched_;
};

// ---- database -----------------------------------------------------------------------------------

// The same server URL with another database name.
std::string url_with_database(const std::string& url, const std::string& db) {
  auto scheme = url.find("://");
  if (scheme == std::string::npos) fail("--database-url must be a postgresql:// URL");
  auto slash = url.find('/', scheme + 3);
  auto query = url.find('?', scheme + 3);
  std::string base = url.substr(0, std::min(slash, query));
  std::string rest = query == std::string::npos ? "" : url.substr(query);
  return base + "/" + db + rest;
}

constexpr const char* kPublishOne =
    "SELECT relay.publish($1, $2, jsonb_build_object('seq', $3::bigint, 'pad', repeat('x', "
    "72)))::text";
// ~100-byte payloads: {"pad": "xxx...", "seq": 12345}
constexpr const char* kPublishBatch =
    "SELECT relay.publish('bench.event', 'k' || (i % $3::bigint), "
    "jsonb_build_object('seq', i, 'pad', repeat('x', 72)))::text "
    "FROM generate_series($1::bigint, $2::bigint) AS i";
// The same rows, as relay.publish would write them, in one statement.
constexpr const char* kInsertBatch =
    "INSERT INTO relay.outbox (topic, key, payload, content_type) "
    "SELECT 'bench.event', 'k' || (i % $3::bigint), "
    "convert_to(jsonb_build_object('seq', i, 'pad', repeat('x', 72))::text, 'UTF8'), "
    "'application/json' FROM generate_series($1::bigint, $2::bigint) AS i "
    "RETURNING event_id::text";
constexpr const char* kPublishApp =
    "SELECT relay.publish('bench.app', 'k' || $1::bigint, '{}'::jsonb)";

struct Published {
  Uuid id;
  Ns committed;
};

// One event in its own (autocommit) transaction; `committed` is taken as soon as COMMIT returns.
Published publish_one(pqxx::connection& c, const std::string& topic, const std::string& key,
                      long long seq) {
  pqxx::nontransaction tx(c);
  auto r = tx.exec_prepared("one", topic, key, seq);
  const Ns t = now_ns();
  return {uuid_or_throw(r[0][0].c_str()), t};
}

// ---- the benchmark ------------------------------------------------------------------------------

class Bench {
 public:
  explicit Bench(Options o) : o_(std::move(o)) {}

  int run() {
    if (o_.work_dir.empty()) {
      char tmpl[] = "/tmp/relay_bench.XXXXXX";
      if (mkdtemp(tmpl) == nullptr) fail("mkdtemp failed");
      o_.work_dir = tmpl;
    } else {
      ::mkdir(o_.work_dir.c_str(), 0755);
    }
    Section setup{"setup"};
    setup.add("mode", o_.mode);
    setup.add("machine", fmt::format("{} online CPUs", sysconf(_SC_NPROCESSORS_ONLN)));
    setup.add("relay", o_.relay.empty() ? "-" : o_.relay);
    setup.add("source", o_.source);
    setup.add(
        "relay config",
        fmt::format(
            "max_in_flight (lanes) {}, source.batch_size {}, one subscription, topics [\"*\"]",
            o_.lanes, o_.relay_batch));
    setup.add("subscription format / batch",
              o_.batch_max_events > 0
                  ? fmt::format("{} / max_events {}, max_bytes {}, linger {}", o_.format,
                                o_.batch_max_events, o_.batch_max_bytes, o_.batch_linger)
                  : fmt::format("{} / one event per request", o_.format));
    if (o_.outbox_fillfactor > 0)
      setup.add("relay.outbox fillfactor", std::to_string(o_.outbox_fillfactor));
    setup.add(
        "sink",
        fmt::format("cpp-httplib server, {} threads, nodelay, keep-alive timeout {} s, backlog {}",
                    sink_threads(), o_.sink_keep_alive_timeout, o_.sink_backlog));
    setup.add("work dir (configs, logs)", o_.work_dir);
    if (!o_.database_url.empty()) {
      pqxx::connection admin(o_.database_url);
      pqxx::nontransaction tx(admin);
      auto r = tx.exec(
          "SELECT pg_backend_pid(), current_setting('server_version'), current_setting('fsync'), "
          "current_setting('synchronous_commit')");
      const pid_t backend = r[0][0].as<int>();
      if (auto f = proc_stat_fields(backend)) postmaster_ = static_cast<pid_t>(std::stol((*f)[1]));
      setup.add("postgres",
                fmt::format("{}, fsync={}, synchronous_commit={}{}", r[0][1].c_str(),
                            r[0][2].c_str(), r[0][3].c_str(),
                            postmaster_ > 0 ? fmt::format(", postmaster pid {}", postmaster_)
                                            : std::string(" (not local: no CPU figures)")));
    }
    sections_.push_back(setup);
    print_section(setup, label_width(sections_));

    std::vector<std::string> modes;
    if (o_.mode == "all")
      modes = {"throughput", "raw-http", "steady", "idle", "app-cost"};
    else
      modes = {o_.mode};

    int failures = 0;
    for (const auto& m : modes) {
      std::cout << "\n== " << m << " ...\n" << std::flush;
      Section s{m};
      try {
        if (m == "throughput" || m == "batch")
          throughput(s);
        else if (m == "raw-http")
          raw_http(s);
        else if (m == "steady")
          steady(s);
        else if (m == "idle")
          idle(s);
        else if (m == "app-cost")
          app_cost(s);
        else if (m == "long-transaction")
          long_transaction(s);
        else if (m == "publish-cost")
          publish_cost(s);
        if (m == "raw-http" && relay_events_per_s_ && raw_requests_per_s_) {
          s.add("relay / raw HTTP", fmt::format("{:.2f} ({:.0f} events/s vs {:.0f} requests/s)",
                                                *relay_events_per_s_ / *raw_requests_per_s_,
                                                *relay_events_per_s_, *raw_requests_per_s_));
        }
        if (m == "raw-http" && relay_drain_per_s_ && raw_requests_per_s_) {
          s.add("relay drain / raw HTTP",
                fmt::format("{:.2f} ({:.0f} events/s vs {:.0f} requests/s)",
                            *relay_drain_per_s_ / *raw_requests_per_s_, *relay_drain_per_s_,
                            *raw_requests_per_s_));
        }
      } catch (const std::exception& e) {
        ++failures;
        s.add("FAILED", e.what());
      }
      sections_.push_back(s);
      print_section(s, label_width(sections_));
    }

    std::cout << "\n================================ summary ================================";
    const size_t w = label_width(sections_);
    for (const auto& s : sections_) print_section(s, w);
    std::cout << (failures == 0 ? "\nall modes completed\n"
                                : fmt::format("\n{} mode(s) FAILED\n", failures));
    return failures == 0 ? 0 : 1;
  }

 private:
  int sink_threads() const { return std::max(8, o_.lanes + 4); }

  CpuSample sample(Child* relay) {
    CpuSample s;
    s.at = now_ns();
    if (relay != nullptr) s.relay = proc_cpu_seconds(relay->pid());
    s.postgres = postgres_cpu_seconds(postmaster_);
    s.bench = self_cpu_seconds();
    std::tie(s.machine_busy, s.machine_total) = machine_cpu_seconds();
    return s;
  }

  // A fresh database, migrated; a sink; relay running against both.
  struct Env {
    std::string db_name, db_url;
    std::unique_ptr<Sink> sink;
    std::unique_ptr<Child> relay;
    std::unique_ptr<pqxx::connection> conn;  // the load generator's connection
  };

  Env setup(const std::string& mode, size_t expected) {
    Env env;
    make_database(env, mode);
    env.sink = std::make_unique<Sink>(sink_threads(), expected, o_.sink_keep_alive_timeout,
                                      o_.sink_backlog);
    start_relay(env, mode);
    return env;
  }

  // A fresh database relay_bench_<n>, migrated by `relay migrate` (and --outbox-fillfactor).
  void make_database(Env& env, const std::string& mode) {
    env.db_name = fmt::format("relay_bench_{}", ++db_counter_);
    env.db_url = url_with_database(o_.database_url, env.db_name);
    {
      pqxx::connection admin(o_.database_url);
      pqxx::nontransaction tx(admin);
      drop_slots(tx, env.db_name);
      tx.exec(fmt::format("DROP DATABASE IF EXISTS {} WITH (FORCE)", env.db_name));
      tx.exec(fmt::format("CREATE DATABASE {}", env.db_name));
    }
    {
      const std::string log = fmt::format("{}/{}-migrate.log", o_.work_dir, mode);
      Child migrate({o_.relay, "migrate", "--database-url", env.db_url}, log);
      if (!migrate.wait_exit(Clock::now() + std::chrono::seconds(120)))
        fail("relay migrate did not finish in 120 s");
      if (!WIFEXITED(migrate.status()) || WEXITSTATUS(migrate.status()) != 0) {
        fail(fmt::format("relay migrate failed ({}); {}:\n{}", describe_status(migrate.status()),
                         log, tail_file(log)));
      }
    }
    if (o_.outbox_fillfactor > 0) {
      pqxx::connection c(env.db_url);
      pqxx::nontransaction tx(c);
      tx.exec(fmt::format("ALTER TABLE relay.outbox SET (fillfactor = {})", o_.outbox_fillfactor));
    }
  }

  // relay run against env's database and sink, and the load generator's connection.
  void start_relay(Env& env, const std::string& mode) {
    const std::string config = fmt::format("{}/{}.yaml", o_.work_dir, mode);
    {
      std::ofstream f(config);
      f << "# written by relay_bench for mode " << mode << "\n"
        << "database:\n  url: \"" << env.db_url << "\"\n"
        << "source:\n  mode: " << o_.source << "\n  batch_size: " << o_.relay_batch
        << "\n  poll_interval: 1s\n"
        // Slot names are cluster-wide: one per bench database.
        << (o_.source == "wal" ? "  wal: { slot: " + env.db_name + " }\n" : std::string())
        << "subscriptions:\n"
        << "  - name: bench\n"
        << "    topics: [\"*\"]\n"
        << "    endpoint: " << env.sink->endpoint() << "\n"
        << "    max_in_flight: " << o_.lanes << "\n"
        << "    timeout: 10s\n"
        << "    format: " << o_.format << "\n";
      if (o_.batch_max_events > 0) {
        f << "    batch: { max_events: " << o_.batch_max_events
          << ", max_bytes: " << o_.batch_max_bytes << ", linger: " << o_.batch_linger << " }\n";
      }
      f << "log:\n  level: warn\n"
        << "shutdown_timeout: 10s\n";
      if (!f) fail("cannot write " + config);
    }
    env.relay = std::make_unique<Child>(
        std::vector<std::string>{o_.relay, "run", "--config", config, "--database-url", env.db_url},
        fmt::format("{}/{}-relay.log", o_.work_dir, mode));
    env.conn = std::make_unique<pqxx::connection>(env.db_url);
    env.conn->prepare("one", kPublishOne);
    env.conn->prepare("batch", o_.insert == "bulk" ? kInsertBatch : kPublishBatch);
  }

  // Stops relay (SIGTERM, deadline), the sink, and drops the database. Adds what it saw to `s`.
  void teardown(Env& env, Section& s) {
    if (env.relay) {
      // Let relay finish recording outcomes (deleting delivered rows) so that SIGTERM finds it
      // quiet: poll the outbox until it is empty, with a deadline.
      try {
        const long left = wait_outbox_empty(env, std::chrono::seconds(30));
        pqxx::nontransaction tx(*env.conn);
        const long dead = tx.exec("SELECT count(*) FROM relay.dead_letter")[0][0].as<long>();
        const long retry = tx.exec("SELECT count(*) FROM relay.delivery")[0][0].as<long>();
        s.add("outbox rows left / retries / dead letters",
              fmt::format("{} / {} / {}", left, retry, dead));
      } catch (const std::exception& e) {
        s.add("outbox check", std::string("failed: ") + e.what());
      }
      auto hwm = proc_status_kb(env.relay->pid(), "VmHWM");
      if (hwm)
        s.add("relay peak RSS (VmHWM)",
              fmt::format("{:.1f} MiB", static_cast<double>(*hwm) / 1024.0));
      const auto t0 = now_ns();
      const std::string how = env.relay->stop(std::chrono::seconds(30));
      s.add("relay stop (SIGTERM)",
            fmt::format("{} after {:.0f} ms", how, ns_to_ms(static_cast<double>(now_ns() - t0))));
      s.add("relay log", env.relay->log_path());
      env.relay.reset();
    }
    if (env.sink) {
      s.add("duplicates received", std::to_string(env.sink->duplicates()));
      if (env.sink->bad() != 0)
        s.add("requests without a valid Idempotency-Key", std::to_string(env.sink->bad()));
      env.sink->stop();
      env.sink.reset();
    }
    env.conn.reset();
    if (!env.db_name.empty()) {
      try {
        pqxx::connection admin(o_.database_url);
        pqxx::nontransaction tx(admin);
        drop_slots(tx, env.db_name);
        tx.exec(fmt::format("DROP DATABASE IF EXISTS {} WITH (FORCE)", env.db_name));
      } catch (const std::exception& e) {
        s.add("drop database", std::string("failed: ") + e.what());
      }
    }
  }

  // Runs fn with a fresh environment and always tears it down.
  template <typename Fn>
  void with_env(const std::string& mode, size_t expected, Section& s, Fn&& fn) {
    Env env = setup(mode, expected);
    try {
      fn(env);
    } catch (const std::exception& e) {
      const std::string log = env.relay ? env.relay->log_path() : "";
      teardown(env, s);
      std::string msg = e.what();
      if (!log.empty()) msg += "\n  relay log " + log + ":\n" + tail_file(log);
      fail(msg);
    }
    teardown(env, s);
  }

  // Waits until the sink has seen `distinct` ids; fails on the deadline or if relay dies.
  void await_distinct(Env& env, size_t distinct, std::chrono::seconds limit, const char* what) {
    const auto deadline = Clock::now() + limit;
    while (true) {
      // Wake up a few times a second only to notice relay dying; the sink notifies on arrival.
      const auto slice = std::min(deadline, Clock::now() + std::chrono::milliseconds(250));
      if (env.sink->wait_distinct(distinct, slice)) return;
      if (!env.relay->alive())
        fail(fmt::format("relay exited ({}) while waiting for {}",
                         describe_status(env.relay->status()), what));
      if (Clock::now() >= deadline) {
        fail(fmt::format("timed out after {} s waiting for {}: {} of {} distinct ids received",
                         limit.count(), what, env.sink->distinct(), distinct));
      }
    }
  }

  void await_id(Env& env, const Uuid& id, std::chrono::seconds limit, const char* what) {
    const auto deadline = Clock::now() + limit;
    while (true) {
      const auto slice = std::min(deadline, Clock::now() + std::chrono::milliseconds(250));
      if (env.sink->wait_id(id, slice)) return;
      if (!env.relay->alive())
        fail(fmt::format("relay exited ({}) while waiting for {}",
                         describe_status(env.relay->status()), what));
      if (Clock::now() >= deadline)
        fail(fmt::format("timed out after {} s waiting for {}", limit.count(), what));
    }
  }

  // One event, then wait for it: relay is up, connected and has a warm lane. Returns its latency.
  Ns warm_up(Env& env) {
    const auto p = publish_one(*env.conn, "bench.warmup", "warmup", 0);
    await_id(env, p.id, std::chrono::seconds(60), "the warm-up event");
    return *env.sink->receipt(p.id) - p.committed;
  }

  std::chrono::seconds limit() const { return std::chrono::seconds(o_.timeout); }

  // ---- throughput ----
  void throughput(Section& s) {
    const long n = o_.events;
    s.add("workload",
          fmt::format("{} events, {} keys, {} per insert transaction ({}), ~100-byte JSON "
                      "payloads",
                      n, o_.keys, o_.batch,
                      o_.insert == "bulk" ? "one multi-row INSERT INTO relay.outbox"
                                          : "one relay.publish per event"));
    with_env(
        o_.mode == "batch" ? "batch" : "throughput", 2 * static_cast<size_t>(n) + 1, s,
        [&](Env& env) {
          s.add("first event after start", fmt_ms(ns_to_ms(static_cast<double>(warm_up(env)))));
          std::vector<Published> sent;
          sent.reserve(static_cast<size_t>(n));
          const CpuSample c0 = sample(env.relay.get());
          const size_t requests0 = env.sink->requests();
          insert_batches(env, 1, n, sent);
          const Ns inserted = now_ns();
          const size_t received_at_insert_end = env.sink->distinct() - 1;
          await_distinct(env, static_cast<size_t>(n) + 1, limit(), "every event");
          const CpuSample c1 = sample(env.relay.get());
          const size_t requests = env.sink->requests() - requests0;

          std::vector<Ns> lat;
          lat.reserve(sent.size());
          Ns last = 0;
          for (const auto& p : sent) {
            auto r = env.sink->receipt(p.id);
            if (!r) fail("an inserted event id never reached the sink");
            lat.push_back(*r - p.committed);
            last = std::max(last, *r);
          }
          const Ns first_commit = sent.front().committed;
          const double window = ns_to_s(static_cast<double>(last - first_commit));
          relay_events_per_s_ = static_cast<double>(n) / window;
          s.add("inserts",
                fmt::format(
                    "{:.2f} s ({:.0f} events/s committed); {} already delivered by then",
                    ns_to_s(static_cast<double>(inserted - first_commit)),
                    static_cast<double>(n) / ns_to_s(static_cast<double>(inserted - first_commit)),
                    received_at_insert_end));
          s.add(
              "THROUGHPUT end to end",
              fmt::format("{:.0f} events/s  ({} events in {:.2f} s, first commit -> last receipt)",
                          *relay_events_per_s_, n, window));
          s.add("requests received",
                fmt::format(
                    "{} ({:.1f} events per request)", requests,
                    static_cast<double>(n) / static_cast<double>(std::max<size_t>(1, requests))));
          s.add("latency commit -> receipt", fmt_pct(percentiles(std::move(lat))));
          const CpuDelta d = c1 - c0;
          add_cpu_rows(s, d);
          add_cpu_per_10k_rows(s, d, n);

          // Phase 2, relay alone: a backlog of n events is committed while relay is paused
          // (SIGSTOP), then relay resumes and drains it. Nothing competes with relay for the CPU
          // but Postgres and the sink, so this is relay's own ceiling, which phase 1 can hide
          // behind the insert rate.
          wait_outbox_empty(env, std::chrono::seconds(60));
          std::vector<Published> backlog;
          backlog.reserve(static_cast<size_t>(n));
          {
            struct Resume {
              pid_t pid;
              ~Resume() { ::kill(pid, SIGCONT); }
            } resume{env.relay->pid()};
            if (::kill(env.relay->pid(), SIGSTOP) != 0) fail("cannot SIGSTOP relay");
            insert_batches(env, n + 1, n, backlog);
          }
          const CpuSample c2 = sample(env.relay.get());  // just after SIGCONT
          await_distinct(env, 2 * static_cast<size_t>(n) + 1, limit(), "the backlog");
          const CpuSample c3 = sample(env.relay.get());
          Ns last2 = 0;
          for (const auto& p : backlog) last2 = std::max(last2, *env.sink->receipt(p.id));
          const double drain = ns_to_s(static_cast<double>(last2 - c2.at));
          s.add("DRAIN a backlog (relay alone)",
                fmt::format("{:.0f} events/s  ({} events committed while relay was "
                            "SIGSTOPped, delivered {:.2f} s after SIGCONT)",
                            static_cast<double>(n) / drain, n, drain));
          relay_drain_per_s_ = static_cast<double>(n) / drain;
          const CpuDelta d2 = c3 - c2;
          add_cpu_rows(s, d2);
          add_cpu_per_10k_rows(s, d2, n);
        });
  }

  // ---- long-transaction ----
  // The known failure of queue tables in PostgreSQL: a snapshot held anywhere keeps every deleted
  // row as a dead tuple. Drains --events N events committed while relay is paused (SIGSTOP), first
  // without, then --long-transaction-rounds times while a REPEATABLE READ transaction on another
  // connection holds a snapshot taken before those events existed (idle in transaction).
  void long_transaction(Section& s) {
    const long n = o_.events;
    const int rounds = o_.long_transaction_rounds;
    s.add("workload",
          fmt::format("drain {} events ({} keys, {} per insert transaction, {}) once without, then "
                      "{} times with a REPEATABLE READ snapshot held",
                      n, o_.keys, o_.batch,
                      o_.insert == "bulk" ? "multi-row INSERT" : "relay.publish", rounds));
    with_env(
        "long-transaction", static_cast<size_t>(rounds + 1) * static_cast<size_t>(n) + 1, s,
        [&](Env& env) {
          s.add("first event after start", fmt_ms(ns_to_ms(static_cast<double>(warm_up(env)))));
          long next = 1;
          size_t expected = 1;  // the warm-up event
          // One drain: relay paused while n events are committed, then timed from SIGCONT
          // to the last receipt. Returns events/s.
          auto drain = [&](const std::string& label) {
            wait_outbox_empty(env, std::chrono::seconds(60));
            std::vector<Published> backlog;
            backlog.reserve(static_cast<size_t>(n));
            {
              struct Resume {
                pid_t pid;
                ~Resume() { ::kill(pid, SIGCONT); }
              } resume{env.relay->pid()};
              if (::kill(env.relay->pid(), SIGSTOP) != 0) fail("cannot SIGSTOP relay");
              insert_batches(env, next, n, backlog);
            }
            const CpuSample c0 = sample(env.relay.get());  // just after SIGCONT
            next += n;
            expected += static_cast<size_t>(n);
            await_distinct(env, expected, limit(), label.c_str());
            const CpuSample c1 = sample(env.relay.get());
            Ns last = 0;
            for (const auto& p : backlog) last = std::max(last, *env.sink->receipt(p.id));
            const double secs = ns_to_s(static_cast<double>(last - c0.at));
            const double rate = static_cast<double>(n) / secs;
            wait_outbox_empty(env, std::chrono::seconds(60));
            const long dead = outbox_dead_tuples(env);
            s.add(label, fmt::format("{:.0f} events/s  ({} events in {:.2f} s); outbox dead "
                                     "tuples after it: {}",
                                     rate, n, secs, dead));
            add_cpu_per_10k_rows(s, c1 - c0, n);
            return rate;
          };
          const double without = drain("DRAIN without a long transaction");

          pqxx::connection holder_conn(env.db_url);
          pqxx::transaction<pqxx::isolation_level::repeatable_read> holder(holder_conn, "long");
          holder.exec("SELECT count(*) FROM relay.outbox");  // takes the snapshot
          std::vector<double> with;
          for (int r = 1; r <= rounds; ++r)
            with.push_back(drain(fmt::format("DRAIN with it open, round {}", r)));
          const long dead = outbox_dead_tuples(env);
          holder.abort();
          std::string ratios;
          for (size_t i = 0; i < with.size(); ++i)
            ratios += fmt::format("{}{:.2f}", i == 0 ? "" : " / ", with[i] / without);
          s.add("LONG TRANSACTION ratio with/without",
                fmt::format("{}  (round 1{}; {} dead tuples at the end)", ratios,
                            rounds > 1 ? fmt::format("..{}", rounds) : "", dead));
          // Leave a clean table for the teardown's checks.
          pqxx::nontransaction tx(*env.conn);
          tx.exec("VACUUM relay.outbox");
        });
  }

  // relay.outbox's dead tuples, counted by a VACUUM (which removes what it can and records the
  // rest in n_dead_tup; autovacuum would do the same work on its own).
  long outbox_dead_tuples(Env& env) {
    pqxx::nontransaction tx(*env.conn);
    tx.exec("VACUUM relay.outbox");
    return tx
        .exec(
            "SELECT n_dead_tup FROM pg_stat_user_tables WHERE relid = 'relay.outbox'::regclass")[0]
                                                                                                [0]
        .as<long>();
  }

  // Events first..first+count-1 in transactions of --batch; each id gets its batch's commit time.
  void insert_batches(Env& env, long first, long count, std::vector<Published>& out) {
    const long last = first + count - 1;
    for (long lo = first; lo <= last; lo += o_.batch) {
      const long hi = std::min(last, lo + o_.batch - 1);
      pqxx::work tx(*env.conn);
      auto rows = tx.exec_prepared("batch", static_cast<long long>(lo), static_cast<long long>(hi),
                                   static_cast<long long>(o_.keys));
      tx.commit();
      const Ns t = now_ns();
      for (const auto& row : rows) out.push_back({uuid_or_throw(row[0].c_str()), t});
    }
  }

  // Polls the outbox until relay has deleted every delivered row (or the deadline passes).
  long wait_outbox_empty(Env& env, std::chrono::seconds limit) {
    const auto deadline = Clock::now() + limit;
    long left = -1;
    while (env.relay->alive()) {
      pqxx::nontransaction tx(*env.conn);
      left = tx.exec("SELECT count(*) FROM relay.outbox")[0][0].as<long>();
      if (left == 0 || Clock::now() > deadline) break;
      constexpr std::chrono::milliseconds kRecheck{20};
      std::this_thread::sleep_for(kRecheck);  // ok-sleep: re-check, bounded by the deadline
    }
    return left;
  }

  // ---- raw HTTP ----
  void raw_http(Section& s) {
    const long n = o_.events;
    s.add("workload",
          fmt::format(
              "{} POSTs of ~100 bytes, {} client threads (one keep-alive, nodelay Client each), "
              "same sink",
              n, o_.lanes));
    Sink sink(sink_threads(), static_cast<size_t>(n), o_.sink_keep_alive_timeout, o_.sink_backlog);
    const std::string body = "{\"pad\": \"" + std::string(72, 'x') + "\", \"seq\": 12345}";
    std::atomic<long> next{0};
    std::atomic<long> errors{0};
    std::mutex error_mu;
    std::string first_error;
    double client_cpu = 0;
    std::latch ready(o_.lanes + 1);
    std::vector<std::thread> threads;
    std::atomic<Ns> last_done{0};
    for (int t = 0; t < o_.lanes; ++t) {
      threads.emplace_back([&] {
        httplib::Client cli("127.0.0.1", sink.port());
        cli.set_keep_alive(true);
        cli.set_tcp_nodelay(true);
        cli.set_connection_timeout(std::chrono::seconds(5));
        cli.set_read_timeout(std::chrono::seconds(10));
        cli.set_write_timeout(std::chrono::seconds(10));
        ready.arrive_and_wait();
        const double cpu0 = thread_cpu_seconds();
        long i;
        while ((i = next.fetch_add(1)) < n) {
          // Unique ids in uuid form, so that the sink does exactly the work it does for relay.
          const std::string key = fmt::format("00000000-0000-4000-8000-{:012x}", i);
          httplib::Headers h = {{"Idempotency-Key", key}};
          auto res = cli.Post("/events", h, body, "application/json");
          if (!res || res->status != 200) {
            if (errors++ == 0) {
              std::lock_guard lock(error_mu);
              first_error =
                  res ? fmt::format("HTTP {}", res->status) : httplib::to_string(res.error());
            }
          }
        }
        Ns t_end = now_ns();
        {
          std::lock_guard lock(error_mu);
          client_cpu += thread_cpu_seconds() - cpu0;
        }
        Ns prev = last_done.load();
        while (prev < t_end && !last_done.compare_exchange_weak(prev, t_end)) {
        }
      });
    }
    CpuSample c0;
    ready.arrive_and_wait();
    c0 = sample(nullptr);
    for (auto& t : threads) t.join();
    const CpuSample c1 = sample(nullptr);
    const double secs = ns_to_s(static_cast<double>(last_done.load() - c0.at));
    raw_requests_per_s_ = static_cast<double>(n) / secs;
    s.add("RAW HTTP rate", fmt::format("{:.0f} requests/s  ({} requests in {:.2f} s, {} errors)",
                                       *raw_requests_per_s_, n, secs, errors.load()));
    if (!first_error.empty()) s.add("  first error", first_error);
    const CpuDelta d = c1 - c0;
    s.add("  bench CPU (client + sink)", fmt_cpu(d.bench, d.wall));
    s.add("    of which client threads", fmt_cpu(client_cpu, d.wall));
    s.add("  CPU per 10,000 requests",
          fmt::format("client {:.3f} s, sink {:.3f} s", client_cpu / static_cast<double>(n) * 1e4,
                      (d.bench - client_cpu) / static_cast<double>(n) * 1e4));
    s.add("  postgres CPU (idle cluster)", fmt_cpu(d.postgres, d.wall));
    s.add("  machine busy", d.machine_total > 0
                                ? fmt::format("{:.0f}%", 100.0 * d.machine_busy / d.machine_total)
                                : "n/a");
    s.add("sink distinct ids / duplicates",
          fmt::format("{} / {}", sink.distinct(), sink.duplicates()));
    sink.stop();
  }

  // ---- steady ----
  void steady(Section& s) {
    const long total = static_cast<long>(o_.rate) * o_.seconds;
    s.add("workload", fmt::format("{} events/s for {} s, one event per transaction, {} keys",
                                  o_.rate, o_.seconds, o_.keys));
    with_env("steady", static_cast<size_t>(total) + 1, s, [&](Env& env) {
      warm_up(env);
      std::vector<Published> sent;
      sent.reserve(static_cast<size_t>(total));
      const CpuSample c0 = sample(env.relay.get());
      const auto start = Clock::now();
      const auto period = std::chrono::nanoseconds(1'000'000'000LL / o_.rate);
      Ns max_behind = 0;
      for (long i = 0; i < total; ++i) {
        const auto slot = start + i * period;
        // Pacing of the load generator: a steady_clock schedule (it is not a wait on relay). When
        // a commit runs late, the next ones go at once until the schedule is caught up.
        std::this_thread::sleep_until(slot);
        max_behind = std::max<Ns>(
            max_behind,
            std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - slot).count());
        sent.push_back(publish_one(*env.conn, "bench.steady", fmt::format("k{}", i % o_.keys), i));
      }
      const Ns published = now_ns();
      await_distinct(env, static_cast<size_t>(total) + 1, limit(), "every event");
      const CpuSample c1 = sample(env.relay.get());
      std::vector<Ns> lat;
      for (const auto& p : sent) lat.push_back(*env.sink->receipt(p.id) - p.committed);
      const double pub_s = ns_to_s(static_cast<double>(published - sent.front().committed));
      s.add("published",
            fmt::format(
                "{} events in {:.2f} s ({:.0f}/s achieved; generator at most {} behind schedule)",
                total, pub_s, static_cast<double>(total - 1) / pub_s,
                fmt_ms(ns_to_ms(static_cast<double>(max_behind)))));
      s.add("LATENCY commit -> receipt", fmt_pct(percentiles(std::move(lat))));
      const CpuDelta d = c1 - c0;
      add_cpu_rows(s, d);
      add_cpu_per_10k_rows(s, d, total);
    });
  }

  // ---- idle ----
  void idle(Section& s) {
    s.add("workload", fmt::format("relay idle {} s, one event; then {} x (idle {} s, one event)",
                                  o_.idle_seconds, o_.idle_repeats, o_.idle_gap_seconds));
    with_env("idle", static_cast<size_t>(o_.idle_repeats) + 2, s, [&](Env& env) {
      s.add("first event after start (cold lane)",
            fmt_ms(ns_to_ms(static_cast<double>(warm_up(env)))));
      // All lone events use the warm-up's key, so they take the lane whose keep-alive connection is
      // already open: this measures relay's wake-up path, not a TCP connect.
      auto lone = [&](int gap_s, long seq) {
        const CpuSample c0 = sample(env.relay.get());
        // Being idle for gap_s seconds IS what this mode measures, so a timed sleep to a deadline
        // is the point here (nothing remote is being waited for).
        std::this_thread::sleep_until(Clock::now() + std::chrono::seconds(gap_s));
        const CpuSample c1 = sample(env.relay.get());
        if (!env.relay->alive()) fail("relay exited while idle");
        const auto p = publish_one(*env.conn, "bench.idle", "warmup", seq);
        await_id(env, p.id, std::chrono::seconds(60), "the lone event");
        const Ns lat = *env.sink->receipt(p.id) - p.committed;
        const CpuDelta d = c1 - c0;
        return std::make_pair(lat, d);
      };
      auto [lat, d] = lone(o_.idle_seconds, 1);
      s.add(fmt::format("LONE EVENT after {} s idle", o_.idle_seconds),
            fmt_ms(ns_to_ms(static_cast<double>(lat))));
      s.add(fmt::format("  relay CPU while idle {} s", o_.idle_seconds),
            d.relay ? fmt::format("{:.3f} s", *d.relay) : std::string("n/a"));
      s.add(fmt::format("  postgres CPU while idle {} s", o_.idle_seconds),
            d.postgres ? fmt::format("{:.3f} s", *d.postgres) : std::string("n/a"));
      std::vector<std::string> each;
      std::vector<Ns> all;
      for (int i = 0; i < o_.idle_repeats; ++i) {
        auto [l, unused] = lone(o_.idle_gap_seconds, 2 + i);
        (void)unused;
        each.push_back(fmt_ms(ns_to_ms(static_cast<double>(l))));
        all.push_back(l);
      }
      std::string joined;
      for (const auto& e : each) joined += (joined.empty() ? "" : ", ") + e;
      s.add(fmt::format("lone events after {} s idle", o_.idle_gap_seconds), joined);
    });
  }

  // ---- publish cost ----
  // What publishing costs the app, relay not running: one connection commits transactions of
  // --cost-rows rows each, flat out, for --cost-seconds, with each statement below in turn, for
  // --cost-rounds rounds (the order rotates each round). Interleaving spreads a shared machine's
  // noise and the tables' growth over all statements alike; each round's ratio to the plain table
  // compares statements measured seconds apart. Also the WAL each writes per row and the server
  // backend's CPU per row (from /proc, when the server is local).
  void publish_cost(Section& s) {
    const int n = o_.cost_rows;
    // ~100-byte JSON payloads, 1,000 keys, the same rows in every statement.
    const std::string payload = "jsonb_build_object('seq', $1::bigint + i, 'pad', repeat('x', 72))";
    const std::string rows = fmt::format(" FROM generate_series(1, {}) AS i", n);
    const std::string key = "'k' || (($1::bigint + i) % 1000)";
    std::vector<std::pair<std::string, std::string>> statements = {
        {"plain table INSERT", "INSERT INTO bench_plain (topic, key, payload) SELECT 'bench.e', " +
                                   key + ", convert_to(" + payload + "::text, 'UTF8')" + rows},
        {"INSERT INTO relay.outbox",
         "INSERT INTO relay.outbox (topic, key, payload) SELECT 'bench.e', " + key +
             ", convert_to(" + payload + "::text, 'UTF8')" + rows},
        // The floor of any per-row function: the plain table's row through a one-INSERT SQL
        // function, one call per row. PostgreSQL starts and ends an executor for every call.
        {"plain table, a function per row",
         "SELECT count(bench_plain_publish('bench.e', " + key + ", " + payload + "))" + rows},
        {"relay.publish per row",
         "SELECT count(relay.publish('bench.e', " + key + ", " + payload + "))" + rows},
        // publish_many's yardstick: a multi-row INSERT fed the very arrays publish_many gets.
        {"outbox INSERT from arrays",
         "INSERT INTO relay.outbox (topic, key, payload) SELECT 'bench.e', k, "
         "convert_to(p::text, 'UTF8') FROM (SELECT array_agg(" + key + ") AS ks, array_agg(" +
             payload + ") AS ps" + rows + ") a, unnest(a.ks, a.ps) AS u(k, p)"},
        {"relay.publish_many",
         // The arrays an app would pass, built here from the same rows (in generate_series
         // order; an ORDER BY in each array_agg would add two sorts the app does not pay).
         "SELECT cardinality(relay.publish_many('bench.e', array_agg(" + key + "), array_agg(" +
             payload + ")))" + rows},
    };
    s.add("workload",
          fmt::format("one connection, {} rows per transaction (autocommit statement), ~100-byte "
                      "JSON payloads, 1,000 keys; {} rounds x {} s per statement, order rotated "
                      "each round; relay not running",
                      n, o_.cost_rounds, o_.cost_seconds));
    s.add("plain table",
          "bench_plain (id bigserial primary key, topic text, key text, payload bytea, "
          "created_at timestamptz default now())");
    Env env;
    make_database(env, "publish-cost");
    try {
      pqxx::connection c(env.db_url);
      pid_t backend = -1;
      {
        pqxx::nontransaction tx(c);
        tx.exec(
            "CREATE TABLE bench_plain (id bigserial PRIMARY KEY, topic text NOT NULL, key text, "
            "payload bytea NOT NULL, created_at timestamptz NOT NULL DEFAULT now())");
        tx.exec(
            "CREATE FUNCTION bench_plain_publish(p_topic text, p_key text, p_payload jsonb) "
            "RETURNS bigint LANGUAGE sql VOLATILE AS $$ INSERT INTO bench_plain (topic, key, "
            "payload) VALUES (p_topic, p_key, convert_to(p_payload::text, 'UTF8')) RETURNING id "
            "$$");
        if (!o_.cost_setup.empty()) {
          tx.exec(o_.cost_setup);
          s.add("--cost-setup", o_.cost_setup);
        }
        backend = tx.exec("SELECT pg_backend_pid()")[0][0].as<int>();
        // A schema from before relay.publish_many (a `relay` built before sql/0006): measure the
        // other three.
        if (!tx.exec("SELECT EXISTS (SELECT 1 FROM pg_proc WHERE proname = 'publish_many' AND "
                     "pronamespace = 'relay'::regnamespace)")[0][0]
                 .as<bool>()) {
          statements.pop_back();
          s.add("relay.publish_many", "not in this schema (relay migrate applied no 0006)");
        }
        // Not ours (another machine, another user): no CPU figures.
        if (!proc_cpu_seconds(backend)) backend = -1;
      }
      for (size_t k = 0; k < statements.size(); ++k)
        c.prepare("cost" + std::to_string(k), statements[k].second);
      auto wal_lsn = [&] {
        pqxx::nontransaction tx(c);
        return tx.exec("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn")[0][0].as<double>();
      };
      struct Run {
        double rows_per_s = 0, wal_per_row = 0;
        std::optional<double> cpu_us_per_row;
      };
      std::vector<std::vector<Run>> runs(statements.size());  // [statement][round]
      long long seq = 0;
      // One untimed round warms caches and plans.
      for (int round = -1; round < o_.cost_rounds; ++round) {
        for (size_t j = 0; j < statements.size(); ++j) {
          const size_t k = (j + static_cast<size_t>(std::max(round, 0))) % statements.size();
          const std::string name = "cost" + std::to_string(k);
          const double wal0 = wal_lsn();
          const auto cpu0 = backend > 0 ? proc_cpu_seconds(backend) : std::nullopt;
          const Ns t0 = now_ns();
          const Ns end = t0 + (round < 0 ? 1 : o_.cost_seconds) * 1'000'000'000LL;
          long txns = 0;
          while (now_ns() < end) {
            pqxx::nontransaction tx(c);  // autocommit: one statement, one transaction
            tx.exec_prepared(name, seq);
            seq += n;
            ++txns;
          }
          const Ns t1 = now_ns();
          const auto cpu1 = backend > 0 ? proc_cpu_seconds(backend) : std::nullopt;
          const double wal1 = wal_lsn();
          if (round < 0) continue;
          const double total = static_cast<double>(txns) * n;
          Run r;
          r.rows_per_s = total / ns_to_s(static_cast<double>(t1 - t0));
          r.wal_per_row = (wal1 - wal0) / total;
          if (cpu0 && cpu1) r.cpu_us_per_row = (*cpu1 - *cpu0) * 1e6 / total;
          runs[k].push_back(r);
        }
      }
      auto median = [](std::vector<double> v) {
        std::sort(v.begin(), v.end());
        const size_t m = v.size() / 2;
        return v.size() % 2 == 1 ? v[m] : (v[m - 1] + v[m]) / 2;
      };
      for (size_t k = 0; k < statements.size(); ++k) {
        std::vector<double> rate, ratio, wal, cpu, cpu_ratio;
        for (size_t r = 0; r < runs[k].size(); ++r) {
          rate.push_back(runs[k][r].rows_per_s);
          ratio.push_back(runs[0][r].rows_per_s / runs[k][r].rows_per_s);
          wal.push_back(runs[k][r].wal_per_row);
          if (runs[k][r].cpu_us_per_row) {
            cpu.push_back(*runs[k][r].cpu_us_per_row);
            if (runs[0][r].cpu_us_per_row && *runs[0][r].cpu_us_per_row > 0)
              cpu_ratio.push_back(*runs[k][r].cpu_us_per_row / *runs[0][r].cpu_us_per_row);
          }
        }
        const auto [lo, hi] = std::minmax_element(rate.begin(), rate.end());
        s.add(statements[k].first,
              fmt::format("{:>7.0f} rows/s ({:.0f}-{:.0f})  cost per row {:.2f}x plain "
                          "(rounds {:.2f}-{:.2f})  WAL {:.0f} B/row{}",
                          median(rate), *lo, *hi, median(ratio),
                          *std::min_element(ratio.begin(), ratio.end()),
                          *std::max_element(ratio.begin(), ratio.end()), median(wal),
                          cpu.empty() ? std::string()
                                      : fmt::format("  backend CPU {:.1f} us/row", median(cpu)) +
                                            (cpu_ratio.empty()
                                                 ? std::string()
                                                 : fmt::format(" ({:.2f}x plain)",
                                                               median(cpu_ratio)))));
      }
      s.add("how to read it",
            "rows/s: median over rounds (min-max); cost per row: median of each round's plain "
            "rate / this rate (when commits wait on a busy disk, every statement's rate is "
            "the disk's: then read the backend CPU ratio, also a per-round median); issue 19's targets: relay.publish <= 1.5x, outbox INSERT <= 1.3x, "
            "publish_many <= the outbox INSERT (from arrays: the same input); 'a function per "
            "row' is the floor of any per-row function (README: What publishing costs your app)");
    } catch (const std::exception&) {
      teardown(env, s);
      throw;
    }
    teardown(env, s);
  }

  // ---- app cost ----
  struct AppRun {
    long commits = 0;
    double seconds = 0;
    CpuDelta cpu;
  };

  AppRun app_run(Env& env, long& seq_base) {
    std::atomic<long> commits{0};
    std::latch ready(o_.app_threads + 1);
    std::vector<std::thread> threads;
    std::atomic<bool> failed{false};
    std::string error;
    std::mutex error_mu;
    const long base = seq_base;
    for (int t = 0; t < o_.app_threads; ++t) {
      threads.emplace_back([&, t] {
        try {
          pqxx::connection c(env.db_url);
          c.prepare("app", kPublishApp);
          ready.arrive_and_wait();  // every connection is open: go
          const Ns end = now_ns() + static_cast<Ns>(o_.app_seconds) * 1'000'000'000LL;
          long i = 0;
          while (now_ns() < end) {
            pqxx::nontransaction tx(c);  // autocommit: one relay.publish per transaction
            tx.exec_prepared("app",
                             static_cast<long long>((base + t * 1'000'000'000L + i) % o_.keys));
            ++i;
          }
          commits += i;
        } catch (const std::exception& e) {
          std::lock_guard lock(error_mu);
          error = e.what();
          failed = true;
        }
      });
    }
    const CpuSample c0 = [&] {
      ready.arrive_and_wait();
      return sample(env.relay.get());
    }();
    for (auto& t : threads) t.join();
    const CpuSample c1 = sample(env.relay.get());
    if (failed) fail("app thread failed: " + error);
    seq_base += 1;
    AppRun r;
    r.commits = commits.load();
    r.seconds = static_cast<double>(o_.app_seconds);
    r.cpu = c1 - c0;
    return r;
  }

  void app_cost(Section& s) {
    s.add("workload",
          fmt::format(
              "{} connections, each committing one relay.publish per transaction, {} s per run",
              o_.app_threads, o_.app_seconds));
    with_env("app-cost", 300'000, s, [&](Env& env) {
      warm_up(env);
      long seq = 0;
      size_t expected = 1;
      auto drain = [&](const AppRun& r, const char* name) {
        expected += static_cast<size_t>(r.commits);
        const Ns t0 = now_ns();
        await_distinct(env, expected, limit(), name);
        return ns_to_s(static_cast<double>(now_ns() - t0));
      };
      const AppRun a = app_run(env, seq);
      const double drain_a = drain(a, "run A's events");
      {
        pqxx::nontransaction tx(*env.conn);
        tx.exec("DROP TRIGGER outbox_wakeup ON relay.outbox");
      }
      const AppRun b = app_run(env, seq);
      const double drain_b = drain(b, "run B's events");
      const double ra = static_cast<double>(a.commits) / a.seconds;
      const double rb = static_cast<double>(b.commits) / b.seconds;
      s.add("A: relay running, wake-up trigger present",
            fmt::format("{:.0f} commits/s  (relay done {:.2f} s after the run)", ra, drain_a));
      add_cpu_rows(s, a.cpu);
      s.add("B: relay running, trigger dropped",
            fmt::format("{:.0f} commits/s  (relay done {:.2f} s after the run)", rb, drain_b));
      add_cpu_rows(s, b.cpu);
      s.add("APP COST ratio A/B", fmt::format("{:.3f}  ({:+.1f}% commits/s with the trigger)",
                                              ra / rb, 100.0 * (ra / rb - 1.0)));
    });
  }

  Options o_;
  pid_t postmaster_ = -1;
  int db_counter_ = 0;
  std::vector<Section> sections_;
  std::optional<double> relay_events_per_s_;
  std::optional<double> raw_requests_per_s_;
  std::optional<double> relay_drain_per_s_;
};

}  // namespace

int main(int argc, char** argv) {
  signal(SIGPIPE, SIG_IGN);
  Options o = parse_options(argc, argv);
  try {
    return Bench(std::move(o)).run();
  } catch (const std::exception& e) {
    std::cerr << "relay_bench: " << e.what() << "\n";
    return 1;
  }
}
