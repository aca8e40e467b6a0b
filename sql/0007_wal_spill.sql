-- relay schema, version 7: the WAL source moves events that wait in memory out to relay.delivery.
--
-- In WAL mode a key's next event waits in relay's memory while an earlier event of that key is on
-- its way to the consumer. Once source.wal.max_held_events events wait and a key's event has been
-- on its way for source.wal.spill_after, relay moves that key's waiting events to relay.delivery
-- ("spills" them) and reads on. A spilled row of a per-key subscription is parked:
-- `behind_outbox_id` names the outbox row of the event still on its way, and the row is neither
-- claimed nor handed a place in its key's order until that event has its outcome. Then relay
-- gives the parked rows new places after it (in the order they had) and clears the column.
ALTER TABLE relay.delivery ADD COLUMN behind_outbox_id bigint;
CREATE INDEX delivery_behind ON relay.delivery (behind_outbox_id) WHERE behind_outbox_id IS NOT NULL;
