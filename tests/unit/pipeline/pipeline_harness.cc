#include "tests/unit/pipeline/pipeline_harness.h"

#include <fmt/format.h>
#include <prometheus/metric_family.h>

#include <catch2/catch.hpp>
#include <random>
#include <set>
#include <thread>

namespace relay::testing {
namespace {

std::vector<std::string> names_of(const config::Config& config) {
  std::vector<std::string> names;
  for (const auto& s : config.subscriptions) names.push_back(s.name);
  return names;
}

// After moving the clock: how many times to yield, waiting for some thread it woke to call a fake,
// before moving it again. Enough for a woken thread to run on a loaded 2-core machine; when one
// does call, the wait ends at once.
constexpr int kSettleYields = 200;

}  // namespace

FakeEndpoint::Script flaky_consumer(std::uint64_t seed, int percent) {
  // The endpoint calls the script under its lock, once per event of a request in body order.
  auto tries = std::make_shared<std::map<std::pair<std::string, std::int64_t>, std::uint64_t>>();
  return [seed, percent, tries](const std::string& subscription, const Event& e, int) {
    const std::uint64_t n = ++(*tries)[{subscription, e.outbox_id}];
    std::seed_seq seq{seed, static_cast<std::uint64_t>(e.outbox_id), n,
                      static_cast<std::uint64_t>(std::hash<std::string>{}(subscription))};
    std::mt19937 rng(seq);
    return static_cast<int>(rng() % 100) < percent ? FakeEndpoint::retryable(503)
                                                   : FakeEndpoint::delivered();
  };
}

config::SubscriptionConfig test_subscription(const std::string& name,
                                             std::vector<std::string> topics) {
  config::SubscriptionConfig s;
  s.name = name;
  s.topics = std::move(topics);
  s.endpoint = *parse_endpoint("http://consumer.test/" + name);
  s.max_in_flight = 1;
  s.retry.max_attempts = 1000;
  s.retry.initial_backoff = Millis(10);
  s.retry.max_backoff = Millis(100);
  s.circuit_breaker.failure_threshold = 5;
  s.circuit_breaker.open_for = Millis(100);
  s.circuit_breaker.max_open_for = Millis(1000);
  return s;
}

config::Config test_config(std::vector<config::SubscriptionConfig> subscriptions, int batch_size) {
  config::Config c;
  c.path = "(unit test)";
  c.source.batch_size = batch_size;
  c.source.poll_interval = Millis(100);
  c.source.lease = Millis(24LL * 3'600'000);
  c.subscriptions = std::move(subscriptions);
  return c;
}

PipelineHarness::PipelineHarness(config::Config c)
    : config(std::move(c)),
      store(clock, fake_store_options(config)),
      endpoint(clock),
      stats(registry, names_of(config), "test") {}

PipelineHarness::PipelineHarness(config::Config c, FakeEndpoint::Script script)
    : config(std::move(c)),
      store(clock, fake_store_options(config)),
      endpoint(clock, std::move(script)),
      stats(registry, names_of(config), "test") {}

PipelineHarness::~PipelineHarness() {
  // The pipeline's destructor stops it; a request held at the gate would hold that up.
  endpoint.open_gate();
  pipeline.reset();
}

void PipelineHarness::start() {
  const PipelineSenderFactory make_sender = [this](const config::SubscriptionConfig& sub)
      -> Result<std::unique_ptr<delivery::HttpSender>> { return endpoint.make_sender(sub.name); };
  auto created = Pipeline::create(config, fake_store_options(config).owner, clock, store, store,
                                  make_sender, stats);
  REQUIRE(created.has_value());
  pipeline = std::move(*created);
  pipeline->start();
}

Status PipelineHarness::shutdown(Millis drain, Millis final_wait) {
  const auto now = clock.now();
  return pipeline->shutdown(now + drain, now + drain + final_wait);
}

bool PipelineHarness::drive_until(const std::function<bool()>& pred, Millis step,
                                  Millis real_limit) {
  SystemClock real;
  const auto deadline = real.now() + real_limit;
  while (!pred()) {
    if (real.now() >= deadline) return false;
    const long long before = activity();
    clock.advance(step);
    for (int i = 0; i < kSettleYields && activity() == before; ++i) std::this_thread::yield();
  }
  return true;
}

void PipelineHarness::drive_for(Millis total, Millis step) {
  const auto until = clock.now() + total;
  (void)drive_until([&] { return clock.now() >= until; }, step);
}

bool PipelineHarness::wait_until(const std::function<bool()>& pred, Millis real_limit) {
  SystemClock real;
  const auto deadline = real.now() + real_limit;
  while (!pred()) {
    if (real.now() >= deadline) return false;
    std::this_thread::yield();
  }
  return true;
}

bool PipelineHarness::idle() const { return store.leased() == 0; }

double PipelineHarness::counter(const std::string& name,
                                const std::map<std::string, std::string>& labels) const {
  for (const auto& family : registry.Collect()) {
    if (family.name != name) continue;
    for (const auto& metric : family.metric) {
      bool match = true;
      for (const auto& [k, v] : labels) {
        bool found = false;
        for (const auto& l : metric.label) found = found || (l.name == k && l.value == v);
        match = match && found;
      }
      if (match) return metric.counter.value;
    }
  }
  return 0;
}

std::vector<std::string> order_violations(const std::vector<SentRequest>& requests,
                                          const std::vector<Expected>& expected) {
  std::vector<std::string> problems;
  std::set<std::pair<std::string, std::int64_t>> wanted;  // (subscription, id)
  // (subscription, key) -> its expected events' ids, ascending.
  std::map<std::pair<std::string, std::string>, std::set<std::int64_t>> by_key;
  for (const auto& e : expected) {
    for (const auto& s : e.subscriptions) {
      wanted.emplace(s, e.outbox_id);
      if (e.key) by_key[{s, *e.key}].insert(e.outbox_id);
    }
  }
  std::map<std::pair<std::string, std::int64_t>, int> delivered;  // (subscription, id) -> times
  std::set<std::pair<std::string, std::int64_t>> done;  // delivered, or dead-lettered by a 4xx
  for (const SentRequest& r : requests) {
    using OutcomeKind = delivery::DeliveryOutcome::Kind;
    const bool ok = r.outcome && r.outcome->kind == OutcomeKind::kDelivered;
    const bool final = r.outcome && r.outcome->kind == OutcomeKind::kFinal;
    for (size_t i = 0; i < r.outbox_ids.size(); ++i) {
      const std::int64_t id = r.outbox_ids[i];
      if (done.count({r.subscription, id}) != 0) {
        problems.push_back(fmt::format("request {}: event {} sent to {} again after it was done",
                                       r.sequence, id, r.subscription));
      }
      if (r.keys[i]) {
        // Every earlier event of the key is done, or goes before it in this very request.
        const auto& same_key = by_key[{r.subscription, *r.keys[i]}];
        for (auto it = same_key.begin(); it != same_key.end() && *it < id; ++it) {
          const bool before_in_request =
              std::find(r.outbox_ids.begin(), r.outbox_ids.begin() + static_cast<long>(i), *it) !=
              r.outbox_ids.begin() + static_cast<long>(i);
          if (done.count({r.subscription, *it}) == 0 && !before_in_request) {
            problems.push_back(fmt::format(
                "request {}: event {} of key {} sent to {} before the earlier event {} was done",
                r.sequence, id, *r.keys[i], r.subscription, *it));
          }
        }
      }
    }
    for (const std::int64_t id : r.outbox_ids) {
      if (ok) ++delivered[{r.subscription, id}];
      if (ok || final) done.emplace(r.subscription, id);
    }
  }
  for (const auto& part : wanted) {
    auto it = delivered.find(part);
    const int times = it == delivered.end() ? 0 : it->second;
    if (times != 1)
      problems.push_back(fmt::format("event {} delivered to {} {} times, not once", part.second,
                                     part.first, times));
  }
  for (const auto& [part, times] : delivered) {
    if (wanted.count(part) == 0)
      problems.push_back(fmt::format("event {} delivered to {}, which it does not match",
                                     part.second, part.first));
  }
  return problems;
}

std::string PipelineHarness::describe() const {
  const auto now = clock.now();
  auto ms = [&](Clock::TimePoint t) { return std::chrono::duration_cast<Millis>(t - now).count(); };
  std::string out = fmt::format("outbox ({}):", store.counts().outbox);
  for (const auto& r : store.outbox()) {
    out += fmt::format(" {}{}{}", r.event.outbox_id, r.event.key ? "/" + *r.event.key : "",
                       r.lease_owner ? "[leased]" : "");
  }
  out += "\ndelivery:";
  for (const auto& d : store.deliveries()) {
    out += fmt::format(" #{} event {}{} {} attempts={} due_in={}ms{}", d.id, d.event.outbox_id,
                       d.event.key ? "/" + *d.event.key : "", d.subscription, d.attempts,
                       ms(d.next_attempt_at), d.lease_owner ? " [leased]" : "");
  }
  out += fmt::format("\ndead letters: {}; requests: {}", store.counts().dead_letter,
                     endpoint.request_count());
  return out;
}

}  // namespace relay::testing
