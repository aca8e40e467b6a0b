#pragma once
// InboxStore: writes events received on POST /inbox/{source} into relay.inbox, exactly once per
// (source, event_id), with one autocommitted INSERT ... ON CONFLICT DO NOTHING statement. When the
// source pushes to the app, the same statement also queues a relay.delivery row for subscription
// "inbox:<source>", so the pipeline delivers it like a retry of an outbox event (per-key order,
// breaker, dead letters). A result is returned only after the statement committed.
//
// Connections: a pool of at most `max_connections` libpqxx connections (one per inbox worker),
// each opened on first use. A connection that failed is discarded; the next request reconnects.
//
// InboxRetention: deletes finished inbox rows past the retention, in batches.
//
// InboxStore is thread-safe (each call borrows a connection for its duration). InboxRetention is
// not: one owner thread.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "relay/common/duration.h"
#include "relay/common/result.h"

namespace relay::store {

class PgConnection;

// One received event, validated by the caller: every text field is valid UTF-8 without NUL bytes
// and headers_json is a JSON object of strings.
struct InboxEvent {
  std::string source;
  std::string event_id;
  std::optional<std::string> topic;
  std::optional<std::string> key;
  std::string payload;  // raw bytes
  std::string content_type;
  std::string headers_json = "{}";
  // The event's own creation time (ce-time / envelope), if the sender gave one. Pushed events
  // carry it as created_at; otherwise the time of receipt is used.
  std::optional<std::chrono::system_clock::time_point> created_at;
};

// How a pushing source's events are queued in relay.delivery.
struct InboxPush {
  std::string subscription;  // "inbox:<source>"
  bool ordered = true;       // the subscription's ordering is per_key
  // An event queued behind an earlier pending event of its key is due only this much later, unless
  // its predecessor's completion promotes it first (the pipeline's safety net: max_backoff).
  Millis queued_recheck{600'000};
};

// What one insert() did. busy: every connection stayed busy for acquire_timeout, nothing was
// written. Otherwise each event was either stored (a new row, and its delivery row if pushed) or a
// duplicate ((source, event_id) was already stored: nothing written for it).
struct InboxWrite {
  bool busy = false;
  int stored = 0;
  int duplicates = 0;
};

struct InboxStoreOptions {
  int max_connections = 16;        // pool size, >= 1
  Millis acquire_timeout{1000};    // wait for a free connection before answering kBusy
  Millis statement_timeout{5000};  // server-side bound on the INSERT (SET statement_timeout)
};

class InboxStore {
 public:
  InboxStore(std::string database_url, InboxStoreOptions options);
  ~InboxStore();
  InboxStore(const InboxStore&) = delete;
  InboxStore& operator=(const InboxStore&) = delete;

  // Stores `events` (one or more, e.g. a batch envelope) in one transaction; `push` set queues each
  // new one for delivery as well. Any failure is kUnavailable: the database cannot be reached, the
  // statement failed or ran past statement_timeout, or the connection broke while it ran (then it
  // may have committed, and the sender's retry is a duplicate). The connection is discarded after
  // any failure.
  Result<InboxWrite> insert(std::span<const InboxEvent> events, const InboxPush* push);

 private:
  struct Slot;
  Slot* acquire();
  void release(Slot* slot);

  const std::string url_;
  const InboxStoreOptions options_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<Slot>> slots_;  // guarded by mu_ (the vector; a slot by its user)
  std::vector<Slot*> free_;                   // guarded by mu_
};

class InboxRetention {
 public:
  explicit InboxRetention(std::string database_url);
  ~InboxRetention();
  InboxRetention(const InboxRetention&) = delete;
  InboxRetention& operator=(const InboxRetention&) = delete;

  // Deletes up to `batch` rows processed (or dead-lettered) more than `retention` ago, by the
  // database's clock, in one statement. Returns how many it deleted; kUnavailable if the database
  // cannot be reached (the connection is reopened on the next call).
  Result<int> delete_batch(Millis retention, int batch);

 private:
  std::unique_ptr<PgConnection> conn_;
};

}  // namespace relay::store
