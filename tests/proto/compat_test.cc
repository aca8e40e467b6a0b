// Wire compatibility of relay.v1: samples written by earlier versions (tests/proto/*.bin, never
// regenerated) must still decode, field for field, with the current proto/relay/v1/event.proto.
// A future schema version keeps every case here unchanged and adds one for its own new sample
// (see tests/proto/README.md).

#include <catch2/catch.hpp>
#include <fstream>
#include <iterator>
#include <string>

#include "relay/delivery/envelope.h"
#include "relay/v1/event.pb.h"
#include "tests/proto/protoc_decode.h"

namespace {

std::string read_file(const std::string& name) {
  std::ifstream in(std::string(RELAY_SOURCE_DIR) + "/tests/proto/" + name, std::ios::binary);
  REQUIRE(in.good());
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

relay::test::ProtocOutput protoc(std::string_view message, const std::string& bytes) {
  return relay::test::protoc_decode(RELAY_PROTOC, std::string(RELAY_SOURCE_DIR) + "/proto", message,
                                    bytes);
}

// The v1 sample's first event, as written (tests/proto/README.md).
void check_v1_event(const relay::v1::Event& e) {
  CHECK(e.id() == "5f0c8a3e-1b2d-4c6e-8f9a-0b1c2d3e4f50");
  CHECK(e.topic() == "order.paid");
  REQUIRE(e.has_key());
  CHECK(e.key() == "order-17");
  CHECK(e.payload() == "{\"order\":17,\"name\":\"J\xc3\xbcrgen\"}");
  CHECK(e.content_type() == "application/json");
  REQUIRE(e.headers().size() == 2);
  CHECK(e.headers().at("X-Tenant") == "acme");
  CHECK(e.headers().at("traceparent") == "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
  CHECK(e.created_at().seconds() == 1704164645);
  CHECK(e.created_at().nanos() == 678901000);
  CHECK(e.attempt() == 3);
}

}  // namespace

TEST_CASE("the v1 Event sample decodes with the current generated code", "[proto]") {
  relay::v1::Event event;
  REQUIRE(event.ParseFromString(read_file("event_v1.bin")));
  check_v1_event(event);
  // No field of the sample is unknown to the current schema.
  CHECK(event.GetReflection()->GetUnknownFields(event).empty());
}

TEST_CASE("the v1 Event sample decodes with relay's decoder", "[proto]") {
  const auto decoded = relay::delivery::decode_protobuf_event(read_file("event_v1.bin"));
  REQUIRE(decoded.has_value());
  CHECK(decoded->id == "5f0c8a3e-1b2d-4c6e-8f9a-0b1c2d3e4f50");
  CHECK(decoded->topic == "order.paid");
  CHECK(decoded->key == "order-17");
  CHECK(decoded->content_type == "application/json");
  CHECK(decoded->attempt == 3);
  CHECK(decoded->headers.size() == 2);
  REQUIRE(decoded->created_at.has_value());
  CHECK(decoded->created_at->time_since_epoch() ==
        std::chrono::seconds{1704164645} + std::chrono::nanoseconds{678901000});
}

TEST_CASE("the v1 Event sample decodes with protoc to its stored description", "[proto]") {
  const auto out = protoc("relay.v1.Event", read_file("event_v1.bin"));
  INFO(out.text);
  REQUIRE(out.exit_status == 0);
  CHECK(out.text == read_file("event_v1.txt"));
}

TEST_CASE("the v1 EventBatch sample decodes with the current generated code and protoc",
          "[proto]") {
  const std::string bytes = read_file("event_batch_v1.bin");
  relay::v1::EventBatch batch;
  REQUIRE(batch.ParseFromString(bytes));
  REQUIRE(batch.events_size() == 2);
  check_v1_event(batch.events(0));
  const auto& second = batch.events(1);
  CHECK(second.id() == "7a1e2f3d-4c5b-4a69-8877-665544332211");
  CHECK(second.topic() == "file.uploaded");
  CHECK_FALSE(second.has_key());
  CHECK(second.payload() == std::string("\x00\x01\xfe\xff", 4));
  CHECK(second.content_type() == "application/octet-stream");
  CHECK(second.headers().empty());
  CHECK(second.created_at().seconds() == 1704164646);
  CHECK(second.created_at().nanos() == 0);
  CHECK(second.attempt() == 1);

  const auto decoded = relay::delivery::decode_protobuf_batch(bytes);
  REQUIRE(decoded.has_value());
  CHECK(decoded->size() == 2);

  const auto out = protoc("relay.v1.EventBatch", bytes);
  INFO(out.text);
  REQUIRE(out.exit_status == 0);
  CHECK(out.text == read_file("event_batch_v1.txt"));
}
