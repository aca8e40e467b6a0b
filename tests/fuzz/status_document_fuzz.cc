// libFuzzer target for the /status document parser (relay/model/status_document.h), which reads
// what an ops listener answers to `relay status`. Beyond "no crash" (and no ASan/UBSan report):
//  - a refused document gets kInvalidArgument and a message saying so;
//  - an accepted document survives to_json and parse unchanged: to_json(parse(to_json(doc)))
//    is to_json(doc).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "relay/model/status_document.h"
#include "tests/fuzz/fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const auto doc = relay::model::parse_status_document(input);
  if (!doc) {
    FUZZ_CHECK(doc.error().code == relay::ErrorCode::kInvalidArgument);
    FUZZ_CHECK(doc.error().message.starts_with("malformed status document: "));
    return 0;
  }
  const std::string json = relay::model::to_json(*doc);
  const auto again = relay::model::parse_status_document(json);
  FUZZ_CHECK(again.has_value());
  FUZZ_CHECK(relay::model::to_json(*again) == json);
  FUZZ_CHECK(again->subscriptions.size() == doc->subscriptions.size());
  return 0;
}
