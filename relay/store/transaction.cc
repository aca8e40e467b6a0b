#include "relay/store/transaction.h"

#include <fmt/format.h>

#include <regex>

namespace relay::store {

Error classify_exception(const std::exception& e) {
  if (dynamic_cast<const pqxx::broken_connection*>(&e) != nullptr) {
    return Error{ErrorCode::kUnavailable, e.what()};
  }
  if (const auto* sql = dynamic_cast<const pqxx::sql_error*>(&e)) {
    const std::string state = sql->sqlstate();
    if (state == "40001" || state == "40P01") return Error{ErrorCode::kConflict, e.what()};
    // 08: connection exceptions; 57P01..03: admin shutdown, crash shutdown, cannot connect now.
    if (state.rfind("08", 0) == 0 || state.rfind("57P0", 0) == 0)
      return Error{ErrorCode::kUnavailable, e.what()};
    return Error{ErrorCode::kInternal, e.what()};
  }
  return Error{ErrorCode::kInternal, e.what()};
}

std::string redact_url(const std::string& url) {
  // URL form: scheme://user:password@host... -> scheme://user@host...
  static const std::regex kUrlPassword(R"(^([a-z]+://[^:/@]*):[^@]*@)");
  std::string out = std::regex_replace(url, kUrlPassword, "$1@");
  // key=value form: password=secret -> password=***
  static const std::regex kKvPassword(R"((password\s*=\s*)('[^']*'|\S+))");
  return std::regex_replace(out, kKvPassword, "$1***");
}

Result<std::unique_ptr<pqxx::connection>> connect(const std::string& url) {
  try {
    return std::make_unique<pqxx::connection>(url);
  } catch (const std::exception& e) {
    // libpq's message names host and port; it does not echo the password.
    std::string msg = e.what();
    while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
    return Error{ErrorCode::kUnavailable,
                 fmt::format("cannot connect to {}: {}", redact_url(url), msg)};
  }
}

}  // namespace relay::store
