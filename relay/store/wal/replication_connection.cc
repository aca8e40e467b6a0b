#include "relay/store/wal/replication_connection.h"

#include <errno.h>
#include <fmt/format.h>
#include <libpq-fe.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <vector>

#include "relay/common/database_url.h"

namespace relay::store::wal {

namespace {

using SteadyClock = std::chrono::steady_clock;
using Rows = std::vector<std::vector<std::string>>;

constexpr std::string_view kSqlstateMark = "(SQLSTATE ";

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '.')) s.pop_back();
  return s;
}

// The code a server error gets; classify_replication_error() tells the cases apart.
ErrorCode code_for(std::string_view sqlstate) {
  if (sqlstate.empty() || sqlstate.starts_with("08") || sqlstate.starts_with("57P0") ||
      sqlstate == "55006") {
    return ErrorCode::kUnavailable;  // connection trouble, or another reader: retry later
  }
  if (sqlstate == "42704") return ErrorCode::kNotFound;
  if (sqlstate == "42501" || sqlstate == "55000" || sqlstate == "53400" || sqlstate == "42710") {
    return ErrorCode::kInvalidArgument;  // the server's setup or the slot's state
  }
  return ErrorCode::kInternal;
}

Error server_error(std::string_view what, const PGresult* res) {
  const char* state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
  const char* primary = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
  const char* detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
  std::string msg =
      fmt::format("{}: {}", what, primary ? primary : trim(PQresultErrorMessage(res)));
  if (detail) msg += fmt::format(" ({})", trim(detail));
  std::string sqlstate = state ? state : "";
  if (!sqlstate.empty()) msg += fmt::format(" {}{})", kSqlstateMark, sqlstate);
  return Error{code_for(sqlstate), std::move(msg)};
}

Error lost(std::string_view what, pg_conn* conn) {
  return Error{ErrorCode::kUnavailable, fmt::format("{}: {}", what, trim(PQerrorMessage(conn)))};
}

// libpq's connection failure text, verbose ("FATAL:  42501: must be ...\nLOCATION:  ..."), made
// plain, with the SQLSTATE moved to the end where sqlstate_of() finds it.
std::string connect_failure_text(std::string text) {
  std::string sqlstate;
  for (std::string_view level : {"FATAL:  ", "ERROR:  "}) {
    const auto at = text.find(level);
    if (at == std::string::npos) continue;
    const auto code_at = at + level.size();
    if (text.size() >= code_at + 7 && text.compare(code_at + 5, 2, ": ") == 0) {
      bool code = true;
      for (std::size_t i = 0; i < 5; ++i) {
        const char c = text[code_at + i];
        code = code && ((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z'));
      }
      if (code) {
        sqlstate = text.substr(code_at, 5);
        text.erase(code_at, 7);
      }
    }
    break;
  }
  if (const auto loc = text.find("\nLOCATION:"); loc != std::string::npos) {
    const auto end = text.find('\n', loc + 1);
    text.erase(loc, end == std::string::npos ? std::string::npos : end - loc);
  }
  text = trim(std::move(text));
  // One line: libpq continues a message with "\n\t" ("Connection refused\n\tIs the server ...").
  std::string line;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\n' && i + 1 < text.size() && text[i + 1] == '\t') continue;
    line.push_back(text[i] == '\n' || text[i] == '\t' ? ' ' : text[i]);
  }
  text = std::move(line);
  if (!sqlstate.empty()) text += fmt::format(" {}{})", kSqlstateMark, sqlstate);
  return text;
}

bool valid_slot_name(const std::string& slot) {
  if (slot.empty() || slot.size() > 63) return false;
  for (char c : slot) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
  }
  return true;
}

Status check_slot_name(const std::string& slot) {
  if (valid_slot_name(slot)) return {};
  return Error{
      ErrorCode::kInvalidArgument,
      fmt::format("invalid replication slot name \"{}\": use 1-63 of a-z, 0-9 and _", slot)};
}

}  // namespace

std::string sqlstate_of(const Error& error) {
  const auto at = error.message.rfind(kSqlstateMark);
  if (at == std::string::npos) return "";
  const auto start = at + kSqlstateMark.size();
  if (error.message.size() < start + 6 || error.message[start + 5] != ')') return "";
  return error.message.substr(start, 5);
}

ReplicationFailure classify_replication_error(const Error& error) {
  const std::string state = sqlstate_of(error);
  const std::string& m = error.message;
  if (state == "42704") {
    if (m.find("publication \"") != std::string::npos)
      return ReplicationFailure::kPublicationMissing;
    if (m.find("replication slot \"") != std::string::npos) return ReplicationFailure::kSlotMissing;
    return ReplicationFailure::kOther;
  }
  if (state == "55006") return ReplicationFailure::kSlotActive;
  if (state == "55000") {
    if (m.find("wal_level") != std::string::npos) return ReplicationFailure::kWalLevelNotLogical;
    if (m.find("can no longer get changes") != std::string::npos ||
        m.find("invalidated") != std::string::npos) {
      return ReplicationFailure::kSlotInvalidated;
    }
    return ReplicationFailure::kOther;
  }
  if (state == "42501") return ReplicationFailure::kNotReplicationRole;
  if (state == "53400") return ReplicationFailure::kSlotsExhausted;
  if (state == "42710") return ReplicationFailure::kSlotExists;
  if (error.code == ErrorCode::kUnavailable) return ReplicationFailure::kConnectionLost;
  return ReplicationFailure::kOther;
}

Result<std::unique_ptr<ReplicationConnection>> ReplicationConnection::open(
    const std::string& database_url, Millis connect_timeout) {
  // libpq echoes what it cannot parse, password included: refuse those shapes in our own words.
  if (auto problem = database_url_problem(database_url)) {
    return Error{
        ErrorCode::kInvalidArgument,
        fmt::format("invalid database URL {}: {}", redact_database_url(database_url), *problem)};
  }
  auto fail = [&](PGconn* c, std::string text) -> Error {
    if (c) PQfinish(c);
    return Error{ErrorCode::kUnavailable,
                 fmt::format("cannot open a replication connection to {}: {}",
                             redact_database_url(database_url),
                             redact_database_secrets(text, database_url))};
  };
  // dbname is expanded (a URL or conninfo); the later "replication" overrides one inside it.
  const char* keys[] = {"dbname", "replication", nullptr};
  const char* values[] = {database_url.c_str(), "database", nullptr};
  PGconn* c = PQconnectStartParams(keys, values, 1);
  if (c == nullptr) return Error{ErrorCode::kInternal, "libpq: out of memory"};
  // Verbose: a FATAL at login then carries its SQLSTATE (42501 for a role without REPLICATION),
  // which libpq offers no other way to read before a connection exists.
  PQsetErrorVerbosity(c, PQERRORS_VERBOSE);
  if (PQstatus(c) == CONNECTION_BAD) return fail(c, connect_failure_text(PQerrorMessage(c)));

  const auto deadline = SteadyClock::now() + connect_timeout;
  PostgresPollingStatusType st = PGRES_POLLING_WRITING;
  while (st != PGRES_POLLING_OK) {
    if (st == PGRES_POLLING_FAILED) return fail(c, connect_failure_text(PQerrorMessage(c)));
    const auto left = std::chrono::duration_cast<Millis>(deadline - SteadyClock::now()).count();
    if (left <= 0) {
      return fail(c, fmt::format("timed out after {}", format_duration(connect_timeout)));
    }
    pollfd p{PQsocket(c), static_cast<short>(st == PGRES_POLLING_READING ? POLLIN : POLLOUT), 0};
    const int n = ::poll(&p, 1, static_cast<int>(left));
    if (n < 0 && errno != EINTR) return fail(c, fmt::format("poll: errno {}", errno));
    if (n <= 0) continue;  // EINTR or timeout: the deadline check above decides
    st = PQconnectPoll(c);
  }
  PQsetErrorVerbosity(c, PQERRORS_DEFAULT);
  const int fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (fd < 0) {
    PQfinish(c);
    return Error{ErrorCode::kInternal, fmt::format("eventfd: errno {}", errno)};
  }
  return std::unique_ptr<ReplicationConnection>(new ReplicationConnection(c, fd));
}

ReplicationConnection::ReplicationConnection(pg_conn* conn, int event_fd)
    : conn_(conn), event_fd_(event_fd) {}

ReplicationConnection::~ReplicationConnection() {
  free_copy_buffer();
  PQfinish(conn_);
  ::close(event_fd_);
}

void ReplicationConnection::free_copy_buffer() {
  if (copy_buffer_ != nullptr) PQfreemem(copy_buffer_);
  copy_buffer_ = nullptr;
}

void ReplicationConnection::interrupt() {
  const std::uint64_t one = 1;
  // EAGAIN only when the counter is at its maximum: an interrupt is pending anyway.
  [[maybe_unused]] const auto n = ::write(event_fd_, &one, sizeof one);
  interrupt_pending_.store(true);
}

bool ReplicationConnection::drain_interrupt() {
  std::uint64_t v = 0;
  const bool was_set = ::read(event_fd_, &v, sizeof v) == static_cast<ssize_t>(sizeof v);
  interrupt_pending_.store(false);
  return was_set;
}

int ReplicationConnection::backend_pid() const { return PQbackendPID(conn_); }

int ReplicationConnection::wait_socket(bool for_write, int timeout_ms) {
  const auto deadline = SteadyClock::now() + Millis(timeout_ms);
  while (true) {
    pollfd p[2] = {{PQsocket(conn_), static_cast<short>(for_write ? POLLOUT : POLLIN), 0},
                   {event_fd_, POLLIN, 0}};
    int wait_ms = -1;
    if (timeout_ms >= 0) {
      const auto left = std::chrono::duration_cast<Millis>(deadline - SteadyClock::now()).count();
      wait_ms = left > 0 ? static_cast<int>(left) : 0;
    }
    const int n = ::poll(p, 2, wait_ms);
    if (n < 0) {
      if (errno == EINTR) continue;
      return 1;  // let libpq find out what is wrong with the socket
    }
    if (n == 0) return 0;
    if (p[1].revents != 0 && drain_interrupt()) return -1;
    if (p[0].revents != 0) return 1;
  }
}

struct ReplicationConnection::CommandResult {
  Rows rows;
};

Result<std::unique_ptr<ReplicationConnection::CommandResult>> ReplicationConnection::run(
    const std::string& command, int expected_status) {
  const std::string what = command.substr(0, command.find(' '));
  if (PQsendQuery(conn_, command.c_str()) != 1) return lost(what, conn_);
  auto out = std::make_unique<CommandResult>();
  std::optional<Error> failure;
  bool cancelled = false;
  while (true) {
    while (PQisBusy(conn_) != 0) {
      const int w = wait_socket(false, -1);
      if (w < 0) {
        // An interrupt: ask the server to cancel (e.g. a slot creation waiting for transactions
        // to end), then wait for the command's error as usual.
        if (!cancelled) {
          if (PGcancel* cancel = PQgetCancel(conn_)) {
            char buf[256];
            PQcancel(cancel, buf, sizeof buf);
            PQfreeCancel(cancel);
          }
          cancelled = true;
        }
        continue;
      }
      if (PQconsumeInput(conn_) != 1) return lost(what, conn_);
    }
    PGresult* res = PQgetResult(conn_);
    if (res == nullptr) break;
    const ExecStatusType st = PQresultStatus(res);
    if (st == PGRES_COPY_BOTH) {
      PQclear(res);
      if (expected_status != PGRES_COPY_BOTH) {
        return Error{ErrorCode::kInternal, fmt::format("{}: unexpected CopyBoth", what)};
      }
      return out;  // streaming: no further result until the copy ends
    }
    if (st == PGRES_FATAL_ERROR || st == PGRES_NONFATAL_ERROR || st == PGRES_BAD_RESPONSE) {
      if (!failure) failure = server_error(what, res);
    } else if (st == PGRES_TUPLES_OK) {
      for (int r = 0; r < PQntuples(res); ++r) {
        std::vector<std::string> row;
        for (int f = 0; f < PQnfields(res); ++f) {
          row.emplace_back(PQgetisnull(res, r, f) ? "" : PQgetvalue(res, r, f));
        }
        out->rows.push_back(std::move(row));
      }
    }
    PQclear(res);
  }
  if (failure) return *failure;
  if (expected_status == PGRES_COPY_BOTH) {
    return Error{ErrorCode::kInternal, fmt::format("{}: the server did not start streaming", what)};
  }
  if (PQstatus(conn_) == CONNECTION_BAD) return lost(what, conn_);
  return out;
}

Result<ReplicationConnection::SystemInfo> ReplicationConnection::identify_system() {
  auto r = run("IDENTIFY_SYSTEM", PGRES_TUPLES_OK);
  if (!r) return r.error();
  const Rows& rows = (*r)->rows;
  if (rows.size() != 1 || rows[0].size() < 4) {
    return Error{ErrorCode::kInternal, "IDENTIFY_SYSTEM: unexpected result shape"};
  }
  SystemInfo info;
  info.system_id = rows[0][0];
  info.timeline = std::atoi(rows[0][1].c_str());
  const auto lsn = parse_lsn(rows[0][2]);
  if (!lsn) return Error{ErrorCode::kInternal, "IDENTIFY_SYSTEM: bad xlogpos " + rows[0][2]};
  info.xlogpos = *lsn;
  info.dbname = rows[0][3];
  return info;
}

Result<ReplicationConnection::CreatedSlot> ReplicationConnection::create_slot(
    const std::string& slot, bool export_snapshot) {
  if (auto s = check_slot_name(slot); !s) return s.error();
  auto r = run(fmt::format("CREATE_REPLICATION_SLOT {} LOGICAL pgoutput (SNAPSHOT '{}')", slot,
                           export_snapshot ? "export" : "nothing"),
               PGRES_TUPLES_OK);
  if (!r) return r.error();
  // slot_name, consistent_point, snapshot_name, output_plugin
  const Rows& rows = (*r)->rows;
  if (rows.size() != 1 || rows[0].size() < 3) {
    return Error{ErrorCode::kInternal, "CREATE_REPLICATION_SLOT: unexpected result shape"};
  }
  const auto lsn = parse_lsn(rows[0][1]);
  if (!lsn) {
    return Error{ErrorCode::kInternal,
                 "CREATE_REPLICATION_SLOT: bad consistent point " + rows[0][1]};
  }
  return CreatedSlot{*lsn, export_snapshot ? rows[0][2] : std::string()};
}

Status ReplicationConnection::drop_slot(const std::string& slot) {
  if (auto s = check_slot_name(slot); !s) return s.error();
  auto r = run("DROP_REPLICATION_SLOT " + slot, PGRES_COMMAND_OK);
  if (!r) return r.error();
  return {};
}

Status ReplicationConnection::start(const std::string& slot, const std::string& publication,
                                    Lsn from) {
  if (auto s = check_slot_name(slot); !s) return s.error();
  // publication_names is a string literal holding a list of identifiers: quote the name as an
  // identifier, then the whole as a literal.
  std::string ident = "\"";
  for (char c : publication) {
    if (c == '"') ident += '"';
    ident += c;
  }
  ident += '"';
  std::string literal = "'";
  for (char c : ident) {
    if (c == '\'') literal += '\'';
    literal += c;
  }
  literal += '\'';
  auto r = run(fmt::format("START_REPLICATION SLOT {} LOGICAL {} (proto_version '1', "
                           "publication_names {}, binary 'true')",
                           slot, format_lsn(from), literal),
               PGRES_COPY_BOTH);
  if (!r) return r.error();
  return {};
}

Result<std::optional<std::string_view>> ReplicationConnection::next(Millis timeout) {
  free_copy_buffer();
  if (interrupt_pending_.load(std::memory_order_relaxed)) {
    drain_interrupt();
    return std::optional<std::string_view>();
  }
  const auto deadline = SteadyClock::now() + timeout;
  while (true) {
    char* buf = nullptr;
    const int n = PQgetCopyData(conn_, &buf, 1);
    if (n > 0) {
      copy_buffer_ = buf;
      return std::optional<std::string_view>(std::string_view(buf, static_cast<std::size_t>(n)));
    }
    if (n == -2) return lost("replication stream", conn_);
    if (n == -1) {
      // The copy ended: the server's error (or plain end of stream) is in the next result.
      std::optional<Error> failure;
      // A CopyDone from the server leaves libpq in COPY_IN (it is our turn to end the copy);
      // bounded, in case a confused server keeps it there.
      for (int i = 0; i < 16; ++i) {
        PGresult* res = PQgetResult(conn_);
        if (res == nullptr) break;
        const ExecStatusType st = PQresultStatus(res);
        if (!failure && (st == PGRES_FATAL_ERROR || st == PGRES_NONFATAL_ERROR)) {
          failure = server_error("replication stream", res);
        }
        PQclear(res);
        if (st == PGRES_COPY_IN || st == PGRES_COPY_BOTH) {
          if (PQputCopyEnd(conn_, nullptr) != 1 || PQflush(conn_) != 0) break;
          continue;
        }
        if (PQstatus(conn_) == CONNECTION_BAD) break;
      }
      if (failure) return *failure;
      return Error{ErrorCode::kUnavailable, "replication stream: the server ended the stream"};
    }
    const auto left = std::chrono::duration_cast<Millis>(deadline - SteadyClock::now()).count();
    const int w = wait_socket(false, left > 0 ? static_cast<int>(left) : 0);
    if (w <= 0) return std::optional<std::string_view>();
    if (PQconsumeInput(conn_) != 1) return lost("replication stream", conn_);
  }
}

Status ReplicationConnection::send_status(Lsn write, Lsn flush, Lsn apply, bool reply_requested) {
  const std::string msg = encode_standby_status(
      write, flush, apply, to_pg_micros(std::chrono::system_clock::now()), reply_requested);
  if (PQputCopyData(conn_, msg.data(), static_cast<int>(msg.size())) != 1) {
    return lost("standby status update", conn_);
  }
  if (PQflush(conn_) != 0) return lost("standby status update", conn_);
  return {};
}

}  // namespace relay::store::wal
