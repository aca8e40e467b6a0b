#include <catch2/catch.hpp>

#include "relay/store/wal/replication_connection.h"

using namespace relay::store::wal;
using relay::Error;
using relay::ErrorCode;

namespace {

ReplicationFailure classify(ErrorCode code, const std::string& message) {
  return classify_replication_error(Error{code, message});
}

}  // namespace

TEST_CASE("sqlstate_of reads the SQLSTATE at the end of a replication error", "[store_wal]") {
  CHECK(sqlstate_of(Error{ErrorCode::kNotFound, "x: y (SQLSTATE 42704)"}) == "42704");
  CHECK(sqlstate_of(Error{ErrorCode::kInternal, "a (SQLSTATE 57P01) b (SQLSTATE 55006)"}) ==
        "55006");
  CHECK(sqlstate_of(Error{ErrorCode::kUnavailable, "connection refused"}) == "");
  CHECK(sqlstate_of(Error{ErrorCode::kUnavailable, "(SQLSTATE 123"}) == "");
  CHECK(sqlstate_of(Error{ErrorCode::kUnavailable, "(SQLSTATE 123456)"}) == "");
}

TEST_CASE("classify_replication_error tells the setup problems apart", "[store_wal]") {
  using F = ReplicationFailure;
  CHECK(classify(ErrorCode::kNotFound,
                 "START_REPLICATION: replication slot \"s\" does not exist (SQLSTATE 42704)") ==
        F::kSlotMissing);
  CHECK(classify(ErrorCode::kNotFound,
                 "replication stream: publication \"p\" does not exist (SQLSTATE 42704)") ==
        F::kPublicationMissing);
  CHECK(
      classify(ErrorCode::kUnavailable,
               "START_REPLICATION: replication slot \"s\" is active for PID 7 (SQLSTATE 55006)") ==
      F::kSlotActive);
  CHECK(classify(ErrorCode::kInvalidArgument,
                 "START_REPLICATION: cannot read from logical replication slot \"s\" (This slot "
                 "has been invalidated because it exceeded the maximum reserved size) (SQLSTATE "
                 "55000)") == F::kSlotInvalidated);
  CHECK(classify(ErrorCode::kInvalidArgument,
                 "CREATE_REPLICATION_SLOT: logical decoding requires wal_level >= logical "
                 "(SQLSTATE 55000)") == F::kWalLevelNotLogical);
  CHECK(classify(ErrorCode::kUnavailable,
                 "cannot open a replication connection to postgresql://u@h/db: FATAL:  must be "
                 "superuser or replication role to start walsender (SQLSTATE 42501)") ==
        F::kNotReplicationRole);
  CHECK(classify(ErrorCode::kInvalidArgument,
                 "CREATE_REPLICATION_SLOT: all replication slots are in use (SQLSTATE 53400)") ==
        F::kSlotsExhausted);
  CHECK(classify(ErrorCode::kInvalidArgument,
                 "CREATE_REPLICATION_SLOT: replication slot \"s\" already exists (SQLSTATE "
                 "42710)") == F::kSlotExists);
  CHECK(classify(ErrorCode::kUnavailable, "replication stream: server closed the connection") ==
        F::kConnectionLost);
  CHECK(classify(ErrorCode::kInternal, "x (SQLSTATE 55000)") == F::kOther);
  CHECK(classify(ErrorCode::kInternal, "something else") == F::kOther);
}
