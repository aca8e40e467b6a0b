#include "relay/inbox/inbox_retention.h"

#include "relay/common/log.h"

namespace relay::inbox {

Result<long long> delete_expired_inbox_rows(store::InboxRetention& store, Millis retention,
                                            int batch, InboxStats& stats, std::stop_token stop) {
  long long total = 0;
  while (!stop.stop_requested()) {
    auto deleted = store.delete_batch(retention, batch);
    if (!deleted) return deleted.error();
    stats.retention_deleted(*deleted);
    total += *deleted;
    if (*deleted < batch) break;
  }
  return total;
}

void run_inbox_retention(store::InboxRetention& store, Millis retention, InboxStats& stats,
                         Clock& clock, std::stop_token stop) {
  const Logger log{"inbox"};
  bool failing = false;
  while (!stop.stop_requested()) {
    auto pass = delete_expired_inbox_rows(store, retention, kRetentionBatch, stats, stop);
    if (!pass) {
      if (!failing) log.warn("inbox retention failed", {{"error", pass.error().message}});
      failing = true;
    } else {
      if (failing) log.info("inbox retention running again");
      failing = false;
      if (*pass > 0) log.debug("inbox retention", {{"deleted", std::to_string(*pass)}});
    }
    clock.sleep_until(clock.now() + kRetentionEvery, stop);
  }
}

}  // namespace relay::inbox
