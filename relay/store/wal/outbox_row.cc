#include "relay/store/wal/outbox_row.h"

#include <fmt/format.h>

#include <array>
#include <cstdint>
#include <string_view>

namespace relay::store::wal {

namespace {

constexpr std::uint32_t kInt8Oid = 20;
constexpr std::uint32_t kTextOid = 25;
constexpr std::uint32_t kByteaOid = 17;
constexpr std::uint32_t kUuidOid = 2950;
constexpr std::uint32_t kJsonbOid = 3802;
constexpr std::uint32_t kTimestamptzOid = 1184;

enum Col {
  kId,
  kEventId,
  kTopic,
  kKey,
  kPayload,
  kContentType,
  kHeaders,
  kCreatedAt,
  kDeliverAfter,
  kExpiresAt,
  kColumnCount
};

struct ColumnSpec {
  std::string_view name;
  std::uint32_t type_oid;
  bool nullable;
};

constexpr std::array<ColumnSpec, kColumnCount> kColumns = {{
    {"id", kInt8Oid, false},
    {"event_id", kUuidOid, false},
    {"topic", kTextOid, false},
    {"key", kTextOid, true},
    {"payload", kByteaOid, false},
    {"content_type", kTextOid, false},
    {"headers", kJsonbOid, false},
    {"created_at", kTimestamptzOid, false},
    {"deliver_after", kTimestamptzOid, true},
    {"expires_at", kTimestamptzOid, true},
}};

std::int64_t be_int64(std::string_view b) {
  std::uint64_t v = 0;
  for (char c : b) v = (v << 8) | static_cast<std::uint8_t>(c);
  return static_cast<std::int64_t>(v);
}

std::string uuid_text(std::string_view b) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(36);
  for (std::size_t i = 0; i < b.size(); ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out.push_back('-');
    const auto v = static_cast<std::uint8_t>(b[i]);
    out.push_back(kHex[v >> 4]);
    out.push_back(kHex[v & 0xf]);
  }
  return out;
}

class RowDecoder {
 public:
  RowDecoder(const RelationMsg& relation, const InsertMsg& insert)
      : relation_(relation), insert_(insert) {}

  Result<OutboxRow> decode() {
    if (insert_.relation_oid != relation_.oid) {
      return Error{ErrorCode::kInvalidArgument,
                   fmt::format("outbox row: Insert for relation {} decoded with relation {}",
                               insert_.relation_oid, relation_.oid)};
    }
    if (insert_.values.size() != relation_.columns.size()) {
      return Error{ErrorCode::kInvalidArgument,
                   fmt::format("outbox row: Insert has {} values, relation {}.{} has {} columns",
                               insert_.values.size(), relation_.nspname, relation_.relname,
                               relation_.columns.size())};
    }
    for (std::size_t c = 0; c < kColumnCount; ++c) {
      bool found = false;
      for (std::size_t i = 0; i < relation_.columns.size(); ++i) {
        if (relation_.columns[i].name != kColumns[c].name) continue;
        if (relation_.columns[i].type_oid != kColumns[c].type_oid) {
          return fail(c, fmt::format("has type oid {}, expected {}", relation_.columns[i].type_oid,
                                     kColumns[c].type_oid));
        }
        index_[c] = i;
        found = true;
        break;
      }
      if (!found) return fail(c, "is missing from the relation");
    }

    OutboxRow row;
    Event& e = row.event;
    // The id first, so that every later error can name the row.
    if (auto v = value(kId, 8)) {
      if (!*v) return error_;  // NOT NULL: value() has set error_
      e.outbox_id = be_int64(**v);
      id_ = e.outbox_id;
      id_known_ = true;
    } else {
      return error_;
    }
    if (auto v = value(kEventId, 16); v && *v) {
      e.event_id = uuid_text(**v);
    } else {
      return error_;
    }
    if (auto v = value(kTopic); v && *v) {
      e.topic.assign(**v);
    } else {
      return error_;
    }
    if (auto v = value(kKey)) {
      if (*v) e.key = std::string(**v);
    } else {
      return error_;
    }
    if (auto v = value(kPayload); v && *v) {
      e.payload.assign(**v);
    } else {
      return error_;
    }
    if (auto v = value(kContentType); v && *v) {
      e.content_type.assign(**v);
    } else {
      return error_;
    }
    if (auto v = value(kHeaders); v && *v) {
      const std::string_view jsonb = **v;
      if (jsonb.empty() || jsonb[0] != 1) return fail(kHeaders, "is not jsonb version 1");
      e.headers_json.assign(jsonb.substr(1));
    } else {
      return error_;
    }
    if (auto v = value(kCreatedAt, 8); v && *v) {
      e.created_at = from_pg_micros(be_int64(**v));
    } else {
      return error_;
    }
    if (auto v = value(kDeliverAfter, 8)) {
      if (*v) row.deliver_after = from_pg_micros(be_int64(**v));
    } else {
      return error_;
    }
    if (auto v = value(kExpiresAt, 8)) {
      if (*v) e.expires_at = from_pg_micros(be_int64(**v));
    } else {
      return error_;
    }
    return row;
  }

 private:
  // The outer optional is empty on an error (in error_); the inner one is empty for a NULL in a
  // nullable column. `size` is the exact binary length the type has, 0 for any.
  std::optional<std::optional<std::string_view>> value(int c, std::size_t size = 0) {
    const TupleValue& v = insert_.values[index_[c]];
    switch (v.kind) {
      case TupleValue::Kind::kNull:
        if (kColumns[c].nullable) return std::optional<std::string_view>{};
        fail(c, "is NULL");
        return std::nullopt;
      case TupleValue::Kind::kUnchangedToast:
        fail(c, "is an unchanged TOAST value");
        return std::nullopt;
      case TupleValue::Kind::kText:
        fail(c, "is in text format (START_REPLICATION needs binary 'true')");
        return std::nullopt;
      case TupleValue::Kind::kBinary:
        break;
    }
    if (size != 0 && v.bytes.size() != size) {
      fail(c, fmt::format("has {} bytes, expected {}", v.bytes.size(), size));
      return std::nullopt;
    }
    return std::optional<std::string_view>{std::string_view(v.bytes)};
  }

  Error fail(std::size_t c, std::string_view what) {
    error_ =
        Error{ErrorCode::kInvalidArgument,
              id_known_ ? fmt::format("outbox row id {}: column {} {}", id_, kColumns[c].name, what)
                        : fmt::format("outbox row: column {} {}", kColumns[c].name, what)};
    return error_;
  }

  const RelationMsg& relation_;
  const InsertMsg& insert_;
  std::array<std::size_t, kColumnCount> index_{};
  bool id_known_ = false;
  std::int64_t id_ = 0;
  Error error_;
};

}  // namespace

Result<OutboxRow> decode_outbox_row(const RelationMsg& relation, const InsertMsg& insert) {
  return RowDecoder(relation, insert).decode();
}

}  // namespace relay::store::wal
