#pragma once
// Postgres array literals for statement parameters ("{1,2,3}" with $1::bigint[]), and parsing a
// text[] column from its text form. Internal to relay/store.

#include <cstdint>
#include <string>
#include <vector>

namespace relay::store {

// "{1,2,3}" for $n::bigint[].
inline std::string bigint_array(const std::vector<std::int64_t>& ids) {
  std::string out = "{";
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i > 0) out += ',';
    out += std::to_string(ids[i]);
  }
  out += '}';
  return out;
}

// "{a,b}" for $n::text[]. REQUIRES: each name matches [a-z0-9_.-]+ (subscription names, checked by
// the config), so nothing needs quoting.
inline std::string name_array(const std::vector<std::string>& names) {
  std::string out = "{";
  for (size_t i = 0; i < names.size(); ++i) {
    if (i > 0) out += ',';
    out += names[i];
  }
  out += '}';
  return out;
}

// The elements of a text[] in Postgres' output form, for arrays of names as above (quotes, which
// Postgres adds only around special characters, are dropped).
inline std::vector<std::string> parse_name_array(const std::string& text) {
  std::vector<std::string> out;
  if (text.size() < 2) return out;
  std::string cur;
  for (size_t i = 1; i + 1 < text.size(); ++i) {
    if (text[i] == ',') {
      out.push_back(cur);
      cur.clear();
    } else if (text[i] != '"') {
      cur += text[i];
    }
  }
  if (!cur.empty()) out.push_back(cur);
  return out;
}

}  // namespace relay::store
