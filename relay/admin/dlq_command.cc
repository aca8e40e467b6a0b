// `relay dlq list|show|replay|purge|stats`: the operator's view of relay.dead_letter. Bulk work
// runs in batches of kBatch rows, one transaction each, so an interrupt (SIGINT, between batches)
// or a crash leaves every row either fully replayed/purged or untouched.

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "relay/admin/commands.h"
#include "relay/admin/format.h"
#include "relay/common/base64.h"
#include "relay/common/time_format.h"
#include "relay/common/utf8.h"
#include "relay/store/dead_letter_store.h"

namespace relay::admin {
namespace {

using store::DeadLetter;
using store::DeadLetterFilter;
using store::DeadLetterStore;
using store::ReplayedRow;
using Json = nlohmann::ordered_json;

constexpr int kBatch = 500;
constexpr int kDefaultLimit = 50;
constexpr int kMaxLimit = 10'000;

bool interrupted(const Console& c) { return c.interrupted != nullptr && c.interrupted->load(); }

std::optional<std::int64_t> parse_int(const std::string& s) {
  std::int64_t v = 0;
  const char* end = s.data() + s.size();
  auto [p, ec] = std::from_chars(s.data(), end, v);
  if (ec != std::errc() || p != end) return std::nullopt;
  return v;
}

// Everything the operator typed, checked: the first problem is reported and the command exits 2.
struct Parsed {
  DeadLetterFilter filter;
  std::optional<int> limit;
  std::vector<std::int64_t> ids;
};

Result<Parsed> parse(const DlqOptions& o, const Console& console) {
  auto bad = [](std::string m) { return Error{ErrorCode::kInvalidArgument, std::move(m)}; };
  Parsed p;
  auto& f = p.filter;
  f.subscription = o.subscription;
  f.topic_glob = o.topic;
  f.reason = o.reason;
  f.key = o.key;
  if (o.since) {
    auto t = parse_time_bound("--since", *o.since, console.now);
    if (!t) return t.error();
    f.failed_since = *t;
  }
  if (o.until) {
    auto t = parse_time_bound("--until", *o.until, console.now);
    if (!t) return t.error();
    f.failed_before = *t;
  }
  if (o.older_than) {
    auto t = parse_time_bound("--older-than", *o.older_than, console.now);
    if (!t) return t.error();
    if (!f.failed_before || *t < *f.failed_before) f.failed_before = *t;
  }
  if (o.limit) {
    auto n = parse_int(*o.limit);
    if (!n || *n < 1 || *n > kMaxLimit) {
      return bad(
          fmt::format("--limit: expected a number from 1 to {}, got \"{}\"", kMaxLimit, *o.limit));
    }
    p.limit = static_cast<int>(*n);
  }
  if (o.after) {
    auto n = parse_int(*o.after);
    if (!n || *n < 0)
      return bad(fmt::format("--after: expected a dead letter id, got \"{}\"", *o.after));
    f.after_id = *n;
  }
  for (const auto& s : o.ids) {
    auto n = parse_int(s);
    if (!n || *n < 1)
      return bad(
          fmt::format("invalid dead letter id \"{}\" (ids are the numbers in the ID column)", s));
    p.ids.push_back(*n);
  }
  return p;
}

std::string describe(const DlqOptions& o) {
  std::vector<std::string> parts;
  if (o.subscription) parts.push_back("subscription " + *o.subscription);
  if (o.topic) parts.push_back("topic " + *o.topic);
  if (o.reason) parts.push_back("reason " + *o.reason);
  if (o.key) parts.push_back("key " + *o.key);
  if (o.since) parts.push_back("failed since " + *o.since);
  if (o.until) parts.push_back("failed until " + *o.until);
  if (o.older_than) parts.push_back("older than " + *o.older_than);
  if (parts.empty()) return "";
  std::string out = " (";
  for (size_t i = 0; i < parts.size(); ++i) out += (i ? ", " : "") + parts[i];
  return printable(out + ")");
}

std::string or_dash(const std::optional<std::string>& s) { return s ? printable(*s) : "-"; }

Json time_or_null(const std::optional<WallTime>& t) {
  return t ? Json(format_rfc3339(*t, 6)) : Json(nullptr);
}

Json to_json(const DeadLetter& d) {
  Json j;
  j["id"] = d.id;
  j["event_id"] = d.event_id;
  j["subscription"] = d.subscription;
  j["topic"] = d.topic;
  j["key"] = d.key ? Json(*d.key) : Json(nullptr);
  j["reason"] = d.reason;
  j["attempts"] = d.attempts;
  j["last_status"] = d.last_status ? Json(*d.last_status) : Json(nullptr);
  j["last_error"] = d.last_error ? Json(*d.last_error) : Json(nullptr);
  j["last_response"] = d.last_response ? Json(*d.last_response) : Json(nullptr);
  j["created_at"] = format_rfc3339(d.created_at, 6);
  j["failed_at"] = format_rfc3339(d.failed_at, 6);
  j["replayed_at"] = time_or_null(d.replayed_at);
  j["deliver_after"] = time_or_null(d.deliver_after);
  j["expires_at"] = time_or_null(d.expires_at);
  j["outbox_id"] = d.outbox_id ? Json(*d.outbox_id) : Json(nullptr);
  j["content_type"] = d.content_type;
  Json headers = Json::parse(d.headers_json, nullptr, /*allow_exceptions=*/false);
  j["headers"] = headers.is_discarded() ? Json::object() : headers;
  j["payload"] = is_valid_utf8(d.payload) ? Json(d.payload) : Json(nullptr);
  j["payload_base64"] = base64_encode(d.payload);
  j["payload_bytes"] = d.payload.size();
  return j;
}

void print_json(std::ostream& out, const Json& j) {
  // replace: text columns are UTF-8 already; this only guards against a surprise.
  out << j.dump(2, ' ', false, Json::error_handler_t::replace) << '\n';
}

// kUnavailable is the operator's most likely problem: say so plainly. A missing table means the
// schema was never migrated.
int report(const Console& console, const std::string& what, const Error& e) {
  const std::string message = one_line_error(e.message);
  if (e.code == ErrorCode::kUnavailable) {
    console.err << what << ": database unreachable: " << message << '\n';
  } else if (message.find("relay.") != std::string::npos &&
             message.find("does not exist") != std::string::npos) {
    console.err << what << ": " << message << " (has `relay migrate` been run on this database?)\n";
  } else {
    console.err << what << ": " << message << '\n';
  }
  return 1;
}

// ---- list ------------------------------------------------------------------------------------

int list(DeadLetterStore& store, const DlqOptions& o, Parsed& p, Console& c) {
  const int limit = p.limit.value_or(kDefaultLimit);
  auto rows = store.list(p.filter, limit + 1);
  if (!rows) return report(c, "relay dlq list", rows.error());
  const bool more = static_cast<int>(rows->size()) > limit;
  if (more) rows->pop_back();
  // A plain value and a flag, not std::optional: GCC 12 -O2 reports a false maybe-uninitialized on
  // it.
  const bool has_next = more;
  const std::int64_t next_after = more ? rows->back().id : 0;

  if (o.output == "json") {
    Json doc;
    doc["dead_letters"] = Json::array();
    for (const auto& d : *rows) doc["dead_letters"].push_back(to_json(d));
    doc["next_after"] = has_next ? Json(next_after) : Json(nullptr);
    print_json(c.out, doc);
    return 0;
  }
  if (rows->empty()) {
    c.out << "no dead letters match" << describe(o) << '\n';
    return 0;
  }
  Table t({"ID", "FAILED (UTC)", "SUBSCRIPTION", "TOPIC", "KEY", "REASON", "ATTEMPTS", "STATUS",
           "REPLAYED", "PAYLOAD"});
  for (const auto& d : *rows) {
    t.add({std::to_string(d.id), format_when(d.failed_at, c.now), printable(d.subscription),
           truncate_chars(printable(d.topic), 40),
           d.key ? truncate_chars(printable(*d.key), 24) : "-", printable(d.reason),
           std::to_string(d.attempts), d.last_status ? std::to_string(*d.last_status) : "-",
           d.replayed_at ? format_ago(*d.replayed_at, c.now) : "-", payload_preview(d.payload)});
  }
  t.print(c.out);
  c.out << '\n'
        << rows->size() << (rows->size() == 1 ? " dead letter" : " dead letters") << describe(o);
  if (has_next) c.out << "; next page: --after " << next_after;
  c.out << '\n';
  return 0;
}

// ---- show ------------------------------------------------------------------------------------

void print_indented(std::ostream& out, const std::string& text) {
  size_t start = 0;
  while (start <= text.size()) {
    const size_t nl = text.find('\n', start);
    const std::string line =
        text.substr(start, nl == std::string::npos ? std::string::npos : nl - start);
    out << (line.empty() ? "" : "  ") << line << '\n';
    if (nl == std::string::npos) break;
    start = nl + 1;
  }
}

int show(DeadLetterStore& store, const DlqOptions& o, Parsed& p, Console& c) {
  const std::int64_t id = p.ids.at(0);
  auto found = store.get(id);
  if (!found) return report(c, "relay dlq show", found.error());
  if (!*found) {
    c.err << "relay dlq show: no dead letter with id " << id << '\n';
    return 1;
  }
  const DeadLetter& d = **found;
  if (o.output == "json") {
    print_json(c.out, to_json(d));
    return 0;
  }
  auto when = [&](const std::optional<WallTime>& t, const char* none) {
    return t ? format_when(*t, c.now) : none;
  };
  c.out << "dead letter " << d.id << '\n';
  Table fields({"", ""});
  fields.add({"event_id", d.event_id});
  fields.add({"subscription", printable(d.subscription)});
  fields.add({"topic", printable(d.topic)});
  fields.add({"key", or_dash(d.key)});
  fields.add({"reason", printable(d.reason)});
  fields.add({"attempts", std::to_string(d.attempts)});
  fields.add({"last_status", d.last_status ? std::to_string(*d.last_status) : "-"});
  fields.add({"last_error", or_dash(d.last_error)});
  fields.add({"created_at", format_when(d.created_at, c.now)});
  fields.add({"failed_at", format_when(d.failed_at, c.now)});
  fields.add({"replayed_at", when(d.replayed_at, "never")});
  fields.add({"deliver_after", when(d.deliver_after, "-")});
  fields.add({"expires_at", when(d.expires_at, "-")});
  fields.add({"outbox_id", d.outbox_id ? std::to_string(*d.outbox_id) : "-"});
  fields.add({"content_type", printable(d.content_type)});
  // A two-column table without its (empty) header line.
  std::ostringstream body;
  fields.print(body, "  ");
  c.out << body.str().substr(body.str().find('\n') + 1);

  c.out << "\nheaders\n";
  const Json headers = Json::parse(d.headers_json, nullptr, false);
  if (headers.is_discarded() || !headers.is_object() || headers.empty()) {
    c.out << "  (none)\n";
  } else {
    for (const auto& [name, value] : headers.items()) {
      const std::string v = value.is_string()
                                ? value.get<std::string>()
                                : value.dump(-1, ' ', false, Json::error_handler_t::replace);
      c.out << "  " << printable(name) << ": " << printable(v) << '\n';
    }
  }

  c.out << "\nlast response\n";
  if (!d.last_response || d.last_response->empty()) {
    c.out << "  (none)\n";
  } else {
    print_indented(c.out, printable(*d.last_response, /*keep_newlines=*/true));
  }

  c.out << "\npayload (" << d.payload.size() << (d.payload.size() == 1 ? " byte" : " bytes");
  const Json parsed = Json::parse(d.payload, nullptr, false);
  if (d.payload.empty()) {
    c.out << ")\n";
  } else if (!parsed.is_discarded()) {
    c.out << ", JSON)\n";
    print_indented(c.out,
                   printable(parsed.dump(2, ' ', false, Json::error_handler_t::replace), true));
  } else if (is_valid_utf8(d.payload)) {
    c.out << ", text)\n";
    print_indented(c.out, printable(d.payload, true));
  } else {
    c.out << ", binary; base64 below)\n";
    const std::string b64 = base64_encode(d.payload);
    for (size_t i = 0; i < b64.size(); i += 76) c.out << "  " << b64.substr(i, 76) << '\n';
  }
  if (!d.replayed_at) c.out << "\nreplay it with: relay dlq replay " << d.id << '\n';
  return 0;
}

// ---- stats -----------------------------------------------------------------------------------

int stats(DeadLetterStore& store, const DlqOptions& o, Parsed& p, Console& c) {
  auto groups = store.stats(p.filter);
  if (!groups) return report(c, "relay dlq stats", groups.error());
  std::int64_t total = 0, unreplayed = 0;
  std::optional<WallTime> oldest, newest;
  for (const auto& g : *groups) {
    total += g.count;
    unreplayed += g.unreplayed;
    if (!oldest || g.oldest_failed_at < *oldest) oldest = g.oldest_failed_at;
    if (!newest || g.newest_failed_at > *newest) newest = g.newest_failed_at;
  }
  if (o.output == "json") {
    Json doc;
    doc["groups"] = Json::array();
    for (const auto& g : *groups) {
      doc["groups"].push_back({{"subscription", g.subscription},
                               {"reason", g.reason},
                               {"count", g.count},
                               {"unreplayed", g.unreplayed},
                               {"oldest_failed_at", format_rfc3339(g.oldest_failed_at, 6)},
                               {"newest_failed_at", format_rfc3339(g.newest_failed_at, 6)}});
    }
    doc["total"] = total;
    doc["unreplayed"] = unreplayed;
    doc["oldest_failed_at"] = time_or_null(oldest);
    doc["newest_failed_at"] = time_or_null(newest);
    print_json(c.out, doc);
    return 0;
  }
  if (groups->empty()) {
    c.out << "no dead letters" << describe(o) << '\n';
    return 0;
  }
  Table t({"SUBSCRIPTION", "REASON", "COUNT", "UNREPLAYED", "OLDEST FAILED (UTC)",
           "NEWEST FAILED (UTC)"});
  for (const auto& g : *groups) {
    t.add({printable(g.subscription), printable(g.reason), std::to_string(g.count),
           std::to_string(g.unreplayed), format_when(g.oldest_failed_at, c.now),
           format_when(g.newest_failed_at, c.now)});
  }
  t.add({"total", "", std::to_string(total), std::to_string(unreplayed),
         format_when(*oldest, c.now), format_when(*newest, c.now)});
  t.print(c.out);
  return 0;
}

// ---- replay and purge ------------------------------------------------------------------------

// Prints what a bulk operation will touch; returns how many rows that is (capped by --limit).
Result<std::int64_t> announce(DeadLetterStore& store, const DlqOptions& o, const Parsed& p,
                              const char* verb, Console& c) {
  auto groups = store.stats(p.filter);
  if (!groups) return groups.error();
  std::int64_t total = 0;
  for (const auto& g : *groups) total += g.count;
  if (total == 0) {
    c.out << "no " << (p.filter.unreplayed_only ? "unreplayed " : "") << "dead letters match"
          << describe(o) << '\n';
    return total;
  }
  c.out << total << (p.filter.unreplayed_only ? " unreplayed" : "")
        << (total == 1 ? " dead letter" : " dead letters") << " match" << describe(o) << ":\n";
  Table t({"SUBSCRIPTION", "REASON", "COUNT", "OLDEST FAILED (UTC)"});
  for (const auto& g : *groups) {
    t.add({printable(g.subscription), printable(g.reason), std::to_string(g.count),
           format_when(g.oldest_failed_at, c.now)});
  }
  t.print(c.out, "  ");
  if (p.limit && *p.limit < total) {
    c.out << "--limit " << *p.limit << ": only the first " << *p.limit << " (by id) will be "
          << verb << '\n';
    total = *p.limit;
  }
  return total;
}

// 0 to go ahead; otherwise the exit code. A person at a terminal may confirm; a script must say
// --yes up front, because nobody is there to answer.
int confirm(const DlqOptions& o, std::int64_t n, const char* verb_capitalized, const char* verb,
            Console& c) {
  if (o.yes) return 0;
  if (!c.in_is_terminal) {
    c.err << "relay dlq " << o.action << ": refusing to " << verb << " " << n
          << (n == 1 ? " dead letter" : " dead letters")
          << " without --yes (stdin is not a terminal); pass --yes to go ahead or --dry-run to "
             "only count\n";
    return 2;
  }
  c.err << verb_capitalized << " " << n << (n == 1 ? " dead letter" : " dead letters") << "? [y/N] "
        << std::flush;
  std::string answer;
  if (!std::getline(c.in, answer) || interrupted(c)) {
    c.err << '\n';
    return interrupted(c) ? kExitInterrupted : 1;
  }
  if (answer == "y" || answer == "Y" || answer == "yes" || answer == "YES" || answer == "Yes")
    return 0;
  c.err << "nothing " << (o.action == "replay" ? "replayed" : "purged") << '\n';
  return 1;
}

void progress(Console& c, const char* verb, std::int64_t done, std::int64_t total) {
  if (c.err_is_terminal) c.err << '\r' << verb << ' ' << done << '/' << total << std::flush;
}

std::string replay_target(const ReplayedRow& r) {
  if (r.subscription == "*" || r.subscription == "(none)")
    return "the outbox (every matching subscription)";
  return "subscription " + printable(r.subscription);
}

int replay_ids(DeadLetterStore& store, const DlqOptions& o, const Parsed& p, Console& c) {
  int code = 0;
  if (o.dry_run) {
    for (auto id : p.ids) {
      auto d = store.get(id);
      if (!d) return report(c, "relay dlq replay", d.error());
      if (!*d) {
        c.err << "no dead letter with id " << id << '\n';
        code = 1;
      } else if ((*d)->replayed_at) {
        c.out << id << ": already replayed " << format_when(*(*d)->replayed_at, c.now)
              << "; would not replay again\n";
      } else {
        c.out << "would replay " << id << ": event " << (*d)->event_id << " to "
              << replay_target({.subscription = (*d)->subscription}) << '\n';
      }
    }
    c.out << "dry run: nothing replayed\n";
    return code;
  }
  std::vector<ReplayedRow> done;
  for (size_t i = 0; i < p.ids.size(); i += kBatch) {
    std::vector<std::int64_t> chunk(p.ids.begin() + i,
                                    p.ids.begin() + std::min(p.ids.size(), i + kBatch));
    auto r = store.replay(chunk);
    if (!r) return report(c, "relay dlq replay", r.error());
    done.insert(done.end(), r->rows.begin(), r->rows.end());
  }
  for (auto id : p.ids) {
    const ReplayedRow* row = nullptr;
    for (const auto& r : done) row = r.id == id ? &r : row;
    if (row == nullptr) {
      c.err << "no dead letter with id " << id << '\n';
      code = 1;
      continue;
    }
    switch (row->outcome) {
      case ReplayedRow::Outcome::kEnqueued:
        c.out << "replayed " << id << ": event " << row->event_id << " queued for "
              << replay_target(*row) << '\n';
        break;
      case ReplayedRow::Outcome::kAlreadyQueued:
        c.out << "replayed " << id << ": event " << row->event_id << " was already queued for "
              << replay_target(*row) << "; nothing added\n";
        break;
      case ReplayedRow::Outcome::kAlreadyReplayed:
        c.out << id << ": already replayed "
              << (row->replayed_at ? format_when(*row->replayed_at, c.now) : std::string("before"))
              << "; not queued again\n";
        break;
    }
  }
  return code;
}

int purge_ids(DeadLetterStore& store, const DlqOptions& o, const Parsed& p, Console& c) {
  int code = 0;
  std::vector<std::int64_t> existing;
  if (o.dry_run) {
    for (auto id : p.ids) {
      auto d = store.get(id);
      if (!d) return report(c, "relay dlq purge", d.error());
      if (*d) existing.push_back(id);
    }
  } else {
    for (size_t i = 0; i < p.ids.size(); i += kBatch) {
      std::vector<std::int64_t> chunk(p.ids.begin() + i,
                                      p.ids.begin() + std::min(p.ids.size(), i + kBatch));
      auto r = store.purge(chunk);
      if (!r) return report(c, "relay dlq purge", r.error());
      existing.insert(existing.end(), r->purged.begin(), r->purged.end());
    }
  }
  for (auto id : p.ids) {
    if (std::find(existing.begin(), existing.end(), id) == existing.end()) {
      c.err << "no dead letter with id " << id << '\n';
      code = 1;
    } else {
      c.out << (o.dry_run ? "would purge " : "purged ") << id << '\n';
    }
  }
  if (o.dry_run) c.out << "dry run: nothing purged\n";
  return code;
}

int bulk(DeadLetterStore& store, const DlqOptions& o, Parsed& p, Console& c) {
  const bool replay = o.action == "replay";
  const std::string what = "relay dlq " + o.action;
  p.filter.unreplayed_only = replay;
  // Only rows that exist now: a replay that fails again makes new dead letters, and those must not
  // be replayed by this same run (it would never end).
  auto max_id = store.max_id();
  if (!max_id) return report(c, what, max_id.error());
  p.filter.max_id = *max_id;

  auto total = announce(store, o, p, replay ? "replayed" : "purged", c);
  if (!total) return report(c, what, total.error());
  if (*total == 0) return 0;
  if (o.dry_run) {
    c.out << "dry run: nothing " << (replay ? "replayed" : "purged") << '\n';
    return 0;
  }
  if (int code = confirm(o, *total, replay ? "Replay" : "Purge", replay ? "replay" : "purge", c);
      code != 0) {
    return code;
  }

  std::int64_t looked = 0, enqueued = 0, already_queued = 0, purged = 0;
  const char* verb = replay ? "replaying" : "purging";
  const auto finish_progress = [&] {
    if (c.err_is_terminal && looked > 0) c.err << '\n';
  };
  while (looked < *total && !interrupted(c)) {
    const int batch = static_cast<int>(std::min<std::int64_t>(kBatch, *total - looked));
    auto r = replay ? store.replay_next(p.filter, batch) : store.purge_next(p.filter, batch);
    if (!r) {
      finish_progress();
      c.err << what << ": stopped after " << looked << " of " << *total
            << " dead letters; every one before that is " << (replay ? "replayed" : "purged")
            << ", the rest untouched\n";
      return report(c, what, r.error());
    }
    if (r->ids.empty()) break;
    p.filter.after_id = r->ids.back();
    looked += static_cast<std::int64_t>(r->ids.size());
    purged += static_cast<std::int64_t>(r->purged.size());
    for (const auto& row : r->rows) {
      if (row.outcome == ReplayedRow::Outcome::kEnqueued) ++enqueued;
      if (row.outcome == ReplayedRow::Outcome::kAlreadyQueued) ++already_queued;
    }
    progress(c, verb, looked, *total);
  }
  finish_progress();
  const std::int64_t changed = replay ? enqueued + already_queued : purged;
  const std::string summary =
      replay
          ? fmt::format("replayed {} dead letter{}", changed, changed == 1 ? "" : "s") +
                (already_queued > 0
                     ? fmt::format(" ({} already queued, nothing added for those)", already_queued)
                     : "")
          : fmt::format("purged {} dead letter{}", changed, changed == 1 ? "" : "s");
  if (interrupted(c) && looked < *total) {
    c.out << "interrupted: " << summary << " of " << *total
          << "; each one is either fully done or untouched. Run the same command again to "
             "continue.\n";
    return kExitInterrupted;
  }
  c.out << summary << '\n';
  return 0;
}

}  // namespace

int run_dlq(const std::string& database_url, const DlqOptions& o, Console& c) {
  const std::string what = "relay dlq " + o.action;
  auto parsed = parse(o, c);
  if (!parsed) {
    c.err << what << ": " << parsed.error().message << '\n';
    return 2;
  }
  if (o.output != "table" && o.output != "json") {
    c.err << what << ": --output must be table or json, not \"" << printable(o.output) << "\"\n";
    return 2;
  }
  auto store = DeadLetterStore::open(database_url);
  if (!store) return report(c, what, store.error());
  if (o.action == "list") return list(**store, o, *parsed, c);
  if (o.action == "show") return show(**store, o, *parsed, c);
  if (o.action == "stats") return stats(**store, o, *parsed, c);
  if (o.action == "replay" || o.action == "purge") {
    if (o.all || o.older_than) return bulk(**store, o, *parsed, c);
    return o.action == "replay" ? replay_ids(**store, o, *parsed, c)
                                : purge_ids(**store, o, *parsed, c);
  }
  c.err << "relay dlq: unknown action \"" << printable(o.action) << "\"\n";
  return 2;
}

}  // namespace relay::admin
