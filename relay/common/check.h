#pragma once
// RELAY_CHECK(cond, msg): always-on check for bugs; aborts with file:line. Never use it for
// conditions the environment can cause (a down database, bad input): those are Results.

namespace relay::detail {
[[noreturn]] void check_failed(const char* file, int line, const char* cond, const char* msg);
}  // namespace relay::detail

#define RELAY_CHECK(cond, msg)                                                  \
  do {                                                                          \
    if (!(cond)) ::relay::detail::check_failed(__FILE__, __LINE__, #cond, msg); \
  } while (0)
