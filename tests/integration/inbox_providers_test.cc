// Integration: the inbox receives providers' webhooks (`verify: stripe | github | shopify`, and
// Svix-powered senders through standard-webhooks) on the real binary. Requests are signed the way
// each provider documents, by tests/support/hmac_oracle.h (OpenSSL), not by relay; GitHub's
// published test vector is sent byte for byte. Each refusal answers its status and stores nothing;
// a resend is a duplicate; secrets rotate; key_from / topic_from map a header or a JSON Pointer;
// secrets and signature headers are never stored or logged; dead letters of a provider source go
// through `relay dlq` and `relay status` like any other inbox source's.

#include <catch2/catch.hpp>
#include <csignal>
#include <nlohmann/json.hpp>

#include "tests/integration/inbox_test_helpers.h"
#include "tests/support/fake_consumer.h"
#include "tests/support/relay_process.h"
#include "tests/support/test_database.h"
#include "tests/support/wait.h"

using namespace std::chrono_literals;
using namespace relay::testing;

namespace {

bool inbox_up(int port) {
  return wait_until([&] { return InboxClient(port).get("/inbox/x").status == 405; }, 60s);
}

// Stripe shows endpoint secrets as whsec_ and letters; used as written, never base64-decoded.
const std::string kStripeOld = "whsec_stripeOLDsecret0123456789";
const std::string kStripeNew = "whsec_stripeNEWsecret9876543210";
// GitHub's documented example secret (docs.github.com, "Validating webhook deliveries").
const std::string kGithubSecret = "It's a Secret to Everybody";
const std::string kShopifySecret = "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";

// The four providers' sources, claim mode, two Stripe secrets (rotation).
std::vector<TestInboxSource> provider_sources() {
  return {{.name = "stripe",
           .secrets = {kStripeOld, kStripeNew},
           .extra = "      verify: stripe\n      key_from: body:/data/object/customer\n"},
          {.name = "github",
           .secrets = {kGithubSecret},
           .extra = "      verify: github\n      key_from: X-GitHub-Hook-ID\n"},
          {.name = "shopify",
           .secrets = {kShopifySecret},
           .extra = "      verify: shopify\n      topic_from: body:/kind\n"},
          {.name = "svix", .secrets = {kSecretA}}};
}

std::string stripe_event(const std::string& id, const std::string& customer) {
  return fmt::format(
      R"({{"id":"{}","object":"event","type":"invoice.paid","data":{{"object":{{"customer":"{}"}}}}}})",
      id, customer);
}

Headers stripe_headers(const std::string& secret, const std::string& body,
                       long long ts = unix_now()) {
  return {{"Stripe-Signature", stripe_signature(secret, ts, body)}};
}

Headers github_headers(const std::string& secret, const std::string& body,
                       const std::string& delivery, const std::string& event = "push") {
  return {{"X-Hub-Signature-256", github_signature(secret, body)},
          {"X-GitHub-Delivery", delivery},
          {"X-GitHub-Event", event},
          {"X-GitHub-Hook-ID", "292430182"}};
}

Headers shopify_headers(const std::string& secret, const std::string& body,
                        const std::string& webhook_id) {
  return {{"X-Shopify-Hmac-Sha256", shopify_signature(secret, body)},
          {"X-Shopify-Webhook-Id", webhook_id},
          {"X-Shopify-Topic", "orders/create"},
          {"X-Shopify-Shop-Domain", "example.myshopify.com"}};
}

}  // namespace

TEST_CASE("providers' signed webhooks are stored once with their id and topic and key",
          "[integration][inbox]") {
  auto db = TestDatabase::create();
  const int port = FakeConsumer::unused_port();
  RelayProcess relay(inbox_yaml(port, provider_sources()), {}, {{"DATABASE_URL", db.url()}});
  REQUIRE(inbox_up(port));
  InboxClient client(port);

  // Stripe, signed with the new secret, then the old one (rotation), each sent twice.
  const std::string s1 = stripe_event("evt_1", "cus_A");
  const std::string s2 = stripe_event("evt_2", "cus_B");
  for (int i = 0; i < 2; ++i) {
    auto r1 = client.post("/inbox/stripe", s1, stripe_headers(kStripeNew, s1));
    INFO(r1.body);
    CHECK(r1.status == 200);
    CHECK(r1.header("relay-duplicate") == (i == 0 ? "false" : "true"));
    CHECK(client.post("/inbox/stripe", s2, stripe_headers(kStripeOld, s2)).status == 200);
  }

  // GitHub: the documented test vector byte for byte (the body is not JSON: no action), then a
  // JSON delivery whose action joins the event name; each resent.
  // https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries
  const Headers vector_headers = {
      {"X-Hub-Signature-256",
       "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"},
      {"X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"},
      {"X-GitHub-Event", "ping"}};
  const std::string g2 = R"({"action":"opened","number":7})";
  for (int i = 0; i < 2; ++i) {
    auto r = client.post("/inbox/github", "Hello, World!", vector_headers, "text/plain");
    INFO(r.body);
    CHECK(r.status == 200);
    CHECK(client.post("/inbox/github", g2, github_headers(kGithubSecret, g2, "d-2", "pull_request"))
              .status == 200);
  }

  // Shopify, resent once.
  const std::string sh = R"({"id":820982911946154508,"kind":"order.created"})";
  for (int i = 0; i < 2; ++i) {
    CHECK(client.post("/inbox/shopify", sh, shopify_headers(kShopifySecret, sh, "wh-1")).status ==
          200);
  }

  // A Svix-powered sender.
  const std::string sv = R"({"type":"user.created"})";
  const long long now = unix_now();
  CHECK(client
            .post("/inbox/svix", sv,
                  {{"svix-id", "msg_1"},
                   {"svix-timestamp", std::to_string(now)},
                   {"svix-signature", sign_v1(kKeyA, "msg_1", now, sv)},
                   {"ce-type", "user.created"}})
            .status == 200);

  CHECK(
      db.rows("SELECT source, event_id, coalesce(topic, '-'), coalesce(key, '-'), headers::text "
              "FROM relay.inbox ORDER BY source, event_id") ==
      std::vector<std::vector<std::string>>{
          {"github", "72d3162e-cc78-11e3-81ab-4c9367dc0958", "ping", "-",
           R"({"x-github-event": "ping", "x-github-delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958"})"},
          {"github", "d-2", "pull_request.opened", "292430182",
           R"({"x-github-event": "pull_request", "x-github-hook-id": "292430182", "x-github-delivery": "d-2"})"},
          {"shopify", "wh-1", "order.created", "-",
           R"({"x-shopify-topic": "orders/create", "x-shopify-webhook-id": "wh-1", "x-shopify-shop-domain": "example.myshopify.com"})"},
          {"stripe", "evt_1", "invoice.paid", "cus_A", "{}"},
          {"stripe", "evt_2", "invoice.paid", "cus_B", "{}"},
          {"svix", "msg_1", "user.created", "-", "{}"}});
  CHECK(db.value("SELECT convert_from(payload, 'UTF8') FROM relay.inbox WHERE source = 'github' "
                 "AND event_id LIKE '72d3%'") == "Hello, World!");
}

TEST_CASE("each provider's bad requests answer their status and store nothing",
          "[integration][inbox]") {
  auto db = TestDatabase::create();
  const int port = FakeConsumer::unused_port();
  RelayProcess relay(inbox_yaml(port, provider_sources()), {}, {{"DATABASE_URL", db.url()}});
  REQUIRE(inbox_up(port));
  InboxClient client(port);
  const long long now = unix_now();

  struct Case {
    std::string what, source, body;
    Headers headers;
    int status;
    std::string content_type = "application/json";
  };
  const std::string s = stripe_event("evt_bad", "cus_A");
  const std::string g = R"({"action":"created"})";
  const std::string sh = R"({"id":1,"kind":"k"})";
  auto twice = [](Headers h, size_t i) {
    h.push_back(h[i]);
    return h;
  };
  auto without = [](Headers h, size_t i) {
    h.erase(h.begin() + static_cast<std::ptrdiff_t>(i));
    return h;
  };
  const std::vector<Case> cases = {
      {"stripe wrong secret", "stripe", s, stripe_headers("whsec_wrong", s), 401},
      {"stripe tampered body", "stripe", s + " ", stripe_headers(kStripeNew, s), 401},
      {"stripe stale timestamp", "stripe", s, stripe_headers(kStripeNew, s, now - 600), 401},
      {"stripe future timestamp", "stripe", s, stripe_headers(kStripeNew, s, now + 600), 401},
      {"stripe no timestamp",
       "stripe",
       s,
       {{"Stripe-Signature", stripe_signature(kStripeNew, now, s)
                                 .substr(stripe_signature(kStripeNew, now, s).find("v1="))}},
       401},
      {"stripe no header", "stripe", s, {}, 401},
      {"stripe header twice", "stripe", s, twice(stripe_headers(kStripeNew, s), 0), 400},
      {"stripe no id", "stripe", R"({"type":"x"})", stripe_headers(kStripeNew, R"({"type":"x"})"),
       400},
      {"stripe body not JSON", "stripe", "id=evt_1", stripe_headers(kStripeNew, "id=evt_1"), 400},
      {"github wrong secret", "github", g, github_headers("nope", g, "d-bad"), 401},
      {"github tampered body", "github", g + " ", github_headers(kGithubSecret, g, "d-bad"), 401},
      {"github no signature", "github", g, without(github_headers(kGithubSecret, g, "d-bad"), 0),
       401},
      {"github signature twice", "github", g, twice(github_headers(kGithubSecret, g, "d-bad"), 0),
       400},
      {"github no delivery id", "github", g, without(github_headers(kGithubSecret, g, "d-bad"), 1),
       400},
      {"github delivery twice", "github", g, twice(github_headers(kGithubSecret, g, "d-bad"), 1),
       400},
      {"shopify wrong secret", "shopify", sh, shopify_headers("nope", sh, "w-bad"), 401},
      {"shopify tampered body", "shopify", sh + " ", shopify_headers(kShopifySecret, sh, "w-bad"),
       401},
      {"shopify no signature", "shopify", sh,
       without(shopify_headers(kShopifySecret, sh, "w-bad"), 0), 401},
      {"shopify no webhook id", "shopify", sh,
       without(shopify_headers(kShopifySecret, sh, "w-bad"), 1), 400},
      {"shopify signature twice", "shopify", sh,
       twice(shopify_headers(kShopifySecret, sh, "w-bad"), 0), 400},
      {"shopify topic_from pointer, body not JSON", "shopify", "kind=x",
       shopify_headers(kShopifySecret, "kind=x", "w-bad"), 400},
      {"svix stale timestamp",
       "svix",
       g,
       {{"svix-id", "m-bad"},
        {"svix-timestamp", std::to_string(now - 600)},
        {"svix-signature", sign_v1(kKeyA, "m-bad", now - 600, g)}},
       401},
      {"svix id twice",
       "svix",
       g,
       {{"svix-id", "m-bad"},
        {"svix-id", "m-bad2"},
        {"svix-timestamp", std::to_string(now)},
        {"svix-signature", sign_v1(kKeyA, "m-bad", now, g)}},
       400},
  };
  for (const auto& c : cases) {
    auto r = client.post("/inbox/" + c.source, c.body, c.headers, c.content_type);
    INFO(c.what << ": " << r.status << " " << r.body);
    CHECK(r.status == c.status);
    CHECK_FALSE(r.body.empty());  // says which check failed
  }
  CHECK(db.count("relay.inbox") == 0);
}

TEST_CASE("secrets and providers' signatures appear in no log line even at debug",
          "[integration][inbox]") {
  auto db = TestDatabase::create();
  const int port = FakeConsumer::unused_port();
  RelayProcess relay(inbox_yaml(port, provider_sources(), "", "log:\n  level: debug\n"), {},
                     {{"DATABASE_URL", db.url()}});
  REQUIRE(inbox_up(port));
  InboxClient client(port);
  const std::string s = stripe_event("evt_log", "cus_L");
  const std::string g = R"({"action":"edited"})";
  const std::string sh = R"({"id":2,"kind":"k"})";
  const Headers stripe_good = stripe_headers(kStripeNew, s);
  const Headers github_good = github_headers(kGithubSecret, g, "d-log");
  const Headers shopify_good = shopify_headers(kShopifySecret, sh, "w-log");
  CHECK(client.post("/inbox/stripe", s, stripe_good).status == 200);
  CHECK(client.post("/inbox/stripe", s, stripe_headers("whsec_wrong", s)).status == 401);
  CHECK(client.post("/inbox/github", g, github_good).status == 200);
  CHECK(client.post("/inbox/github", g, github_headers("wrong", g, "d-x")).status == 401);
  CHECK(client.post("/inbox/shopify", sh, shopify_good).status == 200);
  CHECK(client.post("/inbox/shopify", sh, shopify_headers("wrong", sh, "w-x")).status == 401);
  relay.signal(SIGTERM);
  CHECK(relay.wait_exit(60s) == 0);

  const std::string log = relay.log();
  REQUIRE_FALSE(log.empty());
  for (const std::string& secret :
       {kStripeOld, kStripeNew, kGithubSecret, kShopifySecret, kSecretA, stripe_good[0].second,
        github_good[0].second, shopify_good[0].second}) {
    INFO(secret);
    CHECK(log.find(secret) == std::string::npos);
  }
  // Nor stored: no signature header in any row.
  CHECK(db.count("relay.inbox WHERE headers::text ILIKE '%signature%' OR headers::text ILIKE "
                 "'%hmac%'") == 0);
  CHECK(db.count("relay.inbox") == 3);
}

TEST_CASE("a provider source's dead letters show in relay dlq and relay status like any other",
          "[integration][inbox]") {
  auto db = TestDatabase::create();
  FakeConsumer app{Reply{.status = 400}};
  const int port = FakeConsumer::unused_port();
  RelayProcess relay(
      inbox_yaml(port, {{.name = "gh",
                         .secrets = {kGithubSecret},
                         .deliver_to = app.url("/github"),
                         .extra = "      verify: github\n"
                                  "      delivery:\n"
                                  "        retry: { max_attempts: 2, initial_backoff: 20ms, "
                                  "max_backoff: 100ms }\n"}}),
      {}, {{"DATABASE_URL", db.url()}});
  REQUIRE(inbox_up(port));
  InboxClient client(port);
  const std::string g = R"({"action":"closed"})";
  REQUIRE(
      client.post("/inbox/gh", g, github_headers(kGithubSecret, g, "d-dead", "issues")).status ==
      200);
  REQUIRE(wait_until([&] { return db.count("relay.dead_letter") == 1; }, 60s));
  CHECK(db.value("SELECT event_id || ' ' || subscription FROM relay.dead_letter") ==
        "d-dead inbox:gh");
  // The app received the event as any inbox push: its id as Idempotency-Key.
  REQUIRE(app.count() >= 1);

  std::string list;
  REQUIRE(RelayProcess::run_cli({"dlq", "list", "--database-url", db.url()}, &list) == 0);
  INFO(list);
  CHECK(list.find("inbox:gh") != std::string::npos);
  CHECK(list.find("issues.closed") != std::string::npos);

  std::string status;
  REQUIRE(RelayProcess::run_cli({"status", "--config", relay.config_path(), "--output", "json"},
                                &status, 60s, {{"DATABASE_URL", db.url()}}) == 0);
  INFO(status);
  const auto doc = nlohmann::json::parse(status);
  bool found = false;
  for (const auto& sub : doc.at("subscriptions")) {
    if (sub.at("name") != "inbox:gh") continue;
    found = true;
    CHECK(sub.at("dead_letters") == 1);
  }
  CHECK(found);

  // Replayed once the app is fixed, it is processed like any inbox event.
  app.set_handler([](const ReceivedRequest&) { return Reply{}; });
  REQUIRE(RelayProcess::run_cli({"dlq", "replay", "--all", "--yes", "--database-url", db.url()},
                                &list) == 0);
  REQUIRE(
      wait_until([&] { return db.count("relay.inbox WHERE processed_at IS NOT NULL") == 1; }, 60s));
  CHECK(app.successful_ids() == std::vector<std::string>{"d-dead"});
}
