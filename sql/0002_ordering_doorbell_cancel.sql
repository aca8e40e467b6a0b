-- relay schema, version 2: per-key ordering across the outbox and relay.delivery, a wake-up that
-- costs the app nothing while relay is busy ("doorbell"), and withdrawing undelivered events.

-- A dead letter remembers its event's outbox id, so a replay goes back into the key's order and a
-- `block` subscription can tell which later events it holds back.
ALTER TABLE relay.dead_letter ADD COLUMN outbox_id bigint;
CREATE INDEX dead_letter_blocking ON relay.dead_letter (key, subscription) WHERE replayed_at IS NULL;

-- Per (subscription, key) order in relay.delivery: the head is the lowest outbox_id.
CREATE INDEX delivery_key ON relay.delivery (key, subscription, outbox_id);

-- Doorbell. NOTIFY takes a cluster-wide lock through commit, so the app pays for it on every
-- commit. relay therefore asks to be woken only while it is idle: it writes a row here when it
-- parks, with an expiry, and deletes it when it has work again. A relay that dies stops the
-- wake-ups by itself once `until` passes.
CREATE TABLE relay.parked (
  owner text PRIMARY KEY,
  until timestamptz NOT NULL
);

CREATE OR REPLACE FUNCTION relay.notify_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM relay.parked WHERE until > now()) THEN
    PERFORM pg_notify('relay_outbox', '');
  END IF;
  RETURN NULL;
END
$$;

-- cancel: withdraw an event that is not yet delivered. Every withdrawn part is recorded in
-- relay.dead_letter with reason 'cancelled', so nothing vanishes silently. A part relay is sending
-- right now (under a live lease) is not withdrawn: it may already have arrived. An outbox row not
-- yet split per subscription is recorded once with subscription '*' (replay sends it to every
-- subscription again). Returns the number of parts withdrawn.
CREATE FUNCTION relay.cancel(p_event_id uuid) RETURNS integer LANGUAGE plpgsql AS $$
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
  SELECT event_id, '*', topic, key, payload, content_type, headers, created_at, deliver_after, expires_at,
         'cancelled', 0, id
    FROM gone;
  GET DIAGNOSTICS n_outbox = ROW_COUNT;

  WITH gone AS (
    DELETE FROM relay.delivery
     WHERE event_id = p_event_id AND (lease_until IS NULL OR lease_until < now())
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

-- cancel_key: withdraw every undelivered event of one topic and key. Returns the parts withdrawn.
CREATE FUNCTION relay.cancel_key(p_topic text, p_key text) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
  total integer := 0;
  ev uuid;
BEGIN
  FOR ev IN
    SELECT event_id FROM relay.outbox WHERE topic = p_topic AND key IS NOT DISTINCT FROM p_key
    UNION
    SELECT event_id FROM relay.delivery WHERE topic = p_topic AND key IS NOT DISTINCT FROM p_key
  LOOP
    total := total + relay.cancel(ev);
  END LOOP;
  RETURN total;
END
$$;
