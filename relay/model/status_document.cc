#include "relay/model/status_document.h"

#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>

namespace relay::model {
namespace {

// nlohmann::json keeps keys sorted: the order /status has always been written in.
using Json = nlohmann::json;

Error malformed(const std::string& where, std::string_view what) {
  return Error{ErrorCode::kInvalidArgument,
               "malformed status document: " + where + ": " + std::string(what)};
}

std::string join(const std::string& path, const char* key) {
  return path.empty() ? std::string(key) : path + "." + key;
}

// Whether `v` is of the wanted kind. number_integer: an integer that fits std::int64_t;
// number_float: any number (nlohmann refuses to parse one that does not fit a double).
bool is_kind(const Json& v, Json::value_t kind) {
  switch (kind) {
    case Json::value_t::number_integer:
      return v.is_number_integer() &&
             (!v.is_number_unsigned() ||
              v.get<std::uint64_t>() <=
                  static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()));
    case Json::value_t::number_float:
      return v.is_number();
    default:
      return v.type() == kind;
  }
}

// The member `key` of `obj`, or an error naming it when it is missing or not of the wanted kind.
Result<const Json*> member(const Json& obj, const std::string& path, const char* key,
                           Json::value_t kind, std::string_view expected) {
  const auto it = obj.find(key);
  if (it == obj.end()) return malformed(join(path, key), "missing");
  if (!is_kind(*it, kind)) return malformed(join(path, key), "expected " + std::string(expected));
  return &*it;
}

}  // namespace

std::string to_json(const StatusDocument& doc) {
  Json j;
  j["version"] = doc.version;
  if (doc.owner) j["owner"] = *doc.owner;
  j["ready"] = doc.ready;
  j["state"] = doc.state;
  j["subscriptions"] = Json::array();
  for (const auto& s : doc.subscriptions) {
    Json sub;
    sub["name"] = s.name;
    sub["in_flight"] = s.in_flight;
    sub["breaker"] = {{"state", name_of(s.breaker.state)},
                      {"consecutive_failures", s.breaker.consecutive_failures},
                      {"trips", s.breaker.trips},
                      {"open_for_ms", s.breaker.open_for_ms},
                      {"reopens_in_ms", s.breaker.reopens_in_ms}};
    if (s.rate_tokens_available)
      sub["rate_limit"] = {{"tokens_available", *s.rate_tokens_available}};
    j["subscriptions"].push_back(std::move(sub));
  }
  return j.dump();
}

Result<StatusDocument> parse_status_document(std::string_view json) {
  const Json j = Json::parse(json, /*cb=*/nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return malformed("(document)", "not JSON");
  if (!j.is_object()) return malformed("(document)", "expected a JSON object");
  StatusDocument doc;
  const auto text = [](const Json& obj, const std::string& path, const char* key,
                       std::string& out) -> Status {
    auto m = member(obj, path, key, Json::value_t::string, "a string");
    if (!m) return m.error();
    out = (*m)->get<std::string>();
    return {};
  };
  const auto integer = [](const Json& obj, const std::string& path, const char* key,
                          std::int64_t& out) -> Status {
    auto m = member(obj, path, key, Json::value_t::number_integer, "an integer");
    if (!m) return m.error();
    out = (*m)->get<std::int64_t>();
    return {};
  };
  if (auto ok = text(j, "", "version", doc.version); !ok) return ok.error();
  if (j.contains("owner")) {
    std::string owner;
    if (auto ok = text(j, "", "owner", owner); !ok) return ok.error();
    doc.owner = std::move(owner);
  }
  auto ready = member(j, "", "ready", Json::value_t::boolean, "true or false");
  if (!ready) return ready.error();
  doc.ready = (*ready)->get<bool>();
  if (auto ok = text(j, "", "state", doc.state); !ok) return ok.error();
  auto subs = member(j, "", "subscriptions", Json::value_t::array, "a list");
  if (!subs) return subs.error();
  for (std::size_t i = 0; i < (*subs)->size(); ++i) {
    const Json& sj = (**subs)[i];
    const std::string path = "subscriptions[" + std::to_string(i) + "]";
    if (!sj.is_object()) return malformed(path, "expected an object");
    SubscriptionStatus s;
    if (auto ok = text(sj, path, "name", s.name); !ok) return ok.error();
    if (auto ok = integer(sj, path, "in_flight", s.in_flight); !ok) return ok.error();
    auto breaker = member(sj, path, "breaker", Json::value_t::object, "an object");
    if (!breaker) return breaker.error();
    const Json& bj = **breaker;
    const std::string bpath = path + ".breaker";
    std::string state;
    if (auto ok = text(bj, bpath, "state", state); !ok) return ok.error();
    if (auto known = breaker_state_named(state)) {
      s.breaker.state = *known;
    } else {
      return malformed(bpath + ".state", "expected one of closed, open, half_open");
    }
    for (auto [key, out] :
         {std::pair{"consecutive_failures", &s.breaker.consecutive_failures},
          std::pair{"trips", &s.breaker.trips}, std::pair{"open_for_ms", &s.breaker.open_for_ms},
          std::pair{"reopens_in_ms", &s.breaker.reopens_in_ms}}) {
      if (auto ok = integer(bj, bpath, key, *out); !ok) return ok.error();
    }
    if (sj.contains("rate_limit")) {
      auto rate = member(sj, path, "rate_limit", Json::value_t::object, "an object");
      if (!rate) return rate.error();
      auto tokens = member(**rate, path + ".rate_limit", "tokens_available",
                           Json::value_t::number_float, "a number");
      if (!tokens) return tokens.error();
      s.rate_tokens_available = (*tokens)->get<double>();
    }
    doc.subscriptions.push_back(std::move(s));
  }
  return doc;
}

}  // namespace relay::model
