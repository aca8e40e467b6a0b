#pragma once
// DeadLetterStore: the SQL behind `relay dlq`: read, count, replay and purge rows of
// relay.dead_letter. Every statement is parameterized; filters never become SQL text.
//
// Replay re-enqueues the original event with the same event id for the dead letter's one
// subscription (a relay.delivery row that is due at once) and sets replayed_at, in one transaction;
// a dead letter whose replayed_at is set is never enqueued again. Dead letters of subscription '*'
// (cancelled before any delivery) and '(none)' (no subscription matched) go back into relay.outbox
// instead, so every matching subscription gets them. Dead letters of an inbox push subscription
// ("inbox:<source>", whose event ids are the sender's text ids, not uuids) always go back into
// relay.delivery, never into the outbox.
//
// Not thread-safe: one owner thread (it holds one connection).

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "relay/common/result.h"

namespace relay::store {

class PgConnection;

using WallTime = std::chrono::system_clock::time_point;

struct DeadLetter {
  std::int64_t id = 0;
  std::optional<std::int64_t> outbox_id;
  std::string event_id;
  std::string subscription;
  std::string topic;
  std::optional<std::string> key;
  std::string payload;  // raw bytes
  std::string content_type;
  std::string headers_json;  // a JSON object, as Postgres prints jsonb
  std::string reason;
  int attempts = 0;
  std::optional<int> last_status;
  std::optional<std::string> last_error;
  std::optional<std::string> last_response;
  WallTime created_at{};
  std::optional<WallTime> deliver_after;
  std::optional<WallTime> expires_at;
  WallTime failed_at{};
  std::optional<WallTime> replayed_at;
};

// Conditions that are all ANDed; an unset field does not filter.
struct DeadLetterFilter {
  std::optional<std::string> subscription;
  std::optional<std::string> topic_glob;  // * any run of characters, ? one character
  std::optional<std::string> reason;
  std::optional<std::string> key;
  std::optional<WallTime> failed_since;   // failed_at >= this
  std::optional<WallTime> failed_before;  // failed_at < this
  std::optional<std::int64_t> after_id;   // id > this (paging, bulk cursors)
  std::optional<std::int64_t> max_id;     // id <= this (bulk: rows that existed when it started)
  bool unreplayed_only = false;           // replayed_at IS NULL
};

// `relay dlq stats` and bulk summaries: one (subscription, reason) group.
struct DeadLetterGroup {
  std::string subscription;
  std::string reason;
  std::int64_t count = 0;
  std::int64_t unreplayed = 0;
  WallTime oldest_failed_at{};
  WallTime newest_failed_at{};
};

struct ReplayedRow {
  std::int64_t id = 0;
  std::string event_id;
  std::string subscription;
  // kEnqueued: a delivery (or outbox) row was written. kAlreadyQueued: the event was already
  // waiting for that subscription (or in the outbox), so nothing was written; the dead letter is
  // marked replayed all the same. kAlreadyReplayed: replayed_at was set before; nothing changed.
  enum class Outcome { kEnqueued, kAlreadyQueued, kAlreadyReplayed } outcome = Outcome::kEnqueued;
  std::optional<WallTime> replayed_at;  // the earlier replay, for kAlreadyReplayed
};

struct BatchResult {
  std::vector<ReplayedRow> rows;     // replay: one per existing id asked for, ordered by id
  std::vector<std::int64_t> ids;     // every id the batch looked at, ascending (the bulk cursor)
  std::vector<std::int64_t> purged;  // purge: the ids deleted, ascending
};

class DeadLetterStore {
 public:
  // Connects. kUnavailable (message names host and port, never the password) if it cannot.
  static Result<std::unique_ptr<DeadLetterStore>> open(const std::string& url);
  ~DeadLetterStore();
  DeadLetterStore(const DeadLetterStore&) = delete;
  DeadLetterStore& operator=(const DeadLetterStore&) = delete;

  // Up to `limit` dead letters matching `filter`, ordered by id.
  Result<std::vector<DeadLetter>> list(const DeadLetterFilter& filter, int limit);
  // The dead letter with this id, or nullopt if there is none.
  Result<std::optional<DeadLetter>> get(std::int64_t id);
  // Counts of the matching rows by (subscription, reason), ordered by subscription then reason.
  Result<std::vector<DeadLetterGroup>> stats(const DeadLetterFilter& filter);
  // The highest id now, 0 if the table is empty.
  Result<std::int64_t> max_id();

  // Replays these ids in one transaction (see the class comment). Ids with no row are left out
  // of the result.
  Result<BatchResult> replay(const std::vector<std::int64_t>& ids);
  // Replays, in one transaction, the first `batch` unreplayed dead letters matching `filter` in id
  // order. An empty `ids` means there are no more.
  Result<BatchResult> replay_next(const DeadLetterFilter& filter, int batch);

  // Deletes these ids in one transaction; `ids` of the result holds the ones that existed.
  Result<BatchResult> purge(const std::vector<std::int64_t>& ids);
  // Deletes, in one transaction, the first `batch` dead letters matching `filter` in id order.
  Result<BatchResult> purge_next(const DeadLetterFilter& filter, int batch);

 private:
  explicit DeadLetterStore(std::unique_ptr<PgConnection> conn);

  std::unique_ptr<PgConnection> conn_;
};

}  // namespace relay::store
