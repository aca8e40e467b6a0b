-- relay schema, version 5: the WAL source's shared state (source.mode: wal).
--
-- One row per replication slot. `owner` is the relay that reads the slot now; it renews
-- `lease_until`, and a standby relay takes the slot over once the lease has run out (the slot
-- itself admits one reader, but only this lease keeps a relay whose connection broke from
-- delivering beside the one that took over). `caught_up` is false from the moment relay (re)creates
-- the slot until every outbox row committed before the slot existed has an outcome: those rows are
-- not in the stream, so they are delivered from the table first (a catch-up in id order). A relay
-- that finds the slot missing, invalidated, or not caught up starts the catch-up again.
CREATE TABLE relay.wal_reader (
  slot         text PRIMARY KEY,
  owner        text,
  lease_until  timestamptz,
  caught_up    boolean NOT NULL DEFAULT false,
  slot_created_at timestamptz,
  caught_up_at timestamptz
);
