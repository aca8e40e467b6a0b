#pragma once
// Fault points: deterministic failure injection, so tests can drive what goes wrong between two
// statements (a commit whose acknowledgement is lost, a connection that dies mid-call) instead of
// hoping a kill lands there. A call site asks fault_fires("name") at the moment the fault would
// strike; it fires only when the environment variable RELAY_FAULTS arms that name:
//
//   RELAY_FAULTS="claim_outbox.ack_lost"        every time the point is reached
//   RELAY_FAULTS="claim_outbox.ack_lost@2"      only the 2nd time (1-based)
//   RELAY_FAULTS="a@1,b"                        several points, comma-separated
//
// Unset (production), every call returns false after one relaxed load. RELAY_FAULTS is read once,
// at the first call. Thread-safe.

#include <string_view>

namespace relay {

// True when the point `name` is armed and this hit is one that fires.
bool fault_fires(std::string_view name);

// The armed points as given, for a startup warning; empty when none.
std::string_view armed_faults();

}  // namespace relay
