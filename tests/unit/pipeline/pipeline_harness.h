#pragma once
// PipelineHarness: the pipeline under test, wired to a FakeStore, a FakeEndpoint and a
// ManualClock, with the few helpers every pipeline test needs: build a config, drive the manual
// clock until a condition holds, read a metric, and check per-key order in what the endpoint got.
//
// Time: the pipeline's threads wait on the ManualClock, so nothing that waits for time happens
// until a test moves it. drive_until() moves it in small steps, letting the pipeline react after
// each (it waits, briefly, for any call into a fake), with a real-time deadline as a safety net;
// wait_until() waits in real time with the clock frozen (for what needs no time to pass).

#include <prometheus/registry.h>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "relay/common/clock.h"
#include "relay/config/config.h"
#include "relay/pipeline/pipeline.h"
#include "tests/support/fake_sender.h"
#include "tests/support/fake_store.h"

namespace relay::testing {

// The pipeline's types, named in one place.
using Pipeline = pipeline::Pipeline;
using PipelineStats = pipeline::DispatchStats;
using PipelineSenderFactory = pipeline::SenderFactory;

// A subscription with test-friendly defaults: endpoint http://consumer.test/<name>, one lane,
// retries that never run out (max_attempts 1000) with 10ms..100ms backoff, a breaker that opens
// after 5 failures for 100ms..1s.
config::SubscriptionConfig test_subscription(const std::string& name,
                                             std::vector<std::string> topics);
// A config with these subscriptions; source.batch_size `batch_size`, a lease far longer than any
// test moves the clock (so leases never lapse), a 100ms safety-net poll.
config::Config test_config(std::vector<config::SubscriptionConfig> subscriptions,
                           int batch_size = 100);

// A consumer that answers 503 to about `percent`% of the requests for each (subscription, event)
// and 2xx to the rest: the n-th try of an event is failed or not by (seed, subscription, event,
// n), so a run is reproducible in what each part goes through, whatever the threads'
// interleaving. (A batch fails when one of its events does: FakeEndpoint asks for each in order.)
// Counting requests rather than attempt numbers matters: a failed breaker probe is no attempt, and
// a probe that failed by its attempt number would fail again forever.
FakeEndpoint::Script flaky_consumer(std::uint64_t seed, int percent);

class PipelineHarness {
 public:
  explicit PipelineHarness(config::Config config);
  PipelineHarness(config::Config config, FakeEndpoint::Script script);
  PipelineHarness(const PipelineHarness&) = delete;
  PipelineHarness& operator=(const PipelineHarness&) = delete;
  ~PipelineHarness();

  // Creates the pipeline (REQUIRE-fails if it cannot be built) and starts it.
  void start();
  // Shuts the pipeline down with its drain and final deadlines `drain` and `final_wait` from now
  // (computed here, before the call). Blocks until done.
  Status shutdown(Millis drain = Millis(0), Millis final_wait = Millis(0));

  // Moves the clock `step` at a time until `pred` holds. Returns false if it still does not hold
  // after `real_limit` of real time.
  bool drive_until(const std::function<bool()>& pred, Millis step = Millis(5),
                   Millis real_limit = Millis(20'000));
  // Moves the clock by `total` in steps of `step`, letting the pipeline react after each.
  void drive_for(Millis total, Millis step = Millis(5));
  // Waits in real time, the clock frozen, until `pred` holds. False after `real_limit`.
  static bool wait_until(const std::function<bool()>& pred, Millis real_limit = Millis(20'000));

  // The store's rows and the request count, for failure messages.
  std::string describe() const;
  // No row is leased: nothing claimed waits for its outcome.
  bool idle() const;
  // The value of a counter (0 when the series does not exist).
  double counter(const std::string& name, const std::map<std::string, std::string>& labels) const;

  const config::Config config;
  ManualClock clock;
  FakeStore store;
  FakeEndpoint endpoint;
  prometheus::Registry registry;
  PipelineStats stats;
  std::unique_ptr<Pipeline> pipeline;  // last: stopped before the fakes go

 private:
  long long activity() const { return store.activity() + endpoint.activity(); }
};

// One (subscription, event) the test expects to be delivered: the events published, each with the
// subscriptions that match its topic.
struct Expected {
  std::int64_t outbox_id = 0;
  std::optional<std::string> key;
  std::vector<std::string> subscriptions;
};

// Checks what the endpoint received against `expected` and returns one line per problem (empty:
// all good):
// - every expected (subscription, event) was delivered exactly once, and nothing else was;
// - no request carries an event that an earlier request delivered (a repeat only ever follows a
//   failure);
// - per (subscription, key), a request carries an event only when every earlier expected event of
//   the key is done (delivered, or answered with a final status: dead-lettered) or goes before it
//   in the same request (a batch keeps order). So each key is delivered in outbox order.
// Assumes no event runs out of retries (that dead letter is invisible to the endpoint).
std::vector<std::string> order_violations(const std::vector<SentRequest>& requests,
                                          const std::vector<Expected>& expected);

}  // namespace relay::testing
