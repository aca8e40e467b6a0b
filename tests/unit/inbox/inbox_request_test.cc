// decode_request: binary mode (ids, percent-decoded attributes, kept headers) and its rejections.

#include "relay/inbox/inbox_request.h"

#include <catch2/catch.hpp>

using namespace relay::inbox;
using relay::http::HttpHeaders;
using relay::http::HttpRequest;

namespace {

HttpRequest post(HttpHeaders headers, std::string body = "{}") {
  HttpRequest r;
  r.method = "POST";
  r.target = "/inbox/s";
  r.version = "HTTP/1.1";
  r.headers = std::move(headers);
  r.body = std::move(body);
  return r;
}

const Rejection& rejected(const DecodedRequest& d) {
  REQUIRE(std::holds_alternative<Rejection>(d));
  return std::get<Rejection>(d);
}

const relay::store::InboxEvent& single(const DecodedRequest& d) {
  REQUIRE(std::holds_alternative<std::vector<relay::store::InboxEvent>>(d));
  const auto& events = std::get<std::vector<relay::store::InboxEvent>>(d);
  REQUIRE(events.size() == 1);
  return events[0];
}

}  // namespace

TEST_CASE("binary mode reads webhook-id, ce-type, ce-subject and Content-Type", "[inbox]") {
  const auto d = decode_request("s",
                                post({{"Webhook-Id", "msg_1"},
                                      {"ce-id", "ignored"},
                                      {"ce-type", "order%2Epaid"},
                                      {"ce-subject", "caf%C3%A9%20au%20lait"},
                                      {"Content-Type", "text/plain"}},
                                     "body"),
                                1024);
  const auto& e = single(d);
  CHECK(e.source == "s");
  CHECK(e.event_id == "msg_1");
  CHECK(e.topic == "order.paid");
  CHECK(e.key == "caf\xC3\xA9 au lait");
  CHECK(e.content_type == "text/plain");
  CHECK(e.payload == "body");
  CHECK_FALSE(e.created_at.has_value());
}

TEST_CASE("ce-id is the id when there is no webhook-id; without either the request is refused",
          "[inbox]") {
  CHECK(single(decode_request("s", post({{"ce-id", "a%2Fb"}}), 1024)).event_id == "a/b");
  CHECK(std::string(rejected(decode_request("s", post({}), 1024)).reason) == "missing_id");
  CHECK(std::string(rejected(decode_request("s", post({{"webhook-id", ""}}), 1024)).reason) ==
        "missing_id");
  CHECK(
      std::string(rejected(decode_request("s", post({{"webhook-id", std::string(513, 'a')}}), 1024))
                      .reason) == "missing_id");
}

TEST_CASE("svix-id is the id when there is no webhook-id; svix-* headers are not kept", "[inbox]") {
  const auto d = decode_request("s",
                                post({{"svix-id", "msg_svix"},
                                      {"svix-timestamp", "1700000000"},
                                      {"svix-signature", "v1,AAAA"},
                                      {"ce-id", "ignored"},
                                      {"X-Tenant", "a"}}),
                                1024);
  CHECK(single(d).event_id == "msg_svix");
  CHECK(single(d).headers_json == R"({"x-tenant":"a"})");
  // Both sets: webhook-* is the signed set, so its id is the event's.
  CHECK(single(decode_request("s", post({{"svix-id", "b"}, {"webhook-id", "a"}}), 1024)).event_id ==
        "a");
}

TEST_CASE("app headers are kept; relay's own, transport and credential headers are not",
          "[inbox]") {
  const auto d = decode_request("s",
                                post({{"webhook-id", "1"},
                                      {"X-Tenant", "a"},
                                      {"x-tenant", "b"},
                                      {"Authorization", "Bearer t"},
                                      {"Cookie", "c=1"},
                                      {"User-Agent", "ua"},
                                      {"Host", "h"},
                                      {"relay-attempt", "2"},
                                      {"Idempotency-Key", "1"},
                                      {"X-Forwarded-For", "1.2.3.4"},
                                      {"Traceparent", "00-abc"}}),
                                1024);
  CHECK(single(d).headers_json == R"({"traceparent":"00-abc","x-tenant":"a, b"})");
}

TEST_CASE("binary mode refuses oversized payloads, broken escapes and non-UTF-8 attributes",
          "[inbox]") {
  const auto big =
      rejected(decode_request("s", post({{"webhook-id", "1"}}, std::string(11, 'x')), 10));
  CHECK(big.status == 413);
  CHECK(big.message.find("max_payload_bytes") != std::string::npos);
  CHECK(
      rejected(decode_request("s", post({{"webhook-id", "1"}, {"ce-type", "a%4"}}), 1024)).status ==
      400);
  CHECK(rejected(decode_request("s", post({{"webhook-id", "1"}, {"ce-subject", "%C3"}}), 1024))
            .status == 400);
  CHECK(
      rejected(decode_request("s", post({{"webhook-id", std::string("a\0b", 3)}}), 1024)).status ==
      400);
}

TEST_CASE("envelope content types are recognised whatever their case and parameters", "[inbox]") {
  CHECK(is_envelope_content_type("application/cloudevents+json"));
  CHECK(is_envelope_content_type("Application/CloudEvents+JSON; charset=utf-8"));
  CHECK(is_envelope_content_type("application/cloudevents-batch+json"));
  CHECK(is_envelope_content_type("application/x-protobuf; messageType=relay.v1.EventBatch"));
  CHECK_FALSE(is_envelope_content_type("application/json"));
  CHECK_FALSE(is_envelope_content_type(""));
}

TEST_CASE("a structured CloudEvent is read from its body, a bad one refused", "[inbox]") {
  HttpRequest r = post({{"Content-Type", "application/cloudevents+json"}},
                       R"({"specversion":"1.0","id":"x1","source":"s","type":"t",)"
                       R"("time":"2024-01-02T03:04:05Z","data":{"a":1}})");
  const auto d = decode_request("s", r, 1024);
  const auto& e = single(d);
  CHECK(e.event_id == "x1");
  CHECK(e.topic == "t");
  CHECK(e.payload == R"({"a":1})");
  CHECK(e.created_at.has_value());
  r.body = R"({"specversion":"1.0","source":"s","type":"t"})";
  CHECK(rejected(decode_request("s", r, 1024)).status == 400);
}

TEST_CASE("is_storable_text accepts UTF-8 and refuses NUL, truncated and overlong sequences",
          "[inbox]") {
  CHECK(is_storable_text("plain"));
  CHECK(is_storable_text("caf\xC3\xA9 \xF0\x9F\x98\x80"));
  CHECK_FALSE(is_storable_text(std::string("a\0", 2)));
  CHECK_FALSE(is_storable_text("\xC3"));
  CHECK_FALSE(is_storable_text("\xC0\xAF"));
  CHECK_FALSE(is_storable_text("\xED\xA0\x80"));  // a UTF-16 surrogate
  CHECK_FALSE(is_storable_text("\xFF"));
}

// --- EventMapping: a provider scheme's id and topic, key_from / topic_from ---

namespace {

relay::config::FieldFrom header_from(std::string name) {
  return relay::config::FieldFrom{.header = std::move(name), .pointer = ""};
}
relay::config::FieldFrom body_from(std::string pointer) {
  return relay::config::FieldFrom{.header = "", .pointer = std::move(pointer)};
}

}  // namespace

TEST_CASE("a provider's verified id and topic are used, in binary mode whatever the type",
          "[inbox]") {
  EventMapping m;
  m.id = "evt_1";
  m.id_from = "the body's \"id\"";
  m.topic = "customer.created";
  const auto d = decode_request(
      "s",
      post({{"Content-Type", "application/cloudevents+json"}, {"webhook-id", "ignored"}},
           R"({"id":"evt_1"})"),
      1024, m);
  const auto& e = single(d);
  CHECK(e.event_id == "evt_1");
  CHECK(e.topic == "customer.created");
  CHECK_FALSE(e.key.has_value());
  CHECK(e.payload == R"({"id":"evt_1"})");
  m.topic = std::string("bad\xff", 4);
  const auto d_t = decode_request("s", post({}), 1024, m);
  CHECK(rejected(d_t).reason == std::string("malformed"));
  m.topic = std::string("nul\0", 4);
  const auto d_n = decode_request("s", post({}), 1024, m);
  CHECK(rejected(d_n).reason == std::string("malformed"));
  m.id = std::string(600, 'x');
  const auto d_r = decode_request("s", post({}), 1024, m);
  const auto& r = rejected(d_r);
  CHECK(r.reason == std::string("missing_id"));
  CHECK(r.message.find("the body's \"id\"") != std::string::npos);
}

TEST_CASE("key_from and topic_from read a header or a JSON Pointer into the body", "[inbox]") {
  const auto customer = body_from("/data/object/customer");
  const auto kind = header_from("X-Kind");
  EventMapping m{.key_from = &customer, .topic_from = &kind};
  const std::string body = R"({"data":{"object":{"customer":"cus_42","n":7,"a/b":true}}})";
  const auto d_e = decode_request(
      "s", post({{"webhook-id", "m1"}, {"x-kind", "k.1"}, {"ce-type", "t"}}, body), 1024, m);
  const auto& e = single(d_e);
  CHECK(e.key == "cus_42");
  CHECK(e.topic == "k.1");

  // Numbers and booleans as their JSON text; ~1 escapes '/'.
  const auto number = body_from("/data/object/n");
  const auto escaped = body_from("/data/object/a~1b");
  EventMapping m2{.key_from = &number, .topic_from = &escaped};
  const auto d_e2 = decode_request("s", post({{"webhook-id", "m1"}}, body), 1024, m2);
  const auto& e2 = single(d_e2);
  CHECK(e2.key == "7");
  CHECK(e2.topic == "true");
}

TEST_CASE("key_from / topic_from that name nothing leave the default", "[inbox]") {
  const auto missing = body_from("/data/object/nope");
  const auto index = body_from("/data/list/x");
  const auto no_header = header_from("X-Absent");
  EventMapping m{.key_from = &missing, .topic_from = &no_header};
  const std::string body = R"({"data":{"object":{"customer":null},"list":[1]}})";
  const auto d_e = decode_request(
      "s", post({{"webhook-id", "m1"}, {"ce-type", "t"}, {"ce-subject", "s"}}, body), 1024, m);
  const auto& e = single(d_e);
  CHECK(e.key == "s");
  CHECK(e.topic == "t");
  const auto null_value = body_from("/data/object/customer");
  EventMapping m2{.key_from = &null_value, .topic_from = &index};
  m2.topic = "scheme.topic";
  const auto d_e2 = decode_request("s", post({{"webhook-id", "m1"}}, body), 1024, m2);
  const auto& e2 = single(d_e2);
  CHECK_FALSE(e2.key.has_value());
  CHECK(e2.topic == "scheme.topic");
}

TEST_CASE("a pointer into a body that is not JSON, or at an object, is refused with 400",
          "[inbox]") {
  const auto customer = body_from("/customer");
  EventMapping m{.key_from = &customer};
  const auto d_r = decode_request("s", post({{"webhook-id", "m1"}}, "a=b&c=d"), 1024, m);
  const auto& r = rejected(d_r);
  CHECK(r.status == 400);
  CHECK(r.reason == std::string("malformed"));
  CHECK(r.message.find("not JSON") != std::string::npos);
  CHECK(r.message.find("body:/customer") != std::string::npos);
  const auto d_o =
      decode_request("s", post({{"webhook-id", "m1"}}, R"({"customer":{"id":1}})"), 1024, m);
  const auto& o = rejected(d_o);
  CHECK(o.message.find("an object") != std::string::npos);
  // A header read by key_from and sent twice is ambiguous.
  const auto h = header_from("X-Key");
  EventMapping mh{.key_from = &h};
  const auto d_twice =
      decode_request("s", post({{"webhook-id", "m1"}, {"X-Key", "a"}, {"x-key", "b"}}), 1024, mh);
  const auto& twice = rejected(d_twice);
  CHECK(twice.reason == std::string("malformed"));
  // Without a pointer configured, a body that is not JSON is fine.
  single(decode_request("s", post({{"webhook-id", "m1"}}, "a=b"), 1024, mh));
}

TEST_CASE("providers' signature headers are not kept", "[inbox]") {
  const auto d_e = decode_request("s",
                                  post({{"webhook-id", "m1"},
                                        {"Stripe-Signature", "t=1,v1=aa"},
                                        {"X-Hub-Signature", "sha1=aa"},
                                        {"X-Hub-Signature-256", "sha256=aa"},
                                        {"X-Shopify-Hmac-Sha256", "qq=="},
                                        {"X-GitHub-Event", "push"}}),
                                  1024);
  const auto& e = single(d_e);
  CHECK(e.headers_json == R"({"x-github-event":"push"})");
}
