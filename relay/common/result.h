#pragma once
// Result<T>: a value or an Error. The API mirrors std::expected (has_value, value, error, *, ->)
// so that moving to C++23 is a rename. relay code returns Result instead of throwing.

#include <string>
#include <utility>
#include <variant>

#include "relay/common/check.h"

namespace relay {

enum class ErrorCode {
  kUnavailable,      // retry later: database down, network
  kConflict,         // retry the transaction now: serialization failure, deadlock
  kInDoubt,          // the commit state is unknown; re-read before acting
  kInvalidArgument,  // the caller's input is wrong
  kNotFound,
  kInternal,
};

const char* to_string(ErrorCode code);

struct Error {
  ErrorCode code = ErrorCode::kInternal;
  std::string message;
};

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}      // NOLINT: implicit on purpose, like std::expected
  Result(Error error) : v_(std::move(error)) {}  // NOLINT

  bool has_value() const { return v_.index() == 0; }
  explicit operator bool() const { return has_value(); }

  T& value() & {
    RELAY_CHECK(has_value(), "Result::value() on an error");
    return std::get<0>(v_);
  }
  const T& value() const& {
    RELAY_CHECK(has_value(), "Result::value() on an error");
    return std::get<0>(v_);
  }
  T&& value() && {
    RELAY_CHECK(has_value(), "Result::value() on an error");
    return std::get<0>(std::move(v_));
  }
  const Error& error() const {
    RELAY_CHECK(!has_value(), "Result::error() on a value");
    return std::get<1>(v_);
  }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  std::variant<T, Error> v_;
};

// Result<void>: success or an Error.
template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)), ok_(false) {}  // NOLINT
  bool has_value() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const Error& error() const {
    RELAY_CHECK(!ok_, "Result::error() on a value");
    return error_;
  }

 private:
  Error error_;
  bool ok_ = true;
};

using Status = Result<void>;

}  // namespace relay
