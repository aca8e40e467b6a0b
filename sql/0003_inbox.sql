-- relay schema, version 3: the inbox (issue 6). Events received on POST /inbox/{source} are stored
-- once per (source, event_id) in relay.inbox and reach the app in one of two ways: relay pushes them
-- through relay.delivery (subscription 'inbox:<source>', the outbox's own retry, breaker, per-key
-- order and dead-letter machinery), or the app claims them with relay.inbox_claim() and
-- acknowledges them with relay.inbox_ack().

-- Inbox event ids are whatever the sender chose ("msg_2Lh...", a uuid, ...), so the tables that
-- carry an inbox event next to outbox events hold ids as text. Outbox ids stay uuid.
ALTER TABLE relay.delivery ALTER COLUMN event_id TYPE text;
ALTER TABLE relay.dead_letter ALTER COLUMN event_id TYPE text;

-- seq: arrival order, from the outbox's sequence so that a pushed event's relay.delivery.outbox_id
--      (per-key order) is simply its seq.
-- lease_owner/lease_until: a claim by the app (relay.inbox_claim) until lease_until; 'relay-push'
--      with lease_until 'infinity' marks a row relay pushes, which the claim functions never touch.
-- dead_lettered_at: relay gave up pushing it (its copy is in relay.dead_letter); processed_at stays
--      NULL because the app never had it. A replay that is delivered sets processed_at and clears it.
ALTER TABLE relay.inbox
  ADD COLUMN seq bigint NOT NULL DEFAULT nextval('relay.outbox_id_seq'),
  ADD COLUMN lease_owner text,
  ADD COLUMN lease_until timestamptz,
  ADD COLUMN dead_lettered_at timestamptz;

-- Claims scan a source's unprocessed rows oldest first; the per-key rule looks up a key's earlier
-- unprocessed rows. Retention finds finished rows by time.
CREATE INDEX inbox_pending ON relay.inbox (source, seq) WHERE processed_at IS NULL;
CREATE INDEX inbox_pending_key ON relay.inbox (source, key, seq)
  WHERE processed_at IS NULL AND key IS NOT NULL;
CREATE INDEX inbox_processed ON relay.inbox (processed_at) WHERE processed_at IS NOT NULL;
CREATE INDEX inbox_dead_lettered ON relay.inbox (dead_lettered_at) WHERE dead_lettered_at IS NOT NULL;

-- cancel: unchanged in behaviour; relay.delivery and relay.dead_letter now hold ids as text.
CREATE OR REPLACE FUNCTION relay.cancel(p_event_id uuid) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
  n_outbox integer;
  n_delivery integer;
BEGIN
  WITH gone AS (
    DELETE FROM relay.outbox
     WHERE event_id = p_event_id AND (lease_until IS NULL OR lease_until < now())
    RETURNING *)
  INSERT INTO relay.dead_letter (event_id, subscription, topic, key, payload, content_type, headers, created_at,
                                 deliver_after, expires_at, reason, attempts, outbox_id)
  SELECT event_id::text, '*', topic, key, payload, content_type, headers, created_at, deliver_after, expires_at,
         'cancelled', 0, id
    FROM gone;
  GET DIAGNOSTICS n_outbox = ROW_COUNT;

  WITH gone AS (
    DELETE FROM relay.delivery
     WHERE event_id = p_event_id::text AND (lease_until IS NULL OR lease_until < now())
    RETURNING *)
  INSERT INTO relay.dead_letter (event_id, subscription, topic, key, payload, content_type, headers, created_at,
                                 expires_at, reason, attempts, last_status, last_error, last_response, outbox_id)
  SELECT event_id, subscription, topic, key, payload, content_type, headers, created_at, expires_at,
         'cancelled', attempts, last_status, last_error, last_response, outbox_id
    FROM gone;
  GET DIAGNOSTICS n_delivery = ROW_COUNT;
  RETURN n_outbox + n_delivery;
END
$$;

-- cancel_key: every undelivered event of one topic and key, outbox events and pushed inbox events
-- alike (the latter have text ids, so they are withdrawn here rather than through cancel()).
CREATE OR REPLACE FUNCTION relay.cancel_key(p_topic text, p_key text) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
  total integer := 0;
  n integer;
  ev uuid;
BEGIN
  FOR ev IN
    SELECT event_id FROM relay.outbox WHERE topic = p_topic AND key IS NOT DISTINCT FROM p_key
  LOOP
    total := total + relay.cancel(ev);
  END LOOP;

  WITH gone AS (
    DELETE FROM relay.delivery
     WHERE topic = p_topic AND key IS NOT DISTINCT FROM p_key
       AND (lease_until IS NULL OR lease_until < now())
    RETURNING *)
  INSERT INTO relay.dead_letter (event_id, subscription, topic, key, payload, content_type, headers, created_at,
                                 expires_at, reason, attempts, last_status, last_error, last_response, outbox_id)
  SELECT event_id, subscription, topic, key, payload, content_type, headers, created_at, expires_at,
         'cancelled', attempts, last_status, last_error, last_response, outbox_id
    FROM gone;
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN total + n;
END
$$;

-- A pushed inbox event leaves relay.delivery either delivered or dead-lettered (relay writes the
-- dead letter before it deletes the delivery row, in the same transaction). Mirror the verdict on
-- the inbox row, so relay.inbox alone answers "did the app get it?" and retention can find it.
CREATE FUNCTION relay.inbox_delivery_done() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  dl record;
BEGIN
  SELECT reason, attempts, last_error INTO dl
    FROM relay.dead_letter
   WHERE event_id = OLD.event_id AND subscription = OLD.subscription AND replayed_at IS NULL
   ORDER BY id DESC LIMIT 1;
  IF FOUND THEN
    UPDATE relay.inbox
       SET dead_lettered_at = now(), attempts = dl.attempts,
           last_error = 'dead-lettered (' || dl.reason || ')' || coalesce(': ' || dl.last_error, '')
     WHERE source = substr(OLD.subscription, 7) AND event_id = OLD.event_id;
  ELSE
    UPDATE relay.inbox
       SET processed_at = now(), dead_lettered_at = NULL, attempts = OLD.attempts + 1, last_error = NULL
     WHERE source = substr(OLD.subscription, 7) AND event_id = OLD.event_id;
  END IF;
  RETURN NULL;
END
$$;
CREATE TRIGGER inbox_delivery_done AFTER DELETE ON relay.delivery
  FOR EACH ROW WHEN (OLD.subscription LIKE 'inbox:%') EXECUTE FUNCTION relay.inbox_delivery_done();

-- inbox_claim: for sources without a push URL, the app takes up to p_limit events of p_source,
-- oldest first, under a lease of p_lease; an event not acknowledged by then is claimed again (at
-- least once). Per-key order: a keyed event is claimable only while no earlier event of its key is
-- unprocessed, so at most one event per key is out at a time. attempts counts the claims.
CREATE FUNCTION relay.inbox_claim(p_source text, p_limit integer, p_lease interval DEFAULT '60 seconds')
RETURNS TABLE (event_id text, topic text, key text, payload bytea, content_type text, headers jsonb,
               received_at timestamptz, attempts integer)
LANGUAGE sql VOLATILE AS $$
  WITH due AS (
    SELECT i.event_id FROM relay.inbox i
     WHERE i.source = p_source AND i.processed_at IS NULL
       AND (i.lease_until IS NULL OR i.lease_until < now())
       AND (i.key IS NULL OR NOT EXISTS (
             SELECT 1 FROM relay.inbox p
              WHERE p.source = i.source AND p.key = i.key AND p.processed_at IS NULL AND p.seq < i.seq))
     ORDER BY i.seq
     LIMIT p_limit
     FOR UPDATE SKIP LOCKED),
  claimed AS (
    UPDATE relay.inbox i
       SET lease_owner = 'app', lease_until = now() + p_lease, attempts = i.attempts + 1
      FROM due
     WHERE i.source = p_source AND i.event_id = due.event_id
    RETURNING i.seq, i.event_id, i.topic, i.key, i.payload, i.content_type, i.headers, i.received_at, i.attempts)
  SELECT c.event_id, c.topic, c.key, c.payload, c.content_type, c.headers, c.received_at, c.attempts
    FROM claimed c ORDER BY c.seq
$$;

-- inbox_ack: the app has processed these events. Returns how many were newly marked processed
-- (an event acknowledged twice, or never claimed by the app, counts 0 the second time).
CREATE FUNCTION relay.inbox_ack(p_source text, p_event_ids text[]) RETURNS integer
LANGUAGE sql VOLATILE AS $$
  WITH done AS (
    UPDATE relay.inbox
       SET processed_at = now(), lease_owner = NULL, lease_until = NULL, last_error = NULL
     WHERE source = p_source AND event_id = ANY(p_event_ids) AND processed_at IS NULL
       AND lease_owner IS DISTINCT FROM 'relay-push'
    RETURNING 1)
  SELECT count(*)::integer FROM done
$$;

-- inbox_nack: the app could not process this event now. Its lease ends, it is claimable again after
-- p_retry_after, and p_error is kept in last_error. Returns false if there is no such claimed event.
CREATE FUNCTION relay.inbox_nack(p_source text, p_event_id text, p_error text,
                                 p_retry_after interval DEFAULT '0 seconds') RETURNS boolean
LANGUAGE sql VOLATILE AS $$
  WITH released AS (
    UPDATE relay.inbox
       SET lease_owner = NULL, lease_until = now() + p_retry_after, last_error = p_error
     WHERE source = p_source AND event_id = p_event_id AND processed_at IS NULL AND lease_owner = 'app'
    RETURNING 1)
  SELECT EXISTS (SELECT 1 FROM released)
$$;

-- Claims rewrite each claimed outbox row (lease_owner, lease_until); with free space on its page
-- the new row version stays there (a HOT update), so no index is touched. Measured with the batch
-- benchmark: PostgreSQL CPU per drained event -26%, end to end 15.7k -> 19.5k events/s. The outbox
-- is a queue that is mostly empty, so the extra space costs little.
ALTER TABLE relay.outbox SET (fillfactor = 50);
