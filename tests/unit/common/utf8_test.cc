#include "relay/common/utf8.h"

#include <catch2/catch.hpp>
#include <string>

using relay::is_valid_utf8;
using relay::utf8_sequence_length;

TEST_CASE("is_valid_utf8 accepts ASCII, NUL and every sequence length up to U+10FFFF", "[common]") {
  CHECK(is_valid_utf8(""));
  CHECK(is_valid_utf8("plain ascii"));
  CHECK(is_valid_utf8(std::string("a\0b", 3)));  // NUL is UTF-8; storing callers refuse it
  CHECK(is_valid_utf8("caf\xC3\xA9"));           // U+00E9, 2 bytes
  CHECK(is_valid_utf8("\xC2\x80"));              // U+0080, smallest 2-byte
  CHECK(is_valid_utf8("\xDF\xBF"));              // U+07FF, largest 2-byte
  CHECK(is_valid_utf8("\xE0\xA0\x80"));          // U+0800, smallest 3-byte
  CHECK(is_valid_utf8("\xED\x9F\xBF"));          // U+D7FF, just below the surrogates
  CHECK(is_valid_utf8("\xEE\x80\x80"));          // U+E000, just above the surrogates
  CHECK(is_valid_utf8("\xEF\xBF\xBF"));          // U+FFFF
  CHECK(is_valid_utf8("\xF0\x90\x80\x80"));      // U+10000, smallest 4-byte
  CHECK(is_valid_utf8("\xF0\x9F\x98\x80"));      // U+1F600
  CHECK(is_valid_utf8("\xF4\x8F\xBF\xBF"));      // U+10FFFF, the largest code point
}

TEST_CASE("is_valid_utf8 refuses overlong forms", "[common]") {
  for (const char* bad : {"\xC0\x80", "\xC0\xAF", "\xC1\xBF", "\xE0\x80\x80", "\xE0\x9F\xBF",
                          "\xF0\x80\x80\x80", "\xF0\x8F\xBF\xBF"}) {
    INFO("bytes " << bad);
    CHECK_FALSE(is_valid_utf8(bad));
  }
}

TEST_CASE("is_valid_utf8 refuses UTF-16 surrogates", "[common]") {
  CHECK_FALSE(is_valid_utf8("\xED\xA0\x80"));              // U+D800
  CHECK_FALSE(is_valid_utf8("\xED\xBF\xBF"));              // U+DFFF
  CHECK_FALSE(is_valid_utf8("\xED\xA0\xBD\xED\xB8\x80"));  // a CESU-8 surrogate pair
}

TEST_CASE("is_valid_utf8 refuses code points above U+10FFFF and bytes that never occur",
          "[common]") {
  CHECK_FALSE(is_valid_utf8("\xF4\x90\x80\x80"));  // U+110000
  CHECK_FALSE(is_valid_utf8("\xF7\xBF\xBF\xBF"));
  for (const char* bad :
       {"\xF5", "\xF8\x88\x80\x80\x80", "\xFC\x84\x80\x80\x80\x80", "\xFE", "\xFF"}) {
    INFO("bytes " << bad);
    CHECK_FALSE(is_valid_utf8(bad));
  }
}

TEST_CASE("is_valid_utf8 refuses truncated sequences and stray continuation bytes", "[common]") {
  for (const char* bad : {"\xC3", "ab\xC3", "\xE2\x82", "\xF0\x9F\x98", "\x80", "a\xBF", "\xC3\x28",
                          "\xE2\x28\xA1", "\xF0\x9F\x28\x80"}) {
    INFO("bytes " << bad);
    CHECK_FALSE(is_valid_utf8(bad));
  }
}

TEST_CASE("utf8_sequence_length gives the length of the sequence at a position, 0 if invalid",
          "[common]") {
  const std::string s = "a\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80";  // a é € 😀
  CHECK(utf8_sequence_length(s, 0) == 1);
  CHECK(utf8_sequence_length(s, 1) == 2);
  CHECK(utf8_sequence_length(s, 2) == 0);  // a continuation byte
  CHECK(utf8_sequence_length(s, 3) == 3);
  CHECK(utf8_sequence_length(s, 6) == 4);
  CHECK(utf8_sequence_length(s.substr(0, 9), 6) == 0);  // cut off by the end
}
