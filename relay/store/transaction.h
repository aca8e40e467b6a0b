#pragma once
// The only place relay catches libpqxx exceptions: run_transaction() and connect() turn them into
// Errors by SQLSTATE, so no pqxx exception crosses the store's edge. Internal to relay/store.

#include <functional>
#include <memory>
#include <pqxx/pqxx>
#include <string>
#include <type_traits>
#include <utility>

#include "relay/common/result.h"

namespace relay::store {

// kUnavailable for a broken connection or an 08xxx/57P0x state, kConflict for 40001/40P01,
// kInternal otherwise.
Error classify_exception(const std::exception& e);

// Opens a connection. kInvalidArgument for a URL whose shape libpq would reject by echoing it
// (common/database_url.h); kUnavailable if the server cannot be reached. Messages name host and
// port but never any piece of the password, however malformed the URL.
Result<std::unique_ptr<pqxx::connection>> connect(const std::string& url);

template <typename Fn>
auto run_transaction(pqxx::connection& conn, Fn&& fn)
    -> Result<std::invoke_result_t<Fn, pqxx::work&>> {
  using T = std::invoke_result_t<Fn, pqxx::work&>;
  try {
    pqxx::work txn{conn};
    if constexpr (std::is_void_v<T>) {
      std::invoke(std::forward<Fn>(fn), txn);
      txn.commit();
      return {};
    } else {
      T value = std::invoke(std::forward<Fn>(fn), txn);
      txn.commit();
      return value;
    }
  } catch (const pqxx::in_doubt_error& e) {
    return Error{ErrorCode::kInDoubt, e.what()};
  } catch (const std::exception& e) {
    return classify_exception(e);
  }
}

// Runs one statement outside any transaction (autocommit).
template <typename Fn>
auto run_nontransaction(pqxx::connection& conn, Fn&& fn)
    -> Result<std::invoke_result_t<Fn, pqxx::nontransaction&>> {
  using T = std::invoke_result_t<Fn, pqxx::nontransaction&>;
  try {
    pqxx::nontransaction txn{conn};
    if constexpr (std::is_void_v<T>) {
      std::invoke(std::forward<Fn>(fn), txn);
      return {};
    } else {
      return std::invoke(std::forward<Fn>(fn), txn);
    }
  } catch (const std::exception& e) {
    return classify_exception(e);
  }
}

}  // namespace relay::store
