#include "relay/pipeline/in_flight_credit.h"

#include <catch2/catch.hpp>

using relay::pipeline::InFlightCredit;

TEST_CASE("credit counts what is taken, holds its ids, and wakes only after running out",
          "[pipeline]") {
  int woken = 0;
  InFlightCredit credit(3, [&] { ++woken; });
  credit.take({1, 2}, {7});
  CHECK(credit.used() == 3);
  CHECK(credit.exhausted());
  CHECK(credit.held().outbox.size() == 2);
  CHECK(credit.held().deliveries == std::vector<std::int64_t>{7});

  credit.give_back({1}, {});
  CHECK(woken == 1);  // it had run out: the claimer may be waiting
  CHECK(credit.room() == 1);
  credit.give_back({2}, {7});
  CHECK(woken == 1);  // there was room already
  CHECK(credit.used() == 0);
  CHECK(credit.held().outbox.empty());
  CHECK(credit.held().deliveries.empty());
}

TEST_CASE("an id taken twice (its lease ran out in flight) is given back twice", "[pipeline]") {
  InFlightCredit credit(4, nullptr);
  credit.take({5}, {});
  credit.take({5}, {});
  CHECK(credit.used() == 2);
  credit.give_back({5}, {});
  CHECK(credit.held().outbox == std::vector<std::int64_t>{5});
  credit.give_back({5}, {});
  CHECK(credit.used() == 0);
  CHECK(credit.held().outbox.empty());
}
