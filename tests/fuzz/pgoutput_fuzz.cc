// libFuzzer target for the replication stream's decoders (relay/store/wal/pgoutput.h and
// outbox_row.h), which read bytes from the server. The input is a sequence of frames, each a
// 2-byte big-endian length and that many bytes (a short last frame takes what is left); each frame
// is one CopyData message. Relations seen earlier in the input are used to decode later Inserts,
// and every Insert is also decoded against relay.outbox's own relation. Beyond "no crash" (and no
// ASan/UBSan report):
//  - every refusal is kInvalidArgument and says where ("... at byte N", N within the input);
//  - an XLogData's payload is the input after its 25-byte header;
//  - an LSN survives format_lsn and parse_lsn;
//  - a decoded outbox row has a canonical uuid; a refused one says "outbox row".
// Seeds (corpus/pgoutput/): the CopyData messages tests/integration/wal_protocol_test.cc received
// from PostgreSQL 15 (run it with RELAY_WAL_CORPUS_DIR=<dir>), each framed as above in its own
// file, and all of them in one file (stream-all), so that Relations precede their Inserts.
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "relay/store/wal/outbox_row.h"
#include "relay/store/wal/pgoutput.h"
#include "tests/fuzz/fuzz_check.h"
#include "tests/unit/store_wal/wal_bytes.h"

using namespace relay::store::wal;
using relay::store::wal::testing::outbox_relation;

namespace {

void check_refusal(const relay::Error& e, std::size_t size) {
  FUZZ_CHECK(e.code == relay::ErrorCode::kInvalidArgument);
  const auto at = e.message.rfind(" at byte ");
  FUZZ_CHECK(at != std::string::npos);
  FUZZ_CHECK(std::stoull(e.message.substr(at + 9)) <= size);
}

void check_row(const relay::Result<OutboxRow>& row) {
  if (!row) {
    FUZZ_CHECK(row.error().code == relay::ErrorCode::kInvalidArgument);
    FUZZ_CHECK(row.error().message.starts_with("outbox row"));
    return;
  }
  FUZZ_CHECK(row->event.event_id.size() == 36);
}

void one_message(std::string_view bytes, std::map<std::uint32_t, RelationMsg>& relations) {
  const auto cd = decode_copy_data(bytes);
  if (!cd) {
    check_refusal(cd.error(), bytes.size());
    return;
  }
  if (const auto* k = std::get_if<Keepalive>(&*cd)) {
    FUZZ_CHECK(bytes.size() == 18);
    FUZZ_CHECK(parse_lsn(format_lsn(k->wal_end)) == k->wal_end);
    FUZZ_CHECK(
        encode_standby_status(k->wal_end, k->wal_end, k->wal_end, k->send_time, k->reply_requested)
            .size() == 34);
    return;
  }
  const auto& x = std::get<XLogData>(*cd);
  FUZZ_CHECK(bytes.size() >= 25 && x.payload == bytes.substr(25));
  FUZZ_CHECK(parse_lsn(format_lsn(x.wal_start)) == x.wal_start);
  const auto msg = decode_pgoutput(x.payload);
  if (!msg) {
    check_refusal(msg.error(), x.payload.size());
    return;
  }
  if (const auto* r = std::get_if<RelationMsg>(&*msg)) {
    relations[r->oid] = *r;
  } else if (const auto* i = std::get_if<InsertMsg>(&*msg)) {
    check_row(decode_outbox_row(outbox_relation(), *i));
    if (auto it = relations.find(i->relation_oid); it != relations.end()) {
      check_row(decode_outbox_row(it->second, *i));
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  std::map<std::uint32_t, RelationMsg> relations;
  while (input.size() >= 2) {
    const std::size_t len =
        (static_cast<std::uint8_t>(input[0]) << 8) | static_cast<std::uint8_t>(input[1]);
    input.remove_prefix(2);
    const std::string_view frame = input.substr(0, len);
    input.remove_prefix(frame.size());
    one_message(frame, relations);
  }
  return 0;
}
