#include "relay/store/wal/pgoutput.h"

#include <catch2/catch.hpp>
#include <string>

#include "tests/unit/store_wal/wal_bytes.h"

using namespace relay::store::wal;
using relay::ErrorCode;
using relay::store::wal::testing::Bytes;

namespace {

std::string relation_bytes() {
  Bytes b;
  b.u8('R').u32(16400).str("relay").str("outbox").u8('d').u16(2);
  b.u8(1).str("id").u32(20).u32(0xffffffff);
  b.u8(0).str("topic").u32(25).u32(0xffffffff);
  return b.s;
}

std::string insert_bytes() {
  Bytes b;
  b.u8('I').u32(16400).u8('N').u16(4);
  b.bin(std::string("\0\0\0\0\0\0\0\x07", 8));
  b.u8('t').u32(3).raw("abc");
  b.u8('n');
  b.u8('u');
  return b.s;
}

// Every prefix of `bytes` shorter than the whole fails with kInvalidArgument and says where.
void check_every_prefix_fails(const std::string& bytes) {
  for (std::size_t n = 0; n < bytes.size(); ++n) {
    INFO("prefix of " << n << " bytes");
    auto r = decode_pgoutput(std::string_view(bytes).substr(0, n));
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code == ErrorCode::kInvalidArgument);
    CHECK(r.error().message.find(" at byte ") != std::string::npos);
  }
}

}  // namespace

TEST_CASE("an LSN prints as PostgreSQL prints it and parses back", "[store_wal]") {
  CHECK(format_lsn(0) == "0/0");
  CHECK(format_lsn(0x16B374D848ull) == "16/B374D848");
  CHECK(format_lsn(0xFFFFFFFFFFFFFFFFull) == "FFFFFFFF/FFFFFFFF");
  for (Lsn lsn : {Lsn{0}, Lsn{1}, Lsn{0x16B374D848ull}, Lsn{0xFFFFFFFF00000000ull},
                  Lsn{0xFFFFFFFFFFFFFFFFull}, Lsn{0x100000000ull}}) {
    CHECK(parse_lsn(format_lsn(lsn)) == lsn);
  }
  CHECK(parse_lsn("16/b374d848") == Lsn{0x16B374D848ull});
  CHECK(parse_lsn("00000016/0000B374") == Lsn{0x160000B374ull});
  for (const char* bad : {"", "/", "16/", "/B3", "16B374D848", "16/B374D848 ", " 16/1", "g/1",
                          "1/-1", "123456789/0", "0/123456789", "1//2", "+1/2"}) {
    INFO(bad);
    CHECK_FALSE(parse_lsn(bad).has_value());
  }
}

TEST_CASE("the protocol clock counts microseconds from 2000-01-01 UTC", "[store_wal]") {
  using namespace std::chrono;
  const system_clock::time_point y2k = sys_days{year{2000} / January / 1};
  CHECK(to_pg_micros(y2k) == 0);
  CHECK(to_pg_micros(y2k + seconds(1) + microseconds(5)) == 1'000'005);
  CHECK(to_pg_micros(y2k - hours(24)) == -86'400'000'000);
  CHECK(from_pg_micros(1'000'005) == y2k + seconds(1) + microseconds(5));
  const auto now = time_point_cast<microseconds>(system_clock::now());
  CHECK(from_pg_micros(to_pg_micros(now)) == now);
  // 'infinity' and '-infinity' (and anything beyond system_clock) saturate.
  CHECK(from_pg_micros(INT64_MAX) == system_clock::time_point::max());
  CHECK(from_pg_micros(INT64_MIN) == system_clock::time_point::min());
}

TEST_CASE("decode_copy_data reads XLogData and keepalives", "[store_wal]") {
  Bytes w;
  w.u8('w')
      .u64(0x1122334455667788ull)
      .u64(0x0102030405060708ull)
      .u64(0xFFFFFFFFFFFFFFFEull)
      .raw("Bxyz");
  auto r = decode_copy_data(w.s);
  REQUIRE(r.has_value());
  const auto& x = std::get<XLogData>(*r);
  CHECK(x.wal_start == 0x1122334455667788ull);
  CHECK(x.wal_end == 0x0102030405060708ull);
  CHECK(x.send_time == -2);
  CHECK(x.payload == "Bxyz");

  Bytes empty_payload;
  empty_payload.u8('w').u64(1).u64(2).u64(3);
  REQUIRE(decode_copy_data(empty_payload.s).has_value());
  CHECK(std::get<XLogData>(*decode_copy_data(empty_payload.s)).payload.empty());

  Bytes k;
  k.u8('k').u64(0xABCDEFull).u64(12345).u8(1);
  auto rk = decode_copy_data(k.s);
  REQUIRE(rk.has_value());
  const auto& ka = std::get<Keepalive>(*rk);
  CHECK(ka.wal_end == 0xABCDEFull);
  CHECK(ka.send_time == 12345);
  CHECK(ka.reply_requested);
  k.s.back() = 0;
  CHECK_FALSE(std::get<Keepalive>(*decode_copy_data(k.s)).reply_requested);
}

TEST_CASE("decode_copy_data rejects short, long and unknown messages", "[store_wal]") {
  Bytes w;
  w.u8('w').u64(1).u64(2).u64(3);
  for (std::size_t n = 0; n < w.s.size(); ++n) {
    INFO(n);
    auto r = decode_copy_data(w.s.substr(0, n));
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code == ErrorCode::kInvalidArgument);
  }
  Bytes k;
  k.u8('k').u64(1).u64(2).u8(0);
  for (std::size_t n = 0; n < k.s.size(); ++n) CHECK_FALSE(decode_copy_data(k.s.substr(0, n)));
  auto longer = decode_copy_data(k.s + "x");
  REQUIRE_FALSE(longer.has_value());
  CHECK(longer.error().message == "trailing bytes after keepalive at byte 18");
  auto unknown = decode_copy_data("r0000");
  REQUIRE_FALSE(unknown.has_value());
  CHECK(unknown.error().message == "unknown replication message type 0x72 at byte 0");
  auto truncated = decode_copy_data(w.s.substr(0, 10));
  REQUIRE_FALSE(truncated.has_value());
  CHECK(truncated.error().message == "truncated XLogData end at byte 9");
}

TEST_CASE("the standby status update is 34 bytes laid out as the protocol says", "[store_wal]") {
  const std::string m = encode_standby_status(0x0102030405060708ull, 0x1112131415161718ull,
                                              0x2122232425262728ull, -1, true);
  Bytes expected;
  expected.u8('r').u64(0x0102030405060708ull).u64(0x1112131415161718ull).u64(0x2122232425262728ull);
  expected.u64(0xFFFFFFFFFFFFFFFFull).u8(1);
  REQUIRE(m.size() == 34);
  CHECK(m == expected.s);
  CHECK(encode_standby_status(0, 0, 0, 0, false) == std::string("r") + std::string(33, '\0'));
}

TEST_CASE("decode_pgoutput reads Begin and Commit", "[store_wal]") {
  Bytes b;
  b.u8('B').u64(0x16B374D848ull).u64(777).u32(4242);
  auto rb = decode_pgoutput(b.s);
  REQUIRE(rb.has_value());
  const auto& begin = std::get<BeginMsg>(*rb);
  CHECK(begin.final_lsn == 0x16B374D848ull);
  CHECK(begin.commit_time == 777);
  CHECK(begin.xid == 4242u);
  check_every_prefix_fails(b.s);
  CHECK_FALSE(decode_pgoutput(b.s + '\0').has_value());

  Bytes c;
  c.u8('C').u8(0).u64(100).u64(200).u64(300);
  auto rc = decode_pgoutput(c.s);
  REQUIRE(rc.has_value());
  const auto& commit = std::get<CommitMsg>(*rc);
  CHECK(commit.commit_lsn == 100);
  CHECK(commit.end_lsn == 200);
  CHECK(commit.commit_time == 300);
  check_every_prefix_fails(c.s);
  auto longer = decode_pgoutput(c.s + "zz");
  REQUIRE_FALSE(longer.has_value());
  CHECK(longer.error().message == "trailing bytes after Commit at byte 26");
}

TEST_CASE("decode_pgoutput reads a Relation", "[store_wal]") {
  auto r = decode_pgoutput(relation_bytes());
  REQUIRE(r.has_value());
  const auto& rel = std::get<RelationMsg>(*r);
  CHECK(rel.oid == 16400u);
  CHECK(rel.nspname == "relay");
  CHECK(rel.relname == "outbox");
  CHECK(rel.replica_identity == 'd');
  REQUIRE(rel.columns.size() == 2);
  CHECK(rel.columns[0].part_of_key);
  CHECK(rel.columns[0].name == "id");
  CHECK(rel.columns[0].type_oid == 20u);
  CHECK(rel.columns[0].typmod == -1);
  CHECK_FALSE(rel.columns[1].part_of_key);
  CHECK(rel.columns[1].name == "topic");
  CHECK(rel.columns[1].type_oid == 25u);
  check_every_prefix_fails(relation_bytes());
  CHECK_FALSE(decode_pgoutput(relation_bytes() + "x").has_value());

  // "" is the protocol's name for pg_catalog.
  Bytes cat;
  cat.u8('R').u32(1).str("").str("t").u8('n').u16(0);
  CHECK(std::get<RelationMsg>(*decode_pgoutput(cat.s)).nspname == "pg_catalog");
}

TEST_CASE("decode_pgoutput rejects a Relation column count the message cannot hold",
          "[store_wal]") {
  Bytes huge;
  huge.u8('R').u32(1).str("s").str("t").u8('d').u16(30000).u8(0).str("a").u32(20).u32(0);
  auto r = decode_pgoutput(huge.s);
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error().message == "Relation column count larger than the message at byte 12");
  Bytes negative;
  negative.u8('R').u32(1).str("s").str("t").u8('d').u16(0xFFFF);
  CHECK(decode_pgoutput(negative.s).error().message == "negative Relation column count at byte 12");
}

TEST_CASE("decode_pgoutput reads an Insert with every value kind", "[store_wal]") {
  auto r = decode_pgoutput(insert_bytes());
  REQUIRE(r.has_value());
  const auto& ins = std::get<InsertMsg>(*r);
  CHECK(ins.relation_oid == 16400u);
  REQUIRE(ins.values.size() == 4);
  CHECK(ins.values[0].kind == TupleValue::Kind::kBinary);
  CHECK(ins.values[0].bytes == std::string("\0\0\0\0\0\0\0\x07", 8));
  CHECK(ins.values[1].kind == TupleValue::Kind::kText);
  CHECK(ins.values[1].bytes == "abc");
  CHECK(ins.values[2].kind == TupleValue::Kind::kNull);
  CHECK(ins.values[3].kind == TupleValue::Kind::kUnchangedToast);
  check_every_prefix_fails(insert_bytes());
  CHECK_FALSE(decode_pgoutput(insert_bytes() + "n").has_value());
}

TEST_CASE("decode_pgoutput rejects bad Insert values", "[store_wal]") {
  Bytes oversized;  // a length beyond the message
  oversized.u8('I').u32(1).u8('N').u16(1).u8('b').u32(1000).raw("abc");
  CHECK(decode_pgoutput(oversized.s).error().message ==
        "tuple value longer than the message at byte 13");
  Bytes negative;
  negative.u8('I').u32(1).u8('N').u16(1).u8('t').u32(0xFFFFFFFF);
  CHECK(decode_pgoutput(negative.s).error().message == "negative tuple value length at byte 13");
  Bytes kind;
  kind.u8('I').u32(1).u8('N').u16(1).u8('x');
  CHECK(decode_pgoutput(kind.s).error().message == "unknown tuple value kind 0x78 at byte 9");
  Bytes no_new;
  no_new.u8('I').u32(1).u8('K').u16(0);
  CHECK(decode_pgoutput(no_new.s).error().message == "Insert without a new tuple ('N') at byte 6");
  Bytes count;
  count.u8('I').u32(1).u8('N').u16(5).u8('n');
  CHECK(decode_pgoutput(count.s).error().message ==
        "tuple column count larger than the message at byte 8");
  Bytes empty_value;  // zero-length values are fine
  empty_value.u8('I').u32(1).u8('N').u16(1).bin("");
  REQUIRE(decode_pgoutput(empty_value.s).has_value());
  CHECK(std::get<InsertMsg>(*decode_pgoutput(empty_value.s)).values.at(0).bytes.empty());
}

TEST_CASE("decode_pgoutput names the other messages by tag and rejects unknown ones",
          "[store_wal]") {
  for (char tag : std::string("UDTYOMSEcAbPKrp")) {
    INFO(tag);
    auto r = decode_pgoutput(std::string(1, tag) + "whatever");
    REQUIRE(r.has_value());
    CHECK(std::get<OtherMsg>(*r).tag == tag);
  }
  CHECK(decode_pgoutput("").error().message == "empty pgoutput message at byte 0");
  CHECK(decode_pgoutput("Z").error().message == "unknown pgoutput message type 0x5a at byte 0");
  CHECK(decode_pgoutput(std::string(1, '\xff')).error().message ==
        "unknown pgoutput message type 0xff at byte 0");
}
