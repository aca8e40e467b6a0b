#include "relay/store/pg_connection.h"

#include "relay/store/transaction.h"

namespace relay::store {

Result<pqxx::connection*> PgConnection::get() {
  if (conn_) return conn_.get();
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
