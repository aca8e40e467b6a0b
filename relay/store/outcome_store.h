#pragma once
// PgOutcomeStore: writes a batch of outcomes in one transaction: deletes delivered outbox rows,
// moves failed parts to relay.delivery, dead letters to relay.dead_letter, and releases aborted
// claims. Every statement is fenced by lease_owner, so a relay that lost its lease changes nothing.
// Not thread-safe: one owner thread.

#include <memory>
#include <string>
#include <vector>

#include "relay/common/result.h"
#include "relay/model/outcome_sink.h"
#include "relay/store/outbox_row_source.h"

namespace relay::store {

class PgConnection;

class PgOutcomeStore final : public model::OutcomeSink {
 public:
  // `blocking`: subscriptions with on_dead_letter block (their dead-lettered head keeps holding
  // the key, so the next event is not promoted).
  PgOutcomeStore(std::string database_url, std::string owner, int max_response_bytes,
                 std::vector<std::string> blocking = {},
                 OutboxRowSource rows = OutboxRowSource::kTable);
  ~PgOutcomeStore() override;
  PgOutcomeStore(const PgOutcomeStore&) = delete;
  PgOutcomeStore& operator=(const PgOutcomeStore&) = delete;

  // All or nothing. kUnavailable/kConflict/kInDoubt: nothing is known to be written; the caller
  // retries the same batch (every statement is idempotent under the lease fence).
  Status record(const model::OutcomeBatch& batch) override;

 private:
  const std::string owner_;
  const int max_response_bytes_;
  const std::vector<std::string> blocking_;
  std::unique_ptr<PgConnection> conn_;
};

}  // namespace relay::store
