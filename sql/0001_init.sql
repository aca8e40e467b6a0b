-- relay schema, version 1: the outbox, per-subscription delivery state, dead letters and the inbox.
-- Forward-only: a later change is a new file, never an edit of this one.

CREATE SCHEMA IF NOT EXISTS relay;

-- One row per event the app publishes. relay claims rows with a short lease, delivers them with no
-- transaction open, and deletes each row once every matching subscription has received it, holds it
-- in relay.delivery for a retry, or has dead-lettered it.
CREATE TABLE relay.outbox (
  id            bigserial PRIMARY KEY,
  event_id      uuid NOT NULL UNIQUE DEFAULT gen_random_uuid(),
  topic         text NOT NULL CHECK (topic <> ''),
  key           text,
  payload       bytea NOT NULL,
  content_type  text NOT NULL DEFAULT 'application/json',
  headers       jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(headers) = 'object'),
  created_at    timestamptz NOT NULL DEFAULT now(),
  deliver_after timestamptz,
  expires_at    timestamptz,
  -- claim state, written only by relay
  lease_owner   text,
  lease_until   timestamptz,
  claims        integer NOT NULL DEFAULT 0
);
-- The claim scans by id among rows that are due; deliver_after is rare, so a partial index keeps
-- the delayed rows out of the hot path.
CREATE INDEX outbox_key_id ON relay.outbox (key, id);
CREATE INDEX outbox_delayed ON relay.outbox (deliver_after) WHERE deliver_after IS NOT NULL;
-- Delivered rows are deleted at the head all the time: vacuum the outbox early and often.
ALTER TABLE relay.outbox SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1000,
                              autovacuum_vacuum_cost_delay = 0);

-- A (event, subscription) whose first delivery did not succeed. Holds its own copy of the event,
-- because the outbox row is deleted once every subscription has a verdict or a row here.
CREATE TABLE relay.delivery (
  id              bigserial PRIMARY KEY,
  outbox_id       bigint NOT NULL,           -- the event's outbox id: per-key order
  event_id        uuid NOT NULL,
  subscription    text NOT NULL,
  topic           text NOT NULL,
  key             text,
  payload         bytea NOT NULL,
  content_type    text NOT NULL,
  headers         jsonb NOT NULL,
  created_at      timestamptz NOT NULL,
  expires_at      timestamptz,
  attempts        integer NOT NULL DEFAULT 0,  -- attempts made so far
  first_failed_at timestamptz NOT NULL DEFAULT now(),
  next_attempt_at timestamptz NOT NULL DEFAULT now(),
  last_status     integer,
  last_error      text,
  last_response   text,
  lease_owner     text,
  lease_until     timestamptz,
  UNIQUE (event_id, subscription)
);
CREATE INDEX delivery_due ON relay.delivery (next_attempt_at);

-- One row per (event, subscription) that finally failed. Keeps the whole original event so an
-- operator can inspect and replay it.
CREATE TABLE relay.dead_letter (
  id            bigserial PRIMARY KEY,
  event_id      uuid NOT NULL,
  subscription  text NOT NULL,
  topic         text NOT NULL,
  key           text,
  payload       bytea NOT NULL,
  content_type  text NOT NULL,
  headers       jsonb NOT NULL,
  created_at    timestamptz NOT NULL,
  deliver_after timestamptz,
  expires_at    timestamptz,
  reason        text NOT NULL,   -- retries_exhausted, non_retryable_status, expired, payload_too_large, cancelled
  attempts      integer NOT NULL,
  last_status   integer,
  last_error    text,
  last_response text,            -- truncated response body
  failed_at     timestamptz NOT NULL DEFAULT now(),
  replayed_at   timestamptz
);
CREATE INDEX dead_letter_subscription ON relay.dead_letter (subscription, failed_at);
CREATE INDEX dead_letter_event ON relay.dead_letter (event_id);

-- Events received over HTTP, stored exactly once per (source, event_id).
CREATE TABLE relay.inbox (
  source       text NOT NULL,
  event_id     text NOT NULL,
  topic        text,
  key          text,
  payload      bytea NOT NULL,
  content_type text NOT NULL DEFAULT 'application/octet-stream',
  headers      jsonb NOT NULL DEFAULT '{}'::jsonb,
  received_at  timestamptz NOT NULL DEFAULT now(),
  processed_at timestamptz,
  attempts     integer NOT NULL DEFAULT 0,
  last_error   text,
  PRIMARY KEY (source, event_id)
);

-- publish: the app's whole integration, called inside its own transaction. Returns the event id.
CREATE FUNCTION relay.publish(p_topic text, p_key text, p_payload jsonb,
                              p_headers jsonb DEFAULT '{}'::jsonb,
                              p_deliver_after timestamptz DEFAULT NULL,
                              p_expires_at timestamptz DEFAULT NULL,
                              p_event_id uuid DEFAULT NULL)
RETURNS uuid LANGUAGE sql VOLATILE AS $$
  INSERT INTO relay.outbox (event_id, topic, key, payload, content_type, headers, deliver_after, expires_at)
  VALUES (coalesce(p_event_id, gen_random_uuid()), p_topic, p_key,
          convert_to(p_payload::text, 'UTF8'), 'application/json',
          coalesce(p_headers, '{}'::jsonb), p_deliver_after, p_expires_at)
  RETURNING event_id
$$;

-- publish raw bytes with their content type (protobuf, text, anything).
CREATE FUNCTION relay.publish(p_topic text, p_key text, p_payload bytea, p_content_type text,
                              p_headers jsonb DEFAULT '{}'::jsonb,
                              p_deliver_after timestamptz DEFAULT NULL,
                              p_expires_at timestamptz DEFAULT NULL,
                              p_event_id uuid DEFAULT NULL)
RETURNS uuid LANGUAGE sql VOLATILE AS $$
  INSERT INTO relay.outbox (event_id, topic, key, payload, content_type, headers, deliver_after, expires_at)
  VALUES (coalesce(p_event_id, gen_random_uuid()), p_topic, p_key, p_payload,
          coalesce(p_content_type, 'application/octet-stream'),
          coalesce(p_headers, '{}'::jsonb), p_deliver_after, p_expires_at)
  RETURNING event_id
$$;

-- Wake-up: one NOTIFY per inserting statement (not per row), with a constant payload so that
-- Postgres folds repeats within a transaction. It is only a hint; relay's timed poll covers a lost one.
CREATE FUNCTION relay.notify_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('relay_outbox', '');
  RETURN NULL;
END
$$;
CREATE TRIGGER outbox_wakeup AFTER INSERT ON relay.outbox
  FOR EACH STATEMENT EXECUTE FUNCTION relay.notify_outbox();

-- Applied migration versions (the runner creates it before applying 0001; kept here so the
-- schema file is complete on its own).
CREATE TABLE IF NOT EXISTS relay.schema_migrations (
  version    integer PRIMARY KEY,
  name       text NOT NULL,
  applied_at timestamptz NOT NULL DEFAULT now()
);
