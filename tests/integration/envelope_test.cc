// Integration: the `cloudevents-json` and `protobuf` envelopes as a consumer receives them from the
// real relay binary, checked with tools that share no code with relay's encoders: `protoc --decode`
// against proto/relay/v1/event.proto, nlohmann::json for CloudEvents (every REQUIRED attribute
// plus the optional ones relay sets), OpenSSL's one-shot HMAC for the signature. Batch bodies come
// from build_batch_request directly (the pipeline's batching has its own tests).

#include <catch2/catch.hpp>
#include <cctype>
#include <csignal>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "relay/delivery/request_builder.h"
#include "tests/integration/test_config.h"
#include "tests/proto/protoc_decode.h"
#include "tests/support/fake_consumer.h"
#include "tests/support/hmac_oracle.h"
#include "tests/support/relay_process.h"
#include "tests/support/test_database.h"
#include "tests/support/wait.h"

using namespace std::chrono_literals;
using namespace relay::testing;
using nlohmann::json;

namespace {

const std::string kSecret = "envelope-test-secret";

std::string b64(const std::string& bytes) { return openssl_base64(bytes); }

std::string expected_signature(const std::string& id, const std::string& ts,
                               const std::string& body) {
  return openssl_sign_v1(kSecret, id, ts, body);
}

std::string header(const ReceivedRequest& r, const std::string& name) {
  const auto it = r.headers.find(name);
  return it == r.headers.end() ? "<missing>" : it->second;
}

relay::test::ProtocOutput protoc(std::string_view message, const std::string& bytes) {
  return relay::test::protoc_decode(RELAY_PROTOC, std::string(RELAY_ENVELOPE_SOURCE_DIR) + "/proto",
                                    message, bytes);
}

// `text` (protoc's output) has `line` as one of its lines, leading spaces ignored.
bool has_line(const std::string& text, const std::string& line) {
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string_view l(text.data() + start, end - start);
    while (!l.empty() && l.front() == ' ') l.remove_prefix(1);
    if (l == line) return true;
    start = end + 1;
  }
  return false;
}

// The REQUIRED CloudEvents 1.0 context attributes, each a non-empty string, specversion "1.0".
// CloudEvents context attribute names: 1 to 20 lowercase ASCII letters or digits.
bool is_attribute_name(const std::string& name) {
  if (name.empty() || name.size() > 20) return false;
  for (char c : name) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))) return false;
  }
  return true;
}

void check_required_attributes(const json& ce) {
  for (const char* name : {"id", "source", "specversion", "type"}) {
    INFO("attribute " << name);
    REQUIRE(ce.contains(name));
    REQUIRE(ce.at(name).is_string());
    CHECK_FALSE(ce.at(name).get<std::string>().empty());
  }
  CHECK(ce.at("specversion") == "1.0");
  // Context attribute names: lowercase letters and digits (data_base64 is the format's member).
  for (const auto& [name, value] : ce.items()) {
    INFO("attribute " << name);
    if (name == "data_base64") continue;
    CHECK(is_attribute_name(name));
  }
}

// RFC 3339 as CloudEvents writes it: YYYY-MM-DDTHH:MM:SS, optional .fraction, then Z or +HH:MM.
// (No std::regex: GCC 12 warns -Wmaybe-uninitialized inside <regex> at -O2.)
bool is_rfc3339(const std::string& s) {
  auto digits = [&](size_t at, size_t n) {
    if (at + n > s.size()) return false;
    for (size_t i = at; i < at + n; ++i) {
      if (!std::isdigit(static_cast<unsigned char>(s[i]))) return false;
    }
    return true;
  };
  if (!digits(0, 4) || s.size() < 19 || s[4] != '-' || !digits(5, 2) || s[7] != '-' ||
      !digits(8, 2) || s[10] != 'T' || !digits(11, 2) || s[13] != ':' || !digits(14, 2) ||
      s[16] != ':' || !digits(17, 2)) {
    return false;
  }
  size_t i = 19;
  if (i < s.size() && s[i] == '.') {
    const size_t start = ++i;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i;
    if (i == start) return false;
  }
  if (i < s.size() && s[i] == 'Z') return i + 1 == s.size();
  return i + 6 == s.size() && (s[i] == '+' || s[i] == '-') && digits(i + 1, 2) && s[i + 3] == ':' &&
         digits(i + 4, 2);
}

struct Published {
  std::string id;
  std::string created_at;  // RFC 3339 UTC, microseconds, as PostgreSQL formats it
  std::string seconds;     // unix seconds of created_at
  std::string nanos;       // its fraction in nanoseconds
};

Published published(TestDatabase& db, const std::string& id) {
  const auto row = [&](const std::string& expr) {
    return db.value(fmt::format("SELECT {} FROM relay.outbox WHERE event_id = '{}'", expr, id));
  };
  return Published{
      .id = id,
      .created_at = row("to_char(created_at AT TIME ZONE 'UTC', "
                        "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"),
      .seconds = row("floor(extract(epoch FROM created_at))::bigint::text"),
      .nanos = row("((extract(microseconds FROM created_at)::bigint % 1000000) * 1000)::text"),
  };
}

}  // namespace

TEST_CASE("cloudevents-json and protobuf subscriptions send envelopes that independent tools read",
          "[integration][envelope]") {
  auto db = TestDatabase::create();
  // Published before relay starts, so created_at can be read from the outbox row.
  const Published json_event =
      published(db, db.value("SELECT relay.publish('order.paid', 'order-17', "
                             "'{\"order\": 17, \"name\": \"J\xc3\xbcrgen\"}'::jsonb, "
                             "'{\"X-Tenant\": \"acme\"}'::jsonb)::text"));
  const Published binary_event =
      published(db, db.value("SELECT relay.publish('file.uploaded', NULL, "
                             "'\\x00fffe80'::bytea, 'application/octet-stream')::text"));

  FakeConsumer ce_consumer;
  FakeConsumer pb_consumer;
  TestRelayConfig cfg;
  const std::string secret = "    signing_secret: " + kSecret + "\n";
  cfg.subscriptions = {
      {.name = "ce",
       .topics = {"*"},
       .endpoint = ce_consumer.url(),
       .extra = "    format: cloudevents-json\n" + secret},
      {.name = "pb",
       .topics = {"*"},
       .endpoint = pb_consumer.url(),
       .extra = "    format: protobuf\n" + secret},
  };
  RelayProcess relay(to_yaml(cfg), {}, {{"DATABASE_URL", db.url()}});
  REQUIRE(wait_until([&] { return ce_consumer.count() == 2 && pb_consumer.count() == 2; }, 60s));
  REQUIRE(wait_until([&] { return db.count("relay.outbox") == 0; }, 60s));
  relay.signal(SIGTERM);
  REQUIRE(relay.wait_exit(60s) == 0);
  CHECK(db.count("relay.dead_letter") == 0);

  // Every request: the body is signed under the event id; app headers stay HTTP headers.
  for (const auto* consumer : {&ce_consumer, &pb_consumer}) {
    for (const ReceivedRequest& r : consumer->requests()) {
      const std::string id = header(r, "webhook-id");
      INFO("event " << id);
      CHECK(header(r, "idempotency-key") == id);
      CHECK(header(r, "webhook-signature") ==
            expected_signature(id, header(r, "webhook-timestamp"), r.body));
      CHECK(header(r, "relay-attempt") == "1");
      CHECK(header(r, "x-tenant") == (id == json_event.id ? "acme" : "<missing>"));
      CHECK(header(r, "ce-id") == "<missing>");  // binary mode only
    }
  }

  {  // CloudEvents JSON: required and optional attributes, data inline or base64
    std::map<std::string, json> by_id;
    for (const ReceivedRequest& r : ce_consumer.requests()) {
      CHECK(header(r, "content-type") == "application/cloudevents+json");
      const json ce = json::parse(r.body);  // throws (fails the test) if it is not JSON
      check_required_attributes(ce);
      CHECK(ce.at("id") == header(r, "webhook-id"));
      CHECK(ce.at("source") == "relay/ce");
      REQUIRE(ce.at("time").is_string());
      CHECK(is_rfc3339(ce.at("time").get<std::string>()));
      CHECK(ce.at("relayattempt") == 1);
      by_id[ce.at("id").get<std::string>()] = ce;
    }
    REQUIRE(by_id.size() == 2);

    const json& j = by_id.at(json_event.id);
    CHECK(j.at("type") == "order.paid");
    CHECK(j.at("subject") == "order-17");
    CHECK(j.at("time") == json_event.created_at);
    CHECK(j.at("datacontenttype") == "application/json");
    CHECK(j.at("data") == json{{"order", 17}, {"name", "J\xc3\xbcrgen"}});
    CHECK_FALSE(j.contains("data_base64"));
    CHECK(json::parse(j.at("relayheaders").get<std::string>()) == json{{"X-Tenant", "acme"}});

    const json& b = by_id.at(binary_event.id);
    CHECK(b.at("type") == "file.uploaded");
    CHECK_FALSE(b.contains("subject"));
    CHECK(b.at("time") == binary_event.created_at);
    CHECK(b.at("datacontenttype") == "application/octet-stream");
    CHECK_FALSE(b.contains("data"));
    CHECK(b.at("data_base64") == b64(std::string("\x00\xff\xfe\x80", 4)));
    CHECK_FALSE(b.contains("relayheaders"));
  }

  {  // protobuf: protoc --decode relay.v1.Event reads every field
    std::map<std::string, std::string> text_by_id;
    for (const ReceivedRequest& r : pb_consumer.requests()) {
      CHECK(header(r, "content-type") == "application/x-protobuf");
      const auto out = protoc("relay.v1.Event", r.body);
      INFO(out.text);
      REQUIRE(out.exit_status == 0);
      text_by_id[header(r, "webhook-id")] = out.text;
    }
    REQUIRE(text_by_id.size() == 2);

    const std::string& j = text_by_id.at(json_event.id);
    INFO(j);
    CHECK(has_line(j, "id: \"" + json_event.id + "\""));
    CHECK(has_line(j, "topic: \"order.paid\""));
    CHECK(has_line(j, "key: \"order-17\""));
    // jsonb's text form; protoc escapes bytes >= 0x80 as octal (ü = C3 BC).
    CHECK(has_line(j, R"(payload: "{\"name\": \"J\303\274rgen\", \"order\": 17}")"));
    CHECK(has_line(j, "content_type: \"application/json\""));
    CHECK(has_line(j, "key: \"X-Tenant\""));  // the headers map entry
    CHECK(has_line(j, "value: \"acme\""));
    CHECK(has_line(j, "seconds: " + json_event.seconds));
    if (json_event.nanos != "0") CHECK(has_line(j, "nanos: " + json_event.nanos));
    CHECK(has_line(j, "attempt: 1"));

    const std::string& b = text_by_id.at(binary_event.id);
    INFO(b);
    CHECK(has_line(b, "id: \"" + binary_event.id + "\""));
    CHECK(has_line(b, "topic: \"file.uploaded\""));
    CHECK(b.find("key:") == std::string::npos);  // no key: the optional field is absent
    CHECK(has_line(b, R"(payload: "\000\377\376\200")"));
    CHECK(has_line(b, "content_type: \"application/octet-stream\""));
    CHECK(b.find("headers {") == std::string::npos);
    CHECK(has_line(b, "seconds: " + binary_event.seconds));
    CHECK(has_line(b, "attempt: 1"));
  }
}

TEST_CASE("batch bodies decode with protoc --decode relay.v1.EventBatch and as CloudEvents",
          "[integration][envelope]") {
  relay::Event first;
  first.event_id = "0b9e7a8c-6c3f-4d1e-9a57-3f0c2b1d4e5f";
  first.topic = "order.paid";
  first.key = "order-17";
  first.payload = R"({"order":17})";
  first.headers_json = R"({"X-Tenant":"acme"})";
  first.created_at = std::chrono::sys_days{std::chrono::year{2024} / 1 / 2} + 3h + 4min + 5s;
  relay::Event second = first;
  second.event_id = "7a1e2f3d-4c5b-4a69-8877-665544332211";
  second.key.reset();
  second.content_type = "text/plain";
  second.payload = "h\xc3\xa9llo";
  second.headers_json = "{}";
  const std::vector<relay::delivery::BatchItem> items = {{&first, 2}, {&second, 1}};
  const auto signer = relay::delivery::Signer::create(kSecret);
  REQUIRE(signer.has_value());
  const std::vector<relay::delivery::Signer> signers = {*signer};
  const auto now = std::chrono::system_clock::time_point{} + 1700000000s;
  const auto context = [&](relay::model::Format format) {
    return relay::delivery::RequestContext{
        .subscription = "batched", .format = format, .signers = signers};
  };
  const auto header_of = [](const relay::delivery::OutgoingRequest& req, std::string_view name) {
    for (const auto& [k, v] : req.headers)
      if (k == name) return v;
    return std::string("<missing>");
  };

  SECTION("protobuf") {
    const auto req =
        relay::delivery::build_batch_request(items, now, context(relay::model::Format::kProtobuf));
    CHECK(header_of(req, "webhook-signature") ==
          expected_signature(header_of(req, "webhook-id"), "1700000000", req.body));
    const auto out = protoc("relay.v1.EventBatch", req.body);
    INFO(out.text);
    REQUIRE(out.exit_status == 0);
    const auto first_at = out.text.find("id: \"" + first.event_id + "\"");
    const auto second_at = out.text.find("id: \"" + second.event_id + "\"");
    REQUIRE(first_at != std::string::npos);
    REQUIRE(second_at != std::string::npos);
    CHECK(first_at < second_at);  // item order
    const std::string first_text = out.text.substr(0, second_at);
    const std::string second_text = out.text.substr(second_at);
    CHECK(has_line(first_text, "key: \"order-17\""));
    CHECK(has_line(first_text, R"(payload: "{\"order\":17}")"));
    CHECK(has_line(first_text, "value: \"acme\""));
    CHECK(has_line(first_text, "seconds: 1704164645"));
    CHECK(has_line(first_text, "attempt: 2"));
    CHECK(second_text.find("key:") == std::string::npos);
    CHECK(has_line(second_text, R"(payload: "h\303\251llo")"));
    CHECK(has_line(second_text, "content_type: \"text/plain\""));
    CHECK(has_line(second_text, "attempt: 1"));
  }

  SECTION("cloudevents-json") {
    const auto req = relay::delivery::build_batch_request(
        items, now, context(relay::model::Format::kCloudEventsJson));
    CHECK(req.content_type == "application/cloudevents-batch+json");
    CHECK(header_of(req, "webhook-signature") ==
          expected_signature(header_of(req, "webhook-id"), "1700000000", req.body));
    const json batch = json::parse(req.body);
    REQUIRE(batch.is_array());
    REQUIRE(batch.size() == 2);
    for (const json& ce : batch) check_required_attributes(ce);
    CHECK(batch[0].at("id") == first.event_id);
    CHECK(batch[0].at("source") == "relay/batched");
    CHECK(batch[0].at("type") == "order.paid");
    CHECK(batch[0].at("subject") == "order-17");
    CHECK(batch[0].at("time") == "2024-01-02T03:04:05.000000Z");
    CHECK(batch[0].at("data") == json{{"order", 17}});
    CHECK(batch[0].at("relayattempt") == 2);
    CHECK(batch[1].at("id") == second.event_id);
    CHECK_FALSE(batch[1].contains("subject"));
    CHECK(batch[1].at("datacontenttype") == "text/plain");
    CHECK(batch[1].at("data_base64") == b64("h\xc3\xa9llo"));
    CHECK(batch[1].at("relayattempt") == 1);
  }
}
