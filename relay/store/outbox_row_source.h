#pragma once
// OutboxRowSource: which source hands out outbox rows, for the statements whose SQL depends on it
// (how a row is "this relay's", and what a key's order is).

namespace relay::store {

enum class OutboxRowSource {
  // The table source: rows are leased, and a key's order is outbox id order. A part moved to
  // relay.delivery or relay.dead_letter keeps its row's id as its place in the key's order.
  kTable,
  // The WAL source: rows carry no lease (a row without one is this relay's to record), and a key's
  // order is commit order, which ids need not follow. A moved part gets its place from
  // relay.outbox_id_seq when it is recorded: a key's events are recorded in commit order (the
  // source hands a key's next event out only once the earlier ones are recorded, and the recorder
  // keeps hand-out order within a claim), so those places follow commit order.
  kWal,
};

}  // namespace relay::store
