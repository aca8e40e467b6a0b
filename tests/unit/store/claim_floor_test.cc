// ClaimFloor: the floor moves only past ids no running transaction can still commit, follows the
// lowest live row, waits for pending writers however long they stay, and rescans from 0 now and
// then (relay/store/claim_floor.h).

#include "relay/store/claim_floor.h"

#include <catch2/catch.hpp>

using relay::store::ClaimFloor;
using namespace std::chrono_literals;

namespace {

using Probe = ClaimFloor::Probe;
const ClaimFloor::TimePoint t0{};

// One round at `now`: the probe, then (if asked) the lowest live id from where probe() said,
// computed from `live` (the ids a later statement would see).
void round(ClaimFloor& f, ClaimFloor::TimePoint now, Probe p, const std::vector<std::int64_t>& live,
           std::int64_t* scanned_from = nullptr) {
  REQUIRE(f.round_due(now));
  auto from = f.probe(p, now);
  if (scanned_from) *scanned_from = from.value_or(-1);
  if (!from) return;
  std::optional<std::int64_t> lowest;
  for (auto id : live)
    if (id >= *from && (!lowest || id < *lowest)) lowest = id;
  f.lowest_live(lowest);
}

}  // namespace

TEST_CASE("with no writer running, the floor moves to the lowest live row at once", "[floor]") {
  ClaimFloor f;
  CHECK(f.floor() == 0);
  round(f, t0, Probe{.last_id = 100, .writers = {}}, {40, 41, 90});
  CHECK(f.final_through() == 100);
  CHECK(f.floor() == 40);
  // Everything delivered: the floor goes to just past the last id handed out.
  round(f, t0 + 30ms, Probe{.last_id = 100, .writers = {}}, {});
  CHECK(f.floor() == 101);
}

TEST_CASE("ids handed out while writers run are final only once those writers are gone",
          "[floor]") {
  ClaimFloor f;
  // Ids up to 50 final; 51..80 handed out, writers 3/7 and 4/9 still running.
  round(f, t0, Probe{.last_id = 50, .writers = {}}, {});
  CHECK(f.floor() == 51);
  round(f, t0 + 30ms, Probe{.last_id = 80, .writers = {"3/7", "4/9"}}, {60, 61, 70});
  CHECK(f.pending_writers() == std::vector<std::string>{"3/7", "4/9"});
  // Rows 52..80 are visible and even delivered, but the floor must not pass 51: writer 3/7 may
  // still commit id 51.
  CHECK(f.floor() == 51);
  round(f, t0 + 60ms, Probe{.last_id = 90, .writers = {"5/1"}, .pending_ended = false}, {});
  CHECK(f.floor() == 51);
  CHECK(f.final_through() == 50);
  // The older pair is kept (not replaced by 90/5:1) until its writers end.
  CHECK(f.pending_writers() == std::vector<std::string>{"3/7", "4/9"});
  // They ended: 51 committed late and is live.
  round(f, t0 + 90ms, Probe{.last_id = 95, .writers = {"5/1"}, .pending_ended = true}, {51, 85});
  CHECK(f.final_through() == 80);
  CHECK(f.floor() == 51);
  CHECK(f.pending_writers() == std::vector<std::string>{"5/1"});
  // 51 delivered: the floor moves up to the next live row, 85 (at most final_through + 1 = 81
  // is allowed though: 85 > 81).
  round(f, t0 + 120ms, Probe{.last_id = 95, .writers = {"5/1"}, .pending_ended = false}, {85});
  CHECK(f.floor() == 81);
}

TEST_CASE("a writer that stays open holds the floor for as long as it runs", "[floor]") {
  ClaimFloor f;
  round(f, t0, Probe{.last_id = 10, .writers = {"9/1"}}, {});
  auto now = t0;
  for (int i = 1; i <= 1000; ++i) {
    now += 30ms;
    // Many more ids handed out by short writers, all of whose rows are delivered.
    round(f, now, Probe{.last_id = 10 + i * 100, .writers = {"9/1", "2/" + std::to_string(i)}}, {});
    REQUIRE(f.floor() <= 1);  // 9/1 may still commit any id up to 10
  }
  round(f, now + 30ms, Probe{.last_id = 100'010, .writers = {}, .pending_ended = true}, {7});
  CHECK(f.floor() == 7);  // the late row was found
}

TEST_CASE("a round is due every kRoundEvery; a failed round decides nothing", "[floor]") {
  ClaimFloor f;
  CHECK(f.round_due(t0));
  REQUIRE_FALSE(f.probe(Probe{.last_id = 5, .writers = {}}, t0) == std::nullopt);
  f.round_failed();
  f.lowest_live(3);  // the statement never ran: ignored
  CHECK(f.floor() == 0);
  CHECK_FALSE(f.round_due(t0 + 10ms));
  CHECK(f.round_due(t0 + ClaimFloor::kRoundEvery));
}

TEST_CASE("before the sequence's first value nothing is final", "[floor]") {
  ClaimFloor f;
  round(f, t0, Probe{.last_id = std::nullopt, .writers = {"1/1"}}, {});
  CHECK(f.final_through() == 0);
  CHECK(f.floor() <= 1);
}

TEST_CASE("the floor stays put once it is past what is final, until something new is final",
          "[floor]") {
  ClaimFloor f;
  std::int64_t from = 0;
  round(f, t0, Probe{.last_id = 20, .writers = {}}, {}, &from);
  CHECK(f.floor() == 21);
  round(f, t0 + 30ms, Probe{.last_id = 30, .writers = {"1/2"}}, {25}, &from);
  CHECK(from == -1);  // no statement needed
  CHECK(f.floor() == 21);
}

TEST_CASE("every kRescanEvery the floor is computed again from 0", "[floor]") {
  ClaimFloor f;
  round(f, t0, Probe{.last_id = 1000, .writers = {}}, {});
  CHECK(f.floor() == 1001);
  std::int64_t from = -1;
  // A row below the floor that the sequence could not announce (an id the app set itself).
  round(f, t0 + ClaimFloor::kRescanEvery, Probe{.last_id = 1000, .writers = {}}, {17}, &from);
  CHECK(from == 0);
  CHECK(f.floor() == 17);
}

TEST_CASE("a disabled floor stays 0 and runs no rounds", "[floor]") {
  ClaimFloor f;
  round(f, t0, Probe{.last_id = 10, .writers = {}}, {});
  REQUIRE(f.floor() == 11);
  f.disable();
  CHECK(f.floor() == 0);
  CHECK_FALSE(f.round_due(t0 + 1h));
  CHECK(f.probe(Probe{.last_id = 20, .writers = {}}, t0 + 1h) == std::nullopt);
}
