#pragma once
// FakeEndpoint and FakeSender: the consumers' side of pipeline unit tests, with no network. A
// FakeEndpoint plays every subscription's endpoint; make_sender() gives the pipeline one
// FakeSender (a delivery::HttpSender) per lane, all reporting to the endpoint, which
// - answers each request with what a script returns for (subscription, event, attempt): a batch
//   request calls it once per event, in order, and answers with the first outcome that is not
//   kDelivered (or kDelivered when every event is);
// - records every request: subscription, events in order, attempt numbers, single or batch, the
//   Clock time it arrived and, once answered, the outcome;
// - can hold requests at a gate: while the gate is closed, a request that arrives is recorded and
//   then waits until open_gate(), or until its sender's stop() aborts it (the send then returns
//   kRetryable, as HttplibSender does when shutdown cuts a request off). As with a real client,
//   stop() aborts only a request in progress.
//
//   FakeEndpoint endpoint{clock, [](const std::string&, const Event& e, int attempt) {
//     return attempt == 1 ? FakeEndpoint::retryable(503) : FakeEndpoint::delivered();
//   }};
//   auto sender = endpoint.make_sender("orders");  // one per lane, from the pipeline's factory
//
// Thread-safe: lanes send concurrently while the test reads and scripts.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "relay/common/clock.h"
#include "relay/common/event.h"
#include "relay/delivery/outcome.h"
#include "relay/delivery/sender.h"

namespace relay::testing {

// One request as the endpoint received it.
struct SentRequest {
  std::uint64_t sequence = 0;  // 0, 1, 2, ... in arrival order over all subscriptions
  std::string subscription;
  bool batch = false;                    // send_batch() (even with one event), not send()
  std::vector<std::int64_t> outbox_ids;  // one per event, in body order
  std::vector<std::string> event_ids;
  std::vector<std::optional<std::string>> keys;
  std::vector<int> attempts;  // the attempt number the sender was given for each event
  Clock::TimePoint received_at{};
  std::optional<delivery::DeliveryOutcome> outcome;  // nullopt while in progress
  bool aborted = false;                              // cut off by the sender's stop()
};

class FakeEndpoint;

// One lane's sender: passes every request to its FakeEndpoint. Thread-compatible like a real
// sender (one lane uses it), except stop(), which any thread may call.
class FakeSender final : public delivery::HttpSender {
 public:
  FakeSender(FakeEndpoint& endpoint, std::string subscription);
  FakeSender(const FakeSender&) = delete;
  FakeSender& operator=(const FakeSender&) = delete;

  delivery::DeliveryOutcome send(const Event& event, int attempt) override;
  delivery::DeliveryOutcome send_batch(std::span<const delivery::BatchItem> items) override;
  // Aborts this sender's request waiting at the gate, if any.
  void stop() override;

 private:
  friend class FakeEndpoint;
  FakeEndpoint& endpoint_;
  const std::string subscription_;
  std::uint64_t stops_ = 0;  // guarded by the endpoint's mutex: stop() calls so far
};

class FakeEndpoint {
 public:
  using Script = std::function<delivery::DeliveryOutcome(const std::string& subscription,
                                                         const Event& event, int attempt)>;

  // Answers 2xx to everything.
  explicit FakeEndpoint(Clock& clock);
  FakeEndpoint(Clock& clock, Script script);
  FakeEndpoint(const FakeEndpoint&) = delete;
  FakeEndpoint& operator=(const FakeEndpoint&) = delete;

  // A sender for one lane of `subscription`. The endpoint must outlive it.
  std::unique_ptr<delivery::HttpSender> make_sender(const std::string& subscription);

  // Replaces the script for requests that arrive from now on.
  void set_script(Script script);

  // Requests arriving while the gate is closed wait (see the header comment); with `which`, only
  // those it selects (e.g. retries: r.attempts[0] > 1).
  using GateFilter = std::function<bool(const SentRequest&)>;
  void close_gate(GateFilter which = {});
  void open_gate();
  // Requests waiting at the gate now.
  int held() const;

  std::vector<SentRequest> requests() const;
  size_t request_count() const;
  // Changes with every request received and answered.
  long long activity() const;

  // Outcomes for scripts.
  static delivery::DeliveryOutcome delivered();
  static delivery::DeliveryOutcome retryable(int status = 503);
  static delivery::DeliveryOutcome final_status(int status = 400);

 private:
  friend class FakeSender;
  delivery::DeliveryOutcome handle(FakeSender& sender, std::span<const delivery::BatchItem> items,
                                   bool batch);
  void stop(FakeSender& sender);

  Clock& clock_;
  const std::chrono::milliseconds kGateSafetyNet{30'000};  // a broken test fails, never hangs

  mutable std::mutex mu_;
  std::condition_variable cv_;         // the gate opened, or a sender stopped
  Script script_;                      // guarded by mu_
  bool gate_closed_ = false;           // guarded by mu_
  GateFilter gate_filter_;             // guarded by mu_: empty = every request
  int held_ = 0;                       // guarded by mu_
  std::vector<SentRequest> requests_;  // guarded by mu_
  long long answered_ = 0;             // guarded by mu_
};

}  // namespace relay::testing
