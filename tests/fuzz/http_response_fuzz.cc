// libFuzzer target for the HTTP response parser (relay/delivery/http_response_parser.h), which
// reads whatever a webhook consumer sends back. Beyond "no crash" (and no ASan/UBSan report), it
// checks for every input:
//  - the answer (state, error, status, headers, framing, body) is the same whether the bytes come
//    in one read, in two reads split at an input-chosen point, or one byte at a time;
//  - a complete response took no more bytes than were given, and the body matches its framing
//    (Content-Length bytes exactly; none for 204/304);
//  - the parser stays inside its bounds (status 100..999, header values it reports are short
//    enough), an error has a reason, and once decided feed() takes nothing more;
//  - finish() decides every undecided parse.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "relay/delivery/http_response_parser.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using relay::delivery::BodyFraming;
using relay::delivery::HttpResponseParser;
using State = HttpResponseParser::State;

struct Parsed {
  State state = State::kHead;
  std::string error;
  relay::delivery::ResponseHead head;
  BodyFraming framing = BodyFraming::kNone;
  std::string body;
  std::size_t used = 0;
  std::uint64_t body_bytes = 0;
};

// Feeds `in` in pieces of `step` bytes (0: one piece, else the first piece is `first` bytes),
// then finish() when `eof`.
Parsed run(std::string_view in, std::size_t first, std::size_t step, bool eof) {
  Parsed out;
  HttpResponseParser parser([&](std::string_view bytes) {
    FUZZ_CHECK(!bytes.empty());
    out.body.append(bytes);
  });
  std::size_t pos = 0;
  std::size_t piece = first;
  while (pos < in.size()) {
    const std::size_t n = std::min(piece == 0 ? in.size() : piece, in.size() - pos);
    const std::size_t used = parser.feed(in.substr(pos, n));
    FUZZ_CHECK(used <= n);
    out.used += used;
    pos += n;
    if (parser.state() == State::kComplete || parser.state() == State::kError) break;
    FUZZ_CHECK(used == n);
    piece = step;
  }
  if (eof) {
    parser.finish();
    FUZZ_CHECK(parser.state() == State::kComplete || parser.state() == State::kError);
  }
  if (parser.state() == State::kComplete || parser.state() == State::kError) {
    const std::size_t before = out.body.size();
    FUZZ_CHECK(parser.feed("HTTP/1.1 200 OK\r\n") == 0 && out.body.size() == before);
  }
  out.state = parser.state();
  out.error = parser.error();
  out.head = parser.head();
  out.framing = parser.framing();
  out.body_bytes = parser.body_bytes();
  return out;
}

bool same(const Parsed& a, const Parsed& b) {
  if (a.state != b.state || a.error != b.error || a.body != b.body) return false;
  if (a.state == State::kComplete && a.used != b.used) return false;
  if (a.state == State::kBody || a.state == State::kComplete) {
    return a.head.status == b.head.status && a.head.connection_close == b.head.connection_close &&
           a.head.retry_after == b.head.retry_after &&
           a.head.content_length == b.head.content_length && a.head.chunked == b.head.chunked &&
           a.framing == b.framing;
  }
  return true;
}

void check(std::string_view in, std::size_t split, bool eof) {
  const Parsed whole = run(in, 0, 0, eof);
  FUZZ_CHECK(whole.body.size() == whole.body_bytes);
  if (whole.state == State::kError) FUZZ_CHECK(!whole.error.empty());
  if (whole.state == State::kBody || whole.state == State::kComplete) {
    FUZZ_CHECK(whole.head.status >= 200 && whole.head.status <= 999);
    FUZZ_CHECK(!whole.head.retry_after ||
               whole.head.retry_after->size() < HttpResponseParser::kMaxHeadBytes);
  }
  if (whole.state == State::kComplete) {
    FUZZ_CHECK(whole.used > 0 && whole.used <= in.size());
    if (whole.framing == BodyFraming::kContentLength) {
      FUZZ_CHECK(whole.head.content_length && whole.body.size() == *whole.head.content_length);
    }
    if (whole.framing == BodyFraming::kNone) {
      FUZZ_CHECK(whole.body.empty());
      FUZZ_CHECK(whole.head.status == 204 || whole.head.status == 304);
    }
    if (whole.framing == BodyFraming::kUntilClose) FUZZ_CHECK(eof && whole.used == in.size());
    // The bytes it took decide it on their own.
    FUZZ_CHECK(same(run(in.substr(0, whole.used), 0, 0, false), whole) ||
               whole.framing == BodyFraming::kUntilClose);
  }
  FUZZ_CHECK(same(run(in, split, 0, eof), whole));
  FUZZ_CHECK(same(run(in, 1, 1, eof), whole));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  std::size_t hash = 0;
  for (std::uint8_t b : in) hash = hash * 131 + b;
  const std::size_t split = size == 0 ? 0 : hash % (size + 1);
  check(in, split, false);
  check(in, split, true);
  return 0;
}
