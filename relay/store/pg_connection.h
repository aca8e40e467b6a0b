#pragma once
// PgConnection: one lazily (re)opened libpqxx connection. After an kUnavailable error the owner
// calls reset(); the next get() reconnects. Not thread-safe: one owner thread.

#include <functional>
#include <memory>
#include <pqxx/pqxx>
#include <string>

#include "relay/common/result.h"

namespace relay::store {

class PgConnection {
 public:
  // `on_connect` runs after every (re)connect: prepare statements, LISTEN. `before_drop` runs
  // before get() drops a connection the server has closed: destroy what is attached to it (a
  // notification receiver must die before its connection).
  PgConnection(std::string url, std::function<void(pqxx::connection&)> on_connect = {},
               std::function<void()> before_drop = {})
      : url_(std::move(url)),
        on_connect_(std::move(on_connect)),
        before_drop_(std::move(before_drop)) {}
  PgConnection(const PgConnection&) = delete;
  PgConnection& operator=(const PgConnection&) = delete;

  // The open connection, connecting first if needed; kUnavailable if the server can't be reached.
  // A connection whose session the server has ended (its socket says so) is dropped and replaced
  // first, so no statement starts on it.
  Result<pqxx::connection*> get();
  // Forget the connection (after an error that left it unusable).
  void reset();
  bool connected() const { return conn_ != nullptr; }

 private:
  std::string url_;
  std::function<void(pqxx::connection&)> on_connect_;
  std::function<void()> before_drop_;
  std::unique_ptr<pqxx::connection> conn_;
};

}  // namespace relay::store
