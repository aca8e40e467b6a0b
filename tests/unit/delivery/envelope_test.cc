#include "relay/delivery/envelope.h"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "relay/v1/event.pb.h"

using namespace std::chrono_literals;
using nlohmann::json;
using relay::Event;
using relay::delivery::BatchItem;
using relay::delivery::decode_cloudevents_batch;
using relay::delivery::decode_cloudevents_json;
using relay::delivery::decode_envelope;
using relay::delivery::decode_protobuf_batch;
using relay::delivery::decode_protobuf_event;
using relay::delivery::DecodedEvent;
using relay::delivery::encode_cloudevents_batch;
using relay::delivery::encode_cloudevents_json;
using relay::delivery::encode_protobuf_batch;
using relay::delivery::encode_protobuf_event;

namespace {

Event sample_event() {
  Event e;
  e.event_id = "0b9e7a8c-6c3f-4d1e-9a57-3f0c2b1d4e5f";
  e.topic = "order.paid";
  e.key = "order-17";
  e.payload = R"({"order":17,"total":"12.50"})";
  e.content_type = "application/json";
  e.headers_json = R"({"X-Tenant": "acme", "traceparent": "00-abc-def-01"})";
  e.created_at = std::chrono::sys_days{std::chrono::year{2024} / 1 / 2} + 3h + 4min + 5s + 678901us;
  return e;
}

// Binary bytes that are neither ASCII nor UTF-8, with a NUL in the middle.
std::string binary_bytes() {
  constexpr char kBytes[] = "\x00\xff\xfe\x80 caf\xc3\xa9 \x01\x7f";
  return std::string(kBytes, sizeof kBytes - 1);
}

json parse(const std::string& body) { return json::parse(body); }

// Every field of a decoded event equals the event it was encoded from.
void check_round_trip(const DecodedEvent& d, const Event& e, int attempt) {
  CHECK(d.id == e.event_id);
  CHECK(d.topic == e.topic);
  CHECK(d.key == e.key);
  CHECK(d.payload == e.payload);
  CHECK(d.content_type == e.content_type);
  REQUIRE(d.created_at.has_value());
  CHECK(*d.created_at == e.created_at);
  CHECK(d.attempt == attempt);
}

const std::vector<std::pair<std::string, std::string>> kSampleHeaders = {
    {"X-Tenant", "acme"}, {"traceparent", "00-abc-def-01"}};

std::string error_of(const relay::Result<DecodedEvent>& r) {
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error().code == relay::ErrorCode::kInvalidArgument);
  return r.error().message;
}

std::string error_of(const relay::Result<std::vector<DecodedEvent>>& r) {
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error().code == relay::ErrorCode::kInvalidArgument);
  return r.error().message;
}

// A minimal valid CloudEvents document with `extra` members appended.
std::string ce_doc(const std::string& extra = "") {
  return R"({"specversion":"1.0","id":"e1","source":"relay/s","type":"t")" + extra + "}";
}

}  // namespace

// ---- CloudEvents JSON ---------------------------------------------------------------------------

TEST_CASE("a CloudEvents document carries every attribute with the event's values", "[envelope]") {
  const auto doc = parse(encode_cloudevents_json(sample_event(), 3, "billing"));

  CHECK(doc.at("specversion") == "1.0");
  CHECK(doc.at("id") == "0b9e7a8c-6c3f-4d1e-9a57-3f0c2b1d4e5f");
  CHECK(doc.at("source") == "relay/billing");
  CHECK(doc.at("type") == "order.paid");
  CHECK(doc.at("time") == "2024-01-02T03:04:05.678901Z");
  CHECK(doc.at("subject") == "order-17");
  CHECK(doc.at("datacontenttype") == "application/json");
  CHECK(doc.at("relayattempt") == 3);
  CHECK(json::parse(doc.at("relayheaders").get<std::string>()) ==
        json{{"X-Tenant", "acme"}, {"traceparent", "00-abc-def-01"}});
  CHECK(doc.at("data") == json{{"order", 17}, {"total", "12.50"}});
  CHECK_FALSE(doc.contains("data_base64"));
  // CloudEvents extension attribute names are lowercase ASCII letters and digits only.
  for (const auto& [name, value] : doc.items()) {
    INFO("attribute " << name);
    CHECK(name.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789_") == std::string::npos);
    if (name != "data" && name != "data_base64") {
      CHECK(name.find('_') == std::string::npos);
    }
  }
}

TEST_CASE("JSON data is inlined byte for byte, so numbers and key order survive", "[envelope]") {
  Event event = sample_event();
  // A number no double can hold, keys out of order and an escaped character.
  event.payload = R"({"z":123456789012345678901234567890,"a":[1.10,"\u00e9"]})";
  const std::string body = encode_cloudevents_json(event, 1, "s");
  CHECK(body.find(event.payload) != std::string::npos);
  const auto decoded = decode_cloudevents_json(body);
  REQUIRE(decoded.has_value());
  CHECK(decoded->payload == event.payload);
}

TEST_CASE("a JSON content type with parameters or a +json suffix is inlined", "[envelope]") {
  for (const char* type :
       {"application/json; charset=utf-8", "application/vnd.acme.order+json", "text/json"}) {
    INFO("content type " << type);
    Event event = sample_event();
    event.content_type = type;
    const auto doc = parse(encode_cloudevents_json(event, 1, "s"));
    CHECK(doc.at("datacontenttype") == type);
    CHECK(doc.at("data").at("order") == 17);
  }
}

TEST_CASE("non-JSON content or a JSON type with an invalid payload goes as data_base64",
          "[envelope]") {
  struct Case {
    const char* content_type;
    std::string payload;
  };
  for (const Case& c :
       {Case{"application/octet-stream", binary_bytes()}, Case{"text/plain", "hello, w\xc3\xb6rld"},
        Case{"application/json", "{\"broken\":"},
        Case{"application/json", "{\"bad utf8\":\"\xff\"}"}, Case{"application/jsonx", "{}"}}) {
    INFO("content type " << c.content_type);
    Event event = sample_event();
    event.content_type = c.content_type;
    event.payload = c.payload;
    const std::string body = encode_cloudevents_json(event, 1, "s");
    const auto doc = parse(body);
    CHECK_FALSE(doc.contains("data"));
    REQUIRE(doc.contains("data_base64"));
    const auto decoded = decode_cloudevents_json(body);
    REQUIRE(decoded.has_value());
    CHECK(decoded->payload == c.payload);
  }
}

TEST_CASE("base64 data uses the standard alphabet with padding", "[envelope]") {
  Event event = sample_event();
  event.content_type = "application/octet-stream";
  event.payload = std::string("\xfb\xff\x00\x01", 4);
  CHECK(parse(encode_cloudevents_json(event, 1, "s")).at("data_base64") == "+/8AAQ==");
}

TEST_CASE("a CloudEvents document round-trips every field, non-ASCII text included", "[envelope]") {
  Event event = sample_event();
  event.topic = "bestellung.bezahlt.\xc3\xbc";              // ü
  event.key = "kunde-\xe2\x82\xac-\xf0\x9f\x93\xa6 \"q\"";  // € 📦 and quotes
  event.payload = "{\"name\":\"J\xc3\xbcrgen \xe2\x82\xac\"}";

  const auto decoded = decode_cloudevents_json(encode_cloudevents_json(event, 7, "billing"));

  REQUIRE(decoded.has_value());
  check_round_trip(*decoded, event, 7);
  CHECK(decoded->source == "relay/billing");
  CHECK(decoded->headers == kSampleHeaders);
}

TEST_CASE("an event without a key has no subject, and an empty key is kept", "[envelope]") {
  Event event = sample_event();
  event.key.reset();
  const std::string no_key = encode_cloudevents_json(event, 1, "s");
  CHECK_FALSE(parse(no_key).contains("subject"));
  CHECK_FALSE(decode_cloudevents_json(no_key)->key.has_value());

  event.key = "";
  const auto empty_key = decode_cloudevents_json(encode_cloudevents_json(event, 1, "s"));
  REQUIRE(empty_key->key.has_value());
  CHECK(*empty_key->key == "");
}

TEST_CASE("an empty payload sends no data and decodes as empty", "[envelope]") {
  Event event = sample_event();
  event.payload.clear();
  const std::string body = encode_cloudevents_json(event, 1, "s");
  CHECK_FALSE(parse(body).contains("data"));
  CHECK_FALSE(parse(body).contains("data_base64"));
  CHECK(decode_cloudevents_json(body)->payload.empty());
}

TEST_CASE("app headers that binary mode would refuse are not carried in the envelope",
          "[envelope]") {
  Event event = sample_event();
  event.headers_json = R"({"webhook-id":"forged","X-Split":"a\r\nb","X Bad":"v","X-Ok":"kept"})";
  const auto doc = parse(encode_cloudevents_json(event, 1, "s"));
  CHECK(json::parse(doc.at("relayheaders").get<std::string>()) == json{{"X-Ok", "kept"}});

  event.headers_json = "{}";
  CHECK_FALSE(parse(encode_cloudevents_json(event, 1, "s")).contains("relayheaders"));
  event.headers_json = "not json";
  CHECK_FALSE(parse(encode_cloudevents_json(event, 1, "s")).contains("relayheaders"));
}

TEST_CASE("time before 1970 and with whole seconds formats correctly", "[envelope]") {
  Event event = sample_event();
  event.created_at =
      std::chrono::sys_days{std::chrono::year{1969} / 12 / 31} + 23h + 59min + 59s + 500000us;
  CHECK(parse(encode_cloudevents_json(event, 1, "s")).at("time") == "1969-12-31T23:59:59.500000Z");
  const auto decoded = decode_cloudevents_json(encode_cloudevents_json(event, 1, "s"));
  CHECK(*decoded->created_at == event.created_at);
}

TEST_CASE("a CloudEvents batch is an array of documents in item order", "[envelope]") {
  Event first = sample_event();
  Event second = sample_event();
  second.event_id = "second";
  second.content_type = "application/octet-stream";
  second.payload = binary_bytes();
  second.key.reset();
  const std::vector<BatchItem> items = {{&first, 2}, {&second, 1}};

  const std::string body = encode_cloudevents_batch(items, "billing");
  const auto array = parse(body);
  REQUIRE(array.is_array());
  REQUIRE(array.size() == 2);
  CHECK(array[0].at("id") == first.event_id);
  CHECK(array[1].at("id") == "second");

  const auto decoded = decode_cloudevents_batch(body);
  REQUIRE(decoded.has_value());
  REQUIRE(decoded->size() == 2);
  check_round_trip((*decoded)[0], first, 2);
  check_round_trip((*decoded)[1], second, 1);
}

// ---- CloudEvents decoder errors -----------------------------------------------------------------

TEST_CASE("the CloudEvents decoder accepts a minimal document with defaults", "[envelope]") {
  const auto decoded = decode_cloudevents_json(ce_doc());
  REQUIRE(decoded.has_value());
  CHECK(decoded->id == "e1");
  CHECK(decoded->topic == "t");
  CHECK(decoded->source == "relay/s");
  CHECK(decoded->content_type == "application/json");  // CloudEvents JSON default
  CHECK_FALSE(decoded->key.has_value());
  CHECK_FALSE(decoded->created_at.has_value());
  CHECK(decoded->payload.empty());
  CHECK(decoded->headers.empty());
  CHECK(decoded->attempt == 0);
}

TEST_CASE("the CloudEvents decoder names each missing or wrong required attribute", "[envelope]") {
  struct Case {
    std::string body;
    std::string message;
  };
  const std::vector<Case> cases = {
      {R"({"id":"e","source":"s","type":"t"})", R"(missing required attribute "specversion")"},
      {R"({"specversion":"0.3","id":"e","source":"s","type":"t"})", R"(specversion is not "1.0")"},
      {R"({"specversion":1.0,"id":"e","source":"s","type":"t"})",
       R"(attribute "specversion" is not a string)"},
      {R"({"specversion":"1.0","source":"s","type":"t"})", R"(missing required attribute "id")"},
      {R"({"specversion":"1.0","id":"","source":"s","type":"t"})", R"(attribute "id" is empty)"},
      {R"({"specversion":"1.0","id":7,"source":"s","type":"t"})",
       R"(attribute "id" is not a string)"},
      {R"({"specversion":"1.0","id":"e","type":"t"})", R"(missing required attribute "source")"},
      {R"({"specversion":"1.0","id":"e","source":"s"})", R"(missing required attribute "type")"},
      {ce_doc(R"(,"subject":5)"), R"(attribute "subject" is not a string)"},
      {ce_doc(R"(,"time":"yesterday")"), R"(attribute "time" is not an RFC 3339 timestamp)"},
      {ce_doc(R"(,"time":"2024-02-30T00:00:00Z")"),
       R"(attribute "time" is not an RFC 3339 timestamp)"},
      {ce_doc(R"(,"time":"2024-01-02T03:04:05")"),
       R"(attribute "time" is not an RFC 3339 timestamp)"},
      {ce_doc(R"(,"time":"9999-01-02T03:04:05Z")"),
       R"(attribute "time" is not an RFC 3339 timestamp)"},
      {ce_doc(R"(,"datacontenttype":["a"])"), R"(attribute "datacontenttype" is not a string)"},
      {ce_doc(R"(,"data_base64":"!!!")"), "data_base64 is not valid base64"},
      {ce_doc(R"(,"data_base64":12)"), R"(attribute "data_base64" is not a string)"},
      {ce_doc(R"(,"data":{},"data_base64":"")"), R"(both "data" and "data_base64" are present)"},
      {ce_doc(R"(,"relayattempt":"2")"),
       R"(attribute "relayattempt" is not a non-negative integer)"},
      {ce_doc(R"(,"relayattempt":-1)"),
       R"(attribute "relayattempt" is not a non-negative integer)"},
      {ce_doc(R"(,"relayattempt":1.5)"),
       R"(attribute "relayattempt" is not a non-negative integer)"},
      {ce_doc(R"(,"relayheaders":"[1]")"), R"(attribute "relayheaders" is not a JSON object)"},
      {ce_doc(R"(,"relayheaders":"{\"X-A\":1}")"), R"(relayheaders: header "X-A" is not a string)"},
      {"[1,2]", "body is not a JSON object"},
      {"", "body is not JSON: unexpected end of input"},
      {R"({"specversion":"1.0",)", "body is not JSON: unexpected end of input"},
      {R"({"specversion" "1.0"})", "body is not JSON (syntax error at byte 20)"},
      {R"({"id":"e"} trailing)", "body is not JSON (syntax error at byte 14)"},
  };
  for (const Case& c : cases) {
    INFO("body " << c.body);
    CHECK(error_of(decode_cloudevents_json(c.body)) == c.message);
  }
}

TEST_CASE("decoder errors never quote the payload", "[envelope]") {
  const std::string secret = "card-4111111111111111";
  for (const std::string& body : {R"({"specversion":"1.0","data":")" + secret + R"(" garbage})",
                                  ce_doc(R"(,"data_base64":")" + secret + "\"")}) {
    INFO("body " << body);
    CHECK(error_of(decode_cloudevents_json(body)).find("4111") == std::string::npos);
  }
}

TEST_CASE("the CloudEvents decoder reads RFC 3339 offsets, case and long fractions", "[envelope]") {
  const auto expected =
      std::chrono::sys_days{std::chrono::year{2024} / 1 / 2} + 1h + 4min + 5s + 123456789ns;
  for (const char* time :
       {"2024-01-02T01:04:05.123456789Z", "2024-01-02t01:04:05.1234567891z",
        "2024-01-02T03:04:05.123456789+02:00", "2024-01-01T23:34:05.123456789-01:30"}) {
    INFO("time " << time);
    const auto decoded = decode_cloudevents_json(ce_doc(R"(,"time":")" + std::string(time) + "\""));
    REQUIRE(decoded.has_value());
    CHECK(*decoded->created_at == expected);
  }
}

TEST_CASE("text data of a non-JSON type is the string itself", "[envelope]") {
  const auto decoded =
      decode_cloudevents_json(ce_doc(R"(,"datacontenttype":"text/plain","data":"h\u00e9 \"x\"")"));
  REQUIRE(decoded.has_value());
  CHECK(decoded->payload == "h\xc3\xa9 \"x\"");
  const auto json_string =
      decode_cloudevents_json(ce_doc(R"(,"datacontenttype":"application/json","data":"hi")"));
  CHECK(json_string->payload == "\"hi\"");  // a JSON payload that is a string keeps its quotes
}

TEST_CASE("an escaped data member name and a byte order mark are handled", "[envelope]") {
  const auto escaped = decode_cloudevents_json(ce_doc(R"(,"d\u0061ta":{"k": [1, 2]})"));
  REQUIRE(escaped.has_value());
  CHECK(escaped->payload == R"({"k": [1, 2]})");
  const auto bom = decode_cloudevents_json("\xEF\xBB\xBF" + ce_doc(R"(,"data":[true])"));
  REQUIRE(bom.has_value());
  CHECK(bom->payload == "[true]");
}

TEST_CASE("the decoders refuse an oversized body and hostile nesting", "[envelope]") {
  const std::string huge(relay::delivery::kMaxEnvelopeBytes + 1, ' ');
  CHECK(error_of(decode_cloudevents_json(huge)).find("more than the limit") != std::string::npos);
  CHECK(error_of(decode_cloudevents_batch(huge)).find("more than the limit") != std::string::npos);
  CHECK(error_of(decode_protobuf_event(huge)).find("more than the limit") != std::string::npos);
  CHECK(error_of(decode_protobuf_batch(huge)).find("more than the limit") != std::string::npos);

  const std::size_t depth = relay::delivery::kMaxJsonDepth;
  const std::string deep = std::string(depth, '[') + std::string(depth, ']');  // data + doc > max
  CHECK(error_of(decode_cloudevents_json(ce_doc(R"(,"data":)" + deep))) ==
        "JSON is nested deeper than 1000 levels");
  const std::string ok_depth = std::string(depth - 1, '[') + std::string(depth - 1, ']');
  CHECK(decode_cloudevents_json(ce_doc(R"(,"data":)" + ok_depth)).has_value());
}

TEST_CASE("the CloudEvents batch decoder names the failing event and bounds the count",
          "[envelope]") {
  CHECK(error_of(decode_cloudevents_batch("{}")) == "body is not a JSON array");
  CHECK(error_of(decode_cloudevents_batch(" [ ] ")) == "batch is empty");
  CHECK(error_of(decode_cloudevents_batch("[" + ce_doc() + "," +
                                          R"({"specversion":"1.0","source":"s","type":"t"}])")) ==
        R"(event 1: missing required attribute "id")");
  CHECK(error_of(decode_cloudevents_batch("[" + ce_doc() + " " + ce_doc() + "]")) ==
        "body is not a JSON array: expected ',' or ']' at byte 63");
  CHECK(error_of(decode_cloudevents_batch("[" + ce_doc() + "] x")) ==
        "unexpected data after the JSON array at byte 64");
  CHECK(error_of(decode_cloudevents_batch("[" + ce_doc() + ",")) ==
        "event 1: body is not JSON: unexpected end of input");

  std::string at_limit = "[";
  for (std::size_t i = 0; i < relay::delivery::kMaxEnvelopeEvents; ++i) {
    if (i > 0) at_limit += ',';
    at_limit += ce_doc();
  }
  const auto ok = decode_cloudevents_batch(at_limit + "]");
  REQUIRE(ok.has_value());
  CHECK(ok->size() == relay::delivery::kMaxEnvelopeEvents);
  CHECK(error_of(decode_cloudevents_batch(at_limit + "," + ce_doc() + "]")) ==
        "batch has more than 10000 events");
}

// ---- Protobuf -----------------------------------------------------------------------------------

TEST_CASE("a protobuf Event carries every field with the event's values", "[envelope]") {
  const Event event = sample_event();
  relay::v1::Event msg;
  REQUIRE(msg.ParseFromString(encode_protobuf_event(event, 4)));

  CHECK(msg.id() == event.event_id);
  CHECK(msg.topic() == "order.paid");
  REQUIRE(msg.has_key());
  CHECK(msg.key() == "order-17");
  CHECK(msg.payload() == event.payload);
  CHECK(msg.content_type() == "application/json");
  CHECK(msg.headers().size() == 2);
  CHECK(msg.headers().at("X-Tenant") == "acme");
  CHECK(msg.headers().at("traceparent") == "00-abc-def-01");
  CHECK(msg.created_at().seconds() == 1704164645);  // 2024-01-02T03:04:05Z
  CHECK(msg.created_at().nanos() == 678901000);
  CHECK(msg.attempt() == 4);
}

TEST_CASE("a protobuf Event round-trips binary payloads, no key and an empty key", "[envelope]") {
  Event event = sample_event();
  event.payload = binary_bytes();
  event.content_type = "application/octet-stream";
  event.key.reset();
  const std::string no_key_body = encode_protobuf_event(event, 1);
  const auto no_key = decode_protobuf_event(no_key_body);
  REQUIRE(no_key.has_value());
  check_round_trip(*no_key, event, 1);
  CHECK(no_key->headers == kSampleHeaders);
  CHECK(no_key->source.empty());

  event.key = "";
  const auto empty_key = decode_protobuf_event(encode_protobuf_event(event, 1));
  REQUIRE(empty_key->key.has_value());
  CHECK(empty_key->key->empty());
}

TEST_CASE("protobuf encoding is deterministic", "[envelope]") {
  Event event = sample_event();
  event.headers_json = R"({"b":"2","a":"1","c":"3","d":"4"})";
  CHECK(encode_protobuf_event(event, 1) == encode_protobuf_event(event, 1));
}

TEST_CASE("a protobuf EventBatch keeps item order and attempts", "[envelope]") {
  Event first = sample_event();
  Event second = sample_event();
  second.event_id = "second";
  second.payload = binary_bytes();
  const std::vector<BatchItem> items = {{&first, 5}, {&second, 1}};

  const auto decoded = decode_protobuf_batch(encode_protobuf_batch(items));

  REQUIRE(decoded.has_value());
  REQUIRE(decoded->size() == 2);
  check_round_trip((*decoded)[0], first, 5);
  check_round_trip((*decoded)[1], second, 1);
}

TEST_CASE("the protobuf decoders name what is wrong", "[envelope]") {
  relay::v1::Event msg;
  msg.set_topic("t");
  CHECK(error_of(decode_protobuf_event(msg.SerializeAsString())) == "missing id");
  msg.set_id("e");
  msg.clear_topic();
  CHECK(error_of(decode_protobuf_event(msg.SerializeAsString())) == "missing topic");
  msg.set_topic("t");
  msg.set_attempt(-1);
  CHECK(error_of(decode_protobuf_event(msg.SerializeAsString())) == "attempt is negative");
  msg.set_attempt(1);
  msg.mutable_created_at()->set_nanos(1'000'000'000);
  CHECK(error_of(decode_protobuf_event(msg.SerializeAsString())) ==
        "created_at.nanos out of range");
  msg.mutable_created_at()->set_nanos(0);
  msg.mutable_created_at()->set_seconds(253402300799);  // 9999-12-31: valid, but not representable
  CHECK(error_of(decode_protobuf_event(msg.SerializeAsString())) == "created_at is out of range");

  CHECK(error_of(decode_protobuf_event("\x0a\x05"
                                       "ab")) ==
        "body is not a valid relay.v1.Event (malformed protobuf)");
  CHECK(error_of(decode_protobuf_batch("\x0a\x05"
                                       "ab")) ==
        "body is not a valid relay.v1.EventBatch (malformed protobuf)");
  CHECK(error_of(decode_protobuf_batch("")) == "batch is empty");

  msg.clear_created_at();
  relay::v1::EventBatch batch;
  batch.add_events()->CopyFrom(msg);
  batch.add_events()->set_id("no-topic");
  CHECK(error_of(decode_protobuf_batch(batch.SerializeAsString())) == "event 1: missing topic");
}

TEST_CASE("a protobuf batch over the event bound is refused before it is parsed", "[envelope]") {
  // Each empty Event is two bytes (tag 0x0a, length 0): 10001 of them fit in 20 KB.
  std::string body;
  for (std::size_t i = 0; i <= relay::delivery::kMaxEnvelopeEvents; ++i)
    body += std::string("\x0a\x00", 2);
  CHECK(error_of(decode_protobuf_batch(body)) == "batch has more than 10000 events");
}

TEST_CASE("protobuf decoding skips fields a newer relay added", "[envelope]") {
  // Field 9 (a string) is unknown to this version: an old reader must skip it, not fail.
  std::string body = encode_protobuf_event(sample_event(), 1);
  body += std::string("\x4a\x03new", 5);
  const auto decoded = decode_protobuf_event(body);
  REQUIRE(decoded.has_value());
  check_round_trip(*decoded, sample_event(), 1);
}

// ---- decode_envelope ----------------------------------------------------------------------------

TEST_CASE("decode_envelope picks the decoder from the content type", "[envelope]") {
  const Event event = sample_event();
  const std::vector<BatchItem> items = {{&event, 1}, {&event, 2}};
  struct Case {
    std::string content_type;
    std::string body;
    std::size_t events;
  };
  for (const Case& c :
       {Case{"application/cloudevents+json", encode_cloudevents_json(event, 1, "s"), 1},
        Case{"Application/CloudEvents+JSON; charset=utf-8", encode_cloudevents_json(event, 1, "s"),
             1},
        Case{"application/cloudevents-batch+json", encode_cloudevents_batch(items, "s"), 2},
        Case{"application/x-protobuf", encode_protobuf_event(event, 1), 1},
        Case{"application/x-protobuf; messageType=relay.v1.Event", encode_protobuf_event(event, 1),
             1},
        Case{std::string(relay::delivery::kProtobufBatchContentType), encode_protobuf_batch(items),
             2},
        Case{"application/x-protobuf; charset=x; MessageType=\"relay.v1.EventBatch\"",
             encode_protobuf_batch(items), 2}}) {
    INFO("content type " << c.content_type);
    const auto decoded = decode_envelope(c.content_type, c.body);
    REQUIRE(decoded.has_value());
    REQUIRE(decoded->size() == c.events);
    CHECK(decoded->front().id == event.event_id);
  }
  CHECK(
      error_of(decode_envelope("application/json", "{}")).starts_with("unsupported content type"));
  CHECK(error_of(decode_envelope("application/x-protobuf; messageType=foo.Bar", ""))
            .starts_with("unsupported protobuf messageType"));
  CHECK(error_of(decode_envelope("application/cloudevents+json", "{}")) ==
        R"(missing required attribute "specversion")");
}
