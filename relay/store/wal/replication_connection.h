#pragma once
// ReplicationConnection: one libpq connection in logical replication mode (`replication=database`),
// the walsender commands relay needs, and the CopyBoth stream after START_REPLICATION. libpqxx
// cannot open such a connection, so this is plain libpq.
//
// Thread safety: one thread owns the connection and calls everything but interrupt(); interrupt()
// may be called from any thread at any time while the object lives. No threads inside. Waits use
// poll() on the libpq socket and an eventfd; nothing sleeps.
//
// Errors. A server error's message ends with "(SQLSTATE xxxxx)"; sqlstate_of() reads it back and
// classify_replication_error() turns it into a ReplicationFailure. Observed on PostgreSQL 15.18
// (this machine); tests/integration/wal_protocol_test.cc checks each one, the settings-dependent
// ones (-) on a private cluster with the setting changed:
//   * slot does not exist (START_REPLICATION, DROP_REPLICATION_SLOT): 42704
//       replication slot "x" does not exist
//   * slot active for another PID (START_REPLICATION, DROP_REPLICATION_SLOT): 55006
//       replication slot "x" is active for PID 12345
//   - slot invalidated by max_slot_wal_keep_size (START_REPLICATION; wal_status 'lost'): 55000
//       cannot read from logical replication slot "x"
//       detail: This slot has been invalidated because it exceeded the maximum reserved size.
//   - wal_level below logical (CREATE_REPLICATION_SLOT): 55000
//       logical decoding requires wal_level >= logical
//   * role without REPLICATION (a FATAL at connect; libpq shows the SQLSTATE only in its verbose
//     text, which open() reads): 42501
//       must be superuser or replication role to start walsender
//   - max_replication_slots exhausted (CREATE_REPLICATION_SLOT): 53400
//       all replication slots are in use
//   * publication missing (START_REPLICATION succeeds; the error comes in the stream when the
//     first change is decoded): 42704
//       publication "x" does not exist
//   * slot already exists (CREATE_REPLICATION_SLOT): 42710
//       replication slot "x" already exists
// A lost connection or the end of the stream is kUnavailable with no SQLSTATE.

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "relay/common/duration.h"
#include "relay/common/result.h"
#include "relay/store/wal/pgoutput.h"

struct pg_conn;

namespace relay::store::wal {

// What a failed replication command or stream means, for the caller's remedy.
enum class ReplicationFailure {
  kOther,               // anything else (a bug, a malformed URL, out of memory)
  kConnectionLost,      // connect failed, the connection broke, or the stream ended: retry
  kSlotMissing,         // 42704 on a slot: create it (and catch up from the table)
  kSlotActive,          // 55006: another reader holds the slot: wait as a standby
  kSlotInvalidated,     // 55000 on a slot invalidated (wal_status 'lost'): recreate the slot
  kWalLevelNotLogical,  // 55000 "requires wal_level >= logical": set wal_level = logical
  kNotReplicationRole,  // 42501: ALTER ROLE ... REPLICATION
  kSlotsExhausted,      // 53400: raise max_replication_slots
  kPublicationMissing,  // 42704 on a publication: create it (relay migrate)
  kSlotExists,          // 42710 on CREATE_REPLICATION_SLOT
};

// The SQLSTATE a ReplicationConnection error carries, "" if none.
std::string sqlstate_of(const Error& error);
ReplicationFailure classify_replication_error(const Error& error);

class ReplicationConnection {
 public:
  // Connects with replication=database added to `database_url` (a postgresql:// URL or key=value
  // conninfo; any replication= in it is overridden), waiting at most `connect_timeout`.
  // Errors: kInvalidArgument for a URL libpq would misread (database_url_problem); kUnavailable
  // when the server cannot be reached, refuses the login or the time runs out; a server's refusal
  // carries its SQLSTATE (42501 for a role without REPLICATION). No error text contains the
  // password.
  static Result<std::unique_ptr<ReplicationConnection>> open(const std::string& database_url,
                                                             Millis connect_timeout);

  ReplicationConnection(const ReplicationConnection&) = delete;
  ReplicationConnection& operator=(const ReplicationConnection&) = delete;
  ReplicationConnection(ReplicationConnection&&) = delete;
  ReplicationConnection& operator=(ReplicationConnection&&) = delete;
  ~ReplicationConnection();

  struct SystemInfo {
    std::string system_id;
    int timeline = 0;
    Lsn xlogpos = 0;
    std::string dbname;
  };
  // IDENTIFY_SYSTEM.
  Result<SystemInfo> identify_system();

  struct CreatedSlot {
    Lsn consistent_point = 0;
    std::string snapshot_name;  // empty unless exported
  };
  // CREATE_REPLICATION_SLOT slot LOGICAL pgoutput (SNAPSHOT 'export' | 'nothing'). With
  // export_snapshot, the snapshot stays importable (SET TRANSACTION SNAPSHOT '<name>' in a
  // REPEATABLE READ transaction on another connection) until this connection runs its next
  // command; it shows exactly the transactions committed before the slot's consistent point.
  // Waits for transactions running at the time to end (the server needs that); interrupt() cancels
  // the wait. Errors: kInvalidArgument for a slot name other than [a-z0-9_]{1,63}; server errors
  // as in the header comment.
  Result<CreatedSlot> create_slot(const std::string& slot, bool export_snapshot);
  // DROP_REPLICATION_SLOT slot (no WAIT: an active slot is an error, 55006).
  Status drop_slot(const std::string& slot);

  // START_REPLICATION SLOT slot LOGICAL <from> (proto_version '1', publication_names '"pub"',
  // binary 'true'). `from` 0 starts at the slot's confirmed position. On success the connection
  // is streaming: only next(), send_status() and interrupt() may be used from then on.
  Status start(const std::string& slot, const std::string& publication, Lsn from);

  // Waits up to `timeout` for the next CopyData message (decode it with decode_copy_data).
  // nullopt when the time runs out, or at once when interrupt() was called since the last call
  // returned (even if messages are waiting). The bytes stay valid until the next call. The stream
  // ending or the connection breaking gives kUnavailable; an error the server sends during the
  // stream (a missing publication) carries its SQLSTATE.
  Result<std::optional<std::string_view>> next(Millis timeout);

  // Sends a standby status update (encode_standby_status, with the current time) and flushes it.
  // kUnavailable if the connection is broken.
  Status send_status(Lsn write, Lsn flush, Lsn apply, bool reply_requested);

  // Makes the current next() return nullopt at once, or the next one if none is running (a race
  // with a returning call may end one more). During a command (create_slot waiting for
  // transactions to end), asks the server to cancel it. Thread-safe.
  void interrupt();

  // The walsender's PID (pg_stat_replication.pid, pg_replication_slots.active_pid).
  int backend_pid() const;

 private:
  ReplicationConnection(pg_conn* conn, int event_fd);

  // Sends `command` and returns its last result as an Error-or-tuples. Waits interruptibly.
  struct CommandResult;
  Result<std::unique_ptr<CommandResult>> run(const std::string& command, int expected_status);
  // Waits for the socket to be readable (and/or writable), the eventfd or the deadline. Returns
  // 1 for the socket, 0 for timeout, -1 for an interrupt.
  int wait_socket(bool for_write, int timeout_ms);
  bool drain_interrupt();
  void free_copy_buffer();

  pg_conn* conn_;
  int event_fd_;
  char* copy_buffer_ = nullptr;
  // Set by interrupt() after it writes the eventfd: next() checks it without a system call.
  std::atomic<bool> interrupt_pending_{false};
};

}  // namespace relay::store::wal
