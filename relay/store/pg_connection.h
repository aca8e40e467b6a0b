#pragma once
// PgConnection: one lazily (re)opened libpqxx connection. After an kUnavailable error the owner
// calls reset(); the next get() reconnects. Not thread-safe: one owner thread.

#include <cstring>
#include <functional>
#include <memory>
#include <pqxx/pqxx>
#include <string>

#include "relay/common/result.h"

namespace relay::store {

class PgConnection {
 public:
  // `on_connect` runs after every (re)connect: prepare statements, LISTEN. `before_drop` runs when
  // a connection is dropped, after it is closed and before it is destroyed: destroy what is
  // attached to it there (a notification receiver must die before its connection).
  PgConnection(std::string url, std::function<void(pqxx::connection&)> on_connect = {},
               std::function<void()> before_drop = {})
      : url_(std::move(url)),
        on_connect_(std::move(on_connect)),
        before_drop_(std::move(before_drop)) {}
  ~PgConnection();
  PgConnection(const PgConnection&) = delete;
  PgConnection& operator=(const PgConnection&) = delete;

  // The open connection, connecting first if needed; kUnavailable if the server can't be reached.
  // A connection whose session the server has ended (its socket says so) is dropped and replaced
  // first, so no statement starts on it.
  Result<pqxx::connection*> get();
  // Forget the connection (after an error that left it unusable): closes it, runs `before_drop`,
  // then destroys it. Also what get() does with a connection the server has ended.
  void reset();
  bool connected() const { return conn_ != nullptr; }

 private:
  // An idle connection's FATAL message ("terminating connection due to administrator command")
  // reaches libpq as a notice, and may be read well before the socket closes: remember it, so the
  // connection is dropped even if nothing is left to read when get() next looks.
  class SessionEndWatch : public pqxx::errorhandler {
   public:
    explicit SessionEndWatch(pqxx::connection& c) : pqxx::errorhandler(c) {}
    bool operator()(const char msg[]) noexcept override {
      if (std::strncmp(msg, "FATAL", 5) == 0 || std::strncmp(msg, "PANIC", 5) == 0) {
        ended = true;
        return false;  // handled: relay reconnects and logs what it does
      }
      return true;  // anything else goes on to libpqxx's default handling
    }
    bool ended = false;
  };
  std::string url_;
  std::function<void(pqxx::connection&)> on_connect_;
  std::function<void()> before_drop_;
  std::unique_ptr<pqxx::connection> conn_;
  std::unique_ptr<SessionEndWatch> watch_;  // on conn_; destroyed before it
};

}  // namespace relay::store
