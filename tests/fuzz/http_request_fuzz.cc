// libFuzzer target for the HTTP request parser (relay/http/request_parser.h). Beyond "no crash"
// (and no ASan/UBSan report), it checks properties of every input, under roomy and under tight
// limits:
//  - a complete request took no more bytes than were given, and within every bound;
//  - re-parsing exactly the consumed bytes gives the same request;
//  - a decided answer (complete or error) does not change when more bytes are appended;
//  - an error has one of the statuses the server answers, and a reason;
//  - the incremental RequestParser fed byte by byte, and in two reads split at an input-chosen
//    point, gives exactly what one call over all the bytes gives.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <variant>

#include "relay/common/http_header.h"
#include "relay/http/request_parser.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using relay::http::Complete;
using relay::http::NeedMore;
using relay::http::parse_request;
using relay::http::ParseError;
using relay::http::ParseResult;
using relay::http::RequestLimits;
using relay::http::RequestParser;

bool same(const ParseResult& a, const ParseResult& b) {
  if (a.index() != b.index()) return false;
  if (const auto* x = std::get_if<NeedMore>(&a)) {
    const auto& y = std::get<NeedMore>(b);
    return x->only_empty_lines == y.only_empty_lines && x->head_complete == y.head_complete &&
           x->expect_continue == y.expect_continue;
  }
  if (const auto* x = std::get_if<ParseError>(&a)) {
    const auto& y = std::get<ParseError>(b);
    return x->status == y.status && x->reason == y.reason;
  }
  const auto& x = std::get<Complete>(a);
  const auto& y = std::get<Complete>(b);
  return x.consumed == y.consumed && x.keep_alive == y.keep_alive &&
         x.keep_alive_header == y.keep_alive_header && x.request.method == y.request.method &&
         x.request.target == y.request.target && x.request.version == y.request.version &&
         x.request.headers == y.request.headers && x.request.body == y.request.body;
}

bool decided(const ParseResult& r) { return !std::holds_alternative<NeedMore>(r); }

void check(std::string_view in, const RequestLimits& limits, size_t split) {
  const ParseResult whole = parse_request(in, limits);

  if (const auto* c = std::get_if<Complete>(&whole)) {
    FUZZ_CHECK(c->consumed > 0 && c->consumed <= in.size());
    FUZZ_CHECK(static_cast<std::int64_t>(c->request.body.size()) <= limits.max_body_bytes);
    FUZZ_CHECK(c->request.headers.size() <= static_cast<size_t>(limits.max_headers));
    FUZZ_CHECK(relay::is_http_token(c->request.method));
    FUZZ_CHECK(c->request.version == "HTTP/1.1" || c->request.version == "HTTP/1.0");
    FUZZ_CHECK(!c->request.target.empty());
    for (const auto& [name, value] : c->request.headers) {
      FUZZ_CHECK(relay::is_http_token(name) && relay::is_http_field_value(value));
    }
    FUZZ_CHECK(!c->keep_alive_header || c->keep_alive);
    FUZZ_CHECK(same(parse_request(in.substr(0, c->consumed), limits), whole));
  } else if (const auto* e = std::get_if<ParseError>(&whole)) {
    FUZZ_CHECK(e->status == 400 || e->status == 411 || e->status == 413 || e->status == 417 ||
               e->status == 431 || e->status == 505);
    FUZZ_CHECK(!e->reason.empty());
  } else {
    const auto& n = std::get<NeedMore>(whole);
    FUZZ_CHECK(!n.expect_continue || n.head_complete);
    FUZZ_CHECK(!(n.only_empty_lines && n.head_complete));
    if (n.only_empty_lines) {
      for (size_t i = 0; i < in.size(); ++i) FUZZ_CHECK(in[i] == (i % 2 == 0 ? '\r' : '\n'));
    }
  }

  if (decided(whole)) {
    std::string longer(in);
    longer += "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    longer.append(in);
    FUZZ_CHECK(same(parse_request(longer, limits), whole));
  }

  // Byte by byte: the first decided answer is the whole input's, and comes at the same place a
  // one-shot parse of that prefix would decide.
  {
    RequestParser parser(limits);
    ParseResult last = NeedMore{};
    for (size_t i = 0; i <= in.size(); ++i) {
      last = parser.parse(in.substr(0, i));
      if (decided(last)) break;
    }
    FUZZ_CHECK(same(last, whole));
  }
  // Two reads.
  {
    RequestParser parser(limits);
    ParseResult first = parser.parse(in.substr(0, split));
    if (decided(first)) {
      FUZZ_CHECK(same(first, whole));
      FUZZ_CHECK(same(parse_request(in.substr(0, split), limits), whole));
    } else {
      FUZZ_CHECK(same(parser.parse(in), whole));
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  std::size_t hash = 0;
  for (std::uint8_t b : in) hash = hash * 131 + b;
  const std::size_t split = size == 0 ? 0 : hash % (size + 1);
  check(in, RequestLimits{.max_header_bytes = 4096, .max_headers = 32, .max_body_bytes = 4096},
        split);
  check(in, RequestLimits{.max_header_bytes = 64, .max_headers = 2, .max_body_bytes = 8}, split);
  return 0;
}
