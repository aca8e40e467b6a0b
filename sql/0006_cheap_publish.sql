-- relay schema, version 6: publishing costs the app almost nothing (issue 19).
--
-- Measured on the 2-core reference machine (single session, 100 rows per statement or 100 calls
-- per transaction), the app paid per event, besides the row itself:
--   * gen_random_uuid() for event_id: ~3.5 us (OpenSSL 3's RAND_bytes), half of a plain row's
--     whole cost;
--   * a unique index on a random UUID: every insert dirtied a different leaf page, so after each
--     checkpoint every row wrote a full-page image (EXPLAIN (ANALYZE, WAL): 100 FPIs and 630 kB of
--     WAL per 100 rows, against 1 FPI and 31 kB for a plain table);
--   * the wake-up trigger, once per INSERT statement, i.e. once per relay.publish call (a PL/pgSQL
--     call and a query on relay.parked).
-- Each change's effect, measured with tests/bench --mode publish-cost (--cost-setup takes one
-- away), is in the README ("What publishing costs your app").
-- This file replaces those three; relay.outbox's columns, their order and every other index,
-- CHECK and default stay as they were.

-- Time-ordered event ids (UUIDv7 layout, RFC 9562): 48 bits of Unix time in milliseconds from
-- clock_timestamp(), version 7, 12 + 62 random bits, variant 10. New ids land at the right end of
-- the unique index instead of on a random page. The random bits come from random(), which
-- PostgreSQL 15 seeds per session from the OS's strong random source, ~0.3 us a call against
-- ~3.5 us for gen_random_uuid(); pg_backend_pid() is mixed into the low bits so that sessions an
-- app reseeds alike with setseed() still differ. The unique index refuses a duplicate whatever
-- happens. A plain one-SELECT SQL function, so PostgreSQL inlines it into a column default.
CREATE FUNCTION relay.uuidv7() RETURNS uuid LANGUAGE sql VOLATILE PARALLEL RESTRICTED AS $$
  SELECT encode(int8send((floor(date_part('epoch', clock_timestamp()) * 1000)::bigint << 16)
                         | 28672                                -- version 7 (0x7000)
                         | floor(random() * 4096)::bigint)
             || int8send(((floor(random() * 2147483648)::bigint << 31)
                          | floor(random() * 2147483648)::bigint)
                         # pg_backend_pid()
                         | (-9223372036854775808)),              -- variant 10 (top bit; bit 62 is 0)
                'hex')::uuid
$$;

ALTER TABLE relay.outbox ALTER COLUMN event_id SET DEFAULT relay.uuidv7();

-- The same signatures and semantics as in 0001; only the generated id's shape changes.
CREATE OR REPLACE FUNCTION relay.publish(p_topic text, p_key text, p_payload jsonb,
                                         p_headers jsonb DEFAULT '{}'::jsonb,
                                         p_deliver_after timestamptz DEFAULT NULL,
                                         p_expires_at timestamptz DEFAULT NULL,
                                         p_event_id uuid DEFAULT NULL)
RETURNS uuid LANGUAGE sql VOLATILE AS $$
  INSERT INTO relay.outbox (event_id, topic, key, payload, content_type, headers, deliver_after, expires_at)
  VALUES (coalesce(p_event_id, relay.uuidv7()), p_topic, p_key,
          convert_to(p_payload::text, 'UTF8'), 'application/json',
          coalesce(p_headers, '{}'::jsonb), p_deliver_after, p_expires_at)
  RETURNING event_id
$$;

CREATE OR REPLACE FUNCTION relay.publish(p_topic text, p_key text, p_payload bytea, p_content_type text,
                                         p_headers jsonb DEFAULT '{}'::jsonb,
                                         p_deliver_after timestamptz DEFAULT NULL,
                                         p_expires_at timestamptz DEFAULT NULL,
                                         p_event_id uuid DEFAULT NULL)
RETURNS uuid LANGUAGE sql VOLATILE AS $$
  INSERT INTO relay.outbox (event_id, topic, key, payload, content_type, headers, deliver_after, expires_at)
  VALUES (coalesce(p_event_id, relay.uuidv7()), p_topic, p_key, p_payload,
          coalesce(p_content_type, 'application/octet-stream'),
          coalesce(p_headers, '{}'::jsonb), p_deliver_after, p_expires_at)
  RETURNING event_id
$$;

-- Wake-up (doorbell, 0002): checked once per transaction, at its COMMIT, instead of after every
-- INSERT statement (i.e. after every relay.publish call). A deferred constraint trigger fires at
-- commit; its WHEN clause lets only a transaction's first row queue it, by marking the
-- transaction with a transaction-local setting (built-in functions only: no PL/pgSQL call and no
-- query while the app works, and no queued event per row). Checking at commit rather than after
-- a statement also narrows the race with a relay that parks meanwhile (relay claims once more
-- after parking; see relay/pipeline/claimer.cc). The mark and the queued event share their
-- (sub)transaction's fate: a rolled-back savepoint drops both, and the next row queues it again.
-- An app that runs SET CONSTRAINTS ALL IMMEDIATE gets the check after its first inserting
-- statement. The trigger function is 0002's.
DROP TRIGGER IF EXISTS outbox_wakeup ON relay.outbox;  -- an operator may have dropped it
CREATE CONSTRAINT TRIGGER outbox_wakeup AFTER INSERT ON relay.outbox
  DEFERRABLE INITIALLY DEFERRED
  FOR EACH ROW
  -- (After its first transaction a session reads '' here, not NULL: a placeholder setting, once
  -- made, stays defined.)
  WHEN (current_setting('relay.outbox_doorbell', true) IS DISTINCT FROM 'queued'
        AND set_config('relay.outbox_doorbell', 'queued', true) = 'queued')
  EXECUTE FUNCTION relay.notify_outbox();

-- The argument checks both publish_many forms share (created before them, called at run time).
-- Raises invalid_parameter_value (22023) naming what is wrong.
CREATE FUNCTION relay.check_publish_many(p_payloads anyarray, n_keys integer, dims_keys integer,
                                         n_headers integer, dims_headers integer,
                                         n_event_ids integer, dims_event_ids integer)
RETURNS void LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  n integer := coalesce(cardinality(p_payloads), 0);
  null_at integer;
BEGIN
  IF array_ndims(p_payloads) > 1 OR dims_keys > 1 OR dims_headers > 1 OR dims_event_ids > 1 THEN
    RAISE EXCEPTION 'relay.publish_many: arrays must be one-dimensional' USING ERRCODE = '22023';
  END IF;
  IF n_keys IS NOT NULL AND n_keys <> n THEN
    RAISE EXCEPTION 'relay.publish_many: % keys for % payloads', n_keys, n USING ERRCODE = '22023',
      HINT = 'keys, payloads, headers and event_ids are matched by position; pass NULL as keys to publish without keys';
  END IF;
  IF n_headers IS NOT NULL AND n_headers <> n THEN
    RAISE EXCEPTION 'relay.publish_many: % headers for % payloads', n_headers, n USING ERRCODE = '22023';
  END IF;
  IF n_event_ids IS NOT NULL AND n_event_ids <> n THEN
    RAISE EXCEPTION 'relay.publish_many: % event_ids for % payloads', n_event_ids, n USING ERRCODE = '22023';
  END IF;
  null_at := array_position(p_payloads, NULL);
  IF null_at IS NOT NULL THEN
    RAISE EXCEPTION 'relay.publish_many: payloads[%] is NULL', null_at USING ERRCODE = '22023';
  END IF;
END
$$;

-- publish_many: many events of one topic in one statement. keys[i] and payloads[i] (and
-- headers[i], event_ids[i] when given) make event i; a NULL keys array or a NULL element means no
-- key (unordered). Events get outbox ids in array order, so relay delivers a key's events in that
-- order; the result lists their event ids in the same order. Arrays of different lengths, a
-- multi-dimensional array or a NULL payload is an error before anything is inserted. A NULL or
-- empty payloads array publishes nothing and returns an empty array.
-- Same as calling relay.publish once per element, in order, but one statement.
CREATE FUNCTION relay.publish_many(p_topic text, p_keys text[], p_payloads jsonb[],
                                   p_headers jsonb[] DEFAULT NULL,
                                   p_deliver_after timestamptz DEFAULT NULL,
                                   p_expires_at timestamptz DEFAULT NULL,
                                   p_event_ids uuid[] DEFAULT NULL)
RETURNS uuid[] LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  ids uuid[];
BEGIN
  PERFORM relay.check_publish_many(p_payloads, cardinality(p_keys), array_ndims(p_keys),
                                   cardinality(p_headers), array_ndims(p_headers),
                                   cardinality(p_event_ids), array_ndims(p_event_ids));
  IF coalesce(cardinality(p_payloads), 0) = 0 THEN
    RETURN '{}'::uuid[];
  END IF;
  -- Ids are chosen before the INSERT so that the result's order is the arrays' order by
  -- construction; ORDER BY n makes the outbox ids (the delivery order) follow it too.
  WITH ev AS MATERIALIZED (
    SELECT n, coalesce(e, relay.uuidv7()) AS event_id, k, p, h
      FROM unnest(p_payloads, p_keys, p_headers, p_event_ids) WITH ORDINALITY AS u(p, k, h, e, n)
  ), ins AS (
    INSERT INTO relay.outbox (event_id, topic, key, payload, content_type, headers, deliver_after, expires_at)
    SELECT event_id, p_topic, k, convert_to(p::text, 'UTF8'), 'application/json',
           coalesce(h, '{}'::jsonb), p_deliver_after, p_expires_at
      FROM ev ORDER BY n
  )
  SELECT array_agg(event_id ORDER BY n) INTO ids FROM ev;
  RETURN ids;
END
$$;

-- publish_many for raw bytes with one content type for all (protobuf, text, anything).
CREATE FUNCTION relay.publish_many(p_topic text, p_keys text[], p_payloads bytea[], p_content_type text,
                                   p_headers jsonb[] DEFAULT NULL,
                                   p_deliver_after timestamptz DEFAULT NULL,
                                   p_expires_at timestamptz DEFAULT NULL,
                                   p_event_ids uuid[] DEFAULT NULL)
RETURNS uuid[] LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  ids uuid[];
BEGIN
  PERFORM relay.check_publish_many(p_payloads, cardinality(p_keys), array_ndims(p_keys),
                                   cardinality(p_headers), array_ndims(p_headers),
                                   cardinality(p_event_ids), array_ndims(p_event_ids));
  IF coalesce(cardinality(p_payloads), 0) = 0 THEN
    RETURN '{}'::uuid[];
  END IF;
  WITH ev AS MATERIALIZED (
    SELECT n, coalesce(e, relay.uuidv7()) AS event_id, k, p, h
      FROM unnest(p_payloads, p_keys, p_headers, p_event_ids) WITH ORDINALITY AS u(p, k, h, e, n)
  ), ins AS (
    INSERT INTO relay.outbox (event_id, topic, key, payload, content_type, headers, deliver_after, expires_at)
    SELECT event_id, p_topic, k, p, coalesce(p_content_type, 'application/octet-stream'),
           coalesce(h, '{}'::jsonb), p_deliver_after, p_expires_at
      FROM ev ORDER BY n
  )
  SELECT array_agg(event_id ORDER BY n) INTO ids FROM ev;
  RETURN ids;
END
$$;
