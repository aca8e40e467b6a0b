// HttpResponseParser: each framing, 1xx, the headers the sender reads, every bound and error, and
// the same answer whatever the split of the bytes into reads.
#include "relay/delivery/http_response_parser.h"

#include <catch2/catch.hpp>
#include <string>
#include <string_view>
#include <vector>

using relay::delivery::BodyFraming;
using relay::delivery::HttpResponseParser;
using State = relay::delivery::HttpResponseParser::State;

namespace {

struct Parsed {
  State state = State::kHead;
  std::string error;
  relay::delivery::ResponseHead head;
  BodyFraming framing = BodyFraming::kNone;
  std::string body;
  std::size_t used = 0;  // bytes of the input that belong to the response
  bool started = false;
};

// Feeds `in` cut at `cuts` (ascending offsets), then, when `eof`, finish().
Parsed parse(std::string_view in, const std::vector<std::size_t>& cuts = {}, bool eof = false) {
  Parsed out;
  HttpResponseParser parser([&](std::string_view bytes) {
    REQUIRE_FALSE(bytes.empty());
    out.body.append(bytes);
  });
  std::size_t from = 0;
  std::vector<std::size_t> ends = cuts;
  ends.push_back(in.size());
  for (const std::size_t to : ends) {
    const std::size_t used = parser.feed(in.substr(from, to - from));
    CHECK(used <= to - from);
    out.used += used;
    if (used < to - from) break;
    from = to;
  }
  if (eof) parser.finish();
  out.state = parser.state();
  out.error = parser.error();
  out.head = parser.head();
  out.framing = parser.framing();
  out.started = parser.started();
  CHECK(parser.body_bytes() == out.body.size());
  return out;
}

bool same(const Parsed& a, const Parsed& b) {
  return a.state == b.state && a.error == b.error && a.head.status == b.head.status &&
         a.head.connection_close == b.head.connection_close &&
         a.head.retry_after == b.head.retry_after &&
         a.head.content_length == b.head.content_length && a.head.chunked == b.head.chunked &&
         a.framing == b.framing && a.body == b.body && a.used == b.used;
}

}  // namespace

TEST_CASE("response parser: Content-Length body", "[delivery]") {
  const std::string in = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Other: y\r\n\r\nhello";
  const auto r = parse(in);
  CHECK(r.state == State::kComplete);
  CHECK(r.head.status == 200);
  CHECK(r.framing == BodyFraming::kContentLength);
  CHECK(r.head.content_length == 5u);
  CHECK_FALSE(r.head.connection_close);
  CHECK_FALSE(r.head.retry_after.has_value());
  CHECK(r.body == "hello");
  CHECK(r.used == in.size());
}

TEST_CASE("response parser: Content-Length 0 completes with the head", "[delivery]") {
  const auto r = parse("HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n");
  CHECK(r.state == State::kComplete);
  CHECK(r.head.status == 202);
  CHECK(r.body.empty());
}

TEST_CASE("response parser: bytes after a complete response are not taken", "[delivery]") {
  const std::string response = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
  const auto r = parse(response + "HTTP/1.1 200 OK\r\n");
  CHECK(r.state == State::kComplete);
  CHECK(r.body == "ok");
  CHECK(r.used == response.size());
}

TEST_CASE("response parser: chunked body with extensions and trailers", "[delivery]") {
  const std::string in =
      "HTTP/1.1 500 Internal Server Error\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5;name=value\r\nhello\r\n1A \r\n, this is twenty-six bytes\r\n0\r\nX-Trailer: t\r\n\r\n";
  const auto r = parse(in);
  CHECK(r.state == State::kComplete);
  CHECK(r.head.status == 500);
  CHECK(r.framing == BodyFraming::kChunked);
  CHECK(r.head.chunked);
  CHECK(r.body == "hello, this is twenty-six bytes");
  CHECK(r.used == in.size());
}

TEST_CASE("response parser: Transfer-Encoding overrides Content-Length", "[delivery]") {
  const auto r = parse(
      "HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n"
      "2\r\nok\r\n0\r\n\r\n");
  CHECK(r.state == State::kComplete);
  CHECK(r.framing == BodyFraming::kChunked);
  CHECK_FALSE(r.head.content_length.has_value());
  CHECK(r.body == "ok");
}

TEST_CASE("response parser: a body without length runs until the connection closes", "[delivery]") {
  const std::string in = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nall of this";
  const auto open = parse(in);
  CHECK(open.state == State::kBody);
  CHECK(open.framing == BodyFraming::kUntilClose);
  const auto closed = parse(in, {}, true);
  CHECK(closed.state == State::kComplete);
  CHECK(closed.body == "all of this");
  // A last coding other than chunked also runs until close.
  const auto gzip = parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nxyz", {}, true);
  CHECK(gzip.state == State::kComplete);
  CHECK(gzip.framing == BodyFraming::kUntilClose);
  CHECK(gzip.body == "xyz");
}

TEST_CASE("response parser: 204 and 304 have no body whatever the headers say", "[delivery]") {
  for (const char* status : {"204 No Content", "304 Not Modified"}) {
    const std::string head = std::string("HTTP/1.1 ") + status + "\r\nContent-Length: 10\r\n\r\n";
    const auto r = parse(head + "0123456789");
    CHECK(r.state == State::kComplete);
    CHECK(r.framing == BodyFraming::kNone);
    CHECK(r.body.empty());
    CHECK(r.used == head.size());
  }
}

TEST_CASE("response parser: 1xx interim responses are skipped", "[delivery]") {
  const auto r = parse(
      "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
      "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 30\r\nContent-Length: 0\r\n\r\n");
  CHECK(r.state == State::kComplete);
  CHECK(r.head.status == 429);
  CHECK(r.head.retry_after == std::optional<std::string>("30"));
}

TEST_CASE("response parser: reads Retry-After and Connection case-insensitively", "[delivery]") {
  const auto r = parse(
      "HTTP/1.1 503 Service Unavailable\r\nretry-after:  120 \r\nRETRY-AFTER: 5\r\n"
      "connection: Keep-Alive, CLOSE\r\ncontent-length: 0\r\n\r\n");
  CHECK(r.state == State::kComplete);
  CHECK(r.head.retry_after == std::optional<std::string>("120"));  // the first one, trimmed
  CHECK(r.head.connection_close);
  const auto keep = parse("HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n");
  CHECK_FALSE(keep.head.connection_close);
}

TEST_CASE("response parser: an HTTP/1.0 response closes the connection", "[delivery]") {
  const auto r = parse("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n");
  CHECK(r.state == State::kComplete);
  CHECK(r.head.http_1_0);
  CHECK(r.head.connection_close);
}

TEST_CASE("response parser: bare LF line ends and an empty reason are accepted", "[delivery]") {
  const auto r = parse("HTTP/1.1 200\nContent-Length: 2\n\nok");
  CHECK(r.state == State::kComplete);
  CHECK(r.head.status == 200);
  CHECK(r.body == "ok");
  const auto chunked = parse("HTTP/1.1 200 \nTransfer-Encoding: chunked\n\n2\nok\n0\n\n");
  CHECK(chunked.state == State::kComplete);
  CHECK(chunked.body == "ok");
}

TEST_CASE("response parser: equal Content-Length values are one length", "[delivery]") {
  const auto r = parse("HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\nContent-Length: 2\r\n\r\nok");
  CHECK(r.state == State::kComplete);
  CHECK(r.body == "ok");
}

TEST_CASE("response parser: the same answer at every split into two reads and byte by byte",
          "[delivery]") {
  const std::vector<std::pair<std::string, bool>> responses = {
      {"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nRetry-After: 1\r\n\r\nhello", false},
      {"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 400 Bad\r\nTransfer-Encoding: chunked\r\n\r\n"
       "3;x=y\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nT: v\r\n\r\nEXTRA",
       false},
      {"HTTP/1.0 503 Busy\r\nConnection: close\r\n\r\nuntil close", true},
      {"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabc", false},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n", false},
  };
  for (const auto& [in, eof] : responses) {
    INFO(in);
    const Parsed whole = parse(in, {}, eof);
    CHECK(whole.state != State::kHead);
    for (std::size_t cut = 0; cut <= in.size(); ++cut) {
      INFO("cut at " << cut);
      CHECK(same(parse(in, {cut}, eof), whole));
    }
    std::vector<std::size_t> every;
    for (std::size_t i = 1; i < in.size(); ++i) every.push_back(i);
    CHECK(same(parse(in, every, eof), whole));
  }
}

TEST_CASE("response parser: malformed status lines", "[delivery]") {
  for (const char* bad :
       {"HTTP/2 200 OK\r\n", "HTTP/1.1 20 OK\r\n", "HTTP/1.1 2000 OK\r\n", "http/1.1 200 OK\r\n",
        "HTTP/1.1  200 OK\r\n", "HTTP/1.1 099 Low\r\n", "\r\nHTTP/1.1 200 OK\r\n", "garbage\r\n",
        "HTTP/1.2 200 OK\r\n", "HTTP/1.1 200 O\x01K\r\n", "HTTP/1.1 200OK\r\n"}) {
    INFO(bad);
    const auto r = parse(bad);
    CHECK(r.state == State::kError);
    CHECK(r.error == "bad status line");
  }
}

TEST_CASE("response parser: malformed headers", "[delivery]") {
  const auto error_of = [](const std::string& headers) {
    return parse("HTTP/1.1 200 OK\r\n" + headers + "\r\n").error;
  };
  CHECK(error_of("No colon here\r\n") == "bad header line");
  CHECK(error_of("Bad Name: x\r\n") == "bad header line");
  CHECK(error_of(": empty name\r\n") == "bad header line");
  CHECK(error_of("X: a\r\n folded\r\n") == "bad header line: obsolete line folding");
  CHECK(error_of(std::string("X: a\x01") + "b\r\n") ==
        "bad header line: control character in a value");
  CHECK(error_of("Content-Length: abc\r\n") == "bad Content-Length");
  CHECK(error_of("Content-Length: -1\r\n") == "bad Content-Length");
  CHECK(error_of("Content-Length: 5, 6\r\n") == "bad Content-Length");
  CHECK(error_of("Content-Length: 5\r\nContent-Length: 6\r\n") == "bad Content-Length");
  CHECK(error_of("Content-Length: 99999999999999999999999\r\n") == "bad Content-Length");
  CHECK(error_of("Content-Length:\r\n") == "bad Content-Length");
}

TEST_CASE("response parser: malformed chunks", "[delivery]") {
  const auto error_of = [](const std::string& body) {
    return parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + body).error;
  };
  CHECK(error_of("zz\r\n") == "bad chunk size");
  CHECK(error_of("\r\n") == "bad chunk size");
  CHECK(error_of("-1\r\n") == "bad chunk size");
  CHECK(error_of("1 2\r\n") == "bad chunk size");
  CHECK(error_of("10000000000000000\r\n") == "bad chunk size");  // 2^64
  CHECK(error_of("3\r\nabcd\r\n") == "bad chunk end: bytes after the chunk data");
  CHECK(error_of(std::string(5000, '0')) == "bad chunk size: line longer than 4096 bytes");
  CHECK(error_of("0\r\nno colon\r\n") == "bad trailer line");
  CHECK(error_of("0\r\n" + std::string(70'000, 'x')) == "chunked trailers larger than 65536 bytes");
}

TEST_CASE("response parser: a 101 is refused", "[delivery]") {
  const auto r = parse("HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n");
  CHECK(r.state == State::kError);
  CHECK(r.error == "unexpected 101 Switching Protocols");
}

TEST_CASE("response parser: the head is bounded in bytes and in lines", "[delivery]") {
  const std::string big = "HTTP/1.1 200 OK\r\nX: " + std::string(70'000, 'a') + "\r\n\r\n";
  const auto r = parse(big);
  CHECK(r.state == State::kError);
  CHECK(r.error == "response head larger than 65536 bytes");
  CHECK(r.used <= HttpResponseParser::kMaxHeadBytes);

  // Exactly at the bound (the empty line ending the head included), and one byte over, in one
  // read and in many.
  const std::string start = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX: ";
  const std::string fits =
      start + std::string(HttpResponseParser::kMaxHeadBytes - start.size() - 4, 'a') + "\r\n\r\n";
  REQUIRE(fits.size() == HttpResponseParser::kMaxHeadBytes);
  const std::string over = start + "a" + fits.substr(start.size());
  std::vector<std::size_t> cuts;
  for (std::size_t i = 1000; i < fits.size(); i += 1000) cuts.push_back(i);
  CHECK(parse(fits).state == State::kComplete);
  CHECK(parse(fits, cuts).state == State::kComplete);
  CHECK(parse(over).error == "response head larger than 65536 bytes");
  CHECK(parse(over, cuts).error == "response head larger than 65536 bytes");

  // Interim responses count towards the same budget.
  std::string interims;
  while (interims.size() < HttpResponseParser::kMaxHeadBytes) {
    interims += "HTTP/1.1 100 Continue\r\n\r\n";
  }
  CHECK(parse(interims).error == "response head larger than 65536 bytes");

  std::string many = "HTTP/1.1 200 OK\r\n";
  for (int i = 0; i <= HttpResponseParser::kMaxHeaders; ++i) many += "X: y\r\n";
  CHECK(parse(many + "\r\n").error == "more than 128 header lines");
  std::string enough = "HTTP/1.1 200 OK\r\n";
  for (int i = 1; i < HttpResponseParser::kMaxHeaders; ++i) enough += "X: y\r\n";
  CHECK(parse(enough + "Content-Length: 0\r\n\r\n").state == State::kComplete);
}

TEST_CASE("response parser: a connection closed early is an error", "[delivery]") {
  const auto nothing = parse("", {}, true);
  CHECK(nothing.state == State::kError);
  CHECK_FALSE(nothing.started);
  CHECK(nothing.error == "connection closed before the response was complete");
  const auto short_body = parse("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel", {}, true);
  CHECK(short_body.state == State::kError);
  CHECK(short_body.started);
  CHECK(short_body.body == "hel");
  const auto chunk =
      parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhe", {}, true);
  CHECK(chunk.state == State::kError);
}
