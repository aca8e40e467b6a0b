#pragma once
// WalStats: the WAL source's gauges on /metrics (source.mode: wal), refreshed from
// PgWalSource::status() at each scrape. Every series carries the label slot="<source.wal.slot>".
//
//   relay_wal_active                1 while this relay reads the slot (catching up or streaming)
//   relay_wal_catching_up           1 while it delivers the rows the slot does not cover
//   relay_wal_confirmed_lsn_bytes   the position last confirmed to PostgreSQL, as a byte offset
//   relay_wal_lag_seconds           how long ago the oldest unconfirmed transaction committed
//   relay_wal_held_events           events read from the stream, not yet handed to delivery
//   relay_wal_catch_up_rows_total   rows delivered from the table by catch-ups
//   relay_wal_spilled_events_total  events moved from memory to relay.delivery (slow keys)
//   relay_wal_slot_active           1 when some relay streams from the slot (pg_replication_slots)
//   relay_wal_slot_lost             1 when the slot is missing or invalidated (wal_status lost)
//   relay_wal_slot_lag_bytes        WAL written since the slot's confirmed position
//   relay_wal_slot_retained_bytes   WAL the server keeps for the slot
// Thread-safe (prometheus-cpp's metrics are).

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include <mutex>
#include <string>

#include "relay/store/wal_source.h"

namespace relay::app {

class WalStats {
 public:
  WalStats(prometheus::Registry& registry, const std::string& slot);
  void sync(const store::WalSourceStatus& status);

 private:
  prometheus::Gauge& active_;
  prometheus::Gauge& catching_up_;
  prometheus::Gauge& confirmed_;
  prometheus::Gauge& lag_seconds_;
  prometheus::Gauge& held_;
  prometheus::Counter& catch_up_rows_;
  prometheus::Counter& spilled_;
  prometheus::Gauge& slot_active_;
  prometheus::Gauge& slot_lost_;
  prometheus::Gauge& slot_lag_;
  prometheus::Gauge& slot_retained_;
  std::mutex mu_;
  long long counted_rows_ = 0;  // guarded by mu_: catch-up rows already added to the counter
  long long counted_spilled_ = 0;  // guarded by mu_: spilled events already added
};

}  // namespace relay::app
