// WalProgress: the WAL source confirms a transaction only when it committed and every event of it
// has an outcome, and never past one that has not.
#include "relay/store/wal/wal_progress.h"

#include <catch2/catch.hpp>

using relay::store::wal::WalProgress;

TEST_CASE("a transaction is confirmed once committed and all its events are done", "[wal]") {
  WalProgress p;
  const auto t = p.begin();
  p.add_event(t);
  p.add_event(t);
  CHECK(p.confirmed() == 0);
  p.commit(t, 100);
  CHECK(p.confirmed() == 0);  // two events outstanding
  p.event_done(t);
  CHECK(p.confirmed() == 0);
  p.event_done(t);
  CHECK(p.confirmed() == 100);
  CHECK(p.pending() == 0);
}

TEST_CASE("a done transaction waits for an earlier one that is not", "[wal]") {
  WalProgress p;
  const auto a = p.begin();
  p.add_event(a);
  p.commit(a, 100);
  const auto b = p.begin();
  p.add_event(b);
  p.commit(b, 200);
  p.event_done(b);
  CHECK(p.confirmed() == 0);
  p.event_done(a);
  CHECK(p.confirmed() == 200);
}

TEST_CASE("a transaction whose Commit has not arrived is not done, even with no events left",
          "[wal]") {
  WalProgress p;
  const auto t = p.begin();
  p.add_event(t);
  p.event_done(t);
  CHECK(p.confirmed() == 0);
  p.commit(t, 50);
  CHECK(p.confirmed() == 50);
}

TEST_CASE("a keepalive is confirmed only while nothing is pending", "[wal]") {
  WalProgress p;
  p.keepalive(10);
  CHECK(p.confirmed() == 10);
  const auto t = p.begin();
  p.add_event(t);
  p.keepalive(20);  // arrives in the middle of a transaction that is still pending
  CHECK(p.confirmed() == 10);
  p.commit(t, 30);
  p.event_done(t);
  CHECK(p.confirmed() == 30);
  p.keepalive(40);
  CHECK(p.confirmed() == 40);
}

TEST_CASE("after restart the old session's events are ignored and nothing moves back", "[wal]") {
  WalProgress p;
  const auto old = p.begin();
  p.add_event(old);
  p.commit(old, 100);
  const auto old2 = p.begin();
  p.add_event(old2);
  p.event_done(old);
  CHECK(p.confirmed() == 100);
  p.restart();
  CHECK(p.pending() == 0);
  p.event_done(old2);  // an outcome of the forgotten session: ignored
  const auto again = p.begin();
  CHECK(again > old2);
  p.add_event(again);
  p.commit(again, 150);
  CHECK(p.confirmed() == 100);
  p.event_done(again);
  CHECK(p.confirmed() == 150);
  p.keepalive(120);  // older than what is confirmed: no step back
  CHECK(p.confirmed() == 150);
}

TEST_CASE("an event done before its transaction's numbers are known is ignored", "[wal]") {
  WalProgress p;
  p.event_done(7);  // unknown number
  const auto t = p.begin();
  p.commit(t, 10);
  CHECK(p.confirmed() == 10);
}
