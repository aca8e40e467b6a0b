# Included by tests/fuzz/CMakeLists.txt (after RELAY_ROOT, fmt and the sanitizer flags are set):
#   include(${CMAKE_CURRENT_SOURCE_DIR}/helpers.cmake)
# The shared text parsers (relay/common) and the /status document (relay/model): one target each.
# common/clock.cc holds RELAY_CHECK's check_failed, which Result uses.
find_package(Threads REQUIRED)
find_package(nlohmann_json REQUIRED)
add_library(relay_fuzz_common STATIC
  ${RELAY_ROOT}/relay/common/time_format.cc
  ${RELAY_ROOT}/relay/common/endpoint.cc
  ${RELAY_ROOT}/relay/common/base64.cc
  ${RELAY_ROOT}/relay/common/utf8.cc
  ${RELAY_ROOT}/relay/common/clock.cc)
target_include_directories(relay_fuzz_common PUBLIC ${RELAY_ROOT})
target_compile_options(relay_fuzz_common PRIVATE -fsanitize=fuzzer-no-link)
target_link_libraries(relay_fuzz_common PUBLIC fmt::fmt Threads::Threads)

relay_fuzz_target(text_helpers relay_fuzz_common)

add_library(relay_fuzz_model STATIC ${RELAY_ROOT}/relay/model/status_document.cc
  ${RELAY_ROOT}/relay/model/modes.cc)
target_compile_options(relay_fuzz_model PRIVATE -fsanitize=fuzzer-no-link)
target_link_libraries(relay_fuzz_model PUBLIC relay_fuzz_common nlohmann_json::nlohmann_json)

relay_fuzz_target(status_document relay_fuzz_model)

# The inbox's signature schemes (relay/inbox/*_verifier.cc) with what they use: Standard Webhooks'
# signer, base64, durations, header names; OpenSSL for the HMAC, nlohmann for the JSON bodies.
find_package(OpenSSL REQUIRED)
add_library(relay_fuzz_inbox STATIC
  ${RELAY_ROOT}/relay/inbox/request_verifier.cc
  ${RELAY_ROOT}/relay/inbox/webhook_verifier.cc
  ${RELAY_ROOT}/relay/inbox/stripe_verifier.cc
  ${RELAY_ROOT}/relay/inbox/github_verifier.cc
  ${RELAY_ROOT}/relay/inbox/shopify_verifier.cc
  ${RELAY_ROOT}/relay/delivery/signer.cc
  ${RELAY_ROOT}/relay/common/duration.cc
  ${RELAY_ROOT}/relay/common/http_header.cc)
target_compile_options(relay_fuzz_inbox PRIVATE -fsanitize=fuzzer-no-link)
target_link_libraries(relay_fuzz_inbox PUBLIC relay_fuzz_common OpenSSL::Crypto
  nlohmann_json::nlohmann_json)

relay_fuzz_target(webhook_signature relay_fuzz_inbox)
