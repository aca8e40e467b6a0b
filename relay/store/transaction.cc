#include "relay/store/transaction.h"

#include <fmt/format.h>

#include "relay/common/database_url.h"

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

Result<std::unique_ptr<pqxx::connection>> connect(const std::string& url) {
  // libpq echoes what it cannot parse, password included: refuse those shapes in our own words.
  if (auto problem = database_url_problem(url)) {
    return Error{ErrorCode::kInvalidArgument,
                 fmt::format("invalid database URL {}: {}", redact_database_url(url), *problem)};
  }
  try {
    return std::make_unique<pqxx::connection>(url);
  } catch (const std::exception& e) {
    // libpq's message names host and port; whatever else it quotes, no password piece leaves.
    std::string msg = redact_database_secrets(e.what(), url);
    while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
    return Error{ErrorCode::kUnavailable,
                 fmt::format("cannot connect to {}: {}", redact_database_url(url), msg)};
  }
}

}  // namespace relay::store
