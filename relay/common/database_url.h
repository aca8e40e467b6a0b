#pragma once
// Passwords in a database URL, found and hidden without trusting the URL to be well-formed.
//
// libpq echoes what it cannot parse: a bad %-escape ("invalid percent-encoded token: ..."), a
// whole string whose scheme it does not know (it then reads it as key=value conninfo: "missing
// \"=\" after ..."), or a piece of the password when an unencoded '@' or '/' splits it (the rest
// becomes the host or port). So relay (1) refuses, with its own words, the malformed shapes it can
// recognise before libpq sees them, and (2) removes every password fragment from any text that
// leaves relay. Pure functions; thread-safe.
//
// Forms read: "scheme://user:password@host:port/db?password=..." (any scheme, any case: a typo is
// still a URL to hide), and libpq key=value conninfo ("host=h password=secret",
// "password='se cret'", with backslash escapes; a dbname that is itself a URL is read too).

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace relay {

// Every secret `url` holds: each password as written, %-decoded, and each piece of it between
// '@', '/' and ':' (libpq may print any one of them). Never empty strings; longest first. In a
// URL the user information is everything between "://" and the LAST '@'; the password is what
// follows its first ':'.
std::vector<std::string> database_url_secrets(std::string_view url);

// `text` with every occurrence of a secret of `url` replaced by "***". A short password may hide
// innocent text too; that is the price of never printing it.
std::string redact_database_secrets(std::string_view text, std::string_view url);

// `url` safe for logs and errors: "postgresql://user@host:5432/db" for a URL (the password and
// the ':' before it dropped), "host=h password=***" for conninfo.
std::string redact_database_url(std::string_view url);

// nullopt if libpq can read the shape of `url`; otherwise what is wrong, in words that quote no
// part of the URL: a scheme other than postgresql:// or postgres://, an unencoded '@' or a bad
// %-escape in the user name or password, conninfo that is not key=value pairs or has an
// unterminated quote.
std::optional<std::string> database_url_problem(std::string_view url);

}  // namespace relay
