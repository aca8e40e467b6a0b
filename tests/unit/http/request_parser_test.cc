// parse_request and RequestParser as pure functions over bytes: every bound, every rejection,
// pipelined requests, and the same answer however the bytes are split into reads.
#include "relay/http/request_parser.h"

#include <fmt/format.h>

#include <catch2/catch.hpp>
#include <string>
#include <variant>
#include <vector>

using relay::http::Complete;
using relay::http::NeedMore;
using relay::http::parse_request;
using relay::http::ParseError;
using relay::http::ParseResult;
using relay::http::RequestLimits;
using relay::http::RequestParser;

namespace {

std::string get(std::string_view target, std::string_view extra_headers = "") {
  return fmt::format("GET {} HTTP/1.1\r\nHost: test\r\n{}\r\n", target, extra_headers);
}

std::string post(std::string_view target, std::string_view body, std::string_view extra = "") {
  return fmt::format("POST {} HTTP/1.1\r\nHost: test\r\nContent-Length: {}\r\n{}\r\n{}", target,
                     body.size(), extra, body);
}

Complete complete(const ParseResult& r) {
  const auto* c = std::get_if<Complete>(&r);
  REQUIRE(c != nullptr);
  return *c;
}

ParseError error(const ParseResult& r) {
  const auto* e = std::get_if<ParseError>(&r);
  REQUIRE(e != nullptr);
  return *e;
}

NeedMore need_more(const ParseResult& r) {
  const auto* n = std::get_if<NeedMore>(&r);
  REQUIRE(n != nullptr);
  return *n;
}

int status_of(std::string_view bytes, const RequestLimits& limits = {}) {
  return error(parse_request(bytes, limits)).status;
}

// A readable summary of a result, for comparing two of them.
std::string describe(const ParseResult& r) {
  if (const auto* n = std::get_if<NeedMore>(&r)) {
    return fmt::format("need-more empty={} head={} continue={}", n->only_empty_lines,
                       n->head_complete, n->expect_continue);
  }
  if (const auto* e = std::get_if<ParseError>(&r)) {
    return fmt::format("error {} {}", e->status, e->reason);
  }
  const auto& c = std::get<Complete>(r);
  std::string s = fmt::format("complete {} {} {} consumed={} keep_alive={}/{} body={}",
                              c.request.method, c.request.target, c.request.version, c.consumed,
                              c.keep_alive, c.keep_alive_header, c.request.body);
  for (const auto& [n, v] : c.request.headers) s += fmt::format(" [{}={}]", n, v);
  return s;
}

// Feeds `bytes` to one RequestParser in pieces ending at each of `cuts` (then the whole) and
// returns the first result that is not NeedMore, or the last one.
ParseResult feed(std::string_view bytes, const std::vector<size_t>& cuts,
                 const RequestLimits& limits) {
  RequestParser parser(limits);
  for (size_t cut : cuts) {
    ParseResult r = parser.parse(bytes.substr(0, cut));
    if (!std::holds_alternative<NeedMore>(r)) return r;
  }
  return parser.parse(bytes);
}

}  // namespace

TEST_CASE("a GET is complete at the empty line that ends its head", "[http][parser]") {
  const std::string bytes = get("/healthz?x=1", "Accept:  text/plain \r\n");
  const Complete c = complete(parse_request(bytes, {}));
  CHECK(c.request.method == "GET");
  CHECK(c.request.target == "/healthz?x=1");
  CHECK(c.request.path() == "/healthz");
  CHECK(c.request.version == "HTTP/1.1");
  REQUIRE(c.request.headers.size() == 2);
  CHECK(c.request.headers[1].first == "Accept");
  CHECK(c.request.headers[1].second == "text/plain");  // OWS trimmed
  CHECK(c.request.body.empty());
  CHECK(c.consumed == bytes.size());
  CHECK(c.keep_alive);
  CHECK_FALSE(c.keep_alive_header);
  for (size_t n = 0; n < bytes.size(); ++n) {
    INFO(n);
    CHECK(std::holds_alternative<NeedMore>(parse_request(bytes.substr(0, n), {})));
  }
}

TEST_CASE("a POST is complete once Content-Length body bytes follow its head", "[http][parser]") {
  const std::string bytes = post("/inbox/a", "{\"a\":1}", "webhook-id: msg_1\r\n");
  const std::string head = bytes.substr(0, bytes.find("\r\n\r\n") + 4);
  const NeedMore waiting = need_more(parse_request(head, {}));
  CHECK(waiting.head_complete);
  CHECK_FALSE(waiting.expect_continue);
  CHECK_FALSE(waiting.only_empty_lines);
  const Complete c = complete(parse_request(bytes, {}));
  CHECK(c.request.body == "{\"a\":1}");
  CHECK(c.consumed == bytes.size());
  CHECK(*c.request.header("WEBHOOK-ID") == "msg_1");
}

TEST_CASE("pipelined requests are parsed one after another", "[http][parser]") {
  const std::string first = post("/a", "one");
  const std::string second = get("/b");
  const std::string third = post("/c", "three");
  const std::string all = first + second + third;
  std::string_view rest = all;
  std::vector<std::string> targets;
  while (!rest.empty()) {
    const Complete c = complete(parse_request(rest, {}));
    targets.push_back(c.request.target + ":" + c.request.body);
    rest.remove_prefix(c.consumed);
  }
  CHECK(targets == std::vector<std::string>{"/a:one", "/b:", "/c:three"});
  // Bytes after a request do not change it.
  CHECK(complete(parse_request(all, {})).consumed == first.size());
}

TEST_CASE("empty lines before a request are not a request", "[http][parser]") {
  CHECK(need_more(parse_request("", {})).only_empty_lines);
  CHECK(need_more(parse_request("\r\n\r\n", {})).only_empty_lines);
  CHECK_FALSE(need_more(parse_request("\r\n\r", {})).only_empty_lines);
  CHECK_FALSE(need_more(parse_request("\r\nGE", {})).only_empty_lines);
  const std::string bytes = "\r\n\r\n" + get("/x");
  const Complete c = complete(parse_request(bytes, {}));
  CHECK(c.request.target == "/x");
  CHECK(c.consumed == bytes.size());
}

TEST_CASE("max_header_bytes bounds the head, decided as soon as it is certain", "[http][parser]") {
  const RequestLimits limits{.max_header_bytes = 64};
  // Request line + header lines, each with its CRLF: exactly 64 bytes, then 65.
  const std::string base = "GET / HTTP/1.1\r\nHost: t\r\nX: ";  // 28 bytes
  const std::string at_limit = base + std::string(64 - base.size() - 2, 'a') + "\r\n\r\n";
  CHECK(std::holds_alternative<Complete>(parse_request(at_limit, limits)));
  const std::string over = base + std::string(64 - base.size() - 1, 'a') + "\r\n\r\n";
  const ParseError e = error(parse_request(over, limits));
  CHECK(e.status == 431);
  CHECK(e.reason == "request head exceeds max_header_bytes (64)");
  // Without a line end: a line may still end within max_header_bytes + 2 bytes ("...\r" + "\n"
  // at byte 66) while 65 are buffered; at 66 it cannot.
  CHECK(std::holds_alternative<NeedMore>(parse_request(std::string(65, 'G'), limits)));
  CHECK(status_of(std::string(66, 'G'), limits) == 431);
  // Leading empty lines count.
  CHECK(status_of("\r\n" + at_limit, limits) == 431);
}

TEST_CASE("max_headers bounds the header lines", "[http][parser]") {
  const RequestLimits limits{.max_headers = 3};
  CHECK(std::holds_alternative<Complete>(parse_request(get("/", "A: 1\r\nB: 2\r\n"), limits)));
  const ParseError e = error(parse_request(get("/", "A: 1\r\nB: 2\r\nC: 3\r\n"), limits));
  CHECK(e.status == 431);
  CHECK(e.reason == "more than max_headers (3) header lines");
  // Decided at the line over the bound, before the head ends.
  CHECK(status_of("GET / HTTP/1.1\r\nHost: t\r\nA: 1\r\nB: 2\r\nC: 3\r\n", limits) == 431);
}

TEST_CASE("max_body_bytes bounds Content-Length, decided from the head alone", "[http][parser]") {
  const RequestLimits limits{.max_body_bytes = 4};
  CHECK(complete(parse_request(post("/", "abcd"), limits)).request.body == "abcd");
  const std::string head = "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\n";
  const ParseError e = error(parse_request(head, limits));  // no body bytes yet
  CHECK(e.status == 413);
  CHECK(e.reason == "Content-Length 5 exceeds the limit of 4 bytes");
  // 18 digits is the most a Content-Length may have; more is malformed, not too large.
  CHECK(status_of("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 999999999999999999\r\n\r\n",
                  limits) == 413);
  CHECK(status_of("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1000000000000000000\r\n\r\n",
                  limits) == 400);
  CHECK(complete(parse_request(post("/", ""), limits)).request.body.empty());
}

TEST_CASE("each malformed request gets 400 with its reason", "[http][parser]") {
  const std::pair<const char*, const char*> cases[] = {
      {"GARBAGE\r\n\r\n", "malformed request line: expected \"METHOD SP target SP HTTP/x.y\""},
      {"GET  / HTTP/1.1\r\nHost: t\r\n\r\n",
       "malformed request line: expected \"METHOD SP target SP HTTP/x.y\""},
      {" / HTTP/1.1\r\nHost: t\r\n\r\n", "malformed request method"},
      {"GET / HTTP/1.1 \r\nHost: t\r\n\r\n",
       "malformed request line: expected \"METHOD SP target SP HTTP/x.y\""},
      {"G(T / HTTP/1.1\r\nHost: t\r\n\r\n", "malformed request method"},
      {"GET /\x7f HTTP/1.1\r\nHost: t\r\n\r\n", "malformed request target"},
      {"GET http://x/ HTTP/1.1\r\nHost: t\r\n\r\n",
       "request target must be a path (origin-form, starting with '/')"},
      {"GET * HTTP/1.1\r\nHost: t\r\n\r\n",
       "request target must be a path (origin-form, starting with '/')"},
      {"GET / HTTX/1.1\r\nHost: t\r\n\r\n", "malformed HTTP version"},
      {"GET / HTTP/1.10\r\nHost: t\r\n\r\n", "malformed HTTP version"},
      {"GET / HTTP/1.1\nHost: t\n\n", "line not terminated by CRLF (bare LF)"},
      {"\nGET / HTTP/1.1\r\n\r\n", "line not terminated by CRLF (bare LF)"},
      {"GET / HTTP/1.1\r\nHost: t\r\nX: a\rb\r\n\r\n", "invalid characters in header X"},
      {"GET / HTTP/1.1\r\nHost: t\r\nX: a\r\n  folded\r\n\r\n",
       "obsolete header line folding is not allowed"},
      {"GET / HTTP/1.1\r\nHost: t\r\nBad Name: v\r\n\r\n", "malformed header line (header #2)"},
      {"GET / HTTP/1.1\r\nHost: t\r\nNoColon\r\n\r\n", "malformed header line (header #2)"},
      {"GET / HTTP/1.1\r\n: v\r\n\r\n", "malformed header line (header #1)"},
      {"GET / HTTP/1.1\r\n\r\n", "an HTTP/1.1 request needs exactly one Host header"},
      {"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
       "an HTTP/1.1 request needs exactly one Host header"},
      {"GET / HTTP/1.0\r\nHost: a\r\nhost: a\r\n\r\n",
       "an HTTP/1.1 request needs exactly one Host header"},
      {"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: -1\r\n\r\n",
       "Content-Length must be one decimal number"},
      {"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1x\r\n\r\n",
       "Content-Length must be one decimal number"},
      {"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: \r\n\r\n",
       "Content-Length must be one decimal number"},
      {"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1, 1\r\n\r\nx",
       "Content-Length must be one decimal number"},
      {"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxy",
       "conflicting Content-Length headers"},
  };
  for (const auto& [bytes, reason] : cases) {
    INFO(bytes);
    const ParseError e = error(parse_request(bytes, {}));
    CHECK(e.status == 400);
    CHECK(e.reason == reason);
  }
}

TEST_CASE("versions, transfer codings and expectations get 505, 411 and 417", "[http][parser]") {
  const ParseError v = error(parse_request("GET / HTTP/2.0\r\nHost: t\r\n\r\n", {}));
  CHECK(v.status == 505);
  CHECK(v.reason == "HTTP version HTTP/2.0 is not supported; use HTTP/1.1");
  CHECK(status_of("GET / HTTP/0.9\r\nHost: t\r\n\r\n") == 505);
  const ParseError te = error(parse_request(
      "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
      {}));
  CHECK(te.status == 411);
  CHECK(te.reason == "Transfer-Encoding is not supported; send the body with Content-Length");
  CHECK(status_of("POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: identity\r\n"
                  "Content-Length: 1\r\n\r\nx") == 411);
  const ParseError ex =
      error(parse_request("POST / HTTP/1.1\r\nHost: t\r\nExpect: tea\r\n\r\n", {}));
  CHECK(ex.status == 417);
  CHECK(ex.reason == "only \"Expect: 100-continue\" is supported");
}

TEST_CASE("identical repeated Content-Length headers are one length", "[http][parser]") {
  const Complete c = complete(parse_request(
      "POST /d HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\ncontent-length: 2\r\n\r\nok", {}));
  CHECK(c.request.body == "ok");
}

TEST_CASE("Expect: 100-continue is reported while the body is missing", "[http][parser]") {
  const std::string head =
      "POST / HTTP/1.1\r\nHost: t\r\nExpect: 100-Continue\r\nContent-Length: 2\r\n\r\n";
  const NeedMore n = need_more(parse_request(head, {}));
  CHECK(n.head_complete);
  CHECK(n.expect_continue);
  CHECK(complete(parse_request(head + "ok", {})).request.body == "ok");
  // HTTP/1.0 clients do not get 100 Continue (RFC 9110 §10.1.1).
  const std::string old = "POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n";
  CHECK_FALSE(need_more(parse_request(old, {})).expect_continue);
}

TEST_CASE("keep-alive follows the version and the Connection header", "[http][parser]") {
  const auto framing = [](std::string_view bytes) {
    const Complete c = complete(parse_request(bytes, {}));
    return std::pair{c.keep_alive, c.keep_alive_header};
  };
  CHECK(framing("GET / HTTP/1.1\r\nHost: t\r\n\r\n") == std::pair{true, false});
  CHECK(framing("GET / HTTP/1.1\r\nHost: t\r\nConnection: Close\r\n\r\n") ==
        std::pair{false, false});
  CHECK(framing("GET / HTTP/1.1\r\nHost: t\r\nConnection: te, close\r\n\r\n") ==
        std::pair{false, false});
  CHECK(framing("GET / HTTP/1.0\r\n\r\n") == std::pair{false, false});
  CHECK(framing("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n") == std::pair{true, true});
  CHECK(framing("GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n") ==
        std::pair{false, false});
}

TEST_CASE("OPTIONS * is the one target that is not a path", "[http][parser]") {
  CHECK(complete(parse_request("OPTIONS * HTTP/1.1\r\nHost: t\r\n\r\n", {})).request.target == "*");
}

TEST_CASE("the answer does not depend on how the bytes are split into reads", "[http][parser]") {
  const RequestLimits limits{.max_header_bytes = 128, .max_headers = 4, .max_body_bytes = 16};
  const std::vector<std::string> inputs = {
      post("/inbox/a", "0123456789", "webhook-id: m\r\nwebhook-signature: v1,abc=\r\n"),
      "\r\n\r\n" + get("/x") + get("/y"),
      post("/e", "ok", "Expect: 100-continue\r\n"),
      post("/big", std::string(17, 'x')),
      get("/", "A: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n"),
      "GET / HTTP/1.1\r\nHost: t\r\nX: " + std::string(200, 'a') + "\r\n\r\n",
      std::string(129, 'G'),
      "GET / HTTP/1.1\r\nHost: t\nX: 1\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
      "GET / HTTP/3.0\r\nHost: t\r\n\r\n",
  };
  for (const std::string& bytes : inputs) {
    INFO(bytes);
    const std::string whole = describe(parse_request(bytes, limits));
    // One byte at a time.
    std::vector<size_t> every;
    for (size_t i = 0; i <= bytes.size(); ++i) every.push_back(i);
    CHECK(describe(feed(bytes, every, limits)) == whole);
    // Two reads, split at every byte boundary.
    for (size_t cut = 0; cut <= bytes.size(); ++cut) {
      INFO(cut);
      CHECK(describe(feed(bytes, {cut}, limits)) == whole);
    }
    // A decided prefix stays decided: appending bytes does not change the answer.
    if (!std::holds_alternative<NeedMore>(parse_request(bytes, limits))) {
      CHECK(describe(parse_request(bytes + "GET / HTTP/1.1\r\n", limits)) == whole);
    }
  }
}

TEST_CASE("a RequestParser is reset after each request and serves the next", "[http][parser]") {
  RequestParser parser({});
  const std::string both = post("/a", "1") + post("/b", "22");
  const Complete first = complete(parser.parse(both));
  CHECK(first.request.target == "/a");
  const Complete second = complete(parser.parse(std::string_view(both).substr(first.consumed)));
  CHECK(second.request.body == "22");
  // reset() forgets a half-read request.
  CHECK(std::holds_alternative<NeedMore>(parser.parse("POST /c HTTP/1.1\r\n")));
  parser.reset();
  CHECK(complete(parser.parse(get("/d"))).request.target == "/d");
}
