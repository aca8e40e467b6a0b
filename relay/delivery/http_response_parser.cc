#include "relay/delivery/http_response_parser.h"

#include <fmt/format.h>

#include <algorithm>
#include <utility>

#include "relay/common/http_header.h"

namespace relay::delivery {

namespace {

constexpr std::string_view kOws = " \t";

std::string_view trim(std::string_view s) {
  const auto first = s.find_first_not_of(kOws);
  if (first == std::string_view::npos) return {};
  const auto last = s.find_last_not_of(kOws);
  return s.substr(first, last - first + 1);
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// Digits only, no sign, no overflow.
std::optional<std::uint64_t> parse_decimal(std::string_view s) {
  if (s.empty()) return std::nullopt;
  std::uint64_t value = 0;
  for (const char c : s) {
    if (!is_digit(c)) return std::nullopt;
    const auto digit = static_cast<std::uint64_t>(c - '0');
    if (value > (UINT64_MAX - digit) / 10) return std::nullopt;
    value = value * 10 + digit;
  }
  return value;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Calls `fn` with each element of a comma-separated list, OWS trimmed, empty elements skipped.
template <typename Fn>
void for_each_list_item(std::string_view list, Fn fn) {
  while (!list.empty()) {
    const auto comma = list.find(',');
    const std::string_view item = trim(list.substr(0, comma));
    if (!item.empty()) fn(item);
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
}

}  // namespace

HttpResponseParser::HttpResponseParser(BodySink sink) : sink_(std::move(sink)) {}

void HttpResponseParser::fail(std::string message) {
  state_ = State::kError;
  error_ = std::move(message);
}

void HttpResponseParser::emit(std::string_view bytes) {
  if (bytes.empty()) return;
  body_bytes_ += bytes.size();
  if (sink_) sink_(bytes);
}

std::size_t HttpResponseParser::take_line(std::string_view data, std::size_t limit,
                                          bool& line_done) {
  const auto nl = data.find('\n');
  const std::size_t take = nl == std::string_view::npos ? data.size() : nl + 1;
  if (line_.size() + take > limit) {
    line_done = false;
    return std::string_view::npos;  // the caller reports the bound
  }
  line_.append(data.data(), take);
  line_done = nl != std::string_view::npos;
  if (line_done) {
    line_bytes_ = line_.size();
    line_.pop_back();  // '\n'
    if (!line_.empty() && line_.back() == '\r') line_.pop_back();
  }
  return take;
}

std::size_t HttpResponseParser::feed(std::string_view data) {
  std::size_t used = 0;
  if (!data.empty() && (state_ == State::kHead || state_ == State::kBody)) started_ = true;
  while (used < data.size() && (state_ == State::kHead || state_ == State::kBody)) {
    const std::string_view rest = data.substr(used);
    switch (step_) {
      case Step::kStatusLine:
      case Step::kHeaderLine:
      case Step::kChunkSize:
      case Step::kChunkEnd:
      case Step::kTrailer: {
        std::size_t limit = 0;
        if (step_ == Step::kStatusLine || step_ == Step::kHeaderLine) {
          limit = kMaxHeadBytes - head_bytes_;
        } else if (step_ == Step::kTrailer) {
          limit = kMaxHeadBytes - trailer_bytes_;
        } else {
          limit = kMaxChunkLineBytes;
        }
        bool done = false;
        const std::size_t took = take_line(rest, limit, done);
        if (took == std::string_view::npos) {
          if (step_ == Step::kStatusLine || step_ == Step::kHeaderLine) {
            fail(fmt::format("response head larger than {} bytes", kMaxHeadBytes));
          } else if (step_ == Step::kTrailer) {
            fail(fmt::format("chunked trailers larger than {} bytes", kMaxHeadBytes));
          } else if (step_ == Step::kChunkEnd) {
            fail("bad chunk end: no line end after the chunk data");
          } else {
            fail(fmt::format("bad chunk size: line longer than {} bytes", kMaxChunkLineBytes));
          }
          return used;
        }
        used += took;
        if (!done) break;
        // Counted once the line is complete: `limit` covers the buffered part of the line too.
        if (step_ == Step::kStatusLine || step_ == Step::kHeaderLine) head_bytes_ += line_bytes_;
        if (step_ == Step::kTrailer) trailer_bytes_ += line_bytes_;
        std::string line = std::move(line_);
        line_.clear();
        switch (step_) {
          case Step::kStatusLine:
            on_status_line(line);
            break;
          case Step::kHeaderLine:
            on_header_line(line);
            break;
          case Step::kChunkSize:
            on_chunk_size_line(line);
            break;
          case Step::kChunkEnd:
            if (!line.empty())
              fail("bad chunk end: bytes after the chunk data");
            else
              step_ = Step::kChunkSize;
            break;
          case Step::kTrailer:
            on_trailer_line(line);
            break;
          default:
            break;
        }
        break;
      }
      case Step::kFixedBody:
      case Step::kChunkData: {
        const std::size_t n =
            static_cast<std::size_t>(std::min<std::uint64_t>(remaining_, rest.size()));
        emit(rest.substr(0, n));
        used += n;
        remaining_ -= n;
        if (remaining_ == 0) {
          if (step_ == Step::kFixedBody) {
            state_ = State::kComplete;
          } else {
            step_ = Step::kChunkEnd;
          }
        }
        break;
      }
      case Step::kUntilClose:
        emit(rest);
        used = data.size();
        break;
    }
  }
  return used;
}

void HttpResponseParser::finish() {
  if (state_ == State::kComplete || state_ == State::kError) return;
  if (state_ == State::kBody && step_ == Step::kUntilClose) {
    state_ = State::kComplete;
    return;
  }
  fail("connection closed before the response was complete");
}

void HttpResponseParser::on_status_line(std::string_view line) {
  // HTTP-version SP 3DIGIT SP [reason-phrase]; a missing SP before an empty reason is tolerated.
  if (line.size() < 12 || line.substr(0, 7) != "HTTP/1." || (line[7] != '0' && line[7] != '1') ||
      line[8] != ' ' || !is_digit(line[9]) || !is_digit(line[10]) || !is_digit(line[11]) ||
      (line.size() > 12 && line[12] != ' ')) {
    fail("bad status line");
    return;
  }
  for (const char c : line.substr(12)) {
    const auto u = static_cast<unsigned char>(c);
    if ((u < 0x20 && c != '\t') || u == 0x7f) {
      fail("bad status line");
      return;
    }
  }
  const int status = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
  if (status < 100) {
    fail("bad status line");
    return;
  }
  head_ = ResponseHead{};
  head_.status = status;
  head_.http_1_0 = line[7] == '0';
  head_.connection_close = head_.http_1_0;
  header_lines_ = 0;
  saw_content_length_ = false;
  saw_transfer_encoding_ = false;
  step_ = Step::kHeaderLine;
}

void HttpResponseParser::on_header_line(std::string_view line) {
  if (line.empty()) {
    on_head_end();
    return;
  }
  if (++header_lines_ > kMaxHeaders) {
    fail(fmt::format("more than {} header lines", kMaxHeaders));
    return;
  }
  if (line.front() == ' ' || line.front() == '\t') {
    fail("bad header line: obsolete line folding");
    return;
  }
  const auto colon = line.find(':');
  if (colon == std::string_view::npos || !is_http_token(line.substr(0, colon))) {
    fail("bad header line");
    return;
  }
  const std::string_view name = line.substr(0, colon);
  const std::string_view value = trim(line.substr(colon + 1));
  if (!is_http_field_value(value)) {
    fail("bad header line: control character in a value");
    return;
  }
  if (iequals_ascii(name, "Content-Length")) {
    // A list of equal values ("5, 5") is one length (RFC 9110 §8.6); differing ones are an error.
    std::optional<std::uint64_t> length;
    bool bad = false;
    for_each_list_item(value, [&](std::string_view item) {
      const auto v = parse_decimal(item);
      if (!v || (length && *length != *v)) bad = true;
      if (v) length = v;
    });
    if (bad || !length || (head_.content_length && *head_.content_length != *length)) {
      fail("bad Content-Length");
      return;
    }
    head_.content_length = length;
    saw_content_length_ = true;
  } else if (iequals_ascii(name, "Transfer-Encoding")) {
    // Only the last coding decides: chunked ends the body; anything else runs until close.
    std::string_view last;
    for_each_list_item(value, [&](std::string_view item) { last = item; });
    head_.chunked = iequals_ascii(last, "chunked");
    saw_transfer_encoding_ = true;
  } else if (iequals_ascii(name, "Connection")) {
    for_each_list_item(value, [&](std::string_view item) {
      if (iequals_ascii(item, "close")) head_.connection_close = true;
    });
  } else if (iequals_ascii(name, "Retry-After")) {
    if (!head_.retry_after) head_.retry_after = std::string(value);
  }
}

void HttpResponseParser::on_head_end() {
  const int status = head_.status;
  if (status == 101) {
    fail("unexpected 101 Switching Protocols");
    return;
  }
  if (status < 200) {  // interim: the final response follows
    step_ = Step::kStatusLine;
    return;
  }
  state_ = State::kBody;
  if (status == 204 || status == 304) {
    framing_ = BodyFraming::kNone;
    head_.content_length.reset();
    head_.chunked = false;
    state_ = State::kComplete;
    return;
  }
  if (saw_transfer_encoding_) {
    head_.content_length.reset();  // Transfer-Encoding overrides Content-Length (RFC 9112 §6.3)
    if (head_.chunked) {
      framing_ = BodyFraming::kChunked;
      step_ = Step::kChunkSize;
      return;
    }
  } else if (saw_content_length_) {
    framing_ = BodyFraming::kContentLength;
    remaining_ = *head_.content_length;
    step_ = Step::kFixedBody;
    if (remaining_ == 0) state_ = State::kComplete;
    return;
  }
  framing_ = BodyFraming::kUntilClose;
  step_ = Step::kUntilClose;
}

void HttpResponseParser::on_chunk_size_line(std::string_view line) {
  // chunk-size [ BWS ; chunk-ext ]; extensions are ignored.
  const auto semi = line.find(';');
  const std::string_view digits = trim(line.substr(0, semi));
  if (digits.empty()) {
    fail("bad chunk size");
    return;
  }
  std::uint64_t size = 0;
  for (const char c : digits) {
    const int v = hex_value(c);
    if (v < 0 || size > (UINT64_MAX >> 4)) {
      fail("bad chunk size");
      return;
    }
    size = size << 4 | static_cast<std::uint64_t>(v);
  }
  if (size == 0) {
    step_ = Step::kTrailer;
    return;
  }
  remaining_ = size;
  step_ = Step::kChunkData;
}

void HttpResponseParser::on_trailer_line(std::string_view line) {
  if (line.empty()) {
    state_ = State::kComplete;
    return;
  }
  const auto colon = line.find(':');
  if (line.front() == ' ' || line.front() == '\t' || colon == std::string_view::npos ||
      !is_http_token(line.substr(0, colon))) {
    fail("bad trailer line");
  }
}

}  // namespace relay::delivery
