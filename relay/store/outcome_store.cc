#include "relay/store/outcome_store.h"

#include <fmt/format.h>

#include <algorithm>
#include <set>

#include "relay/common/utf8.h"
#include "relay/store/outbox_rows.h"
#include "relay/store/pg_arrays.h"
#include "relay/store/pg_connection.h"
#include "relay/store/transaction.h"

namespace relay::store {
namespace {

// A part's event copy comes from the row this relay still holds (INSERT ... SELECT ... WHERE
// lease_owner = me): if the lease was lost, nothing is copied and nothing is deleted. The outbox
// statements say "mine" as {0}: see mine(); {1} is the part's place in its key's order: see
// place_in_key_order().
constexpr const char* kOutboxToDelivery = R"(
  INSERT INTO relay.delivery (outbox_id, event_id, subscription, topic, key, payload, content_type, headers,
                              created_at, expires_at, attempts, first_failed_at, next_attempt_at,
                              last_status, last_error, last_response)
  SELECT {1}, event_id, $2, topic, key, payload, content_type, headers, created_at, expires_at,
         $3, now(), now() + $4 * interval '1 millisecond', NULLIF($5, 0), NULLIF($6, ''), NULLIF($7, '')
    FROM relay.outbox WHERE id = $1 AND {0}
  ON CONFLICT (event_id, subscription) DO NOTHING
  RETURNING id)";

constexpr const char* kOutboxToDeadLetter = R"(
  INSERT INTO relay.dead_letter (event_id, subscription, topic, key, payload, content_type, headers, created_at,
                                 deliver_after, expires_at, reason, attempts, last_status, last_error, last_response,
                                 outbox_id)
  SELECT event_id, $2, topic, key, payload, content_type, headers, created_at, deliver_after, expires_at,
         $3, $4, NULLIF($5, 0), NULLIF($6, ''), NULLIF($7, ''), {1}
    FROM relay.outbox WHERE id = $1 AND {0})";

constexpr const char* kDeleteOutbox =
    "DELETE FROM relay.outbox WHERE id = ANY($1::bigint[]) AND {0}";
constexpr const char* kReleaseOutbox =
    "UPDATE relay.outbox SET lease_owner = NULL, lease_until = NULL WHERE id = ANY($1::bigint[]) "
    "AND {0}";

constexpr const char* kDeliveryRetry = R"(
  UPDATE relay.delivery
     SET attempts = $2, next_attempt_at = now() + $3 * interval '1 millisecond',
         last_status = NULLIF($4, 0), last_error = NULLIF($5, ''), last_response = NULLIF($6, ''),
         lease_owner = NULL, lease_until = NULL
   WHERE id = $1 AND lease_owner = $7)";

constexpr const char* kDeliveryToDeadLetter = R"(
  INSERT INTO relay.dead_letter (event_id, subscription, topic, key, payload, content_type, headers, created_at,
                                 expires_at, reason, attempts, last_status, last_error, last_response, outbox_id)
  SELECT event_id, subscription, topic, key, payload, content_type, headers, created_at, expires_at,
         $2, $3, NULLIF($4, 0), NULLIF($5, ''), NULLIF($6, ''), outbox_id
    FROM relay.delivery WHERE id = $1 AND lease_owner = $7
  RETURNING subscription, key)";

// A deferred part keeps its attempt count and last error: only the next attempt moves.
constexpr const char* kDeliveryDefer = R"(
  UPDATE relay.delivery
     SET next_attempt_at = now() + $2 * interval '1 millisecond', lease_owner = NULL, lease_until = NULL
   WHERE id = $1 AND lease_owner = $3)";

constexpr const char* kDeleteDeliveries =
    "DELETE FROM relay.delivery WHERE id = ANY($1::bigint[]) AND lease_owner = $2 RETURNING "
    "subscription, key";

// Events queued behind a key's head wait with a far next_attempt_at; when the head leaves, its
// successor is due at once. A successor queued concurrently with the head leaving is handled by
// kDueIfFirst on its side.
constexpr const char* kPromoteNext = R"(
  UPDATE relay.delivery SET next_attempt_at = now()
   WHERE id = (SELECT id FROM relay.delivery WHERE subscription = $1 AND key = $2 ORDER BY outbox_id LIMIT 1)
     AND next_attempt_at > now() AND lease_owner IS NULL)";
constexpr const char* kReleaseDeliveries =
    "UPDATE relay.delivery SET lease_owner = NULL, lease_until = NULL WHERE id = ANY($1::bigint[]) "
    "AND lease_owner = $2";

// Response bodies and error texts come from the network: make them valid UTF-8 without NULs so a
// text column accepts them (invalid bytes become U+FFFD), and cap the length in bytes.
std::string to_safe_text(const std::string& in, size_t max_bytes) {
  std::string out;
  out.reserve(std::min(in.size(), max_bytes));
  size_t i = 0;
  while (i < in.size() && out.size() < max_bytes) {
    // Overlong forms and surrogates are replaced too: PostgreSQL would refuse the whole row.
    const size_t len = utf8_sequence_length(in, i);
    if (len == 0 || in[i] == '\0') {
      out += "\xEF\xBF\xBD";
      ++i;
      continue;
    }
    if (out.size() + len > max_bytes) break;
    out.append(in, i, len);
    i += len;
  }
  return out;
}

// How an outbox statement says "this relay's row": its lease (table mode), or no lease at all when
// nobody leases outbox rows (WAL mode: one reader streams them). `owner` is the statement's owner
// parameter, still referenced so its type is known.
std::string mine(OutboxRowSource rows, const char* owner) {
  return rows == OutboxRowSource::kTable
             ? fmt::format("lease_owner = {}", owner)
             : fmt::format("lease_owner IS NULL AND {}::text IS NOT NULL", owner);
}

// The outbox_id column of relay.delivery and relay.dead_letter is a part's place in its key's
// order (claim_deliveries, promote_next and due_if_first order by it; a replay goes back to it).
std::string_view place_in_key_order(OutboxRowSource rows) {
  return rows == OutboxRowSource::kTable ? "id" : "nextval('relay.outbox_id_seq')";
}

}  // namespace

PgOutcomeStore::PgOutcomeStore(std::string database_url, std::string owner, int max_response_bytes,
                               std::vector<std::string> blocking, OutboxRowSource rows)
    : owner_(std::move(owner)),
      max_response_bytes_(max_response_bytes),
      blocking_(std::move(blocking)) {
  conn_ = std::make_unique<PgConnection>(std::move(database_url), [rows](pqxx::connection& c) {
    plan_for_queue_tables(c);  // `id = ANY(array)` must probe the primary key
    c.prepare("outbox_to_delivery",
              fmt::format(kOutboxToDelivery, mine(rows, "$8"), place_in_key_order(rows)));
    c.prepare("outbox_to_dead_letter",
              fmt::format(kOutboxToDeadLetter, mine(rows, "$8"), place_in_key_order(rows)));
    c.prepare("delete_outbox", fmt::format(kDeleteOutbox, mine(rows, "$2")));
    c.prepare("release_outbox", fmt::format(kReleaseOutbox, mine(rows, "$2")));
    c.prepare("delivery_retry", kDeliveryRetry);
    c.prepare("delivery_to_dead_letter", kDeliveryToDeadLetter);
    c.prepare("delivery_defer", kDeliveryDefer);
    c.prepare("delete_deliveries", kDeleteDeliveries);
    c.prepare("promote_next", kPromoteNext);
    c.prepare("due_if_first", std::string(kDueIfFirst));
    c.prepare("release_deliveries", kReleaseDeliveries);
  });
}

PgOutcomeStore::~PgOutcomeStore() = default;

Status PgOutcomeStore::record(const model::OutcomeBatch& batch) {
  if (batch.empty()) return {};
  auto c = conn_->get();
  if (!c) return c.error();
  const size_t max_resp = static_cast<size_t>(max_response_bytes_);
  const size_t kMaxErrorBytes = 1024;

  Status result = run_transaction(**c, [&](pqxx::work& txn) {
    std::vector<std::int64_t> outbox_done, outbox_release;
    for (const model::OutboxOutcome& o : batch.outbox) {
      bool all_aborted = !o.parts.empty();
      for (const model::PartOutcome& p : o.parts)
        all_aborted = all_aborted && p.kind == model::PartOutcome::Kind::kAborted;
      if (all_aborted) {
        outbox_release.push_back(o.outbox_id);
        continue;
      }
      for (const model::PartOutcome& p : o.parts) {
        const int status = p.last_status.value_or(0);
        const std::string error = to_safe_text(p.last_error, kMaxErrorBytes);
        const std::string response = to_safe_text(p.last_response, max_resp);
        switch (p.kind) {
          case model::PartOutcome::Kind::kDelivered:
            break;
          case model::PartOutcome::Kind::kRetry:
          case model::PartOutcome::Kind::kDeferred:
          case model::PartOutcome::Kind::kAborted: {  // others finished: keep this part, no attempt
            const auto inserted = txn.exec_prepared(
                "outbox_to_delivery", o.outbox_id, p.subscription, p.attempts,
                static_cast<long long>(p.retry_in.count()), status, error, response, owner_);
            if (p.behind_key && !inserted.empty())
              txn.exec_prepared("due_if_first", inserted[0][0].as<std::int64_t>());
            break;
          }
          case model::PartOutcome::Kind::kDeadLetter:
            txn.exec_prepared("outbox_to_dead_letter", o.outbox_id, p.subscription,
                              std::string(model::name_of(p.reason)), p.attempts, status, error,
                              response, owner_);
            break;
        }
      }
      outbox_done.push_back(o.outbox_id);
    }
    if (!outbox_done.empty()) txn.exec_prepared("delete_outbox", bigint_array(outbox_done), owner_);
    if (!outbox_release.empty())
      txn.exec_prepared("release_outbox", bigint_array(outbox_release), owner_);

    std::vector<std::int64_t> deliveries_done, deliveries_release;
    std::set<std::pair<std::string, std::string>>
        blocked_keys;  // (subscription, key) just dead-lettered
    for (const model::DeliveryOutcomeRecord& d : batch.deliveries) {
      const model::PartOutcome& p = d.part;
      const int status = p.last_status.value_or(0);
      const std::string error = to_safe_text(p.last_error, kMaxErrorBytes);
      const std::string response = to_safe_text(p.last_response, max_resp);
      switch (p.kind) {
        case model::PartOutcome::Kind::kDelivered:
          deliveries_done.push_back(d.delivery_id);
          break;
        case model::PartOutcome::Kind::kRetry:
          txn.exec_prepared("delivery_retry", d.delivery_id, p.attempts,
                            static_cast<long long>(p.retry_in.count()), status, error, response,
                            owner_);
          break;
        case model::PartOutcome::Kind::kDeadLetter:
          for (const auto& row : txn.exec_prepared("delivery_to_dead_letter", d.delivery_id,
                                                   std::string(model::name_of(p.reason)),
                                                   p.attempts, status, error, response, owner_)) {
            if (!row[1].is_null())
              blocked_keys.emplace(row[0].as<std::string>(), row[1].as<std::string>());
          }
          deliveries_done.push_back(d.delivery_id);
          break;
        case model::PartOutcome::Kind::kAborted:
          deliveries_release.push_back(d.delivery_id);
          break;
        case model::PartOutcome::Kind::kDeferred:
          txn.exec_prepared("delivery_defer", d.delivery_id,
                            static_cast<long long>(p.retry_in.count()), owner_);
          if (p.behind_key) txn.exec_prepared("due_if_first", d.delivery_id);
          break;
      }
    }
    if (!deliveries_done.empty()) {
      std::set<std::pair<std::string, std::string>> keys;
      for (const auto& row :
           txn.exec_prepared("delete_deliveries", bigint_array(deliveries_done), owner_)) {
        if (row[1].is_null()) continue;
        keys.emplace(row[0].as<std::string>(), row[1].as<std::string>());
      }
      for (const auto& [sub, key] : keys) {
        // A dead-lettered head of a `block` subscription keeps holding its key: no promotion. (The
        // claim checks that too; this only saves a useless wake-up.)
        if (std::find(blocking_.begin(), blocking_.end(), sub) != blocking_.end() &&
            blocked_keys.count({sub, key}) != 0) {
          continue;
        }
        txn.exec_prepared("promote_next", sub, key);
      }
    }
    if (!deliveries_release.empty())
      txn.exec_prepared("release_deliveries", bigint_array(deliveries_release), owner_);
  });
  if (!result && result.error().code == ErrorCode::kUnavailable) conn_->reset();
  return result;
}

}  // namespace relay::store
