#pragma once
// An Insert into relay.outbox, as streamed by pgoutput (binary 'true'), turned into relay's Event.
// Pure functions; thread-safe.

#include <chrono>
#include <optional>

#include "relay/common/event.h"
#include "relay/common/result.h"
#include "relay/store/wal/pgoutput.h"

namespace relay::store::wal {

struct OutboxRow {
  Event event;
  std::optional<std::chrono::system_clock::time_point> deliver_after;
};

// Finds the outbox's columns by name in `relation`: id (int8), event_id (uuid), topic (text), key
// (text), payload (bytea), content_type (text), headers (jsonb), created_at, deliver_after and
// expires_at (timestamptz). Other columns are ignored. Each value must be in binary send format:
// int8 and timestamptz 8 bytes big-endian, uuid 16 bytes (given as canonical lower-case text),
// text and bytea as they are, jsonb a version byte 1 and the JSON text. Timestamps outside
// system_clock's range (e.g. 'infinity') saturate at time_point::max()/min().
//
// Returns kInvalidArgument when a column is missing from `relation`, has another type oid, when
// `insert` has another column count or relation oid than `relation`, a value is not binary, a
// NOT NULL column (all but key, deliver_after, expires_at) is NULL, or a value has the wrong
// length. The message names the column and, once it is known, the outbox id.
Result<OutboxRow> decode_outbox_row(const RelationMsg& relation, const InsertMsg& insert);

}  // namespace relay::store::wal
