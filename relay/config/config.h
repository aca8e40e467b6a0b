#pragma once
// Plain structs for relay.yaml. One field per config key, named as the key. Defaults here are the
// documented defaults; load_config() fills in what the file sets and validates ranges.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "relay/common/duration.h"
#include "relay/common/endpoint.h"
#include "relay/model/modes.h"

namespace relay::config {

struct DatabaseConfig {
  std::string url;  // required unless --database-url or DATABASE_URL is given
  // How long opening one connection may take, 2s..1h (whole seconds, rounded up). libpq alone
  // waits forever for a server that accepts TCP but never answers.
  Millis connect_timeout{10'000};
};

// source.mode: wal. Names are PostgreSQL identifiers relay creates: [a-z0-9_]{1,63}.
struct WalSourceConfig {
  std::string slot = "relay_outbox";         // the logical replication slot relay reads
  std::string publication = "relay_outbox";  // FOR TABLE relay.outbox WITH (publish = 'insert')
  // A standby relay takes the slot over when the active one has not renewed its claim on it for
  // this long (the active one renews every third of it), 1s..10m.
  Millis takeover_after{10'000};
  // Events read from the stream and not yet handed to the pipeline, 100..1,000,000. When it is
  // full relay stops reading the stream (PostgreSQL keeps the rest in its WAL) until there is room,
  // or, for events that wait behind an earlier event of their key on its way to the consumer for
  // longer than spill_after, moves those events to relay.delivery and reads on.
  int max_held_events = 10'000;
  // How long a key's event may be on its way before its key's waiting events are moved out of a
  // full memory, 0..1h. Short requests (the usual case) never spill.
  Millis spill_after{1000};
  // Standby status updates go out at least this often, 100ms..1m (below wal_sender_timeout).
  Millis status_interval{10'000};
};

struct SourceConfig {
  std::string mode = "table";  // "table" (claims with leases) or "wal" (logical replication)
  int batch_size = 500;        // events per claim, 1..10000
  Millis poll_interval{1000};  // safety-net poll when no wake-up arrives, 10ms..1h
  Millis lease{60'000};        // how long a claim is held before another relay may take it, 1s..1h
  WalSourceConfig wal;         // read only when mode is "wal"
};

struct RetryConfig {
  int max_attempts = 12;        // 1..1000, counting the first attempt
  Millis initial_backoff{500};  // 1ms..1h
  Millis max_backoff{600'000};  // >= initial_backoff, ..7d
  Millis max_age{86'400'000};   // give up on an event failing for longer than this, 1s..30d
};

struct CircuitBreakerConfig {
  int failure_threshold = 5;  // consecutive retryable failures that open the breaker, 1..1000
  Millis open_for{10'000};    // first open period, 10ms..1h
  // Open periods double on repeated trips up to this, >= open_for, ..24h; when unset it is 30 s, or
  // open_for if that is longer. It is also the longest an endpoint that came back waits for its
  // probe: 30 s by default, at the price of one probe per 30 s to an endpoint that stays down.
  Millis max_open_for{30'000};
};

// Token bucket per subscription: at most `events_per_second` on average, bursts up to `burst`.
struct RateLimitConfig {
  double events_per_second = 0;  // 0.001..1e6
  int burst = 1;                 // 1..1e6; defaults to max(1, ceil(events_per_second)) when omitted
};

// Opt-in batching: a lane sends up to max_events events (at most max_bytes of body) in one request,
// waiting at most `linger` for a batch to fill. Needs format cloudevents-json or protobuf.
struct BatchConfig {
  int max_events = 100;                // 1..10000
  std::int64_t max_bytes = 1'048'576;  // body bytes of one batch request, 1KiB..64MiB
  Millis linger{10};                   // 0..10s
};

// TLS for https:// endpoints. Certificate and host name verification are on unless verify: false.
struct TlsConfig {
  std::string ca_file;    // PEM CA bundle to verify the server with; empty = the system store
  std::string cert_file;  // client certificate (PEM) for mTLS; set together with key_file
  std::string key_file;   // its private key (PEM)
  bool verify = true;     // false: no verification at all (testing only; logged as a warning)
};

struct SubscriptionConfig {
  std::string name;                 // required, [a-z0-9_.-]+, unique
  std::vector<std::string> topics;  // required, non-empty list of globs
  Endpoint endpoint;                // required, http:// or https:// URL (parsed by the loader)
  model::Format format = model::Format::kBinary;  // binary | cloudevents-json | protobuf
  std::optional<BatchConfig> batch;               // absent: one event per request
  TlsConfig tls;                                  // used for https:// endpoints only
  Millis timeout{5000};                           // whole-request timeout, 1ms..10m
  Millis connect_timeout{2000};                   // TCP connect timeout, 1ms..1m
  int max_in_flight = 64;                         // concurrent requests to this endpoint, 1..4096
  RetryConfig retry;
  // Key "signing_secret": one string or a list (rotation: one signature per secret, in this order).
  // Each is "whsec_<base64>" or raw. Empty = unsigned (a single empty string also means unsigned).
  std::vector<std::string> signing_secrets;
  // Key "headers": extra request headers (name -> value) in file order. Names are HTTP tokens and
  // never relay's own headers; values have no CR/LF/NUL. Values may be secrets: never log them.
  std::vector<std::pair<std::string, std::string>> headers;
  std::int64_t max_response_bytes = 4096;  // response body kept for the dead letter, 0..1MiB
  model::Ordering ordering = model::Ordering::kPerKey;              // per_key | none
  model::OnDeadLetter on_dead_letter = model::OnDeadLetter::kSkip;  // skip | block
  CircuitBreakerConfig circuit_breaker;
  std::optional<RateLimitConfig> rate_limit;  // absent: unlimited
  // Set on the subscriptions the loader synthesizes for inbox sources with a deliver_to URL:
  // name "inbox:<source>", no topics (no outbox event matches), endpoint = deliver_to. Their work
  // reaches the pipeline only through relay.delivery rows the inbox writes.
  std::string inbox_source;
};

// An inbox source's `verify`: how its sender signs requests, and where the event id and topic are.
enum class VerifyScheme {
  kStandardWebhooks,  // "standard-webhooks": webhook-* (or svix-*) headers; id webhook-id
  kStripe,            // "stripe": Stripe-Signature t=,v1=; id and topic the body's id and type
  kGithub,            // "github": X-Hub-Signature-256 sha256=; id X-GitHub-Delivery
  kShopify,           // "shopify": X-Shopify-Hmac-Sha256 (base64); id X-Shopify-Webhook-Id
};
// The config spelling: "standard-webhooks", "stripe", "github", "shopify".
const char* to_string(VerifyScheme scheme);

// An inbox source's key_from / topic_from: a request header, or (written "body:<pointer>") an
// RFC 6901 JSON Pointer into a JSON body. Exactly one of the two is set.
struct FieldFrom {
  std::string header;   // a header name (an HTTP token), as written
  std::string pointer;  // "/data/object/customer"; starts with '/', '~' only as ~0 or ~1
  bool from_body() const { return !pointer.empty(); }
  // "body:/data/object/customer" or the header name, for messages.
  std::string describe() const { return from_body() ? "body:" + pointer : header; }
};

// One sender allowed to POST to /inbox/{name}.
struct InboxSourceConfig {
  std::string name;  // required, [a-z0-9_.-]+, unique among sources
  // Key "signing_secret": one string or a list (rotation: a request is accepted when any of its
  // signatures matches any of these). Required unless unsigned_requests is true. For
  // standard-webhooks "whsec_<base64>" is decoded (anything else is raw bytes); the provider
  // schemes use each secret exactly as written (Stripe's whsec_… included).
  std::vector<std::string> signing_secrets;
  bool unsigned_requests = false;  // key "unsigned": accept requests without any signature check
  VerifyScheme verify = VerifyScheme::kStandardWebhooks;  // not set together with unsigned
  std::optional<FieldFrom> key_from;    // unset: the scheme's key (ce-subject; none for providers)
  std::optional<FieldFrom> topic_from;  // unset: the scheme's topic
  // Push target; unset = inbox.deliver_to; both unset = the app claims with relay.inbox_claim().
  std::optional<Endpoint> deliver_to;
};

struct InboxConfig {
  std::string listen;                      // required "host:port"; port 0 = any
  std::optional<Endpoint> deliver_to;      // default push URL for sources that set none
  Millis timestamp_tolerance{300'000};     // |now - webhook-timestamp| allowed, 1s..1d
  Millis retention{7 * 86'400'000LL};      // processed rows are deleted after this, 1m..365d
  int workers = 16;                        // request handler threads, 1..1024
  int max_queued_connections = 64;         // accepted, waiting for a worker; beyond: 503, 0..100000
  Millis read_timeout{10'000};             // a whole request (head and body) must arrive in this
  Millis idle_timeout{30'000};             // keep-alive connection idle limit
  std::int64_t max_header_bytes = 16'384;  // request line + headers, 1KiB..1MiB
  int max_headers = 64;                    // header lines per request, 1..1000
  std::vector<InboxSourceConfig> sources;  // at least one
};

struct OpsConfig {
  std::string listen;  // "host:port" for /metrics /healthz /readyz /status; empty = no ops
                       // listener; port 0 = any
};

struct LimitsConfig {
  std::int64_t max_payload_bytes = 1'048'576;  // 1..64MiB
};

struct LogConfig {
  std::string level = "info";   // debug | info | warn | error
  std::string format = "text";  // text | json
};

struct Config {
  std::string path;  // the file it was loaded from, for messages
  DatabaseConfig database;
  SourceConfig source;
  // At least one, unless an inbox is configured. Includes the synthesized inbox:<source> push
  // subscriptions (inbox_source set) after the configured ones.
  std::vector<SubscriptionConfig> subscriptions;
  std::optional<InboxConfig> inbox;  // absent: no inbox listener
  LimitsConfig limits;
  LogConfig log;
  OpsConfig ops;
  Millis shutdown_timeout{25'000};  // 0..10m
};

// One problem found in a config file. line/column are 1-based; 0 when the problem has no place in
// the file (the file cannot be read). Problems with the file as a whole (empty, a YAML syntax
// error, several documents, a top level that is not a map) have the key path "(document)".
struct ConfigError {
  std::string file;
  int line = 0;
  int column = 0;
  std::string key_path;  // dotted, with list indexes: "subscriptions[0].retry.max_attempts"
  std::string message;
  // "relay.yaml:12:5: subscriptions[0].timeout: invalid duration \"5x\" ..." on one line: control
  // characters in the file name, key or message (they come from the file) are escaped.
  std::string to_string() const;
};

// `text` with control characters escaped ("\n", "\r", "\t", "\x1b", C1 controls as "\u0085"), so
// text from a config file cannot start a line of its own in relay's output. Other bytes unchanged.
std::string escape_control_characters(std::string_view text);

}  // namespace relay::config
