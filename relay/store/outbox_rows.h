#pragma once
// What the table source and the WAL source both read from relay.outbox: an event's columns, and
// the subscriptions an outbox row must not go to directly. Internal to relay/store.

#include <pqxx/pqxx>
#include <string>
#include <string_view>

#include "relay/common/event.h"
#include "relay/store/outbox_row_source.h"

namespace relay::store {

// The columns read_event() reads, for a SELECT list over relay.outbox (or relay.delivery) as `o`.
// Timestamps travel as microseconds since the epoch: no time-zone or text-format surprises.
inline constexpr std::string_view kEventColumns =
    "o.event_id::text, o.topic, o.key, o.payload, o.content_type, o.headers::text, "
    "(extract(epoch FROM o.created_at) * 1000000)::bigint, "
    "(extract(epoch FROM o.expires_at) * 1000000)::bigint";

// Reads the kEventColumns from column `first` on.
Event read_event(const pqxx::row& row, std::int64_t outbox_id, int first);

// Sets the planner up for relay's queue tables on connection `c`: no sequential and no bitmap
// scans. A queue table's statistics are mostly wrong: a vacuum of a drained outbox leaves reltuples
// near 0, and a prepared statement's generic plan made then stays. Planned on such estimates,
// `id = ANY(array)` became a sequential scan of the whole backlog twice per claim (measured: 20k
// rows read per claim of 500, the drain at a third of its rate), and the claim window `id >= floor
// ORDER BY id LIMIT n` a bitmap scan and sort of the whole backlog. Every statement on relay's
// outbox and delivery connections has an index to use instead.
void plan_for_queue_tables(pqxx::connection& c);

// A SQL expression (text[]) over an outbox row `o`: the subscriptions that must not receive it
// directly, because an earlier event of its key is still pending for them in relay.delivery (those
// named in the array parameter `ordered`, e.g. "$6"), or, for those in `blocking`, an unreplayed
// dead letter of its key exists. One probe skips the per-row lookups when neither table has a row
// for those subscriptions (the usual case). Table source: only a dead letter of an earlier id holds
// the row. WAL source: every one does, because the row is asked about when it is handed out, in
// commit order, so every dead letter of its key recorded by then is of an earlier commit (and its
// place in the key's order was drawn when it was recorded, so it says nothing next to an id).
// A parked relay.delivery row (WAL mode, sql/0007_wal_spill.sql) holds nothing: it waits behind an
// event of its key that is on its way, and comes after every event before that one.
std::string held_for_sql(std::string_view ordered, std::string_view blocking, OutboxRowSource rows);

// Events queued behind a key's head in relay.delivery wait with a far next_attempt_at, and the
// outcome store makes the successor due when the head leaves (promote_next). This is the other
// half of that hand-over: a row just queued behind its key ($1) is due at once when no
// earlier event of its (subscription, key) is pending any more. FOR KEY SHARE (only a DELETE
// conflicts) makes the check wait for a predecessor whose removal is in progress and then skip it
// if it is gone; and a predecessor removed after this lock is taken waits for this transaction, so
// its promote_next sees this row. Either way the successor never waits for max_backoff.
inline constexpr std::string_view kDueIfFirst = R"(
  WITH pred AS (
    SELECT 1 FROM relay.delivery p JOIN relay.delivery me
        ON p.subscription = me.subscription AND p.key = me.key AND p.outbox_id < me.outbox_id
     WHERE me.id = $1
     FOR KEY SHARE OF p)
  UPDATE relay.delivery SET next_attempt_at = now()
   WHERE id = $1 AND next_attempt_at > now() AND NOT EXISTS (SELECT 1 FROM pred))";

}  // namespace relay::store
