#pragma once
// UTF-8 validity: the one check relay uses for text from apps, consumers and senders (admin
// previews, inbox ids and headers, response bodies stored in text columns). Well-formed means what
// PostgreSQL's UTF8 encoding accepts: no overlong forms, no UTF-16 surrogates (U+D800..U+DFFF), no
// code point above U+10FFFF, no truncated sequence. NUL is well-formed UTF-8; callers that store
// text refuse it themselves. Pure functions; thread-safe.

#include <cstddef>
#include <string_view>

namespace relay {

// The length (1..4) of the well-formed UTF-8 sequence that starts at text[pos], or 0 if none
// starts there (a continuation byte, an invalid lead byte, an overlong form, a surrogate, a code
// point above U+10FFFF, or a sequence cut off by the end of `text`). REQUIRES: pos < text.size().
std::size_t utf8_sequence_length(std::string_view text, std::size_t pos);

// True if all of `text` is well-formed UTF-8 (the empty string is).
bool is_valid_utf8(std::string_view text);

}  // namespace relay
