#include "relay/config/loader.h"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <span>
#include <string_view>
#include <system_error>
#include <utility>

#include "relay/common/base64.h"
#include "relay/common/check.h"
#include "relay/common/database_url.h"
#include "relay/common/duration.h"
#include "relay/common/endpoint.h"
#include "relay/common/http_header.h"
#include "relay/common/listen_address.h"
#include "relay/config/interpolate.h"

namespace relay::config {
namespace {

using namespace std::chrono_literals;
using Keys = std::span<const std::string_view>;

constexpr std::int64_t kMiB = 1024 * 1024;
// The key path of a problem with the whole document.
constexpr std::string_view kDocumentKey = "(document)";

// The schema: one table of keys per map, in the order of config.h (suggestions prefer earlier
// keys). The parser looks keys up only through these tables (Fields::find checks it), and
// known_config_keys() walks them, so the list of accepted keys cannot drift from the parser.
// "Unsupported" keys are documented in DESIGN.md but not implemented yet: they are rejected with
// their own message so nobody believes an ignored setting is in force.
enum class Shape {
  kScalar,      // a string, number or duration
  kList,        // a list of scalars
  kMap,         // a map with its own key table
  kListOfMaps,  // a list of maps, each with the same key table
  kStringMap,   // a map of free-form names to strings (subscriptions[].headers); no key table
};

struct KeySpec {
  std::string_view name;
  Shape shape = Shape::kScalar;
  std::span<const KeySpec> children = {};  // for kMap and kListOfMaps
};
using Specs = std::span<const KeySpec>;

constexpr KeySpec kDatabaseKeys[] = {{"url"}, {"connect_timeout"}};
constexpr KeySpec kWalKeys[] = {
    {"slot"}, {"publication"}, {"takeover_after"}, {"max_held_events"}, {"spill_after"}, {"status_interval"}};
constexpr KeySpec kSourceKeys[] = {
    {"mode"}, {"batch_size"}, {"poll_interval"}, {"lease"}, {"wal", Shape::kMap, kWalKeys}};
constexpr KeySpec kRetryKeys[] = {
    {"max_attempts"}, {"initial_backoff"}, {"max_backoff"}, {"max_age"}};
constexpr KeySpec kCircuitBreakerKeys[] = {{"failure_threshold"}, {"open_for"}, {"max_open_for"}};
constexpr KeySpec kRateLimitKeys[] = {{"events_per_second"}, {"burst"}};
constexpr KeySpec kBatchKeys[] = {{"max_events"}, {"max_bytes"}, {"linger"}};
constexpr KeySpec kTlsKeys[] = {{"ca_file"}, {"cert_file"}, {"key_file"}, {"verify"}};
constexpr KeySpec kSubscriptionKeys[] = {
    {"name"},
    {"topics", Shape::kList},
    {"endpoint"},
    {"format"},
    {"batch", Shape::kMap, kBatchKeys},
    {"tls", Shape::kMap, kTlsKeys},
    {"timeout"},
    {"connect_timeout"},
    {"max_in_flight"},
    {"retry", Shape::kMap, kRetryKeys},
    {"signing_secret"},  // a string or a list of strings
    {"max_response_bytes"},
    {"ordering"},
    {"on_dead_letter"},
    {"circuit_breaker", Shape::kMap, kCircuitBreakerKeys},
    {"rate_limit", Shape::kMap, kRateLimitKeys},
    {"headers", Shape::kStringMap},
};
// How relay pushes an inbox source's events to the app: the subscription keys that say how to send
// (all but name, topics, endpoint). parse_delivery() reads them from either table; a unit test
// checks this list stays a subset of kSubscriptionKeys.
constexpr KeySpec kDeliveryKeys[] = {
    {"format"},
    {"batch", Shape::kMap, kBatchKeys},
    {"tls", Shape::kMap, kTlsKeys},
    {"timeout"},
    {"connect_timeout"},
    {"max_in_flight"},
    {"retry", Shape::kMap, kRetryKeys},
    {"signing_secret"},
    {"max_response_bytes"},
    {"ordering"},
    {"on_dead_letter"},
    {"circuit_breaker", Shape::kMap, kCircuitBreakerKeys},
    {"rate_limit", Shape::kMap, kRateLimitKeys},
    {"headers", Shape::kStringMap},
};
constexpr std::size_t kMaxHeaders = 32;
constexpr std::size_t kMaxHeaderValueBytes = 4096;
constexpr KeySpec kLimitsKeys[] = {{"max_payload_bytes"}};
constexpr KeySpec kLogKeys[] = {{"level"}, {"format"}};
constexpr KeySpec kOpsKeys[] = {{"listen"}};
constexpr KeySpec kInboxSourceKeys[] = {
    {"name"},     {"signing_secret"}, {"unsigned"},   {"verify"},
    {"key_from"}, {"topic_from"},     {"deliver_to"}, {"delivery", Shape::kMap, kDeliveryKeys}};
constexpr KeySpec kInboxKeys[] = {{"listen"},
                                  {"deliver_to"},
                                  {"timestamp_tolerance"},
                                  {"retention"},
                                  {"workers"},
                                  {"max_queued_connections"},
                                  {"read_timeout"},
                                  {"idle_timeout"},
                                  {"max_header_bytes"},
                                  {"max_headers"},
                                  {"sources", Shape::kListOfMaps, kInboxSourceKeys}};
constexpr KeySpec kRootKeys[] = {
    {"database", Shape::kMap, kDatabaseKeys},
    {"source", Shape::kMap, kSourceKeys},
    {"subscriptions", Shape::kListOfMaps, kSubscriptionKeys},
    {"inbox", Shape::kMap, kInboxKeys},
    {"limits", Shape::kMap, kLimitsKeys},
    {"log", Shape::kMap, kLogKeys},
    {"ops", Shape::kMap, kOpsKeys},
    {"shutdown_timeout"},
};

constexpr std::string_view kModes[] = {"table", "wal"};
// inbox sources' `verify`, in VerifyScheme's order.
constexpr std::string_view kVerifySchemes[] = {"standard-webhooks", "stripe", "github", "shopify"};
constexpr VerifyScheme kVerifySchemeValues[] = {VerifyScheme::kStandardWebhooks,
                                                VerifyScheme::kStripe, VerifyScheme::kGithub,
                                                VerifyScheme::kShopify};
constexpr std::string_view kBooleans[] = {"true", "false"};
constexpr std::string_view kLogLevels[] = {"debug", "info", "warn", "error"};
constexpr std::string_view kLogFormats[] = {"text", "json"};

bool contains(Keys keys, std::string_view key) {
  return std::find(keys.begin(), keys.end(), key) != keys.end();
}

bool contains(Specs specs, std::string_view key) {
  return std::any_of(specs.begin(), specs.end(),
                     [&](const KeySpec& spec) { return spec.name == key; });
}

std::string join_path(const std::string& parent, std::string_view key) {
  if (parent.empty()) return std::string(key);
  return fmt::format("{}.{}", parent, key);
}

std::string_view describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Scalar:
      return "a scalar";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a map";
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      break;
  }
  return "nothing (null)";
}

// Optimal string alignment distance: Levenshtein plus adjacent transpositions ("tiemout").
std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::vector<std::size_t>> d(a.size() + 1, std::vector<std::size_t>(b.size() + 1));
  for (std::size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (std::size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.size()][b.size()];
}

std::optional<std::string_view> suggest(std::string_view key, Specs known) {
  std::optional<std::string_view> best;
  std::size_t best_distance = 3;  // suggest only within distance 2
  for (const KeySpec& spec : known) {
    const std::string_view candidate = spec.name;
    const std::size_t distance = edit_distance(key, candidate);
    if (distance < best_distance) {
      best = candidate;
      best_distance = distance;
    }
  }
  return best;
}

std::string quoted_list(Keys values) {
  std::string out;
  for (std::string_view v : values) {
    if (!out.empty()) out += ", ";
    out += fmt::format("\"{}\"", v);
  }
  return out;
}

bool is_valid_subscription_name(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
  });
}

// Returns why `listen` is not a usable "host:port" listen address, or nullopt: the listener's own
// parser decides, so check-config accepts exactly what run can bind.
std::optional<std::string> check_listen(std::string_view listen) {
  auto address = parse_listen_address(listen);
  if (!address) return address.error().message;
  return std::nullopt;
}

// Returns why `name` cannot name a replication slot or publication relay creates, or nullopt.
// Slot names allow only [a-z0-9_] (PostgreSQL refuses the rest); publications take the same set, so
// neither ever needs quoting.
std::optional<std::string> postgres_name_problem(std::string_view name) {
  const bool ok =
      !name.empty() && name.size() <= 63 && std::all_of(name.begin(), name.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
      });
  if (ok) return std::nullopt;
  return fmt::format("invalid name \"{}\": expected 1 to 63 of a-z, 0-9 and _", name);
}

// One key of a map (or one item of a list) and its value.
struct Field {
  std::string path;     // "subscriptions[0].retry.max_attempts"
  YAML::Mark key_mark;  // the key's position (the item's, for list items)
  YAML::Node value;

  // Where to point for a problem with the value. yaml-cpp gives an empty value ("key:" then a
  // newline) the mark of the next token, often on a later line, so use the key's mark for nulls.
  YAML::Mark mark() const { return value.IsNull() ? key_mark : value.Mark(); }
};

// The known keys of one map, first occurrence only.
class Fields {
 public:
  explicit Fields(Specs known) : known_(known) {}

  void add(std::string name, Field field) {
    items_.emplace_back(std::move(name), std::move(field));
  }
  // The field, or nullptr when the map does not set `name`.
  // REQUIRES: `name` is in the map's key table (else the parser reads a key nobody can set).
  const Field* find(std::string_view name) const {
    RELAY_CHECK(contains(known_, name), "config key looked up but missing from its key table");
    for (const auto& [key, field] : items_) {
      if (key == name) return &field;
    }
    return nullptr;
  }

 private:
  Specs known_;
  std::vector<std::pair<std::string, Field>> items_;
};

// Walks a parsed document against the schema, filling a Config and collecting every problem.
// Never throws for a well-formed YAML tree (every access checks the node type first).
class Parser {
 public:
  Parser(std::string file, const EnvLookup& env) : file_(std::move(file)), env_(env) {}
  Parser(const Parser&) = delete;
  Parser& operator=(const Parser&) = delete;

  void parse(const YAML::Node& root, Config& config);

  void error(const YAML::Mark& mark, std::string key_path, std::string message) {
    ConfigError e;
    e.file = file_;
    if (!mark.is_null() && mark.line >= 0) {
      e.line = mark.line + 1;
      e.column = mark.column + 1;
    }
    e.key_path = std::move(key_path);
    e.message = std::move(message);
    errors_.push_back(std::move(e));
  }

  // A problem with the document as a whole: key "(document)", and line 1, column 1 when there
  // is no better place (an empty file), so every error has the file:line:col: key: shape.
  void document_error(const YAML::Mark& mark, std::string message) {
    error(mark, std::string(kDocumentKey), std::move(message));
    ConfigError& e = errors_.back();
    if (e.line == 0) {
      e.line = 1;
      e.column = 1;
    }
  }

  std::vector<ConfigError>& errors() { return errors_; }

 private:
  Fields map_fields(const YAML::Node& map, const std::string& path, Specs known, Keys unsupported);
  std::optional<Fields> section(const Field& field, Specs known, Keys unsupported = {});
  void missing(const YAML::Node& parent, const std::string& parent_path, std::string_view key);

  std::optional<std::string> text(const Field& field, std::string_view expected);
  // A string that `check` accepts (check returns the problem, if any). With `empty_ok` an empty
  // string is taken as is, unchecked (a ${VAR:-} that turns the feature off).
  using Check = std::optional<std::string> (*)(std::string_view);
  void read_checked(const Field* field, std::string_view expected, Check check, bool empty_ok,
                    std::string& out);
  void read_enum(const Field* field, Keys allowed, Keys unsupported, std::string& out);
  // An http(s):// URL parsed by the one endpoint parser (common/endpoint.h), so check-config
  // accepts exactly what run can send to. With `empty_ok` an empty string leaves `out` unset.
  // Messages never quote the URL: it may carry credentials (http://user:password@host/).
  void read_endpoint(const Field* field, bool empty_ok, std::optional<Endpoint>& out);
  std::optional<std::int64_t> int_value(const Field& field, std::int64_t lo, std::int64_t hi);
  std::optional<Millis> duration_value(const Field& field, Millis lo, Millis hi);
  std::optional<double> number_value(const Field& field, double lo, double hi);

  template <typename T>
  void read_int(const Field* field, std::int64_t lo, std::int64_t hi, T& out) {
    if (field == nullptr) return;
    if (auto v = int_value(*field, lo, hi)) out = static_cast<T>(*v);
  }
  bool read_duration(const Field* field, Millis lo, Millis hi, Millis& out) {
    if (field == nullptr) return true;
    auto v = duration_value(*field, lo, hi);
    if (v) out = *v;
    return v.has_value();
  }

  void parse_subscriptions(const Field& field, bool may_be_empty,
                           std::vector<SubscriptionConfig>& out);
  void parse_subscription(const YAML::Node& node, const std::string& path, SubscriptionConfig& out);
  void parse_delivery(const Fields& fields, SubscriptionConfig& out);
  void parse_batch(const Field& field, std::optional<BatchConfig>& out);
  // Returns false when `tls` is not a map (already reported).
  bool parse_tls(const Field& field, TlsConfig& out);
  void read_bool(const Field* field, bool& out);
  bool secret_is_empty(const Field& field);
  void parse_inbox(const Field& field, Config& config);
  void parse_inbox_source(const YAML::Node& node, const std::string& path, InboxConfig& inbox,
                          Config& config);
  void read_unique_name(const YAML::Node& node, const std::string& path, const Fields& fields,
                        std::string_view kind, std::map<std::string, int>& seen, std::string& out);
  void parse_topics(const Field& field, std::vector<std::string>& out);
  void parse_retry(const Field& field, RetryConfig& out);
  void parse_circuit_breaker(const Field& field, CircuitBreakerConfig& out);
  void parse_rate_limit(const Field& field, std::optional<RateLimitConfig>& out);
  // `decode`: check each secret as Standard Webhooks signing reads it (whsec_<base64>); without
  // it any non-empty string is a secret (the provider schemes use them as written).
  void parse_signing_secrets(const Field& field, std::vector<std::string>& out, bool decode = true);
  std::optional<std::string> signing_secret(const Field& field, bool decode);
  void read_field_from(const Field* field, std::optional<FieldFrom>& out);
  void parse_headers(const Field& field, std::vector<std::pair<std::string, std::string>>& out);

  std::string file_;
  const EnvLookup& env_;
  std::vector<ConfigError> errors_;
  std::map<std::string, int> subscription_name_lines_;  // name -> 1-based line of its first use
  std::map<std::string, int> source_name_lines_;        // inbox source names, likewise
};

Fields Parser::map_fields(const YAML::Node& map, const std::string& path, Specs known,
                          Keys unsupported) {
  Fields fields(known);
  std::map<std::string, int> first_lines;
  // Iterate rather than look keys up: lookups hide duplicates (first wins) and unknown keys.
  for (auto it = map.begin(); it != map.end(); ++it) {
    // Copies, not references: `it->` yields a temporary proxy, and a reference into it dangles
    // (ASan: stack-use-after-scope). Nodes are cheap handles.
    const YAML::Node key = it->first;
    const YAML::Node value = it->second;
    if (!key.IsScalar()) {
      error(key.Mark(), path, fmt::format("keys must be plain strings, got {}", describe(key)));
      continue;
    }
    const std::string& name = key.Scalar();
    std::string key_path = join_path(path, name);
    const auto [first, inserted] = first_lines.emplace(name, key.Mark().line + 1);
    if (!inserted) {
      error(key.Mark(), std::move(key_path),
            fmt::format("duplicate key '{}' (first defined at line {})", name, first->second));
      continue;
    }
    if (contains(unsupported, name)) {
      error(key.Mark(), std::move(key_path),
            fmt::format("{} is not supported in this version", name));
      continue;
    }
    if (!contains(known, name)) {
      std::string message = fmt::format("unknown key '{}'", name);
      if (auto best = suggest(name, known)) message += fmt::format("; did you mean '{}'?", *best);
      error(key.Mark(), std::move(key_path), std::move(message));
      continue;
    }
    fields.add(name, Field{std::move(key_path), key.Mark(), value});
  }
  return fields;
}

// A section whose keys are all commented out parses as null: treat it as empty (defaults apply).
std::optional<Fields> Parser::section(const Field& field, Specs known, Keys unsupported) {
  if (field.value.IsNull()) return Fields(known);
  if (!field.value.IsMap()) {
    error(field.mark(), field.path, fmt::format("expected a map, got {}", describe(field.value)));
    return std::nullopt;
  }
  return map_fields(field.value, field.path, known, unsupported);
}

void Parser::missing(const YAML::Node& parent, const std::string& parent_path,
                     std::string_view key) {
  error(parent.Mark(), join_path(parent_path, key), fmt::format("missing required key '{}'", key));
}

// Returns the scalar's text after ${VAR} interpolation, or nullopt after reporting the problem.
// Never quotes the value: this serves signing_secret and database.url too.
std::optional<std::string> Parser::text(const Field& field, std::string_view expected) {
  if (!field.value.IsScalar()) {
    error(field.mark(), field.path,
          fmt::format("expected {}, got {}", expected, describe(field.value)));
    return std::nullopt;
  }
  auto interpolated = interpolate(field.value.Scalar(), env_);
  if (!interpolated) {
    error(field.mark(), field.path, interpolated.error().message);
    return std::nullopt;
  }
  return std::move(interpolated).value();
}

void Parser::read_checked(const Field* field, std::string_view expected, Check check, bool empty_ok,
                          std::string& out) {
  if (field == nullptr) return;
  auto v = text(*field, expected);
  if (!v) return;
  if (v->empty() && empty_ok) {
    out.clear();
  } else if (auto problem = check(*v)) {
    error(field->mark(), field->path, std::move(*problem));
  } else {
    out = std::move(*v);
  }
}

void Parser::read_endpoint(const Field* field, bool empty_ok, std::optional<Endpoint>& out) {
  if (field == nullptr) return;
  auto v = text(*field, "a string");
  if (!v) return;
  if (v->empty() && empty_ok) {
    out.reset();
    return;
  }
  auto endpoint = parse_endpoint(*v);
  if (!endpoint) {
    error(field->mark(), field->path, endpoint.error().message);
    return;
  }
  out = std::move(*endpoint);
}

void Parser::read_enum(const Field* field, Keys allowed, Keys unsupported, std::string& out) {
  if (field == nullptr) return;
  auto v = text(*field, "a string");
  if (!v) return;
  if (contains(allowed, *v)) {
    out = std::move(*v);
  } else if (contains(unsupported, *v)) {
    error(field->mark(), field->path,
          fmt::format("\"{}\" is not supported in this version (supported: {})", *v,
                      quoted_list(allowed)));
  } else {
    error(field->mark(), field->path,
          fmt::format("invalid value \"{}\": expected one of {}", *v, quoted_list(allowed)));
  }
}

std::optional<std::int64_t> Parser::int_value(const Field& field, std::int64_t lo,
                                              std::int64_t hi) {
  auto v = text(field, "an integer");
  if (!v) return std::nullopt;
  // Parse ourselves, after interpolation, in decimal only: yaml-cpp would accept 0x1F.
  std::int64_t n = 0;
  const char* begin = v->data();
  const char* end = begin + v->size();
  const auto [stop, ec] = std::from_chars(begin, end, n);
  if (v->empty() || stop != end || (ec != std::errc() && ec != std::errc::result_out_of_range)) {
    error(field.mark(), field.path, fmt::format("expected an integer, got \"{}\"", *v));
    return std::nullopt;
  }
  if (ec == std::errc::result_out_of_range || n < lo || n > hi) {
    error(field.mark(), field.path, fmt::format("must be between {} and {}, got {}", lo, hi, *v));
    return std::nullopt;
  }
  return n;
}

std::optional<Millis> Parser::duration_value(const Field& field, Millis lo, Millis hi) {
  auto v = text(field, "a duration such as 500ms, 5s or 10m");
  if (!v) return std::nullopt;
  auto d = parse_duration(*v);
  if (!d) {
    error(field.mark(), field.path, d.error().message);
    return std::nullopt;
  }
  if (*d < lo || *d > hi) {
    error(field.mark(), field.path,
          fmt::format("must be between {} and {}, got {}", format_duration(lo), format_duration(hi),
                      *v));
    return std::nullopt;
  }
  return *d;
}

// Returns a decimal number ("2", "0.5", "1e3"), or nullopt after reporting the problem.
std::optional<double> Parser::number_value(const Field& field, double lo, double hi) {
  auto v = text(field, "a number");
  if (!v) return std::nullopt;
  double n = 0;
  const char* begin = v->data();
  const char* end = begin + v->size();
  const auto [stop, ec] = std::from_chars(begin, end, n, std::chars_format::general);
  // from_chars accepts "inf" and "nan"; nobody means those here.
  if (v->empty() || stop != end || (ec != std::errc() && ec != std::errc::result_out_of_range) ||
      (ec == std::errc() && !std::isfinite(n))) {
    error(field.mark(), field.path, fmt::format("expected a number, got \"{}\"", *v));
    return std::nullopt;
  }
  if (ec == std::errc::result_out_of_range || n < lo || n > hi) {
    error(field.mark(), field.path, fmt::format("must be between {} and {}, got {}", lo, hi, *v));
    return std::nullopt;
  }
  return n;
}

void Parser::parse(const YAML::Node& root, Config& config) {
  const Fields fields = map_fields(root, "", kRootKeys, {});

  if (const Field* f = fields.find("database")) {
    if (auto db = section(*f, kDatabaseKeys)) {
      // The shapes libpq would refuse by echoing the URL, password included, are caught here
      // with the same check connect() makes (its message quotes nothing).
      read_checked(db->find("url"), "a string", database_url_problem, /*empty_ok=*/true,
                   config.database.url);
      // libpq counts whole seconds and raises anything below 2 to 2.
      read_duration(db->find("connect_timeout"), 2s, 1h, config.database.connect_timeout);
    }
  }
  if (const Field* f = fields.find("source")) {
    if (auto source = section(*f, kSourceKeys)) {
      read_enum(source->find("mode"), kModes, {}, config.source.mode);
      read_int(source->find("batch_size"), 1, 10'000, config.source.batch_size);
      read_duration(source->find("poll_interval"), 10ms, 1h, config.source.poll_interval);
      read_duration(source->find("lease"), 1s, 1h, config.source.lease);
      if (const Field* w = source->find("wal")) {
        if (auto wal = section(*w, kWalKeys)) {
          WalSourceConfig& out = config.source.wal;
          read_checked(wal->find("slot"), "a string", postgres_name_problem, false, out.slot);
          read_checked(wal->find("publication"), "a string", postgres_name_problem, false,
                       out.publication);
          read_duration(wal->find("takeover_after"), 1s, 10min, out.takeover_after);
          read_int(wal->find("max_held_events"), 100, 1'000'000, out.max_held_events);
          read_duration(wal->find("spill_after"), 0ms, 1h, out.spill_after);
          read_duration(wal->find("status_interval"), 100ms, 1min, out.status_interval);
        }
      }
    }
  }
  // A relay that only receives (an inbox) needs no subscription of its own.
  const bool has_inbox = fields.find("inbox") != nullptr;
  if (const Field* f = fields.find("subscriptions")) {
    parse_subscriptions(*f, has_inbox, config.subscriptions);
  } else if (!has_inbox) {
    error(root.Mark(), "subscriptions",
          "missing required key 'subscriptions' (at least one subscription, or an inbox)");
  }
  if (const Field* f = fields.find("inbox")) parse_inbox(*f, config);
  if (const Field* f = fields.find("limits")) {
    if (auto limits = section(*f, kLimitsKeys)) {
      read_int(limits->find("max_payload_bytes"), 1, 64 * kMiB, config.limits.max_payload_bytes);
    }
  }
  if (const Field* f = fields.find("log")) {
    if (auto log = section(*f, kLogKeys)) {
      read_enum(log->find("level"), kLogLevels, {}, config.log.level);
      read_enum(log->find("format"), kLogFormats, {}, config.log.format);
    }
  }
  if (const Field* f = fields.find("ops")) {
    if (auto ops = section(*f, kOpsKeys)) {
      // Empty means no ops listener, so ${OPS_LISTEN:-} can turn it off.
      read_checked(ops->find("listen"), "a string such as 127.0.0.1:9090", check_listen,
                   /*empty_ok=*/true, config.ops.listen);
    }
  }
  read_duration(fields.find("shutdown_timeout"), 0ms, 10min, config.shutdown_timeout);
}

// The required `name` of a subscription or inbox source: [a-z0-9_.-]{1,64}, unique among its
// `kind`. `seen` maps names to the line of their first use.
void Parser::read_unique_name(const YAML::Node& node, const std::string& path, const Fields& fields,
                              std::string_view kind, std::map<std::string, int>& seen,
                              std::string& out) {
  const Field* f = fields.find("name");
  if (f == nullptr) {
    missing(node, path, "name");
    return;
  }
  auto name = text(*f, "a string");
  if (!name) return;
  if (!is_valid_subscription_name(*name)) {
    error(f->mark(), f->path,
          fmt::format("invalid {} name \"{}\": use 1 to 64 characters from [a-z0-9_.-]", kind,
                      *name));
  } else if (auto [first, inserted] = seen.emplace(*name, f->mark().line + 1); !inserted) {
    error(f->mark(), f->path,
          fmt::format("duplicate {} name \"{}\" (first used at line {})", kind, *name,
                      first->second));
  } else {
    out = std::move(*name);
  }
}

void Parser::parse_subscriptions(const Field& field, bool may_be_empty,
                                 std::vector<SubscriptionConfig>& out) {
  if (!field.value.IsNull() && !field.value.IsSequence()) {
    error(field.mark(), field.path,
          fmt::format("expected a list of subscriptions, got {}", describe(field.value)));
    return;
  }
  if (field.value.IsNull() || field.value.size() == 0) {
    if (!may_be_empty) {
      error(field.mark(), field.path, "at least one subscription is required (or an inbox)");
    }
    return;
  }
  std::size_t index = 0;
  for (auto it = field.value.begin(); it != field.value.end(); ++it, ++index) {
    SubscriptionConfig subscription;
    const YAML::Node node = *it;
    parse_subscription(node, fmt::format("{}[{}]", field.path, index), subscription);
    out.push_back(std::move(subscription));
  }
}

void Parser::parse_subscription(const YAML::Node& node, const std::string& path,
                                SubscriptionConfig& out) {
  if (!node.IsMap()) {
    error(node.Mark(), path,
          fmt::format("expected a map describing a subscription, got {}", describe(node)));
    return;
  }
  const Fields fields = map_fields(node, path, kSubscriptionKeys, {});

  read_unique_name(node, path, fields, "subscription", subscription_name_lines_, out.name);
  if (const Field* f = fields.find("topics")) {
    parse_topics(*f, out.topics);
  } else {
    missing(node, path, "topics");
  }
  if (const Field* f = fields.find("endpoint")) {
    std::optional<Endpoint> endpoint;
    read_endpoint(f, /*empty_ok=*/false, endpoint);
    if (endpoint) out.endpoint = std::move(*endpoint);
  } else {
    missing(node, path, "endpoint");
  }
  parse_delivery(fields, out);
}

// The keys that say how to send, shared by subscriptions and inbox sources' `delivery`. Checks that
// need the endpoint (tls only for https://) run here too, so out.endpoint must be set first.
void Parser::parse_delivery(const Fields& fields, SubscriptionConfig& out) {
  std::string format(model::name_of(out.format));
  read_enum(fields.find("format"), model::kFormatNames, {}, format);
  out.format = model::format_named(format).value_or(out.format);
  if (const Field* f = fields.find("batch")) {
    parse_batch(*f, out.batch);
    if (out.batch && !model::can_batch(out.format)) {
      error(f->key_mark, f->path,
            "batches need format: cloudevents-json or protobuf (a binary body holds one event)");
    }
  }
  if (const Field* f = fields.find("tls")) {
    if (parse_tls(*f, out.tls) && !out.endpoint.url.empty() && !out.endpoint.tls) {
      error(f->key_mark, f->path, "tls applies to https:// endpoints only");
    }
  }
  read_duration(fields.find("timeout"), 1ms, 10min, out.timeout);
  read_duration(fields.find("connect_timeout"), 1ms, 1min, out.connect_timeout);
  read_int(fields.find("max_in_flight"), 1, 4096, out.max_in_flight);
  if (const Field* f = fields.find("retry")) parse_retry(*f, out.retry);
  if (const Field* f = fields.find("signing_secret"))
    parse_signing_secrets(*f, out.signing_secrets);
  read_int(fields.find("max_response_bytes"), 0, kMiB, out.max_response_bytes);
  std::string ordering(model::name_of(out.ordering));
  read_enum(fields.find("ordering"), model::kOrderingNames, {}, ordering);
  out.ordering = model::ordering_named(ordering).value_or(out.ordering);
  std::string on_dead_letter(model::name_of(out.on_dead_letter));
  read_enum(fields.find("on_dead_letter"), model::kOnDeadLetterNames, {}, on_dead_letter);
  out.on_dead_letter = model::on_dead_letter_named(on_dead_letter).value_or(out.on_dead_letter);
  if (const Field* f = fields.find("circuit_breaker")) {
    parse_circuit_breaker(*f, out.circuit_breaker);
  }
  if (const Field* f = fields.find("rate_limit")) parse_rate_limit(*f, out.rate_limit);
  if (const Field* f = fields.find("headers")) parse_headers(*f, out.headers);
}

// batch: {} (or all keys commented out) turns batching on with the defaults.
void Parser::parse_batch(const Field& field, std::optional<BatchConfig>& out) {
  auto batch = section(field, kBatchKeys);
  if (!batch) return;
  BatchConfig config;
  read_int(batch->find("max_events"), 1, 10'000, config.max_events);
  read_int(batch->find("max_bytes"), 1024, 64 * kMiB, config.max_bytes);
  read_duration(batch->find("linger"), 0ms, 10s, config.linger);
  out = config;
}

// Files are checked for readability now, so a typo fails `relay check-config` rather than the
// first delivery. Their contents (PEM) are checked when relay builds its TLS clients.
bool Parser::parse_tls(const Field& field, TlsConfig& out) {
  auto tls = section(field, kTlsKeys);
  if (!tls) return false;
  auto read_file = [&](const Field* f, std::string& path) {
    if (f == nullptr) return;
    auto v = text(*f, "a file path");
    if (!v) return;
    if (v->empty()) {
      error(f->mark(), f->path, "must not be empty (omit the key instead)");
      return;
    }
    std::FILE* file = std::fopen(v->c_str(), "rb");
    if (file == nullptr) {
      error(f->mark(), f->path,
            fmt::format("cannot read \"{}\": {}", *v, std::generic_category().message(errno)));
      return;
    }
    std::fclose(file);
    path = std::move(*v);
  };
  read_file(tls->find("ca_file"), out.ca_file);
  const Field* cert = tls->find("cert_file");
  const Field* key = tls->find("key_file");
  read_file(cert, out.cert_file);
  read_file(key, out.key_file);
  if ((cert == nullptr) != (key == nullptr)) {
    error(field.key_mark, field.path,
          "cert_file and key_file go together: a client certificate needs its private key");
  }
  read_bool(tls->find("verify"), out.verify);
  return true;
}

// True when a scalar signing_secret interpolates to "" (e.g. ${SECRET:-}); reports nothing.
bool Parser::secret_is_empty(const Field& field) {
  auto v = interpolate(field.value.Scalar(), env_);
  return v && v->empty();
}

void Parser::read_bool(const Field* field, bool& out) {
  if (field == nullptr) return;
  std::string value;
  read_enum(field, kBooleans, {}, value);
  if (!value.empty()) out = value == "true";
}

// One secret, checked as the signer will use it (so `relay check-config` catches a bad whsec_),
// or nullopt after reporting the problem. Messages never quote the secret.
std::optional<std::string> Parser::signing_secret(const Field& field, bool decode) {
  auto secret = text(field, "a string");
  if (!secret) return std::nullopt;
  if (!decode) {
    if (secret->empty()) {
      error(field.mark(), field.path, "a signing secret must not be empty");
      return std::nullopt;
    }
    return secret;
  }
  if (auto key = decode_signing_secret(*secret); !key) {
    error(field.mark(), field.path, key.error().message);
    return std::nullopt;
  }
  return secret;
}

// A string (empty = unsigned, so ${SECRET:-} can turn signing off) or a non-empty list of
// non-empty strings: one signature per secret, in this order, for rotation.
void Parser::parse_signing_secrets(const Field& field, std::vector<std::string>& out, bool decode) {
  if (field.value.IsSequence()) {
    if (field.value.size() == 0) {
      error(field.mark(), field.path,
            "must list at least one secret (omit signing_secret to send unsigned requests)");
      return;
    }
    std::vector<std::string> secrets;
    bool ok = true;
    std::size_t index = 0;
    for (auto it = field.value.begin(); it != field.value.end(); ++it, ++index) {
      const YAML::Node node = *it;
      const Field item{fmt::format("{}[{}]", field.path, index), node.Mark(), node};
      auto secret = signing_secret(item, decode);
      if (secret) secrets.push_back(std::move(*secret));
      ok = ok && secret.has_value();
    }
    if (ok) out = std::move(secrets);
    return;
  }
  if (!field.value.IsScalar()) {
    error(field.mark(), field.path,
          fmt::format("expected a string or a list of strings, got {}", describe(field.value)));
    return;
  }
  auto v = text(field, "a string");
  if (!v) return;
  if (v->empty()) {
    out.clear();
    return;
  }
  if (auto secret = signing_secret(field, decode)) out = {std::move(*secret)};
}

// headers: {Name: value, ...}. Names are not interpolated; values are. Values are often
// credentials (Authorization), so no message quotes one.
void Parser::parse_headers(const Field& field,
                           std::vector<std::pair<std::string, std::string>>& out) {
  if (field.value.IsNull()) return;
  if (!field.value.IsMap()) {
    error(field.mark(), field.path,
          fmt::format("expected a map of header names to values, got {}", describe(field.value)));
    return;
  }
  if (field.value.size() > kMaxHeaders) {
    error(field.key_mark, field.path,
          fmt::format("at most {} headers, got {}", kMaxHeaders, field.value.size()));
    return;
  }
  std::vector<std::pair<std::string, int>> seen;  // name -> 1-based line
  for (auto it = field.value.begin(); it != field.value.end(); ++it) {
    const YAML::Node key = it->first;
    const YAML::Node value = it->second;
    if (!key.IsScalar()) {
      error(key.Mark(), field.path,
            fmt::format("header names must be plain strings, got {}", describe(key)));
      continue;
    }
    const std::string& name = key.Scalar();
    const Field item{join_path(field.path, name), key.Mark(), value};
    if (!is_http_token(name)) {
      error(
          key.Mark(), item.path,
          fmt::format("invalid header name \"{}\": use letters, digits and !#$%&'*+-.^_`|~", name));
      continue;
    }
    if (is_relay_reserved_header(name)) {
      error(key.Mark(), item.path, fmt::format("{} is set by relay", name));
      continue;
    }
    const auto first = std::find_if(seen.begin(), seen.end(),
                                    [&](const auto& s) { return iequals_ascii(s.first, name); });
    if (first != seen.end()) {
      error(key.Mark(), item.path,
            fmt::format("duplicate header '{}' (first defined at line {})", name, first->second));
      continue;
    }
    seen.emplace_back(name, key.Mark().line + 1);
    auto v = text(item, "a string");
    if (!v) continue;
    if (!is_http_field_value(*v)) {
      error(item.mark(), item.path,
            "header value must not contain CR, LF, NUL or other control characters");
      continue;
    }
    if (v->size() > kMaxHeaderValueBytes) {
      error(item.mark(), item.path,
            fmt::format("header value is {} bytes; at most {}", v->size(), kMaxHeaderValueBytes));
      continue;
    }
    out.emplace_back(name, std::move(*v));
  }
}

void Parser::parse_inbox(const Field& field, Config& config) {
  auto fields = section(field, kInboxKeys);
  if (!fields) return;
  InboxConfig inbox;
  if (const Field* f = fields->find("listen")) {
    read_checked(f, "a string", check_listen, /*empty_ok=*/false, inbox.listen);
  } else {
    missing(field.value, field.path, "listen");
  }
  read_endpoint(fields->find("deliver_to"), /*empty_ok=*/true, inbox.deliver_to);
  read_duration(fields->find("timestamp_tolerance"), 1s, 24h, inbox.timestamp_tolerance);
  read_duration(fields->find("retention"), 1min, 365 * 24h, inbox.retention);
  read_int(fields->find("workers"), 1, 1024, inbox.workers);
  read_int(fields->find("max_queued_connections"), 0, 100'000, inbox.max_queued_connections);
  read_duration(fields->find("read_timeout"), 100ms, 10min, inbox.read_timeout);
  read_duration(fields->find("idle_timeout"), 100ms, 1h, inbox.idle_timeout);
  read_int(fields->find("max_header_bytes"), 1024, kMiB, inbox.max_header_bytes);
  read_int(fields->find("max_headers"), 1, 1000, inbox.max_headers);
  const Field* sources = fields->find("sources");
  if (sources == nullptr) {
    missing(field.value, field.path, "sources");
  } else if (!sources->value.IsSequence() || sources->value.size() == 0) {
    error(sources->mark(), sources->path,
          sources->value.IsSequence() || sources->value.IsNull()
              ? std::string("must list at least one source")
              : fmt::format("expected a list of sources, got {}", describe(sources->value)));
  } else {
    std::size_t index = 0;
    for (auto it = sources->value.begin(); it != sources->value.end(); ++it, ++index) {
      const YAML::Node node = *it;
      parse_inbox_source(node, fmt::format("{}[{}]", sources->path, index), inbox, config);
    }
  }
  config.inbox = std::move(inbox);
}

// One inbox source. A source with a push URL (its own deliver_to, else the inbox's) also becomes a
// subscription "inbox:<name>" appended to config.subscriptions, configured by its `delivery` map.
void Parser::parse_inbox_source(const YAML::Node& node, const std::string& path, InboxConfig& inbox,
                                Config& config) {
  if (!node.IsMap()) {
    error(node.Mark(), path,
          fmt::format("expected a map describing an inbox source, got {}", describe(node)));
    return;
  }
  const Fields fields = map_fields(node, path, kInboxSourceKeys, {});
  InboxSourceConfig source;
  read_unique_name(node, path, fields, "source", source_name_lines_, source.name);
  const Field* verify = fields.find("verify");
  std::string scheme;
  read_enum(verify, kVerifySchemes, {}, scheme);
  for (std::size_t i = 0; i < std::size(kVerifySchemes); ++i) {
    if (scheme == kVerifySchemes[i]) source.verify = kVerifySchemeValues[i];
  }
  const Field* secret = fields.find("signing_secret");
  if (secret != nullptr) {
    parse_signing_secrets(*secret, source.signing_secrets,
                          /*decode=*/source.verify == VerifyScheme::kStandardWebhooks);
  }
  const Field* unsigned_field = fields.find("unsigned");
  read_bool(unsigned_field, source.unsigned_requests);
  read_field_from(fields.find("key_from"), source.key_from);
  read_field_from(fields.find("topic_from"), source.topic_from);
  // No silent default to unsigned: a source says which it is. An empty secret (${X:-}) counts as
  // none, so a missing variable cannot quietly turn verification off.
  if (source.unsigned_requests && !source.signing_secrets.empty()) {
    error(unsigned_field->key_mark, unsigned_field->path,
          "a source is either unsigned or has a signing_secret, not both");
  } else if (source.unsigned_requests && verify != nullptr) {
    error(verify->key_mark, verify->path,
          "a source is either unsigned or verified (verify), not both");
  } else if (!source.unsigned_requests && source.signing_secrets.empty() &&
             (unsigned_field == nullptr || unsigned_field->value.Scalar() == "false") &&
             (secret == nullptr || (secret->value.IsScalar() && secret_is_empty(*secret)))) {
    const YAML::Mark mark = secret != nullptr ? secret->mark() : node.Mark();
    error(mark, join_path(path, "signing_secret"),
          "set signing_secret (requests are verified with it), or unsigned: true to accept "
          "unsigned requests");
  }
  read_endpoint(fields.find("deliver_to"), /*empty_ok=*/true, source.deliver_to);
  const std::optional<Endpoint>& push_url =
      source.deliver_to ? source.deliver_to : inbox.deliver_to;
  const Field* delivery = fields.find("delivery");
  if (push_url) {
    SubscriptionConfig push;
    push.name = "inbox:" + source.name;
    push.inbox_source = source.name;
    push.endpoint = *push_url;
    if (delivery != nullptr) {
      if (auto settings = section(*delivery, kDeliveryKeys)) parse_delivery(*settings, push);
    }
    if (!source.name.empty()) config.subscriptions.push_back(std::move(push));
  } else if (delivery != nullptr) {
    error(delivery->key_mark, delivery->path,
          "delivery settings need a push URL (deliver_to here or in inbox); without one the app "
          "claims events with relay.inbox_claim()");
  }
  inbox.sources.push_back(std::move(source));
}

// key_from / topic_from: a header name, or "body:" and an RFC 6901 JSON Pointer. The pointer is
// checked here as the inbox reads it: it starts with '/' and has '~' only in ~0 and ~1.
void Parser::read_field_from(const Field* field, std::optional<FieldFrom>& out) {
  if (field == nullptr) return;
  auto v = text(*field, "a string");
  if (!v) return;
  constexpr std::string_view kBody = "body:";
  if (v->rfind(kBody, 0) == 0) {
    std::string pointer = v->substr(kBody.size());
    if (pointer.empty() || pointer.front() != '/') {
      error(field->mark(), field->path,
            "a JSON Pointer starts with '/' (RFC 6901), e.g. body:/data/object/customer");
      return;
    }
    for (std::size_t i = 0; i < pointer.size(); ++i) {
      if (pointer[i] != '~') continue;
      if (i + 1 >= pointer.size() || (pointer[i + 1] != '0' && pointer[i + 1] != '1')) {
        error(field->mark(), field->path,
              fmt::format("invalid JSON Pointer \"{}\": '~' must be followed by 0 or 1 (~0 is "
                          "'~', ~1 is '/')",
                          escape_control_characters(pointer)));
        return;
      }
    }
    out = FieldFrom{.header = "", .pointer = std::move(pointer)};
    return;
  }
  if (!is_http_token(*v)) {
    error(field->mark(), field->path,
          "expected a header name (an HTTP token such as X-Customer-Id) or body:<JSON Pointer> "
          "such as body:/data/object/customer");
    return;
  }
  out = FieldFrom{.header = std::move(*v), .pointer = ""};
}

void Parser::parse_topics(const Field& field, std::vector<std::string>& out) {
  if (!field.value.IsNull() && !field.value.IsSequence()) {
    error(field.mark(), field.path,
          fmt::format("expected a list of topic globs such as [\"order.*\"], got {}",
                      describe(field.value)));
    return;
  }
  if (field.value.IsNull() || field.value.size() == 0) {
    error(field.mark(), field.path, "must list at least one topic");
    return;
  }
  std::size_t index = 0;
  for (auto it = field.value.begin(); it != field.value.end(); ++it, ++index) {
    const YAML::Node node = *it;
    const Field item{fmt::format("{}[{}]", field.path, index), node.Mark(), node};
    auto topic = text(item, "a string");
    if (!topic) continue;
    if (topic->empty()) {
      error(item.mark(), item.path, "topic must not be empty");
      continue;
    }
    out.push_back(std::move(*topic));
  }
}

void Parser::parse_retry(const Field& field, RetryConfig& out) {
  auto retry = section(field, kRetryKeys);
  if (!retry) return;
  read_int(retry->find("max_attempts"), 1, 1000, out.max_attempts);
  const Field* initial = retry->find("initial_backoff");
  const Field* max = retry->find("max_backoff");
  const bool initial_ok = read_duration(initial, 1ms, 1h, out.initial_backoff);
  const bool max_ok = read_duration(max, 1ms, 7 * 24h, out.max_backoff);
  read_duration(retry->find("max_age"), 1s, 30 * 24h, out.max_age);
  // Checked only when both values are good, so one mistake is not reported twice. Defaults can
  // trip it too (initial_backoff: 20m against the default 10m), so point at whichever key is set.
  if (initial_ok && max_ok && out.max_backoff < out.initial_backoff) {
    const Field* at = max != nullptr ? max : initial;
    error(at->mark(), join_path(field.path, "max_backoff"),
          fmt::format("max_backoff ({}) must be at least initial_backoff ({})",
                      format_duration(out.max_backoff), format_duration(out.initial_backoff)));
  }
}

void Parser::parse_circuit_breaker(const Field& field, CircuitBreakerConfig& out) {
  auto breaker = section(field, kCircuitBreakerKeys);
  if (!breaker) return;
  read_int(breaker->find("failure_threshold"), 1, 1000, out.failure_threshold);
  const Field* open_for = breaker->find("open_for");
  const Field* max_open_for = breaker->find("max_open_for");
  const bool open_ok = read_duration(open_for, 10ms, 1h, out.open_for);
  const bool max_ok = read_duration(max_open_for, 10ms, 24h, out.max_open_for);
  // Unset, max_open_for follows a longer open_for (no doubling) rather than reject it.
  if (open_ok && max_open_for == nullptr && out.max_open_for < out.open_for)
    out.max_open_for = out.open_for;
  // As for retry: only when both are good, pointing at whichever key is set.
  if (open_ok && max_ok && out.max_open_for < out.open_for) {
    const Field* at = max_open_for != nullptr ? max_open_for : open_for;
    error(at->mark(), join_path(field.path, "max_open_for"),
          fmt::format("max_open_for ({}) must be at least open_for ({})",
                      format_duration(out.max_open_for), format_duration(out.open_for)));
  }
}

// A present rate_limit needs events_per_second; a null one (keys all commented out) is as if
// absent: no limit, which is the default.
void Parser::parse_rate_limit(const Field& field, std::optional<RateLimitConfig>& out) {
  if (field.value.IsNull()) return;
  auto limit = section(field, kRateLimitKeys);
  if (!limit) return;
  RateLimitConfig config;
  bool ok = true;
  if (const Field* f = limit->find("events_per_second")) {
    auto rate = number_value(*f, 0.001, 1e6);
    if (rate) {
      config.events_per_second = *rate;
    } else {
      ok = false;
    }
  } else {
    missing(field.value, field.path, "events_per_second");
    ok = false;
  }
  if (const Field* f = limit->find("burst")) {
    auto burst = int_value(*f, 1, 1'000'000);
    if (burst) {
      config.burst = static_cast<int>(*burst);
    } else {
      ok = false;
    }
  } else if (ok) {
    config.burst = std::max(1, static_cast<int>(std::ceil(config.events_per_second)));
  }
  if (ok) out = config;
}

void add_keys(Specs specs, const std::string& parent, std::vector<std::string>& out) {
  for (const KeySpec& spec : specs) {
    std::string path = join_path(parent, spec.name);
    out.push_back(path);
    if (spec.shape == Shape::kMap) add_keys(spec.children, path, out);
    if (spec.shape == Shape::kListOfMaps) add_keys(spec.children, path + "[]", out);
  }
}

}  // namespace

std::vector<std::string> known_config_keys() {
  std::vector<std::string> keys;
  add_keys(kRootKeys, "", keys);
  return keys;
}

EnvLookup process_env() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* value = std::getenv(name.c_str());
    if (value == nullptr) return std::nullopt;
    return std::string(value);
  };
}

std::variant<Config, std::vector<ConfigError>> parse_config(const std::string& text,
                                                            const std::string& path,
                                                            const EnvLookup& env) {
  Parser parser(path, env);
  Config config;
  config.path = path;
  // yaml-cpp reports syntax errors, and in theory anything unexpected, by throwing: this is the
  // library edge where those exceptions stop.
  try {
    const std::vector<YAML::Node> documents = YAML::LoadAll(text);
    if (documents.empty() || documents.front().IsNull()) {
      parser.document_error(YAML::Mark::null_mark(),
                            "the file is empty (at least one subscription is required)");
    } else if (!documents.front().IsMap()) {
      parser.document_error(documents.front().Mark(),
                            fmt::format("expected a map of settings at the top level, got {}",
                                        describe(documents.front())));
    } else {
      if (documents.size() > 1) {
        parser.document_error(documents[1].Mark(),
                              "more than one YAML document (\"---\"); put all settings in one");
      }
      parser.parse(documents.front(), config);
    }
  } catch (const YAML::ParserException& e) {
    // The mark is 0-based; error() makes it 1-based. A syntax error ends the walk: nothing after it
    // can be trusted.
    parser.document_error(e.mark, fmt::format("YAML syntax error: {}", e.msg));
  } catch (const YAML::Exception& e) {
    parser.document_error(e.mark, fmt::format("cannot read the YAML: {}", e.msg));
  }
  std::vector<ConfigError>& errors = parser.errors();
  if (errors.empty()) return config;
  // The walk reports a map's key problems before its values'; people read files top to bottom.
  std::stable_sort(errors.begin(), errors.end(), [](const ConfigError& a, const ConfigError& b) {
    return std::pair(a.line, a.column) < std::pair(b.line, b.column);
  });
  return std::move(errors);
}

std::variant<Config, std::vector<ConfigError>> load_config(const std::string& path,
                                                           const EnvLookup& env) {
  auto unreadable = [&](int err) {
    return std::vector<ConfigError>{ConfigError{
        .file = path,
        .line = 0,
        .column = 0,
        .key_path = "",
        .message =
            fmt::format("cannot read the config file: {}", std::generic_category().message(err))}};
  };
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) return unreadable(errno);
  std::string text;
  char buffer[8192];
  std::size_t n = 0;
  errno = 0;
  while ((n = std::fread(buffer, 1, sizeof buffer, file)) > 0) text.append(buffer, n);
  // Reading a directory "opens" fine and fails here with EISDIR.
  const int read_error = std::ferror(file) ? (errno != 0 ? errno : EIO) : 0;
  std::fclose(file);
  if (read_error != 0) return unreadable(read_error);
  return parse_config(text, path, env);
}

}  // namespace relay::config
