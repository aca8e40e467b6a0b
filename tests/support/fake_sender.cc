#include "tests/support/fake_sender.h"

#include <fmt/format.h>

#include <utility>

namespace relay::testing {

FakeSender::FakeSender(FakeEndpoint& endpoint, std::string subscription)
    : endpoint_(endpoint), subscription_(std::move(subscription)) {}

delivery::DeliveryOutcome FakeSender::send(const Event& event, int attempt) {
  const delivery::BatchItem item{.event = &event, .attempt = attempt};
  return endpoint_.handle(*this, std::span(&item, 1), false);
}

delivery::DeliveryOutcome FakeSender::send_batch(std::span<const delivery::BatchItem> items) {
  return endpoint_.handle(*this, items, true);
}

void FakeSender::stop() { endpoint_.stop(*this); }

FakeEndpoint::FakeEndpoint(Clock& clock)
    : FakeEndpoint(clock, [](const std::string&, const Event&, int) { return delivered(); }) {}

FakeEndpoint::FakeEndpoint(Clock& clock, Script script)
    : clock_(clock), script_(std::move(script)) {}

std::unique_ptr<delivery::HttpSender> FakeEndpoint::make_sender(const std::string& subscription) {
  return std::make_unique<FakeSender>(*this, subscription);
}

void FakeEndpoint::set_script(Script script) {
  std::lock_guard lock(mu_);
  script_ = std::move(script);
}

void FakeEndpoint::close_gate(GateFilter which) {
  std::lock_guard lock(mu_);
  gate_closed_ = true;
  gate_filter_ = std::move(which);
}

void FakeEndpoint::open_gate() {
  {
    std::lock_guard lock(mu_);
    gate_closed_ = false;
  }
  cv_.notify_all();
}

int FakeEndpoint::held() const {
  std::lock_guard lock(mu_);
  return held_;
}

void FakeEndpoint::stop(FakeSender& sender) {
  {
    std::lock_guard lock(mu_);
    ++sender.stops_;
  }
  cv_.notify_all();
}

delivery::DeliveryOutcome FakeEndpoint::handle(FakeSender& sender,
                                               std::span<const delivery::BatchItem> items,
                                               bool batch) {
  std::unique_lock lock(mu_);
  const size_t index = requests_.size();
  {
    SentRequest r;
    r.sequence = index;
    r.subscription = sender.subscription_;
    r.batch = batch;
    for (const auto& item : items) {
      r.outbox_ids.push_back(item.event->outbox_id);
      r.event_ids.push_back(item.event->event_id);
      r.keys.push_back(item.event->key);
      r.attempts.push_back(item.attempt);
    }
    r.received_at = clock_.now();
    requests_.push_back(std::move(r));
  }
  if (gate_closed_ && (!gate_filter_ || gate_filter_(requests_[index]))) {
    // Only a stop() from now on aborts this request: one before it arrived found nothing to stop.
    const std::uint64_t stops = sender.stops_;
    ++held_;
    cv_.wait_for(lock, kGateSafetyNet, [&] { return !gate_closed_ || sender.stops_ != stops; });
    --held_;
    if (sender.stops_ != stops) {
      delivery::DeliveryOutcome aborted;
      aborted.kind = delivery::DeliveryOutcome::Kind::kRetryable;
      aborted.error = "request aborted (sender stopped)";
      requests_[index].outcome = aborted;
      requests_[index].aborted = true;
      ++answered_;
      return aborted;
    }
  }
  // The script runs under the lock: scripts are small, and this keeps them free of races.
  delivery::DeliveryOutcome outcome = delivered();
  for (const auto& item : items) {
    delivery::DeliveryOutcome o = script_(sender.subscription_, *item.event, item.attempt);
    if (o.kind != delivery::DeliveryOutcome::Kind::kDelivered) {
      outcome = std::move(o);
      break;
    }
  }
  requests_[index].outcome = outcome;
  ++answered_;
  return outcome;
}

std::vector<SentRequest> FakeEndpoint::requests() const {
  std::lock_guard lock(mu_);
  return requests_;
}

size_t FakeEndpoint::request_count() const {
  std::lock_guard lock(mu_);
  return requests_.size();
}

long long FakeEndpoint::activity() const {
  std::lock_guard lock(mu_);
  return static_cast<long long>(requests_.size()) + answered_;
}

delivery::DeliveryOutcome FakeEndpoint::delivered() {
  delivery::DeliveryOutcome o;
  o.kind = delivery::DeliveryOutcome::Kind::kDelivered;
  o.status = 200;
  return o;
}

delivery::DeliveryOutcome FakeEndpoint::retryable(int status) {
  delivery::DeliveryOutcome o;
  o.kind = delivery::DeliveryOutcome::Kind::kRetryable;
  o.status = status;
  o.error = fmt::format("HTTP {}", status);
  return o;
}

delivery::DeliveryOutcome FakeEndpoint::final_status(int status) {
  delivery::DeliveryOutcome o;
  o.kind = delivery::DeliveryOutcome::Kind::kFinal;
  o.status = status;
  o.error = fmt::format("HTTP {}", status);
  return o;
}

}  // namespace relay::testing
