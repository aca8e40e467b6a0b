#include "relay/store/wal/outbox_row.h"

#include <catch2/catch.hpp>
#include <string>

#include "tests/unit/store_wal/wal_bytes.h"

using namespace relay::store::wal;
using relay::ErrorCode;
using relay::store::wal::testing::Bytes;
using relay::store::wal::testing::outbox_relation;

namespace {

TupleValue bin(std::string bytes) { return {TupleValue::Kind::kBinary, std::move(bytes)}; }
TupleValue null() { return {TupleValue::Kind::kNull, ""}; }
TupleValue be64(std::int64_t v) {
  Bytes b;
  b.u64(static_cast<std::uint64_t>(v));
  return bin(b.s);
}

const std::string kUuidBytes("\x12\x34\x56\x78\x9a\xbc\xde\xf0\x01\x23\x45\x67\x89\xab\xcd\xef",
                             16);

InsertMsg outbox_insert() {
  InsertMsg m;
  m.relation_oid = 16400;
  m.values = {be64(42),
              bin(kUuidBytes),
              bin("orders"),
              bin("k1"),
              bin(std::string("a\0b", 3)),
              bin("application/octet-stream"),
              bin(std::string("\x01") + R"({"x-a": "1"})"),
              be64(1'000'005),  // 2000-01-01 00:00:01.000005 UTC
              be64(2'000'000),
              be64(-1),
              null(),
              null(),
              bin(std::string("\0\0\0\0", 4))};
  return m;
}

std::size_t column(const RelationMsg& r, const std::string& name) {
  for (std::size_t i = 0; i < r.columns.size(); ++i) {
    if (r.columns[i].name == name) return i;
  }
  FAIL("no column " << name);
  return 0;
}

}  // namespace

TEST_CASE("an outbox Insert decodes into the Event it holds", "[store_wal]") {
  using namespace std::chrono;
  const system_clock::time_point y2k = sys_days{year{2000} / January / 1};
  auto r = decode_outbox_row(outbox_relation(), outbox_insert());
  REQUIRE(r.has_value());
  const relay::Event& e = r->event;
  CHECK(e.outbox_id == 42);
  CHECK(e.event_id == "12345678-9abc-def0-0123-456789abcdef");
  CHECK(e.topic == "orders");
  CHECK(e.key == "k1");
  CHECK(e.payload == std::string("a\0b", 3));
  CHECK(e.content_type == "application/octet-stream");
  CHECK(e.headers_json == R"({"x-a": "1"})");
  CHECK(e.created_at == y2k + microseconds(1'000'005));
  REQUIRE(r->deliver_after.has_value());
  CHECK(*r->deliver_after == y2k + seconds(2));
  REQUIRE(e.expires_at.has_value());
  CHECK(*e.expires_at == y2k - microseconds(1));
}

TEST_CASE("an outbox Insert finds its columns by name, in any order", "[store_wal]") {
  RelationMsg rel = outbox_relation();
  InsertMsg ins = outbox_insert();
  std::swap(rel.columns[0], rel.columns[12]);
  std::swap(ins.values[0], ins.values[12]);
  std::swap(rel.columns[2], rel.columns[7]);
  std::swap(ins.values[2], ins.values[7]);
  auto r = decode_outbox_row(rel, ins);
  REQUIRE(r.has_value());
  CHECK(r->event.outbox_id == 42);
  CHECK(r->event.topic == "orders");
}

TEST_CASE("NULL key, deliver_after and expires_at decode as absent", "[store_wal]") {
  const RelationMsg rel = outbox_relation();
  InsertMsg ins = outbox_insert();
  ins.values[column(rel, "key")] = null();
  ins.values[column(rel, "deliver_after")] = null();
  ins.values[column(rel, "expires_at")] = null();
  ins.values[column(rel, "payload")] = bin("");
  auto r = decode_outbox_row(rel, ins);
  REQUIRE(r.has_value());
  CHECK_FALSE(r->event.key.has_value());
  CHECK_FALSE(r->deliver_after.has_value());
  CHECK_FALSE(r->event.expires_at.has_value());
  CHECK(r->event.payload.empty());
}

TEST_CASE("'infinity' timestamps saturate", "[store_wal]") {
  const RelationMsg rel = outbox_relation();
  InsertMsg ins = outbox_insert();
  ins.values[column(rel, "expires_at")] = be64(INT64_MAX);
  ins.values[column(rel, "deliver_after")] = be64(INT64_MIN);
  auto r = decode_outbox_row(rel, ins);
  REQUIRE(r.has_value());
  CHECK(*r->event.expires_at == std::chrono::system_clock::time_point::max());
  CHECK(*r->deliver_after == std::chrono::system_clock::time_point::min());
}

TEST_CASE("a NULL in a NOT NULL outbox column is an error naming the column and the id",
          "[store_wal]") {
  const RelationMsg rel = outbox_relation();
  for (const char* name :
       {"event_id", "topic", "payload", "content_type", "headers", "created_at"}) {
    INFO(name);
    InsertMsg ins = outbox_insert();
    ins.values[column(rel, name)] = null();
    auto r = decode_outbox_row(rel, ins);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code == ErrorCode::kInvalidArgument);
    CHECK(r.error().message == std::string("outbox row id 42: column ") + name + " is NULL");
  }
  InsertMsg ins = outbox_insert();
  ins.values[column(rel, "id")] = null();
  CHECK(decode_outbox_row(rel, ins).error().message == "outbox row: column id is NULL");
}

TEST_CASE("an outbox column of another type is an error", "[store_wal]") {
  for (const char* name : {"id", "event_id", "topic", "key", "payload", "content_type", "headers",
                           "created_at", "deliver_after", "expires_at"}) {
    INFO(name);
    RelationMsg rel = outbox_relation();
    const auto want = rel.columns[column(rel, name)].type_oid;
    rel.columns[column(rel, name)].type_oid = 705;
    auto r = decode_outbox_row(rel, outbox_insert());
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().message == "outbox row: column " + std::string(name) +
                                   " has type oid 705, expected " + std::to_string(want));
  }
}

TEST_CASE("a missing outbox column is an error", "[store_wal]") {
  for (const char* name : {"id", "event_id", "topic", "key", "payload", "content_type", "headers",
                           "created_at", "deliver_after", "expires_at"}) {
    INFO(name);
    RelationMsg rel = outbox_relation();
    InsertMsg ins = outbox_insert();
    const auto i = column(rel, name);
    rel.columns.erase(rel.columns.begin() + static_cast<long>(i));
    ins.values.erase(ins.values.begin() + static_cast<long>(i));
    auto r = decode_outbox_row(rel, ins);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().message ==
          "outbox row: column " + std::string(name) + " is missing from the relation");
  }
}

TEST_CASE("wrong lengths, text values and a mismatched Insert are errors", "[store_wal]") {
  const RelationMsg rel = outbox_relation();
  {
    InsertMsg ins = outbox_insert();
    ins.values[column(rel, "event_id")] = bin("short");
    CHECK(decode_outbox_row(rel, ins).error().message ==
          "outbox row id 42: column event_id has 5 bytes, expected 16");
  }
  {
    InsertMsg ins = outbox_insert();
    ins.values[column(rel, "id")] = bin("1234");
    CHECK(decode_outbox_row(rel, ins).error().message ==
          "outbox row: column id has 4 bytes, expected 8");
  }
  {
    InsertMsg ins = outbox_insert();
    ins.values[column(rel, "created_at")] = bin("123456789");
    CHECK(decode_outbox_row(rel, ins).error().message ==
          "outbox row id 42: column created_at has 9 bytes, expected 8");
  }
  {
    InsertMsg ins = outbox_insert();
    ins.values[column(rel, "headers")] = bin(std::string("\x02{}"));
    CHECK(decode_outbox_row(rel, ins).error().message ==
          "outbox row id 42: column headers is not jsonb version 1");
    ins.values[column(rel, "headers")] = bin("");
    CHECK_FALSE(decode_outbox_row(rel, ins).has_value());
  }
  {
    InsertMsg ins = outbox_insert();
    ins.values[column(rel, "topic")] = {TupleValue::Kind::kText, "orders"};
    CHECK(decode_outbox_row(rel, ins).error().message ==
          "outbox row id 42: column topic is in text format (START_REPLICATION needs binary "
          "'true')");
    ins.values[column(rel, "topic")] = {TupleValue::Kind::kUnchangedToast, ""};
    CHECK(decode_outbox_row(rel, ins).error().message ==
          "outbox row id 42: column topic is an unchanged TOAST value");
  }
  {
    InsertMsg ins = outbox_insert();
    ins.values.pop_back();
    CHECK(decode_outbox_row(rel, ins).error().message ==
          "outbox row: Insert has 12 values, relation relay.outbox has 13 columns");
    InsertMsg other = outbox_insert();
    other.relation_oid = 1;
    CHECK(decode_outbox_row(rel, other).error().message ==
          "outbox row: Insert for relation 1 decoded with relation 16400");
  }
}
