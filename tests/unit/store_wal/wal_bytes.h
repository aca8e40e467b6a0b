#pragma once
// Builders for hand-made replication protocol bytes (big-endian), shared by the store_wal tests.

#include <cstdint>
#include <string>
#include <string_view>

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

}  // namespace relay::store::wal::testing
