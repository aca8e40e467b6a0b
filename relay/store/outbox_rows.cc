#include "relay/store/outbox_rows.h"

#include <fmt/format.h>

#include <chrono>

namespace relay::store {
namespace {

std::chrono::system_clock::time_point from_micros(long long us) {
  return std::chrono::system_clock::time_point{std::chrono::microseconds(us)};
}

}  // namespace

Event read_event(const pqxx::row& row, std::int64_t outbox_id, int first) {
  Event e;
  e.outbox_id = outbox_id;
  e.event_id = row[first].as<std::string>();
  e.topic = row[first + 1].as<std::string>();
  if (!row[first + 2].is_null()) e.key = row[first + 2].as<std::string>();
  e.payload = pqxx::binarystring(row[first + 3]).str();
  e.content_type = row[first + 4].as<std::string>();
  e.headers_json = row[first + 5].as<std::string>();
  e.created_at = from_micros(row[first + 6].as<long long>());
  if (!row[first + 7].is_null()) e.expires_at = from_micros(row[first + 7].as<long long>());
  return e;
}

void plan_for_queue_tables(pqxx::connection& c) {
  pqxx::nontransaction tx(c);
  tx.exec("SET enable_seqscan = off");
  tx.exec("SET enable_bitmapscan = off");
  tx.exec("SET plan_cache_mode = force_generic_plan");
}

std::string held_for_sql(std::string_view ordered, std::string_view blocking,
                         OutboxRowSource rows) {
  return fmt::format(R"(CASE WHEN o.key IS NULL OR NOT (
                   (cardinality({0}::text[]) > 0
                    AND EXISTS (SELECT 1 FROM relay.delivery d0 WHERE d0.subscription = ANY({0}::text[])))
                OR (cardinality({1}::text[]) > 0
                    AND EXISTS (SELECT 1 FROM relay.dead_letter d1
                                 WHERE d1.replayed_at IS NULL AND d1.subscription = ANY({1}::text[]))))
                 THEN '{{}}'::text[] ELSE ARRAY(
              SELECT d.subscription FROM relay.delivery d
               WHERE d.key = o.key AND d.subscription = ANY({0}::text[]) AND d.behind_outbox_id IS NULL
              UNION
              SELECT dl.subscription FROM relay.dead_letter dl
               WHERE dl.key = o.key AND dl.replayed_at IS NULL AND dl.subscription = ANY({1}::text[])
                 {2}) END)",
                     ordered, blocking,
                     rows == OutboxRowSource::kTable ? "AND dl.outbox_id < o.id" : "");
}

}  // namespace relay::store
