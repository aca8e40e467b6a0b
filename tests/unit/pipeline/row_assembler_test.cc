#include "relay/pipeline/row_assembler.h"

#include <catch2/catch.hpp>

using namespace relay;
using namespace relay::pipeline;

namespace {

// Handed out in id order unless `handed_out` says otherwise (the WAL source hands out in commit
// order, which ids need not follow).
TaskResult part(std::int64_t outbox_id, int parts_total, std::optional<std::string> key,
                const std::string& subscription, std::uint64_t handed_out = 0) {
  TaskResult r;
  r.outbox_id = outbox_id;
  r.handed_out = handed_out != 0 ? handed_out : static_cast<std::uint64_t>(outbox_id);
  r.parts_total = parts_total;
  r.key = std::move(key);
  r.part.subscription = subscription;
  return r;
}

std::vector<std::int64_t> ids(const std::vector<model::OutboxOutcome>& rows) {
  std::vector<std::int64_t> out;
  for (const auto& r : rows) out.push_back(r.outbox_id);
  return out;
}

}  // namespace

TEST_CASE("a row is ready once all its parts are in", "[pipeline]") {
  RowAssembler rows;
  std::vector<model::OutboxOutcome> ready;
  rows.add(part(1, 2, "k", "a"), ready);
  CHECK(ready.empty());
  rows.add(part(1, 2, "k", "b"), ready);
  REQUIRE(ids(ready) == std::vector<std::int64_t>{1});
  CHECK(ready[0].parts.size() == 2);
  CHECK(rows.pending() == 0);
}

TEST_CASE("a complete row waits for an earlier row of its key, then both go in id order",
          "[pipeline]") {
  RowAssembler rows;
  std::vector<model::OutboxOutcome> ready;
  rows.add(part(1, 2, "k", "a"), ready);  // row 1 waits for b
  rows.add(part(2, 1, "k", "a"), ready);  // row 2 is complete, but behind row 1
  rows.add(part(3, 1, "other", "a"), ready);
  rows.add(part(4, 1, std::nullopt, "a"), ready);
  CHECK(ids(ready) == std::vector<std::int64_t>{3, 4});  // other keys and keyless rows go on
  CHECK(rows.pending() == 2);
  rows.add(part(1, 2, "k", "b"), ready);
  CHECK(ids(ready) == std::vector<std::int64_t>{3, 4, 1, 2});
  CHECK(rows.pending() == 0);
}

TEST_CASE("rows of a key are released up to the first that still waits for parts", "[pipeline]") {
  RowAssembler rows;
  std::vector<model::OutboxOutcome> ready;
  rows.add(part(1, 2, "k", "a"), ready);
  rows.add(part(2, 2, "k", "a"), ready);
  rows.add(part(3, 1, "k", "a"), ready);
  rows.add(part(1, 2, "k", "b"), ready);
  CHECK(ids(ready) == std::vector<std::int64_t>{1});  // 2 still waits for b; 3 waits behind it
  rows.add(part(2, 2, "k", "b"), ready);
  CHECK(ids(ready) == std::vector<std::int64_t>{1, 2, 3});
  CHECK(rows.pending() == 0);
}

TEST_CASE("a key's rows are released in the order they were handed out, not in id order",
          "[pipeline]") {
  RowAssembler rows;
  std::vector<model::OutboxOutcome> ready;
  // Row 7 committed (and was handed out) before row 5 of the same key.
  rows.add(part(7, 2, "k", "a", /*handed_out=*/1), ready);
  rows.add(part(5, 1, "k", "a", /*handed_out=*/2), ready);
  CHECK(ready.empty());  // 5 is complete but waits behind 7
  rows.add(part(7, 2, "k", "b", /*handed_out=*/1), ready);
  CHECK(ids(ready) == std::vector<std::int64_t>{7, 5});
  CHECK(rows.pending() == 0);
}
