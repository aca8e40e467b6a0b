#include "relay/delivery/request_builder.h"

#include <algorithm>
#include <catch2/catch.hpp>
#include <cctype>
#include <nlohmann/json.hpp>
#include <sstream>
#include <utility>
#include <vector>

#include "relay/delivery/envelope.h"
#include "relay/v1/event.pb.h"
#include "tests/support/hmac_oracle.h"

using namespace std::chrono_literals;
using relay::Event;
using relay::delivery::BatchItem;
using relay::delivery::build_batch_request;
using relay::delivery::build_request;
using relay::delivery::OutgoingRequest;
using relay::delivery::RequestContext;
using relay::delivery::Signer;
using relay::model::Format;

namespace {

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

// Every value of header `name` (case-insensitive), in order.
std::vector<std::string> values(const OutgoingRequest& req, std::string_view name) {
  std::vector<std::string> out;
  for (const auto& [k, v] : req.headers) {
    if (iequals(k, name)) out.push_back(v);
  }
  return out;
}

std::string only(const OutgoingRequest& req, std::string_view name) {
  const auto v = values(req, name);
  INFO("header " << name);
  REQUIRE(v.size() == 1);
  return v.front();
}

// Independent of relay's Signer and base64 (tests/support/hmac_oracle.h).
std::string expected_signature(const std::string& key, const std::string& id, long long ts,
                               const std::string& body) {
  return relay::testing::openssl_sign_v1(key, id, ts, body);
}

std::vector<std::string> split_spaces(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  for (std::string part; in >> part;) out.push_back(part);
  return out;
}

Event sample_event() {
  Event e;
  e.outbox_id = 42;
  e.event_id = "0b9e7a8c-6c3f-4d1e-9a57-3f0c2b1d4e5f";
  e.topic = "order.paid";
  e.key = "order-17";
  e.payload = R"({"order":17})";
  e.content_type = "application/json";
  // 2024-01-02T03:04:05.678999Z: sub-millisecond digits are truncated, not rounded.
  e.created_at = std::chrono::sys_days{std::chrono::year{2024} / 1 / 2} + 3h + 4min + 5s + 678999us;
  return e;
}

const std::chrono::system_clock::time_point kNow =
    std::chrono::system_clock::time_point{} + 1700000000s + 900ms;

}  // namespace

TEST_CASE("a request carries every contract header with the event's values", "[delivery]") {
  const auto signer = Signer::create("raw-secret");
  REQUIRE(signer.has_value());
  const std::vector<Signer> signers = {*signer};
  const Event event = sample_event();

  const auto req = build_request(event, "billing", 3, kNow, signers);

  CHECK(req.body == event.payload);
  CHECK(req.content_type == "application/json");
  CHECK(values(req, "Content-Type").empty());  // carried separately, per the header contract
  CHECK(only(req, "Idempotency-Key") == event.event_id);
  CHECK(only(req, "webhook-id") == event.event_id);
  CHECK(only(req, "webhook-timestamp") == "1700000000");  // the attempt time, whole seconds
  CHECK(only(req, "webhook-signature") == signer->sign(event.event_id, 1700000000, event.payload));
  CHECK(only(req, "ce-specversion") == "1.0");
  CHECK(only(req, "ce-id") == event.event_id);
  CHECK(only(req, "ce-type") == "order.paid");
  CHECK(only(req, "ce-source") == "relay/billing");
  CHECK(only(req, "ce-time") == "2024-01-02T03:04:05.678Z");
  CHECK(only(req, "ce-subject") == "order-17");
  CHECK(only(req, "relay-attempt") == "3");
  CHECK(only(req, "relay-subscription") == "billing");
  CHECK(req.headers.size() == 12);
}

TEST_CASE("an unsigned subscription sends no webhook-signature", "[delivery]") {
  const auto req = build_request(sample_event(), "billing", 1, kNow, {});
  CHECK(values(req, "webhook-signature").empty());
  CHECK(only(req, "webhook-id") == sample_event().event_id);
}

TEST_CASE("an event without a key has no ce-subject", "[delivery]") {
  Event event = sample_event();
  event.key.reset();
  const auto req = build_request(event, "billing", 1, kNow, {});
  CHECK(values(req, "ce-subject").empty());
}

TEST_CASE("the request's content type is the event's", "[delivery]") {
  Event event = sample_event();
  event.content_type = "application/x-protobuf";
  CHECK(build_request(event, "billing", 1, kNow, {}).content_type == "application/x-protobuf");
  event.content_type = "text/plain\r\nX-Injected: 1";
  CHECK(build_request(event, "billing", 1, kNow, {}).content_type == "application/octet-stream");
}

TEST_CASE("ce-time before 1970 still formats the right second", "[delivery]") {
  Event event = sample_event();
  event.created_at =
      std::chrono::sys_days{std::chrono::year{1969} / 12 / 31} + 23h + 59min + 59s + 500ms;
  CHECK(only(build_request(event, "billing", 1, kNow, {}), "ce-time") ==
        "1969-12-31T23:59:59.500Z");
}

TEST_CASE("ce attribute values are percent-encoded for space, quote, percent and non-ASCII",
          "[delivery]") {
  Event event = sample_event();
  event.key = "caf\xc3\xa9 \"100%\"";  // café "100%"
  event.topic = "order\r\nX-Injected: yes";

  const auto req = build_request(event, "billing", 1, kNow, {});

  CHECK(only(req, "ce-subject") == "caf%C3%A9%20%22100%25%22");
  CHECK(only(req, "ce-type") == "order%0D%0AX-Injected:%20yes");
  CHECK(values(req, "X-Injected").empty());
}

TEST_CASE("the app's extra headers are added", "[delivery]") {
  Event event = sample_event();
  event.headers_json =
      R"({"X-Tenant": "acme", "traceparent": "00-abc-def-01", "Authorization": "Bearer t"})";

  const auto req = build_request(event, "billing", 1, kNow, {});

  CHECK(only(req, "X-Tenant") == "acme");
  CHECK(only(req, "traceparent") == "00-abc-def-01");
  CHECK(only(req, "Authorization") == "Bearer t");
}

TEST_CASE("app headers cannot override or duplicate relay's own headers", "[delivery]") {
  const auto signer = Signer::create("raw-secret");
  REQUIRE(signer.has_value());
  Event event = sample_event();
  event.headers_json = R"({
    "idempotency-key": "forged", "Webhook-Signature": "v1,forged", "WEBHOOK-ID": "forged",
    "webhook-timestamp": "1", "webhook-anything": "x", "CE-ID": "forged", "ce-extension": "x",
    "Relay-Attempt": "99", "relay-custom": "x", "content-type": "text/evil", "Content-Length": "0",
    "host": "evil.example", "Transfer-Encoding": "chunked", "Connection": "close", "X-Ok": "kept"
  })";

  const auto req = build_request(event, "billing", 2, kNow, std::vector<Signer>{*signer});

  CHECK(only(req, "Idempotency-Key") == event.event_id);
  CHECK(only(req, "webhook-signature") == signer->sign(event.event_id, 1700000000, event.payload));
  CHECK(only(req, "webhook-id") == event.event_id);
  CHECK(only(req, "webhook-timestamp") == "1700000000");
  CHECK(only(req, "ce-id") == event.event_id);
  CHECK(only(req, "relay-attempt") == "2");
  for (const char* absent : {"webhook-anything", "ce-extension", "relay-custom", "Content-Type",
                             "Content-Length", "Host", "Transfer-Encoding", "Connection"}) {
    INFO("header " << absent);
    CHECK(values(req, absent).empty());
  }
  CHECK(req.content_type == "application/json");
  CHECK(only(req, "X-Ok") == "kept");
}

TEST_CASE("app headers with CR, LF or invalid name characters are dropped", "[delivery]") {
  Event event = sample_event();
  event.headers_json = R"({
    "X-Split": "a\r\nX-Injected: 1", "X-Lf": "a\nb", "X-Nul": "a\u0000b",
    "X Space": "v", "X:Colon": "v", "X-\u00e9": "v", "": "v", "X-Good": "v\tw"
  })";

  const auto req = build_request(event, "billing", 1, kNow, {});

  for (const char* absent :
       {"X-Split", "X-Injected", "X-Lf", "X-Nul", "X Space", "X:Colon", "X-\xc3\xa9", ""}) {
    INFO("header " << absent);
    CHECK(values(req, absent).empty());
  }
  CHECK(only(req, "X-Good") == "v\tw");
}

TEST_CASE("malformed or non-string app headers are skipped without failing the request",
          "[delivery]") {
  for (const char* json :
       {"", "not json", "[1,2]", "\"str\"", "null", "{\"X-A\": ", "{\"X-A\": 1}", "{\"X-A\": null}",
        "{\"X-A\": {\"b\": \"c\"}}", "{\"X-A\": [\"b\"]}", "{\"X-A\": true}"}) {
    INFO("headers_json " << json);
    Event event = sample_event();
    event.headers_json = json;
    const auto req = build_request(event, "billing", 1, kNow, {});
    CHECK(req.headers.size() == 11);  // exactly relay's own (unsigned)
    CHECK(values(req, "X-A").empty());
  }
  Event mixed = sample_event();
  mixed.headers_json = R"({"X-Num": 5, "X-Str": "kept"})";
  CHECK(only(build_request(mixed, "billing", 1, kNow, {}), "X-Str") == "kept");
}

TEST_CASE("two secrets give two signatures, each verifiable on its own", "[delivery]") {
  // whsec_ + base64("first-key-0123456789abcdef") and a raw secret.
  const std::string first_key = "first-key-0123456789abcdef";
  const auto first = Signer::create("whsec_Zmlyc3Qta2V5LTAxMjM0NTY3ODlhYmNkZWY=");
  const auto second = Signer::create("raw second secret");
  REQUIRE(first.has_value());
  REQUIRE(second.has_value());
  const std::vector<Signer> signers = {*first, *second};
  Event event = sample_event();
  // Non-ASCII body: UTF-8 text plus bytes that are not UTF-8 at all, and a NUL.
  constexpr char kBody[] = "{\"name\":\"J\xc3\xbcrgen \xe2\x82\xac\"}\x00\xff\xfe\x80";
  event.payload = std::string(kBody, sizeof kBody - 1);
  REQUIRE(event.payload.size() == 26);

  for (const auto now : {kNow, kNow + 37s}) {  // the timestamp is the attempt's own
    const long long ts = std::chrono::floor<std::chrono::seconds>(now.time_since_epoch()).count();
    const auto req = build_request(event, "billing", 1, now, signers);
    CHECK(only(req, "webhook-timestamp") == std::to_string(ts));
    const auto parts = split_spaces(only(req, "webhook-signature"));
    REQUIRE(parts.size() == 2);
    CHECK(only(req, "webhook-signature") == parts[0] + " " + parts[1]);  // one space, no padding
    CHECK(parts[0] == expected_signature(first_key, event.event_id, ts, event.payload));
    CHECK(parts[1] == expected_signature("raw second secret", event.event_id, ts, event.payload));
    CHECK(parts[0] != parts[1]);
    CHECK(req.body == event.payload);
  }
}

TEST_CASE("subscription headers are sent and win over the event's headers of the same name",
          "[delivery]") {
  Event event = sample_event();
  event.headers_json = R"({"authorization": "Bearer from-app", "X-App": "a", "X-Tenant": "app"})";
  const std::vector<std::pair<std::string, std::string>> sub_headers = {
      {"Authorization", "Bearer op-token"}, {"X-Tenant", "acme"}};

  const auto req = build_request(event, "billing", 1, kNow, {}, sub_headers);

  CHECK(only(req, "Authorization") == "Bearer op-token");
  CHECK(only(req, "X-Tenant") == "acme");
  CHECK(only(req, "X-App") == "a");
  // Subscription headers come right after relay's own, before the app's.
  const auto pos = [&](std::string_view name) {
    return std::find_if(req.headers.begin(), req.headers.end(),
                        [&](const auto& h) { return iequals(h.first, name); }) -
           req.headers.begin();
  };
  CHECK(pos("relay-subscription") < pos("Authorization"));
  CHECK(pos("Authorization") < pos("X-Tenant"));
  CHECK(pos("X-Tenant") < pos("X-App"));
}

TEST_CASE("subscription headers cannot inject or override relay's headers even unvalidated",
          "[delivery]") {
  const std::vector<std::pair<std::string, std::string>> sub_headers = {
      {"webhook-id", "forged"},
      {"Content-Length", "0"},
      {"X-Split", "a\r\nX-Injected: 1"},
      {"Bad Name", "v"},
      {"X-Ok", "kept"}};
  const auto req = build_request(sample_event(), "billing", 1, kNow, {}, sub_headers);
  CHECK(only(req, "webhook-id") == sample_event().event_id);
  CHECK(values(req, "Content-Length").empty());
  CHECK(values(req, "X-Split").empty());
  CHECK(values(req, "X-Injected").empty());
  CHECK(values(req, "Bad Name").empty());
  CHECK(only(req, "X-Ok") == "kept");
}

// ---- Formats (issue 4) --------------------------------------------------------------------------

namespace {

RequestContext context(Format format, const std::vector<Signer>& signers = {}) {
  return RequestContext{.subscription = "billing", .format = format, .signers = signers};
}

bool is_lower_hex(std::string_view s) {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

}  // namespace

TEST_CASE("the context overload in binary format equals the original builder", "[delivery]") {
  const auto signer = Signer::create("raw-secret");
  REQUIRE(signer.has_value());
  const std::vector<Signer> signers = {*signer};
  Event event = sample_event();
  event.headers_json = R"({"X-Tenant": "acme"})";
  const auto old_api = build_request(event, "billing", 2, kNow, signers);
  const auto new_api = build_request(event, 2, kNow, context(Format::kBinary, signers));
  CHECK(new_api.headers == old_api.headers);
  CHECK(new_api.body == old_api.body);
  CHECK(new_api.content_type == old_api.content_type);
}

TEST_CASE("a cloudevents-json request is signed over the document and has no ce headers",
          "[delivery]") {
  const std::string key = "raw-secret";
  const auto signer = Signer::create(key);
  REQUIRE(signer.has_value());
  Event event = sample_event();
  event.headers_json = R"({"X-Tenant": "acme"})";

  const auto req = build_request(event, 3, kNow, context(Format::kCloudEventsJson, {*signer}));

  CHECK(req.content_type == "application/cloudevents+json");
  const auto doc = nlohmann::json::parse(req.body);
  CHECK(doc.at("id") == event.event_id);
  CHECK(doc.at("data") == nlohmann::json{{"order", 17}});
  CHECK(doc.at("relayattempt") == 3);
  CHECK(only(req, "Idempotency-Key") == event.event_id);
  CHECK(only(req, "webhook-id") == event.event_id);
  CHECK(only(req, "webhook-signature") ==
        expected_signature(key, event.event_id, 1700000000, req.body));
  CHECK(only(req, "relay-attempt") == "3");
  CHECK(only(req, "relay-subscription") == "billing");
  CHECK(only(req, "X-Tenant") == "acme");  // app headers stay HTTP headers in every format
  for (const auto& [name, value] : req.headers) {
    INFO("header " << name);
    CHECK_FALSE(iequals(name.substr(0, 3), "ce-"));
  }
}

TEST_CASE("a protobuf request is a signed relay.v1.Event", "[delivery]") {
  const std::string key = "raw-secret";
  const auto signer = Signer::create(key);
  REQUIRE(signer.has_value());
  const Event event = sample_event();

  const auto req = build_request(event, 2, kNow, context(Format::kProtobuf, {*signer}));

  CHECK(req.content_type == "application/x-protobuf");
  relay::v1::Event msg;
  REQUIRE(msg.ParseFromString(req.body));
  CHECK(msg.id() == event.event_id);
  CHECK(msg.attempt() == 2);
  CHECK(only(req, "webhook-signature") ==
        expected_signature(key, event.event_id, 1700000000, req.body));
  CHECK(values(req, "ce-id").empty());
  CHECK(req.headers.size() == 6);  // Idempotency-Key, webhook-id/-timestamp/-signature, relay-*
}

TEST_CASE("a batch is one signed body named by a stable id derived from its event ids",
          "[delivery]") {
  const std::string key = "raw-secret";
  const auto signer = Signer::create(key);
  REQUIRE(signer.has_value());
  const std::vector<Signer> signers = {*signer};
  Event first = sample_event();
  first.headers_json = R"({"X-Tenant": "acme"})";
  Event second = sample_event();
  second.event_id = "11111111-2222-3333-4444-555555555555";
  const std::vector<BatchItem> items = {{&first, 1}, {&second, 4}};

  for (const Format format : {Format::kCloudEventsJson, Format::kProtobuf}) {
    const auto req = build_batch_request(items, kNow, context(format, signers));
    const std::string id = only(req, "webhook-id");
    INFO("batch id " << id);
    CHECK(id.starts_with("batch_"));
    CHECK(id.size() == 6 + 32);
    CHECK(is_lower_hex(id.substr(6)));
    CHECK(only(req, "Idempotency-Key") == id);
    CHECK(only(req, "webhook-signature") == expected_signature(key, id, 1700000000, req.body));
    CHECK(only(req, "relay-attempt") == "4");  // the highest attempt among the items
    CHECK(values(req, "X-Tenant").empty());    // per-event headers travel inside the envelopes

    // Retried later with other attempt numbers: same id. Other events or order: another id.
    const std::vector<BatchItem> retried = {{&first, 2}, {&second, 5}};
    CHECK(only(build_batch_request(retried, kNow + 60s, context(format, signers)), "webhook-id") ==
          id);
    const std::vector<BatchItem> swapped = {{&second, 1}, {&first, 1}};
    CHECK(only(build_batch_request(swapped, kNow, context(format, signers)), "webhook-id") != id);
    const std::vector<BatchItem> fewer = {{&first, 1}};
    CHECK(only(build_batch_request(fewer, kNow, context(format, signers)), "webhook-id") != id);
  }
}

TEST_CASE("batch bodies are a CloudEvents array or a relay.v1.EventBatch", "[delivery]") {
  Event first = sample_event();
  Event second = sample_event();
  second.event_id = "second";
  const std::vector<BatchItem> items = {{&first, 1}, {&second, 2}};

  const auto json_req = build_batch_request(items, kNow, context(Format::kCloudEventsJson));
  CHECK(json_req.content_type == "application/cloudevents-batch+json");
  const auto array = nlohmann::json::parse(json_req.body);
  REQUIRE(array.size() == 2);
  CHECK(array[0].at("id") == first.event_id);
  CHECK(array[1].at("id") == "second");
  CHECK(array[1].at("relayattempt") == 2);

  const auto pb_req = build_batch_request(items, kNow, context(Format::kProtobuf));
  CHECK(pb_req.content_type == "application/x-protobuf; messageType=relay.v1.EventBatch");
  relay::v1::EventBatch batch;
  REQUIRE(batch.ParseFromString(pb_req.body));
  REQUIRE(batch.events_size() == 2);
  CHECK(batch.events(0).id() == first.event_id);
  CHECK(batch.events(1).id() == "second");
  CHECK(batch.events(1).attempt() == 2);

  // The inbox's entry point reads both back.
  CHECK(relay::delivery::decode_envelope(json_req.content_type, json_req.body)->size() == 2);
  CHECK(relay::delivery::decode_envelope(pb_req.content_type, pb_req.body)->size() == 2);
}
