#include "relay/store/pg_connection.h"

#include <poll.h>

#include "relay/store/transaction.h"

namespace relay::store {
namespace {

// False when the server has ended this session (pg_terminate_backend, a restart, an idle timeout):
// it says so on the socket before it closes it, so the news is already there to read. Reading it
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
    c.get_notifs();  // consumes what arrived: a notification (kept for its receiver) or the end
    return c.is_open();
  } catch (const std::exception&) {
    return false;
  }
}

}  // namespace

Result<pqxx::connection*> PgConnection::get() {
  if (conn_ && still_open(*conn_)) return conn_.get();
  if (conn_ && before_drop_) before_drop_();
  conn_.reset();
  auto c = connect(url_);
  if (!c) return c.error();
  if (on_connect_) {
    try {
      on_connect_(**c);
    } catch (const std::exception& e) {
      return classify_exception(e);
    }
  }
  conn_ = std::move(*c);
  return conn_.get();
}

void PgConnection::reset() { conn_.reset(); }

}  // namespace relay::store
