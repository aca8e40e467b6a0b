#include "relay/store/pg_connection.h"

#include <poll.h>

#include "relay/store/transaction.h"

namespace relay::store {

namespace {

// False when the server has ended this session (pg_terminate_backend, a restart, an idle timeout):
// it says so on the socket before it closes it, so the news is already there to read. A
// notification is kept for its receiver. Reading it
// here means the connection is dropped without a statement being started on it, which matters
// beyond saving a round trip: libpqxx 6.4 leaks the PGresult of a statement that finds its
// connection broken (fixed in libpqxx 7). A server that dies between this check and the statement
// still costs that leak; scripts/lsan.supp covers only that.
bool still_open(pqxx::connection& c) {
  const int fd = c.sock();
  if (fd < 0) return false;
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, 0) <= 0) return true;  // nothing to read: open as far as anyone can tell
  try {
    // Between statements the server sends only notifications on its own, or the FATAL message
    // that ends the session (before the socket closes). Anything else read here — a parameter
    // change after a reload, say — costs a harmless reconnect.
    return c.get_notifs() > 0 && c.is_open();
  } catch (const std::exception&) {
    return false;
  }
}

}  // namespace

Result<pqxx::connection*> PgConnection::get() {
  if (conn_ && still_open(*conn_) && !watch_->ended) return conn_.get();
  reset();
  auto c = connect(url_);
  if (!c) return c.error();
  if (on_connect_) {
    try {
      on_connect_(**c);
    } catch (const std::exception& e) {
      return classify_exception(e);
    }
  }
  watch_ = std::make_unique<SessionEndWatch>(**c);
  conn_ = std::move(*c);
  return conn_.get();
}

void PgConnection::reset() {
  if (!conn_) return;
  // Close the socket first, without a word to the server: what is attached to the connection then
  // sends nothing as it goes (a receiver would UNLISTEN), and nothing runs on a dead session.
  conn_->disconnect();
  if (before_drop_) before_drop_();
  watch_.reset();  // an errorhandler must die before its connection
  conn_.reset();
}

PgConnection::~PgConnection() { reset(); }

}  // namespace relay::store
