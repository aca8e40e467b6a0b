#include "relay/app/relay_runner.h"

#include <signal.h>

#include <condition_variable>
#include <mutex>
#include <stop_token>
#include <thread>

#include <fmt/format.h>

#include "relay/common/backoff.h"
#include "relay/common/clock.h"
#include "relay/common/log.h"
#include "relay/common/version.h"
#include "relay/delivery/httplib_sender.h"
#include "relay/dispatch/dispatcher.h"
#include "relay/store/migrations.h"
#include "relay/store/transaction.h"

namespace relay::app {
namespace {

void apply_log_config(const config::LogConfig& log) {
  if (log.level == "debug") set_log_level(LogLevel::kDebug);
  else if (log.level == "warn") set_log_level(LogLevel::kWarn);
  else if (log.level == "error") set_log_level(LogLevel::kError);
  else set_log_level(LogLevel::kInfo);
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
          log_.info("signal received; shutting down", {{"signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"}});
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
    const Millis delay = backoff_ceiling({.initial_backoff = Millis(200), .max_backoff = Millis(5000)}, failures);
    clock.sleep_until(clock.now() + delay, stop);
  }
  return 0;
}

}  // namespace

int run_relay(const config::Config& config, const std::string& database_url) {
  apply_log_config(config.log);
  const Logger log{"relay"};
  std::stop_source stop;
  SignalWatcher signals(stop);
  SystemClock clock;

  log.info("starting", {{"version", kVersion}, {"config", config.path}, {"database", store::redact_url(database_url)}});
  if (int rc = wait_for_schema(database_url, clock, stop.get_token(), log); rc != 0) return rc;
  if (stop.stop_requested()) return 0;

  auto dispatcher = dispatch::Dispatcher::create(
      config, database_url, clock,
      [&clock](const config::SubscriptionConfig& sub) -> Result<std::unique_ptr<delivery::HttpSender>> {
        auto s = delivery::HttplibSender::create(sub, clock);
        if (!s) return s.error();
        return std::unique_ptr<delivery::HttpSender>(std::move(*s));
      });
  if (!dispatcher) {
    log.error("cannot start", {{"error", dispatcher.error().message}});
    return 2;
  }
  (*dispatcher)->start();

  {
    std::mutex mu;
    std::condition_variable_any cv;
    std::unique_lock lock(mu);
    cv.wait(lock, stop.get_token(), [] { return false; });
  }

  // Leave a fifth of shutdown_timeout (at most 5s) to record outcomes and release claims after
  // in-flight deliveries are cut off.
  const auto begin = clock.now();
  const Millis reserve = std::min(Millis(5000), config.shutdown_timeout / 5);
  auto status = (*dispatcher)->shutdown(begin + (config.shutdown_timeout - reserve), begin + config.shutdown_timeout);
  if (!status) {
    log.error("shutdown incomplete", {{"error", status.error().message}});
    return 1;
  }
  log.info("shut down cleanly");
  return 0;
}

}  // namespace relay::app
