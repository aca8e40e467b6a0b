// `relay status`: what is waiting where, read from the database, plus breaker and in-flight state
// from a running relay's ops listener (GET /status) when it can be reached. The ops part is best
// effort: an unreachable listener is reported and the command still succeeds.

#include <fmt/format.h>
#include <httplib.h>

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>

#include "relay/admin/commands.h"
#include "relay/admin/format.h"
#include "relay/common/endpoint.h"
#include "relay/common/glob.h"
#include "relay/common/listen_address.h"
#include "relay/common/time_format.h"
#include "relay/model/status_document.h"
#include "relay/store/status_store.h"

namespace relay::admin {
namespace {

using Json = nlohmann::ordered_json;
using std::chrono::duration_cast;
using std::chrono::milliseconds;

struct OpsUrl {
  std::string url;   // as shown to the operator
  std::string host;  // for the client: no brackets around IPv6
  int port = 0;
  std::string path;  // the /status path (a prefix from the URL kept)
};

// "http://HOST[:PORT][/prefix]" (read by the one endpoint parser, common/endpoint.h); nullopt if
// it is not such a URL.
std::optional<OpsUrl> parse_ops_url(const std::string& url) {
  auto endpoint = parse_endpoint(url);
  if (!endpoint || endpoint->tls) return std::nullopt;  // the ops listener speaks plain HTTP
  OpsUrl out;
  std::string path = endpoint->path;
  while (!path.empty() && path.back() == '/') path.pop_back();
  if (path.ends_with("/status")) path.resize(path.size() - 7);
  out.path = path + "/status";
  out.host = std::move(endpoint->host);
  out.port = endpoint->port;
  out.url = url;
  return out;
}

// ops.listen "HOST:PORT" -> "http://HOST:PORT", with a wildcard host replaced by loopback (the
// operator runs `relay status` beside relay). Empty if it names no fixed port.
std::string url_from_listen(const std::string& listen) {
  auto parsed = parse_listen_address(listen);
  if (!parsed || parsed->port == 0) return "";
  std::string host = parsed->host;
  // The loader checked ops.listen with the same parser: the host is never empty.
  if (host == "0.0.0.0") host = "127.0.0.1";
  if (host == "::") host = "::1";
  if (host.find(':') != std::string::npos) host = "[" + host + "]";
  return "http://" + host + ":" + std::to_string(parsed->port);
}

struct OpsState {
  std::string url;
  bool reachable = false;
  std::string problem;             // why not, when !reachable or the answer was unusable
  model::StatusDocument document;  // GET /status, when reachable
  std::map<std::string, model::SubscriptionStatus> subscriptions;
};

OpsState fetch_ops(const std::string& url) {
  OpsState s;
  s.url = url;
  auto parsed = parse_ops_url(url);
  if (!parsed) {
    s.problem = "not an http://HOST:PORT URL";
    return s;
  }
  httplib::Client client(parsed->host, parsed->port);
  client.set_connection_timeout(2, 0);
  client.set_read_timeout(3, 0);
  client.set_write_timeout(3, 0);
  auto res = client.Get(parsed->path.c_str());
  if (!res) {
    switch (res.error()) {
      case httplib::Error::Connection:
        s.problem = "cannot connect";
        break;
      case httplib::Error::ConnectionTimeout:
        s.problem = "connect timed out";
        break;
      case httplib::Error::Read:
        s.problem = "no answer";
        break;
      default:
        s.problem = "HTTP client error: " + httplib::to_string(res.error());
        break;
    }
    return s;
  }
  if (res->status != 200) {
    s.problem = fmt::format("GET {} answered HTTP {}", parsed->path, res->status);
    return s;
  }
  auto doc = model::parse_status_document(res->body);
  if (!doc) {
    s.problem = fmt::format("GET {}: {}", parsed->path, doc.error().message);
    return s;
  }
  s.reachable = true;
  s.document = std::move(*doc);
  for (const auto& sub : s.document.subscriptions) {
    if (!sub.name.empty()) s.subscriptions[sub.name] = sub;
  }
  return s;
}

// The breaker as /status has it, keys in the order /status writes them.
Json breaker_json(const model::BreakerStatus& b) {
  return Json{{"consecutive_failures", b.consecutive_failures},
              {"open_for_ms", b.open_for_ms},
              {"reopens_in_ms", b.reopens_in_ms},
              {"state", model::name_of(b.state)},
              {"trips", b.trips}};
}

Json rate_limit_json(const model::SubscriptionStatus& sub) {
  if (!sub.rate_tokens_available) return Json(nullptr);
  return Json{{"tokens_available", *sub.rate_tokens_available}};
}

std::string breaker_text(const model::BreakerStatus& b) {
  std::string out(model::name_of(b.state));
  std::replace(out.begin(), out.end(), '_', '-');  // half_open -> half-open
  if (b.state == model::BreakerState::kOpen) {
    out += " (half-open in " + format_age(milliseconds(b.reopens_in_ms)) + ")";
  } else if (b.consecutive_failures > 0) {
    out += fmt::format(" ({} failing)", b.consecutive_failures);
  }
  if (b.trips > 0) out += fmt::format(", {} trip{}", b.trips, b.trips == 1 ? "" : "s");
  return out;
}

std::string rate_limit_text(const model::SubscriptionStatus& sub) {
  if (!sub.rate_tokens_available) return "-";
  return truncate_chars(printable(rate_limit_json(sub).dump()), 40);
}

std::string when_or(const std::optional<WallTime>& t, WallTime now, const char* none) {
  return t ? format_ago(*t, now) : none;
}

// A retry time in the past means the retry is due and waiting for a relay to take it.
std::string next_retry(const std::optional<WallTime>& t, WallTime now) {
  if (!t) return "-";
  return *t <= now ? "due " + format_ago(*t, now) : format_ago(*t, now);
}

Json time_json(const std::optional<WallTime>& t) {
  return t ? Json(format_rfc3339(*t, 6)) : Json(nullptr);
}

}  // namespace

int run_status(const std::string& database_url, const StatusOptions& o, Console& c) {
  if (o.output != "table" && o.output != "json") {
    c.err << "relay status: --output must be table or json, not \"" << printable(o.output)
          << "\"\n";
    return 2;
  }
  std::string ops_url = o.ops_url;
  std::string ops_note;
  if (ops_url.empty() && o.config != nullptr && !o.config->ops.listen.empty()) {
    ops_url = url_from_listen(o.config->ops.listen);
    if (ops_url.empty())
      ops_note = "ops.listen " + o.config->ops.listen + " names no fixed port; pass --ops-url";
  } else if (ops_url.empty()) {
    ops_note = "no --ops-url and no ops.listen in a --config";
  }
  if (!o.ops_url.empty() && !parse_ops_url(o.ops_url)) {
    c.err << "relay status: --ops-url: expected http://HOST:PORT, got \"" << printable(o.ops_url)
          << "\"\n";
    return 2;
  }

  auto snap = store::read_status(database_url);
  if (!snap) {
    const std::string message = one_line_error(snap.error().message);
    if (snap.error().code == ErrorCode::kUnavailable) {
      c.err << "relay status: database unreachable: " << message << '\n';
    } else if (message.find("relay.") != std::string::npos &&
               message.find("does not exist") != std::string::npos) {
      c.err << "relay status: " << message << " (has `relay migrate` been run on this database?)\n";
    } else {
      c.err << "relay status: " << message << '\n';
    }
    return 1;
  }
  OpsState ops;
  if (!ops_url.empty()) ops = fetch_ops(ops_url);

  // Subscriptions: configured ones first (in config order), then any other name the database or
  // the ops listener knows ('*' and '(none)' dead letters included).
  std::vector<std::string> names;
  std::set<std::string> seen;
  auto add_name = [&](const std::string& n) {
    if (seen.insert(n).second) names.push_back(n);
  };
  if (o.config != nullptr) {
    for (const auto& s : o.config->subscriptions) add_name(s.name);
  }
  std::map<std::string, const store::SubscriptionBacklog*> backlog;
  for (const auto& s : snap->subscriptions) {
    backlog[s.name] = &s;
    add_name(s.name);
  }
  for (const auto& [n, _] : ops.subscriptions) add_name(n);

  auto matching = [&](const std::string& topic) {
    std::vector<std::string> out;
    if (o.config == nullptr) return out;
    for (const auto& s : o.config->subscriptions) {
      for (const auto& g : s.topics) {
        if (glob_match(g, topic)) {
          out.push_back(s.name);
          break;
        }
      }
    }
    return out;
  };

  if (o.output == "json") {
    Json doc;
    doc["now"] = format_rfc3339(c.now, 6);
    Json topics = Json::array();
    std::int64_t pending = 0;
    for (const auto& t : snap->topics) {
      pending += t.pending;
      Json j{{"topic", t.topic},
             {"pending", t.pending},
             {"due", t.pending - t.delayed},
             {"delayed", t.delayed},
             {"claimed", t.claimed},
             {"oldest_due_created_at", time_json(t.oldest_due_created_at)},
             {"oldest_due_age_ms",
              t.oldest_due_created_at
                  ? Json(std::max<long long>(
                        0, duration_cast<milliseconds>(c.now - *t.oldest_due_created_at).count()))
                  : Json(nullptr)}};
      if (o.config != nullptr) j["subscriptions"] = matching(t.topic);
      topics.push_back(j);
    }
    doc["outbox"] = {{"pending", pending}, {"topics", topics}};
    Json subs = Json::array();
    for (const auto& n : names) {
      const store::SubscriptionBacklog empty{};
      const auto it = backlog.find(n);
      const store::SubscriptionBacklog& b = it == backlog.end() ? empty : *it->second;
      Json j{{"name", n},
             {"configured",
              o.config != nullptr &&
                  std::any_of(o.config->subscriptions.begin(), o.config->subscriptions.end(),
                              [&](const auto& s) { return s.name == n; })},
             {"retries_pending", b.retries_pending},
             {"retrying_now", b.retrying_now},
             {"next_attempt_at", time_json(b.next_attempt_at)},
             {"oldest_first_failed_at", time_json(b.oldest_first_failed_at)},
             {"dead_letters", b.dead_letters},
             {"oldest_dead_letter_at", time_json(b.oldest_dead_letter_at)},
             {"keys_with_dead_letter", b.keys_with_dead_letter}};
      const auto op = ops.subscriptions.find(n);
      const bool known = op != ops.subscriptions.end();
      j["breaker"] = known ? breaker_json(op->second.breaker) : Json(nullptr);
      j["in_flight"] = known ? Json(op->second.in_flight) : Json(nullptr);
      j["rate_limit"] = known ? rate_limit_json(op->second) : Json(nullptr);
      subs.push_back(j);
    }
    doc["subscriptions"] = subs;
    Json slots = Json::array();
    for (const auto& w : snap->wal_slots) {
      slots.push_back(
          Json{{"slot", w.slot},
               {"owner", w.owner ? Json(*w.owner) : Json(nullptr)},
               {"caught_up", w.caught_up},
               {"exists", w.exists},
               {"active", w.active},
               {"wal_status", w.wal_status.empty() ? Json(nullptr) : Json(w.wal_status)},
               {"lag_bytes", w.lag_bytes},
               {"retained_bytes", w.retained_bytes}});
    }
    doc["wal_slots"] = slots;
    Json opsj{
        {"url", ops_url.empty() ? Json(nullptr) : Json(ops_url)},
        {"reachable", ops.reachable},
        {"error", ops.reachable ? Json(nullptr) : Json(ops_url.empty() ? ops_note : ops.problem)}};
    if (ops.reachable) {
      opsj["version"] = ops.document.version;
      if (ops.document.owner) opsj["owner"] = *ops.document.owner;
      opsj["state"] = ops.document.state;
      opsj["ready"] = ops.document.ready;
    }
    doc["ops"] = opsj;
    c.out << doc.dump(2, ' ', false, Json::error_handler_t::replace) << '\n';
    return 0;
  }

  c.out << "outbox backlog by topic\n";
  if (snap->topics.empty()) {
    c.out << "  empty\n";
  } else {
    std::vector<std::string> header{"TOPIC", "PENDING", "DUE", "DELAYED", "CLAIMED", "OLDEST DUE"};
    if (o.config != nullptr) header.push_back("SUBSCRIPTIONS");
    Table t(header);
    std::int64_t pending = 0, delayed = 0, claimed = 0;
    std::optional<WallTime> oldest;
    for (const auto& tb : snap->topics) {
      pending += tb.pending;
      delayed += tb.delayed;
      claimed += tb.claimed;
      if (tb.oldest_due_created_at && (!oldest || *tb.oldest_due_created_at < *oldest)) {
        oldest = tb.oldest_due_created_at;
      }
      std::vector<std::string> row{
          truncate_chars(printable(tb.topic), 40),
          std::to_string(tb.pending),
          std::to_string(tb.pending - tb.delayed),
          std::to_string(tb.delayed),
          std::to_string(tb.claimed),
          tb.oldest_due_created_at
              ? format_age(duration_cast<milliseconds>(c.now - *tb.oldest_due_created_at))
              : "-"};
      if (o.config != nullptr) {
        std::string subs;
        for (const auto& s : matching(tb.topic)) subs += (subs.empty() ? "" : ", ") + s;
        row.push_back(subs.empty() ? "(none: will be dead-lettered)" : subs);
      }
      t.add(row);
    }
    if (snap->topics.size() > 1) {
      t.add({"(all topics)", std::to_string(pending), std::to_string(pending - delayed),
             std::to_string(delayed), std::to_string(claimed),
             oldest ? format_age(duration_cast<milliseconds>(c.now - *oldest)) : "-"});
    }
    t.print(c.out, "  ");
  }

  c.out << "\nsubscriptions\n";
  if (names.empty()) {
    c.out << "  no retries pending and no dead letters\n";
  } else {
    Table t({"SUBSCRIPTION", "RETRIES", "NEXT RETRY", "FAILING SINCE", "DEAD LETTERS", "OLDEST DL",
             "DL KEYS", "BREAKER", "IN FLIGHT", "RATE LIMIT"});
    for (const auto& n : names) {
      const store::SubscriptionBacklog empty{};
      const auto it = backlog.find(n);
      const store::SubscriptionBacklog& b = it == backlog.end() ? empty : *it->second;
      std::string retries = std::to_string(b.retries_pending);
      if (b.retrying_now > 0) retries += fmt::format(" ({} now)", b.retrying_now);
      std::string breaker = "?", in_flight = "?", rate = "?";
      if (ops.reachable) {
        const auto op = ops.subscriptions.find(n);
        if (op == ops.subscriptions.end()) {
          breaker = in_flight = rate = "-";
        } else {
          breaker = breaker_text(op->second.breaker);
          in_flight = std::to_string(op->second.in_flight);
          rate = rate_limit_text(op->second);
        }
      }
      t.add({printable(n), retries, next_retry(b.next_attempt_at, c.now),
             when_or(b.oldest_first_failed_at, c.now, "-"), std::to_string(b.dead_letters),
             when_or(b.oldest_dead_letter_at, c.now, "-"), std::to_string(b.keys_with_dead_letter),
             breaker, in_flight, rate});
    }
    t.print(c.out, "  ");
    c.out << "  RETRIES: events waiting for another attempt; DEAD LETTERS: not yet replayed;\n"
             "  DL KEYS: keys with an unreplayed dead letter\n";
  }

  if (!snap->wal_slots.empty()) {
    c.out << "\nWAL source slots\n";
    Table t({"SLOT", "READER", "STATE", "LAG", "WAL KEPT", "CAUGHT UP"});
    for (const auto& w : snap->wal_slots) {
      std::string state = !w.exists  ? "missing (relay recreates it and catches up from the table)"
                          : w.active ? "streaming"
                                     : "inactive";
      if (!w.wal_status.empty() && w.wal_status != "reserved") state += ", wal " + w.wal_status;
      t.add({printable(w.slot), w.owner ? printable(*w.owner) : "(none: no relay holds it)", state,
             fmt::format("{} bytes", w.lag_bytes), fmt::format("{} bytes", w.retained_bytes),
             w.caught_up ? "yes" : "no"});
    }
    t.print(c.out, "  ");
    c.out << "  LAG: WAL written since the slot's confirmed position; WAL KEPT: what the server\n"
             "  retains for it (bound it with max_slot_wal_keep_size)\n";
  }

  c.out << '\n';
  if (ops_url.empty()) {
    c.out << "ops listener: unknown (" << ops_note << "; breaker states unknown)\n";
  } else if (!ops.reachable) {
    c.out << "ops listener: not reachable at " << printable(ops_url) << " (breaker states unknown";
    if (!ops.problem.empty()) c.out << "; " << printable(ops.problem);
    c.out << ")\n";
  } else {
    c.out << "ops listener: " << printable(ops_url);
    std::vector<std::string> facts;
    const model::StatusDocument& d = ops.document;
    if (!d.version.empty()) facts.push_back("relay " + printable(d.version));
    if (d.owner && !d.owner->empty()) facts.push_back("owner " + printable(*d.owner));
    if (!d.state.empty()) facts.push_back(printable(d.state));
    facts.push_back(d.ready ? "ready" : "NOT READY");
    for (size_t i = 0; i < facts.size(); ++i) c.out << (i == 0 ? " (" : ", ") << facts[i];
    c.out << (facts.empty() ? "" : ")") << '\n';
  }
  return 0;
}

}  // namespace relay::admin
