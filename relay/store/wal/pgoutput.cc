#include "relay/store/wal/pgoutput.h"

#include <fmt/format.h>

#include <limits>

namespace relay::store::wal {

namespace {

// Seconds from 1970-01-01 (system_clock's epoch) to 2000-01-01 (PostgreSQL's).
constexpr std::int64_t kPgEpochUnixSeconds = 946'684'800;
constexpr std::int64_t kPgEpochUnixMicros = kPgEpochUnixSeconds * 1'000'000;

// Big-endian reads with a bounds check on each; every failure names what and where.
class Reader {
 public:
  explicit Reader(std::string_view bytes) : bytes_(bytes) {}

  std::size_t pos() const { return pos_; }
  std::size_t left() const { return bytes_.size() - pos_; }

  Error error(std::string_view what) const {
    return Error{ErrorCode::kInvalidArgument, fmt::format("{} at byte {}", what, pos_)};
  }

  bool u8(std::uint8_t& out) {
    if (left() < 1) return false;
    out = static_cast<std::uint8_t>(bytes_[pos_++]);
    return true;
  }
  bool u16(std::uint16_t& out) {
    std::uint64_t v = 0;
    if (!be(2, v)) return false;
    out = static_cast<std::uint16_t>(v);
    return true;
  }
  bool u32(std::uint32_t& out) {
    std::uint64_t v = 0;
    if (!be(4, v)) return false;
    out = static_cast<std::uint32_t>(v);
    return true;
  }
  bool u64(std::uint64_t& out) { return be(8, out); }
  bool i64(std::int64_t& out) {
    std::uint64_t v = 0;
    if (!be(8, v)) return false;
    out = static_cast<std::int64_t>(v);  // two's complement (C++20)
    return true;
  }
  // A NUL-terminated string.
  bool cstring(std::string& out) {
    const auto end = bytes_.find('\0', pos_);
    if (end == std::string_view::npos) return false;
    out.assign(bytes_.substr(pos_, end - pos_));
    pos_ = end + 1;
    return true;
  }
  bool take(std::size_t n, std::string_view& out) {
    if (left() < n) return false;
    out = bytes_.substr(pos_, n);
    pos_ += n;
    return true;
  }

 private:
  bool be(std::size_t n, std::uint64_t& out) {
    if (left() < n) return false;
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < n; ++i) v = (v << 8) | static_cast<std::uint8_t>(bytes_[pos_ + i]);
    pos_ += n;
    out = v;
    return true;
  }

  std::string_view bytes_;
  std::size_t pos_ = 0;
};

void put_be64(std::string& out, std::uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8)
    out.push_back(static_cast<char>((v >> shift) & 0xff));
}

Result<PgOutputMessage> decode_begin(Reader& r) {
  BeginMsg m;
  if (!r.u64(m.final_lsn)) return r.error("truncated Begin final LSN");
  if (!r.i64(m.commit_time)) return r.error("truncated Begin commit time");
  if (!r.u32(m.xid)) return r.error("truncated Begin xid");
  if (r.left() != 0) return r.error("trailing bytes after Begin");
  return PgOutputMessage{m};
}

Result<PgOutputMessage> decode_commit(Reader& r) {
  CommitMsg m;
  std::uint8_t flags = 0;  // unused by the protocol so far; not checked, for newer servers' sake
  if (!r.u8(flags)) return r.error("truncated Commit flags");
  if (!r.u64(m.commit_lsn)) return r.error("truncated Commit LSN");
  if (!r.u64(m.end_lsn)) return r.error("truncated Commit end LSN");
  if (!r.i64(m.commit_time)) return r.error("truncated Commit time");
  if (r.left() != 0) return r.error("trailing bytes after Commit");
  return PgOutputMessage{m};
}

Result<PgOutputMessage> decode_relation(Reader& r) {
  RelationMsg m;
  if (!r.u32(m.oid)) return r.error("truncated Relation oid");
  if (!r.cstring(m.nspname)) return r.error("unterminated Relation namespace");
  if (m.nspname.empty()) m.nspname = "pg_catalog";
  if (!r.cstring(m.relname)) return r.error("unterminated Relation name");
  std::uint8_t identity = 0;
  if (!r.u8(identity)) return r.error("truncated Relation replica identity");
  m.replica_identity = static_cast<char>(identity);
  std::uint16_t ncols = 0;
  if (!r.u16(ncols)) return r.error("truncated Relation column count");
  if (ncols > 0x7fff) return r.error("negative Relation column count");
  // Each column takes at least 10 bytes (flags, "" name, type oid, typmod).
  if (ncols > r.left() / 10) return r.error("Relation column count larger than the message");
  m.columns.reserve(ncols);
  for (std::uint16_t i = 0; i < ncols; ++i) {
    RelationMsg::Column c;
    std::uint8_t flags = 0;
    if (!r.u8(flags)) return r.error("truncated Relation column flags");
    c.part_of_key = (flags & 1) != 0;
    if (!r.cstring(c.name)) return r.error("unterminated Relation column name");
    if (!r.u32(c.type_oid)) return r.error("truncated Relation column type");
    std::uint32_t typmod = 0;
    if (!r.u32(typmod)) return r.error("truncated Relation column typmod");
    c.typmod = static_cast<std::int32_t>(typmod);
    m.columns.push_back(std::move(c));
  }
  if (r.left() != 0) return r.error("trailing bytes after Relation");
  return PgOutputMessage{std::move(m)};
}

Result<PgOutputMessage> decode_insert(Reader& r) {
  InsertMsg m;
  if (!r.u32(m.relation_oid)) return r.error("truncated Insert relation oid");
  std::uint8_t marker = 0;
  if (!r.u8(marker)) return r.error("truncated Insert");
  if (marker != 'N') return r.error("Insert without a new tuple ('N')");
  std::uint16_t ncols = 0;
  if (!r.u16(ncols)) return r.error("truncated tuple column count");
  if (ncols > 0x7fff) return r.error("negative tuple column count");
  if (ncols > r.left()) return r.error("tuple column count larger than the message");
  m.values.reserve(ncols);
  for (std::uint16_t i = 0; i < ncols; ++i) {
    TupleValue v;
    std::uint8_t kind = 0;
    if (!r.u8(kind)) return r.error("truncated tuple value kind");
    switch (kind) {
      case 'n':
        v.kind = TupleValue::Kind::kNull;
        break;
      case 'u':
        v.kind = TupleValue::Kind::kUnchangedToast;
        break;
      case 't':
      case 'b': {
        v.kind = kind == 't' ? TupleValue::Kind::kText : TupleValue::Kind::kBinary;
        std::uint32_t len = 0;
        if (!r.u32(len)) return r.error("truncated tuple value length");
        if (len > 0x7fffffffu) return r.error("negative tuple value length");
        std::string_view data;
        if (!r.take(len, data)) return r.error("tuple value longer than the message");
        v.bytes.assign(data);
        break;
      }
      default:
        return r.error(fmt::format("unknown tuple value kind 0x{:02x}", kind));
    }
    m.values.push_back(std::move(v));
  }
  if (r.left() != 0) return r.error("trailing bytes after Insert");
  return PgOutputMessage{std::move(m)};
}

bool is_other_tag(char tag) {
  switch (tag) {
    case 'U':  // Update
    case 'D':  // Delete
    case 'T':  // Truncate
    case 'Y':  // Type
    case 'O':  // Origin
    case 'M':  // Message (pg_logical_emit_message)
    case 'S':  // Stream Start (proto 2+)
    case 'E':  // Stream Stop
    case 'c':  // Stream Commit
    case 'A':  // Stream Abort
    case 'b':  // Begin Prepare (proto 3+)
    case 'P':  // Prepare
    case 'K':  // Commit Prepared
    case 'r':  // Rollback Prepared
    case 'p':  // Stream Prepare
      return true;
    default:
      return false;
  }
}

}  // namespace

std::string format_lsn(Lsn lsn) {
  return fmt::format("{:X}/{:X}", static_cast<std::uint32_t>(lsn >> 32),
                     static_cast<std::uint32_t>(lsn & 0xffffffffu));
}

std::optional<Lsn> parse_lsn(std::string_view text) {
  const auto slash = text.find('/');
  if (slash == std::string_view::npos) return std::nullopt;
  auto hex = [](std::string_view part) -> std::optional<std::uint32_t> {
    if (part.empty() || part.size() > 8) return std::nullopt;
    std::uint32_t v = 0;
    for (char c : part) {
      std::uint32_t d = 0;
      if (c >= '0' && c <= '9') {
        d = static_cast<std::uint32_t>(c - '0');
      } else if (c >= 'a' && c <= 'f') {
        d = static_cast<std::uint32_t>(c - 'a' + 10);
      } else if (c >= 'A' && c <= 'F') {
        d = static_cast<std::uint32_t>(c - 'A' + 10);
      } else {
        return std::nullopt;
      }
      v = (v << 4) | d;
    }
    return v;
  };
  const auto hi = hex(text.substr(0, slash));
  const auto lo = hex(text.substr(slash + 1));
  if (!hi || !lo) return std::nullopt;
  return (static_cast<Lsn>(*hi) << 32) | *lo;
}

std::int64_t to_pg_micros(std::chrono::system_clock::time_point t) {
  const auto unix_micros =
      std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
  return unix_micros - kPgEpochUnixMicros;
}

std::chrono::system_clock::time_point from_pg_micros(std::int64_t micros) {
  using TimePoint = std::chrono::system_clock::time_point;
  using Duration = TimePoint::duration;
  // The bounds of system_clock, in pg micros, computed without overflow.
  constexpr std::int64_t kMaxUnixMicros =
      std::chrono::duration_cast<std::chrono::microseconds>(Duration::max()).count();
  constexpr std::int64_t kMinUnixMicros =
      std::chrono::duration_cast<std::chrono::microseconds>(Duration::min()).count();
  if (micros > kMaxUnixMicros - kPgEpochUnixMicros) return TimePoint::max();
  if (micros < kMinUnixMicros - kPgEpochUnixMicros) return TimePoint::min();
  return TimePoint(
      std::chrono::duration_cast<Duration>(std::chrono::microseconds(micros + kPgEpochUnixMicros)));
}

Result<std::variant<XLogData, Keepalive>> decode_copy_data(std::string_view bytes) {
  Reader r(bytes);
  std::uint8_t tag = 0;
  if (!r.u8(tag)) return r.error("empty replication message");
  if (tag == 'w') {
    XLogData d;
    if (!r.u64(d.wal_start)) return r.error("truncated XLogData start");
    if (!r.u64(d.wal_end)) return r.error("truncated XLogData end");
    if (!r.i64(d.send_time)) return r.error("truncated XLogData send time");
    d.payload = bytes.substr(r.pos());
    return std::variant<XLogData, Keepalive>{d};
  }
  if (tag == 'k') {
    Keepalive k;
    if (!r.u64(k.wal_end)) return r.error("truncated keepalive end");
    if (!r.i64(k.send_time)) return r.error("truncated keepalive send time");
    std::uint8_t reply = 0;
    if (!r.u8(reply)) return r.error("truncated keepalive reply flag");
    k.reply_requested = reply != 0;
    if (r.left() != 0) return r.error("trailing bytes after keepalive");
    return std::variant<XLogData, Keepalive>{k};
  }
  return Error{ErrorCode::kInvalidArgument,
               fmt::format("unknown replication message type 0x{:02x} at byte 0", tag)};
}

std::string encode_standby_status(Lsn write, Lsn flush, Lsn apply, std::int64_t now_pg_micros,
                                  bool reply_requested) {
  std::string out;
  out.reserve(34);
  out.push_back('r');
  put_be64(out, write);
  put_be64(out, flush);
  put_be64(out, apply);
  put_be64(out, static_cast<std::uint64_t>(now_pg_micros));
  out.push_back(reply_requested ? 1 : 0);
  return out;
}

Result<PgOutputMessage> decode_pgoutput(std::string_view bytes) {
  Reader r(bytes);
  std::uint8_t tag = 0;
  if (!r.u8(tag)) return r.error("empty pgoutput message");
  switch (tag) {
    case 'B':
      return decode_begin(r);
    case 'C':
      return decode_commit(r);
    case 'R':
      return decode_relation(r);
    case 'I':
      return decode_insert(r);
    default:
      if (is_other_tag(static_cast<char>(tag)))
        return PgOutputMessage{OtherMsg{static_cast<char>(tag)}};
      return Error{ErrorCode::kInvalidArgument,
                   fmt::format("unknown pgoutput message type 0x{:02x} at byte 0", tag)};
  }
}

}  // namespace relay::store::wal
