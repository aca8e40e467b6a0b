#include "relay/app/relay_runner.h"

#include <fmt/format.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>
#include <signal.h>
#include <unistd.h>

#include <condition_variable>
#include <mutex>
#include <random>
#include <stop_token>
#include <thread>

#include "relay/app/wal_stats.h"
#include "relay/common/backoff.h"
#include "relay/common/clock.h"
#include "relay/common/database_url.h"
#include "relay/common/log.h"
#include "relay/common/version.h"
#include "relay/delivery/http_sender_factory.h"
#include "relay/http/http_server.h"
#include "relay/inbox/inbox_retention.h"
#include "relay/inbox/inbox_service.h"
#include "relay/inbox/inbox_stats.h"
#include "relay/model/status_document.h"
#include "relay/ops/ops_server.h"
#include "relay/pipeline/database_outage.h"
#include "relay/pipeline/dispatch_stats.h"
#include "relay/pipeline/matcher.h"
#include "relay/pipeline/pipeline.h"
#include "relay/store/inbox_store.h"
#include "relay/store/metrics_store.h"
#include "relay/store/migrations.h"
#include "relay/store/outbox_source.h"
#include "relay/store/outcome_store.h"
#include "relay/store/wal_source.h"

namespace relay::app {
namespace {

void apply_log_config(const config::LogConfig& log) {
  if (log.level == "debug")
    set_log_level(LogLevel::kDebug);
  else if (log.level == "warn")
    set_log_level(LogLevel::kWarn);
  else if (log.level == "error")
    set_log_level(LogLevel::kError);
  else
    set_log_level(LogLevel::kInfo);
  set_log_format(log.format == "json" ? LogFormat::kJson : LogFormat::kText);
}

// SIGTERM/SIGINT are blocked in every thread and taken by one signal thread with sigwait, which
// turns them into a stop request: no async-signal-safety puzzles.
class SignalWatcher {
 public:
  explicit SignalWatcher(std::stop_source& stop) : stop_(stop) {
    sigemptyset(&set_);
    sigaddset(&set_, SIGTERM);
    sigaddset(&set_, SIGINT);
    sigaddset(&set_, SIGUSR1);  // used only to wake the watcher at exit
    pthread_sigmask(SIG_BLOCK, &set_, nullptr);
    thread_ = std::thread([this] {
      int sig = 0;
      while (sigwait(&set_, &sig) == 0) {
        if (sig == SIGUSR1 && done_) return;
        if (sig == SIGTERM || sig == SIGINT) {
          log_.info("signal received; shutting down",
                    {{"signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"}});
          stop_.request_stop();
        }
      }
    });
  }
  ~SignalWatcher() {
    done_ = true;
    pthread_kill(thread_.native_handle(), SIGUSR1);
    thread_.join();
  }

 private:
  std::stop_source& stop_;
  sigset_t set_;
  std::atomic<bool> done_{false};
  const Logger log_{"relay"};
  std::thread thread_;
};

// Waits for the database and checks its schema. A sidecar often starts before its database, so
// an unreachable server is waited for; a schema that needs migrating is a clear error.
// Returns 0 to go on, else the exit code.
int wait_for_schema(const std::string& url, Clock& clock, std::stop_token stop, const Logger& log) {
  int failures = 0;
  while (!stop.stop_requested()) {
    auto status = store::migration_status(url);
    if (status) {
      if (!status->pending.empty()) {
        log.error("the database schema is not migrated; run `relay migrate` first",
                  {{"pending_migrations", std::to_string(status->pending.size())}});
        return 1;
      }
      if (failures > 0) log.info("database reachable");
      return 0;
    }
    if (status.error().code != ErrorCode::kUnavailable) {
      log.error("cannot read the schema version", {{"error", status.error().message}});
      return 1;
    }
    if (failures == 0) log.warn("waiting for the database", {{"error", status.error().message}});
    ++failures;
    const Millis delay =
        backoff_ceiling({.initial_backoff = Millis(200), .max_backoff = Millis(5000)}, failures);
    clock.sleep_until(clock.now() + delay, stop);
  }
  return 0;
}

// The /status document (model/status_document.h, which `relay status` reads back).
std::string status_json(const pipeline::Pipeline* d, bool schema_ok) {
  model::StatusDocument doc;
  doc.version = kVersion;
  if (d == nullptr) {
    doc.state = schema_ok ? "starting" : "waiting for the database";
    return model::to_json(doc);
  }
  const auto st = d->status();
  doc.owner = st.owner;
  doc.ready = st.database_ok;
  doc.state = "running";
  doc.subscriptions = st.subscriptions;
  return model::to_json(doc);
}

// Refreshes the database gauges (backlog, oldest due age, retries waiting, dead letters, outbox
// dead tuples and the oldest snapshot's age) every few seconds on its own connection, so a slow
// query never holds up the pipeline or a scrape.
void poll_database_metrics(const std::string& url, Clock& clock, pipeline::DispatchStats& stats,
                           std::stop_token stop) {
  constexpr Millis kEvery{5000};
  store::PgMetricsReader reader(url);
  while (!stop.stop_requested()) {
    auto snap = reader.read(pipeline::DispatchStats::kMaxTopics);
    if (snap) {
      std::vector<pipeline::DispatchStats::TopicBacklogSample> topics;
      for (auto& t : snap->topics)
        topics.push_back({.topic = t.topic,
                          .pending = t.pending,
                          .oldest_age_seconds = t.oldest_due_age_seconds});
      stats.set_backlog(topics);
      stats.set_dead_letters(snap->dead_letters);
      stats.set_retries_waiting(snap->retries_waiting);
      stats.set_vacuum(snap->outbox_dead_tuples, snap->oldest_snapshot_age_seconds);
    } else {
      stats.database_error("metrics");
    }
    clock.sleep_until(clock.now() + kEvery, stop);
  }
}

// Names this relay instance in lease_owner, logs and /status: host, pid and a random part (a pid
// is reused after a restart, and containers share host names).
std::string make_owner_id() {
  char host[256] = {};
  if (gethostname(host, sizeof host - 1) != 0) host[0] = '\0';
  std::random_device rd;
  return fmt::format("{}:{}:{:08x}", host, getpid(), rd());
}

}  // namespace

int run_relay(const config::Config& config, const std::string& database_url) {
  apply_log_config(config.log);
  const Logger log{"relay"};
  std::stop_source stop;
  SignalWatcher signals(stop);
  SystemClock clock;

  log.info("starting", {{"version", kVersion},
                        {"config", config.path},
                        {"database", redact_database_url(database_url)}});

  // The ops listener comes up first, so probes get answers (not ready yet) while relay waits for
  // its database.
  std::atomic<const pipeline::Pipeline*> running{nullptr};
  std::atomic<bool> schema_ok{false};
  prometheus::Registry registry;
  std::vector<std::string> subscription_names;
  for (const auto& s : config.subscriptions) subscription_names.push_back(s.name);
  pipeline::DispatchStats stats(registry, subscription_names, kVersion);
  std::unique_ptr<inbox::InboxStats> inbox_stats;
  if (config.inbox) {
    std::vector<std::string> sources;
    for (const auto& s : config.inbox->sources) sources.push_back(s.name);
    inbox_stats = std::make_unique<inbox::InboxStats>(registry, sources);
  }
  std::atomic<const http::HttpServer*> inbox_listening{nullptr};
  // source.mode: wal: the source's gauges, refreshed at each scrape while the source lives.
  std::unique_ptr<app::WalStats> wal_stats;
  if (config.source.mode == "wal")
    wal_stats = std::make_unique<app::WalStats>(registry, config.source.wal.slot);
  std::atomic<const store::PgWalSource*> wal_running{nullptr};
  auto readiness = [&running, &schema_ok]() -> std::string {
    if (!schema_ok.load()) return "waiting for the database or its schema";
    const pipeline::Pipeline* d = running.load();
    if (d == nullptr) return "starting";
    return d->status().database_ok ? "" : "database unavailable";
  };
  std::unique_ptr<ops::OpsServer> ops_server;
  if (!config.ops.listen.empty()) {
    const Millis wedged_after = std::max(Millis(60'000), config.source.lease);
    ops::OpsCallbacks cb;
    cb.health = [&running, &clock, wedged_after]() -> std::string {
      const pipeline::Pipeline* d = running.load();
      if (d == nullptr) return "";
      const auto age = clock.now() - d->status().source_heartbeat;
      return age > wedged_after ? "the claim loop has not run for " +
                                      format_duration(std::chrono::duration_cast<Millis>(age))
                                : "";
    };
    cb.readiness = readiness;
    cb.metrics_text = [&registry, &stats, &readiness, &inbox_stats, &inbox_listening, &wal_stats,
                       &wal_running] {
      stats.set_ready(readiness().empty());  // relay_ready mirrors /readyz
      if (const store::PgWalSource* w = wal_running.load()) wal_stats->sync(w->status());
      if (const http::HttpServer* server = inbox_listening.load())
        inbox_stats->sync_server(server->stats());
      return prometheus::TextSerializer().Serialize(registry.Collect());
    };
    cb.status_json = [&running, &schema_ok] {
      return status_json(running.load(), schema_ok.load());
    };
    auto started = ops::OpsServer::start(config.ops.listen, std::move(cb));
    if (!started) {
      log.error("cannot start the ops listener", {{"error", started.error().message}});
      return started.error().code == ErrorCode::kInvalidArgument ? 2 : 1;
    }
    ops_server = std::move(*started);
    log.info("ops listener up",
             {{"listen", config.ops.listen}, {"port", std::to_string(ops_server->port())}});
  }

  if (int rc = wait_for_schema(database_url, clock, stop.get_token(), log); rc != 0) return rc;
  if (stop.stop_requested()) return 0;
  schema_ok = true;

  // The inbox's store and handler are built before anything starts, so a bad source secret stops
  // relay before it claims work.
  std::unique_ptr<store::InboxStore> inbox_store;
  std::unique_ptr<inbox::InboxService> inbox_service;
  std::atomic<pipeline::Pipeline*> pusher{nullptr};
  if (config.inbox) {
    inbox_store = std::make_unique<store::InboxStore>(
        database_url, store::InboxStoreOptions{.max_connections = config.inbox->workers});
    auto service =
        inbox::InboxService::create(config, *inbox_store, *inbox_stats, clock, [&pusher] {
          if (pipeline::Pipeline* d = pusher.load()) d->wake();
        });
    if (!service) {
      log.error("cannot start the inbox", {{"error", service.error().message}});
      return 2;
    }
    inbox_service = std::move(*service);
  }

  // The table source and sink the pipeline works through; they outlive it (declared before it).
  const std::string owner = make_owner_id();
  std::vector<std::string> ordered, blocking;
  for (const auto& s : config.subscriptions) {
    if (s.ordering == model::Ordering::kPerKey) ordered.push_back(s.name);
    if (s.on_dead_letter == model::OnDeadLetter::kBlock) blocking.push_back(s.name);
  }
  const bool wal_mode = config.source.mode == "wal";
  std::unique_ptr<model::WorkSource> work_source;
  store::PgWalSource* wal_source = nullptr;  // work_source, in WAL mode
  if (wal_mode) {
    // A spilled event's parts go where the router would fan it out to.
    auto routes = [subscriptions = std::make_shared<const std::vector<config::SubscriptionConfig>>(
                       config.subscriptions)](const std::string& topic) {
      std::vector<std::string> names;
      for (size_t i : pipeline::Matcher(*subscriptions).match(topic))
        names.push_back((*subscriptions)[i].name);
      return names;
    };
    auto wal = std::make_unique<store::PgWalSource>(database_url, owner, config.source,
                                                    subscription_names, ordered, blocking,
                                                    std::move(routes));
    // A server that cannot stream is a setting to change (exit 2); one that is away is waited for.
    for (int failures = 1;; ++failures) {
      auto ready = wal->prepare();
      if (ready) break;
      if (ready.error().code != ErrorCode::kUnavailable) {
        log.error("cannot start the WAL source", {{"error", ready.error().message}});
        return ready.error().code == ErrorCode::kInvalidArgument ? 2 : 1;
      }
      if (failures == 1) log.warn("waiting for the database", {{"error", ready.error().message}});
      if (!clock.sleep_until(clock.now() + pipeline::database_retry_delay(failures),
                             stop.get_token()))
        return 0;
    }
    wal->start();
    wal_source = wal.get();
    work_source = std::move(wal);
  } else {
    work_source = std::make_unique<store::PgOutboxSource>(database_url, owner, config.source.lease,
                                                          subscription_names, ordered, blocking);
  }
  // Responses are cut to the subscription's max_response_bytes before they get here; 1 MiB is the
  // most any subscription may keep.
  store::PgOutcomeStore outcome_sink(
      database_url, owner, 1 << 20, blocking,
      wal_mode ? store::OutboxRowSource::kWal : store::OutboxRowSource::kTable);
  auto outbox_pipeline = pipeline::Pipeline::create(
      config, owner, clock, *work_source, outcome_sink,
      [&clock](
          const config::SubscriptionConfig& sub) -> Result<std::unique_ptr<delivery::HttpSender>> {
        return delivery::make_http_sender(sub, clock);
      },
      stats);
  if (!outbox_pipeline) {
    log.error("cannot start", {{"error", outbox_pipeline.error().message}});
    return 2;
  }
  (*outbox_pipeline)->start();
  wal_running = wal_source;  // reset before the source goes
  running = outbox_pipeline->get();
  pusher = outbox_pipeline->get();
  std::jthread metrics_poller([&database_url, &clock, &stats](std::stop_token st) {
    poll_database_metrics(database_url, clock, stats, st);
  });

  // The inbox listener comes up once the schema is known good and the pipeline can push.
  int exit_code = 0;
  std::unique_ptr<http::HttpServer> inbox_server;
  std::unique_ptr<store::InboxRetention> inbox_retention;
  std::jthread inbox_retention_thread;
  if (inbox_service) {
    auto started = http::HttpServer::start(
        config.inbox->listen, inbox::InboxService::server_limits(config),
        [svc = inbox_service.get()](const http::HttpRequest& r) { return svc->handle(r); }, clock,
        "inbox");
    if (!started) {
      log.error("cannot start the inbox listener", {{"error", started.error().message}});
      exit_code = started.error().code == ErrorCode::kInvalidArgument ? 2 : 1;
      stop.request_stop();
    } else {
      inbox_server = std::move(*started);
      inbox_listening = inbox_server.get();
      log.info("inbox listener up",
               {{"listen", config.inbox->listen}, {"port", std::to_string(inbox_server->port())}});
      inbox_retention = std::make_unique<store::InboxRetention>(database_url);
      inbox_retention_thread =
          std::jthread([&inbox_retention, &inbox_stats, &clock, &config](std::stop_token st) {
            inbox::run_inbox_retention(*inbox_retention, config.inbox->retention, *inbox_stats,
                                       clock, st);
          });
    }
  }

  {
    std::mutex mu;
    std::condition_variable_any cv;
    std::unique_lock lock(mu);
    cv.wait(lock, stop.get_token(), [] { return false; });
  }

  // The inbox stops first: once it is closed no request can be accepted that the rest of the
  // shutdown could leave uncommitted (each answer is sent only after its commit).
  if (inbox_server) {
    inbox_listening = nullptr;
    inbox_server->stop();
  }
  if (inbox_retention_thread.joinable()) {
    inbox_retention_thread.request_stop();
    inbox_retention_thread.join();
  }
  metrics_poller.request_stop();
  metrics_poller.join();
  // Leave a fifth of shutdown_timeout (at most 5s) to record outcomes and release claims after
  // in-flight deliveries are cut off.
  const auto begin = clock.now();
  const Millis reserve = std::min(Millis(5000), config.shutdown_timeout / 5);
  auto status =
      (*outbox_pipeline)
          ->shutdown(begin + (config.shutdown_timeout - reserve), begin + config.shutdown_timeout);
  running = nullptr;
  pusher = nullptr;
  wal_running = nullptr;
  ops_server.reset();
  if (exit_code != 0) return exit_code;
  if (!status) {
    log.error("shutdown incomplete", {{"error", status.error().message}});
    return 1;
  }
  log.info("shut down cleanly");
  return 0;
}

}  // namespace relay::app
