#include "relay/delivery/request_builder.h"

#include <algorithm>
#include <catch2/catch.hpp>
#include <cctype>

using namespace std::chrono_literals;
using relay::Event;
using relay::delivery::build_request;
using relay::delivery::OutgoingRequest;
using relay::delivery::Signer;

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
  const std::optional<Signer> maybe_signer = *signer;
  const Event event = sample_event();

  const auto req = build_request(event, "billing", 3, kNow, maybe_signer);

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
  const auto req = build_request(sample_event(), "billing", 1, kNow, std::nullopt);
  CHECK(values(req, "webhook-signature").empty());
  CHECK(only(req, "webhook-id") == sample_event().event_id);
}

TEST_CASE("an event without a key has no ce-subject", "[delivery]") {
  Event event = sample_event();
  event.key.reset();
  const auto req = build_request(event, "billing", 1, kNow, std::nullopt);
  CHECK(values(req, "ce-subject").empty());
}

TEST_CASE("the request's content type is the event's", "[delivery]") {
  Event event = sample_event();
  event.content_type = "application/x-protobuf";
  CHECK(build_request(event, "billing", 1, kNow, std::nullopt).content_type ==
        "application/x-protobuf");
  event.content_type = "text/plain\r\nX-Injected: 1";
  CHECK(build_request(event, "billing", 1, kNow, std::nullopt).content_type ==
        "application/octet-stream");
}

TEST_CASE("ce-time before 1970 still formats the right second", "[delivery]") {
  Event event = sample_event();
  event.created_at =
      std::chrono::sys_days{std::chrono::year{1969} / 12 / 31} + 23h + 59min + 59s + 500ms;
  CHECK(only(build_request(event, "billing", 1, kNow, std::nullopt), "ce-time") ==
        "1969-12-31T23:59:59.500Z");
}

TEST_CASE("ce attribute values are percent-encoded for space, quote, percent and non-ASCII",
          "[delivery]") {
  Event event = sample_event();
  event.key = "caf\xc3\xa9 \"100%\"";  // café "100%"
  event.topic = "order\r\nX-Injected: yes";

  const auto req = build_request(event, "billing", 1, kNow, std::nullopt);

  CHECK(only(req, "ce-subject") == "caf%C3%A9%20%22100%25%22");
  CHECK(only(req, "ce-type") == "order%0D%0AX-Injected:%20yes");
  CHECK(values(req, "X-Injected").empty());
}

TEST_CASE("the app's extra headers are added", "[delivery]") {
  Event event = sample_event();
  event.headers_json =
      R"({"X-Tenant": "acme", "traceparent": "00-abc-def-01", "Authorization": "Bearer t"})";

  const auto req = build_request(event, "billing", 1, kNow, std::nullopt);

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

  const auto req = build_request(event, "billing", 2, kNow, *signer);

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

  const auto req = build_request(event, "billing", 1, kNow, std::nullopt);

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
    const auto req = build_request(event, "billing", 1, kNow, std::nullopt);
    CHECK(req.headers.size() == 11);  // exactly relay's own (unsigned)
    CHECK(values(req, "X-A").empty());
  }
  Event mixed = sample_event();
  mixed.headers_json = R"({"X-Num": 5, "X-Str": "kept"})";
  CHECK(only(build_request(mixed, "billing", 1, kNow, std::nullopt), "X-Str") == "kept");
}
