#pragma once
// Builders for hand-made replication protocol bytes (big-endian), and relay.outbox's Relation
// message, shared by the store_wal tests and the pgoutput fuzz target.

#include <cstdint>
#include <string>
#include <string_view>

#include "relay/store/wal/pgoutput.h"

namespace relay::store::wal::testing {

struct Bytes {
  std::string s;
  Bytes& u8(std::uint8_t v) {
    s.push_back(static_cast<char>(v));
    return *this;
  }
  Bytes& be(std::uint64_t v, int n) {
    for (int i = n - 1; i >= 0; --i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
    return *this;
  }
  Bytes& u16(std::uint16_t v) { return be(v, 2); }
  Bytes& u32(std::uint32_t v) { return be(v, 4); }
  Bytes& u64(std::uint64_t v) { return be(v, 8); }
  Bytes& str(std::string_view v) {  // NUL-terminated
    s.append(v);
    s.push_back('\0');
    return *this;
  }
  Bytes& raw(std::string_view v) {
    s.append(v);
    return *this;
  }
  // A tuple value: 'b' + length + bytes.
  Bytes& bin(std::string_view v) {
    u8('b').u32(static_cast<std::uint32_t>(v.size()));
    return raw(v);
  }
};

// relay.outbox as pgoutput describes it (with the claim columns relay ignores in WAL mode).
inline const RelationMsg& outbox_relation() {
  static const RelationMsg r = [] {
    RelationMsg m;
    m.oid = 16400;
    m.nspname = "relay";
    m.relname = "outbox";
    m.columns = {{true, "id", 20, -1},
                 {false, "event_id", 2950, -1},
                 {false, "topic", 25, -1},
                 {false, "key", 25, -1},
                 {false, "payload", 17, -1},
                 {false, "content_type", 25, -1},
                 {false, "headers", 3802, -1},
                 {false, "created_at", 1184, -1},
                 {false, "deliver_after", 1184, -1},
                 {false, "expires_at", 1184, -1},
                 {false, "lease_owner", 25, -1},
                 {false, "lease_until", 1184, -1},
                 {false, "claims", 23, -1}};
    return m;
  }();
  return r;
}

}  // namespace relay::store::wal::testing
