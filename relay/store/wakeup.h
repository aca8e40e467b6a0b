#pragma once
// OutboxListener: LISTENs on the channel the outbox trigger notifies ("relay_outbox") and records
// that a notification arrived. Lives exactly as long as its connection. Internal to relay/store.

#include <pqxx/pqxx>

namespace relay::store {

inline constexpr const char* kOutboxChannel = "relay_outbox";

class OutboxListener final : public pqxx::notification_receiver {
 public:
  OutboxListener(pqxx::connection& conn, bool& flag)
      : pqxx::notification_receiver(conn, kOutboxChannel), flag_(flag) {}
  void operator()(const std::string& /*payload*/, int /*backend_pid*/) override { flag_ = true; }

 private:
  bool& flag_;
};

}  // namespace relay::store
