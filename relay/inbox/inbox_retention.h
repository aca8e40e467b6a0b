#pragma once
// The inbox retention task: deletes relay.inbox rows finished (processed, or dead-lettered) more
// than inbox.retention ago, kRetentionBatch rows per statement until a batch comes back short, then
// waits kRetentionEvery before the next pass. This makes the dedupe window explicit: an event id
// resent after its row was deleted is stored (and handed to the app) again.
//
// Runs on the caller's thread until `stop`; one owner.

#include <stop_token>

#include "relay/common/clock.h"
#include "relay/common/duration.h"
#include "relay/inbox/inbox_stats.h"
#include "relay/store/inbox_store.h"

namespace relay::inbox {

inline constexpr int kRetentionBatch = 1000;      // rows per DELETE statement
inline constexpr Millis kRetentionEvery{60'000};  // pause between passes

// One pass: deletes batches until one deletes fewer than `batch` rows or `stop` is requested.
// Returns the rows deleted; the store's error (e.g. kUnavailable) if a batch failed.
Result<long long> delete_expired_inbox_rows(store::InboxRetention& store, Millis retention,
                                            int batch, InboxStats& stats, std::stop_token stop);

// Passes every kRetentionEvery until `stop`; a failed pass is logged and retried next time.
void run_inbox_retention(store::InboxRetention& store, Millis retention, InboxStats& stats,
                         Clock& clock, std::stop_token stop);

}  // namespace relay::inbox
