#include "relay/common/database_url.h"

#include <algorithm>
#include <cctype>

namespace relay {
namespace {

bool is_space(char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; }

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Length of a URL scheme followed by "://" at the start of `s` (after blanks), else 0. Any
// letters count: "postgresq1://" and "POSTGRESQL://" are URLs for hiding, if not for libpq.
size_t scheme_end(std::string_view s) {
  size_t i = 0;
  while (i < s.size() && is_space(s[i])) ++i;
  const size_t start = i;
  while (i < s.size() && (std::isalnum(static_cast<unsigned char>(s[i])) != 0 || s[i] == '+' ||
                          s[i] == '-' || s[i] == '.')) {
    ++i;
  }
  if (i == start || s.substr(i, 3) != "://") return 0;
  return i;
}

struct UrlParts {
  std::string_view scheme;    // without "://"
  std::string_view userinfo;  // between "://" and the last '@' (empty without '@')
  bool has_userinfo = false;
  std::string_view rest;  // host, port, path and query
};

UrlParts split_url(std::string_view url, size_t scheme_len) {
  UrlParts p;
  size_t start = 0;
  while (start < url.size() && is_space(url[start])) ++start;
  p.scheme = url.substr(start, scheme_len - start);
  const std::string_view after = url.substr(scheme_len + 3);
  const size_t at = after.rfind('@');
  if (at == std::string_view::npos) {
    p.rest = after;
  } else {
    p.has_userinfo = true;
    p.userinfo = after.substr(0, at);
    p.rest = after.substr(at + 1);
  }
  return p;
}

// %XX decoding that keeps a broken escape as it is (only for finding secrets).
std::string lenient_decode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      const int hi = hex_value(s[i + 1]), lo = hex_value(s[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out += static_cast<char>(hi * 16 + lo);
        i += 2;
        continue;
      }
    }
    out += s[i];
  }
  return out;
}

struct Conninfo {
  struct Pair {
    std::string key;
    std::string value;     // unescaped
    std::string_view raw;  // as written, quotes and backslashes included
  };
  std::vector<Pair> pairs;
  std::optional<std::string> problem;
};

// libpq's conninfo_parse: blanks, key, blanks, '=', blanks, then a value up to a blank or a
// '...'-quoted value; a backslash escapes the next character in both.
Conninfo parse_conninfo(std::string_view s) {
  Conninfo out;
  size_t i = 0;
  while (i < s.size()) {
    if (is_space(s[i])) {
      ++i;
      continue;
    }
    const size_t key_start = i;
    while (i < s.size() && s[i] != '=' && !is_space(s[i])) ++i;
    std::string key(s.substr(key_start, i - key_start));
    while (i < s.size() && is_space(s[i])) ++i;
    if (i >= s.size() || s[i] != '=') {
      out.problem = "it is neither a postgresql:// URL nor key=value connection settings";
      return out;
    }
    ++i;
    while (i < s.size() && is_space(s[i])) ++i;
    std::string value;
    const size_t value_start = i;
    if (i < s.size() && s[i] == '\'') {
      ++i;
      bool closed = false;
      while (i < s.size()) {
        if (s[i] == '\\') {
          ++i;
          if (i < s.size()) value += s[i++];
          continue;
        }
        if (s[i] == '\'') {
          ++i;
          closed = true;
          break;
        }
        value += s[i++];
      }
      if (!closed) {
        out.pairs.push_back({std::move(key), std::move(value), s.substr(value_start)});
        out.problem = "a quoted value has no closing quote";
        return out;
      }
    } else {
      while (i < s.size() && !is_space(s[i])) {
        if (s[i] == '\\') {
          ++i;
          if (i < s.size()) value += s[i++];
        } else {
          value += s[i++];
        }
      }
    }
    out.pairs.push_back({std::move(key), std::move(value), s.substr(value_start, i - value_start)});
  }
  return out;
}

void add_secret(std::vector<std::string>& out, std::string_view secret) {
  auto add = [&](std::string_view s) {
    if (!s.empty()) out.emplace_back(s);
  };
  add(secret);
  add(lenient_decode(secret));
  // The pieces libpq may print alone when an unencoded separator splits the password.
  size_t start = 0;
  for (size_t i = 0; i <= secret.size(); ++i) {
    if (i == secret.size() || secret[i] == '@' || secret[i] == '/' || secret[i] == ':') {
      const std::string_view piece = secret.substr(start, i - start);
      if (piece.size() != secret.size()) {
        add(piece);
        add(lenient_decode(piece));
      }
      start = i + 1;
    }
  }
}

void collect_secrets(std::string_view url, std::vector<std::string>& out, int depth) {
  if (depth > 2) return;
  if (const size_t end = scheme_end(url); end != 0) {
    const UrlParts p = split_url(url, end);
    if (p.has_userinfo) {
      const size_t colon = p.userinfo.find(':');
      if (colon != std::string_view::npos) add_secret(out, p.userinfo.substr(colon + 1));
    }
    // Query parameters: password=... (libpq reads any conninfo key there).
    const size_t q = url.find('?');
    if (q != std::string_view::npos) {
      std::string_view query = url.substr(q + 1);
      while (!query.empty()) {
        const size_t amp = query.find('&');
        const std::string_view param = query.substr(0, amp);
        const size_t eq = param.find('=');
        if (eq != std::string_view::npos) {
          const std::string key = lenient_decode(param.substr(0, eq));
          if (key == "password") add_secret(out, param.substr(eq + 1));
          if (key == "dbname")
            collect_secrets(lenient_decode(param.substr(eq + 1)), out, depth + 1);
        }
        query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
      }
    }
    return;
  }
  const Conninfo info = parse_conninfo(url);
  for (const auto& pair : info.pairs) {
    if (pair.key == "password") {
      add_secret(out, pair.value);
      add_secret(out, pair.raw);
    }
    if (pair.key == "dbname") collect_secrets(pair.value, out, depth + 1);
  }
  // An unterminated or malformed string: hide everything after "password" however it is spelt.
  if (info.problem) {
    size_t pos = url.find("password");
    while (pos != std::string_view::npos) {
      size_t i = pos + 8;
      while (i < url.size() && (is_space(url[i]) || url[i] == '=')) ++i;
      if (i < url.size()) add_secret(out, url.substr(i));
      pos = url.find("password", pos + 1);
    }
  }
}

}  // namespace

std::vector<std::string> database_url_secrets(std::string_view url) {
  std::vector<std::string> out;
  collect_secrets(url, out, 0);
  std::sort(out.begin(), out.end(),
            [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

std::string redact_database_secrets(std::string_view text, std::string_view url) {
  std::string out(text);
  for (const auto& secret : database_url_secrets(url)) {
    size_t pos = out.find(secret);
    while (pos != std::string::npos) {
      out.replace(pos, secret.size(), "***");
      pos = out.find(secret, pos + 3);
    }
  }
  return out;
}

std::string redact_database_url(std::string_view url) {
  if (const size_t end = scheme_end(url); end != 0) {
    const UrlParts p = split_url(url, end);
    std::string out(p.scheme);
    out += "://";
    if (p.has_userinfo) {
      out += p.userinfo.substr(0, p.userinfo.find(':'));
      out += '@';
    }
    out += p.rest;
    return redact_database_secrets(out, url);
  }
  return redact_database_secrets(url, url);
}

std::optional<std::string> database_url_problem(std::string_view url) {
  if (const size_t end = scheme_end(url); end != 0) {
    const UrlParts p = split_url(url, end);
    if (p.scheme != "postgresql" && p.scheme != "postgres")
      return "the URL must start with postgresql:// or postgres:// (lower case)";
    if (p.userinfo.find('@') != std::string_view::npos) {
      return "the user name or password contains an unencoded '@'; write it as %40";
    }
    for (size_t i = 0; i < p.userinfo.size(); ++i) {
      if (p.userinfo[i] != '%') continue;
      const bool ok = i + 2 < p.userinfo.size() && hex_value(p.userinfo[i + 1]) >= 0 &&
                      hex_value(p.userinfo[i + 2]) >= 0 && p.userinfo.substr(i + 1, 2) != "00";
      if (!ok) {
        return "the user name or password has a bad %-escape (expected % and two hex digits, "
               "not %00)";
      }
      i += 2;
    }
    return std::nullopt;
  }
  return parse_conninfo(url).problem;
}

}  // namespace relay
