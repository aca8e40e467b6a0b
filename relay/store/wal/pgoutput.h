#pragma once
// The bytes of PostgreSQL's logical replication stream, decoded and encoded. Pure functions over
// bytes; thread-safe.
//
// Two layers (PostgreSQL 15 docs, "Streaming Replication Protocol" and "Logical Replication
// Message Formats"):
//   - the walsender's CopyData messages: 'w' XLogData (a 25-byte header, then one pgoutput
//     message) and 'k' primary keepalive; relay answers with the 'r' standby status update;
//   - pgoutput's messages inside XLogData, proto_version 1 with binary 'true': Begin, Relation,
//     Insert and Commit are decoded; every other documented message is reported by its tag only.
//
// Every input is untrusted: a decoder never reads past the end of its input and checks every
// length and count. A malformed input gives Error{kInvalidArgument, "<what> at byte N"}, N being
// the offset in the input where the problem was found. Decoded string_views point into the input.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "relay/common/result.h"

namespace relay::store::wal {

// A WAL position (XLogRecPtr).
using Lsn = std::uint64_t;

// "16/B374D848": the high and low 32 bits in upper-case hex, as PostgreSQL prints an LSN.
std::string format_lsn(Lsn lsn);
// The inverse of format_lsn; either case, 1-8 hex digits on each side of the '/'. nullopt on
// anything else.
std::optional<Lsn> parse_lsn(std::string_view text);

// The protocol's clock: microseconds since 2000-01-01 00:00:00 UTC, converted to and from
// system_clock. from_pg_micros saturates at time_point::min()/max() where system_clock cannot
// represent the value (e.g. 'infinity' and '-infinity', which PostgreSQL sends as INT64_MAX/MIN).
std::int64_t to_pg_micros(std::chrono::system_clock::time_point t);
std::chrono::system_clock::time_point from_pg_micros(std::int64_t micros);

// One CopyData message of the replication stream.
struct XLogData {
  Lsn wal_start = 0, wal_end = 0;
  std::int64_t send_time = 0;  // pg micros
  std::string_view payload;    // one pgoutput message; points into the input
};
struct Keepalive {
  Lsn wal_end = 0;
  std::int64_t send_time = 0;  // pg micros
  bool reply_requested = false;
};
// Decodes one CopyData message from the walsender. Errors: empty input, a tag other than 'w'/'k',
// a short header, trailing bytes after a keepalive.
Result<std::variant<XLogData, Keepalive>> decode_copy_data(std::string_view bytes);

// The 34-byte 'r' standby status update: write, flush and apply positions, the client's clock,
// and whether the server should reply at once.
std::string encode_standby_status(Lsn write, Lsn flush, Lsn apply, std::int64_t now_pg_micros,
                                  bool reply_requested);

// pgoutput, proto_version 1, binary 'true' (column values in their types' binary send format).
struct BeginMsg {
  Lsn final_lsn = 0;  // the LSN of the transaction's commit record
  std::int64_t commit_time = 0;
  std::uint32_t xid = 0;
};
struct RelationMsg {
  std::uint32_t oid = 0;
  std::string nspname;  // "pg_catalog" when the message says "" (the protocol's shorthand)
  std::string relname;
  char replica_identity = 'd';
  struct Column {
    bool part_of_key = false;
    std::string name;
    std::uint32_t type_oid = 0;
    std::int32_t typmod = -1;
  };
  std::vector<Column> columns;
};
struct TupleValue {
  enum class Kind { kNull, kUnchangedToast, kText, kBinary } kind = Kind::kNull;
  std::string bytes;  // empty unless kText or kBinary
};
struct InsertMsg {
  std::uint32_t relation_oid = 0;
  std::vector<TupleValue> values;
};
struct CommitMsg {
  Lsn commit_lsn = 0;  // the commit record
  Lsn end_lsn = 0;     // the end of the transaction: the position to confirm as flushed
  std::int64_t commit_time = 0;
};
// Update/Delete/Truncate/Type/Origin/Message, and the streaming and two-phase messages of later
// protocol versions: valid, but not used by relay. Their bodies are not checked.
struct OtherMsg {
  char tag = 0;
};
using PgOutputMessage = std::variant<BeginMsg, RelationMsg, InsertMsg, CommitMsg, OtherMsg>;

// Decodes one pgoutput message (the payload of an XLogData). Errors: empty input, an unknown tag,
// a truncated message, bytes left over after a Begin/Relation/Insert/Commit, a count that cannot
// fit in what is left, an unknown tuple value kind.
Result<PgOutputMessage> decode_pgoutput(std::string_view bytes);

}  // namespace relay::store::wal
