#pragma once
// HttpResponseParser: an incremental parser of one HTTP/1.1 response to a POST, fed the bytes of a
// connection as they arrive. Pure: no I/O, no clock, no globals. Not thread-safe; one per request.
//
// Framing (RFC 9112 §6.3): 1xx interim responses (100 Continue, 103 Early Hints) are skipped;
// 204 and 304 have no body; otherwise Transfer-Encoding chunked (extensions and trailers read and
// dropped), else Content-Length, else the body runs until the peer closes the connection.
// Transfer-Encoding with a last coding other than chunked also runs until close. Line ends may be
// CRLF or a bare LF.
//
// Bounds: the status line and header lines of every response, interim ones included, add up to at
// most kMaxHeadBytes (so do a chunked body's trailers, counted on their own); at most kMaxHeaders
// header lines per response; a chunk-size line at most kMaxChunkLineBytes. The parser keeps only
// one line at a time and a few header values: body bytes go to the sink, so memory stays bounded
// whatever the peer sends.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace relay::delivery {

// What the sender needs from the final response's head.
struct ResponseHead {
  int status = 0;
  bool http_1_0 = false;  // an HTTP/1.0 response (the connection is not reused)
  // "Connection: close" (any letter case, in a token list), or an HTTP/1.0 response.
  bool connection_close = false;
  std::optional<std::string> retry_after;       // the first Retry-After value, OWS trimmed
  std::optional<std::uint64_t> content_length;  // when framing is kContentLength
  bool chunked = false;                         // Transfer-Encoding ends in chunked
};

enum class BodyFraming {
  kNone,           // 204, 304: the response ends with its head
  kContentLength,  // exactly content_length bytes
  kChunked,        // Transfer-Encoding: chunked
  kUntilClose,     // neither: the body ends when the peer closes (the connection is not reused)
};

class HttpResponseParser {
 public:
  static constexpr std::size_t kMaxHeadBytes = 64 * 1024;
  static constexpr int kMaxHeaders = 128;
  static constexpr std::size_t kMaxChunkLineBytes = 4096;

  // Receives the body's bytes in order (de-chunked), in pieces of any size, never empty.
  using BodySink = std::function<void(std::string_view)>;

  enum class State { kHead, kBody, kComplete, kError };

  explicit HttpResponseParser(BodySink sink);
  HttpResponseParser(const HttpResponseParser&) = delete;
  HttpResponseParser& operator=(const HttpResponseParser&) = delete;

  // Parses the next bytes of the connection. Returns how many of `data` belong to this response:
  // all of them while it is incomplete; fewer when it completes within `data` (the rest is bytes
  // the peer sent after the response). Once state() is kComplete or kError, returns 0 and does
  // nothing.
  std::size_t feed(std::string_view data);
  // The peer closed the connection (end of stream): completes a kUntilClose body; anything else
  // not yet complete becomes kError "connection closed before the response was complete".
  void finish();

  State state() const { return state_; }
  bool complete() const { return state_ == State::kComplete; }
  // After kError: what was wrong, e.g. "bad status line", "bad chunk size".
  const std::string& error() const { return error_; }
  // Valid once state() is kBody or kComplete (the final response's head).
  const ResponseHead& head() const { return head_; }
  BodyFraming framing() const { return framing_; }
  // Any byte of a response (interim ones included) has been fed.
  bool started() const { return started_; }
  // Body bytes given to the sink so far.
  std::uint64_t body_bytes() const { return body_bytes_; }

 private:
  enum class Step {
    kStatusLine,
    kHeaderLine,
    kFixedBody,   // Content-Length bytes left in remaining_
    kChunkSize,   // a chunk-size line
    kChunkData,   // remaining_ bytes of the chunk
    kChunkEnd,    // the CRLF after a chunk's data
    kTrailer,     // trailer lines until an empty line
    kUntilClose,  // everything until finish()
  };

  void fail(std::string message);
  void emit(std::string_view bytes);
  // Appends bytes up to and including '\n' to line_ (bounded by `limit` bytes in all); returns the
  // bytes used and sets line_done when the line is complete.
  std::size_t take_line(std::string_view data, std::size_t limit, bool& line_done);
  void on_status_line(std::string_view line);
  void on_header_line(std::string_view line);
  void on_head_end();
  void on_chunk_size_line(std::string_view line);
  void on_trailer_line(std::string_view line);

  BodySink sink_;
  State state_ = State::kHead;
  Step step_ = Step::kStatusLine;
  std::string error_;
  ResponseHead head_;
  BodyFraming framing_ = BodyFraming::kNone;
  bool started_ = false;
  std::string line_;            // the line being read, without its line end once complete
  std::size_t line_bytes_ = 0;  // the last complete line's length with its line end
  std::size_t head_bytes_ = 0;  // complete status + header lines of every response so far
  std::size_t trailer_bytes_ = 0;
  int header_lines_ = 0;
  std::uint64_t remaining_ = 0;  // kFixedBody / kChunkData
  std::uint64_t body_bytes_ = 0;
  // Seen in the current head.
  bool saw_content_length_ = false;
  bool saw_transfer_encoding_ = false;
};

}  // namespace relay::delivery
