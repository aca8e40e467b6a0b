#include "relay/app/wal_stats.h"

namespace relay::app {
namespace {

prometheus::Gauge& gauge(prometheus::Registry& r, const std::string& name, const std::string& help,
                         const std::string& slot) {
  return prometheus::BuildGauge().Name(name).Help(help).Register(r).Add({{"slot", slot}});
}

}  // namespace

WalStats::WalStats(prometheus::Registry& r, const std::string& slot)
    : active_(gauge(r, "relay_wal_active", "1 while this relay reads the slot", slot)),
      catching_up_(gauge(r, "relay_wal_catching_up",
                         "1 while this relay delivers rows the slot does not cover from the table",
                         slot)),
      confirmed_(gauge(r, "relay_wal_confirmed_lsn_bytes",
                       "The WAL position last confirmed to PostgreSQL, as a byte offset", slot)),
      lag_seconds_(gauge(r, "relay_wal_lag_seconds",
                         "How long ago the oldest transaction not yet confirmed committed", slot)),
      held_(gauge(r, "relay_wal_held_events",
                  "Events read from the stream and not yet handed to delivery", slot)),
      catch_up_rows_(prometheus::BuildCounter()
                         .Name("relay_wal_catch_up_rows_total")
                         .Help("Rows delivered from the table by catch-ups")
                         .Register(r)
                         .Add({{"slot", slot}})),
      spilled_(prometheus::BuildCounter()
                   .Name("relay_wal_spilled_events_total")
                   .Help("Events moved from memory to relay.delivery while an earlier event of "
                         "their key was slow")
                   .Register(r)
                   .Add({{"slot", slot}})),
      slot_active_(
          gauge(r, "relay_wal_slot_active", "1 when some relay streams from the slot", slot)),
      slot_lost_(
          gauge(r, "relay_wal_slot_lost", "1 when the slot is missing or invalidated", slot)),
      slot_lag_(gauge(r, "relay_wal_slot_lag_bytes",
                      "WAL written since the slot's confirmed position", slot)),
      slot_retained_(
          gauge(r, "relay_wal_slot_retained_bytes", "WAL the server keeps for the slot", slot)) {}

void WalStats::sync(const store::WalSourceStatus& s) {
  const bool reading = s.role == "streaming" || s.role == "catching_up";
  active_.Set(reading ? 1 : 0);
  catching_up_.Set(s.role == "catching_up" ? 1 : 0);
  confirmed_.Set(static_cast<double>(s.confirmed_lsn));
  lag_seconds_.Set(s.lag_seconds);
  held_.Set(static_cast<double>(s.held_events));
  slot_active_.Set(s.slot_active ? 1 : 0);
  slot_lost_.Set(!s.slot_exists || s.slot_wal_status == "lost" ? 1 : 0);
  slot_lag_.Set(static_cast<double>(s.slot_lag_bytes));
  slot_retained_.Set(static_cast<double>(s.slot_retained_bytes));
  std::lock_guard lock(mu_);
  if (s.catch_up_rows_total > counted_rows_) {
    catch_up_rows_.Increment(static_cast<double>(s.catch_up_rows_total - counted_rows_));
    counted_rows_ = s.catch_up_rows_total;
  }
  if (s.spilled_events > counted_spilled_) {
    spilled_.Increment(static_cast<double>(s.spilled_events - counted_spilled_));
    counted_spilled_ = s.spilled_events;
  }
}

}  // namespace relay::app
