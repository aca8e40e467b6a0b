#pragma once
// FUZZ_CHECK: a property every fuzz target asserts. libFuzzer saves the input and reports a
// finding when the process aborts; the message says which property failed.

#include <cstdio>
#include <cstdlib>

#define FUZZ_CHECK(cond)                                                                \
  do {                                                                                  \
    if (!(cond)) {                                                                      \
      std::fprintf(stderr, "property failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__); \
      std::abort();                                                                     \
    }                                                                                   \
  } while (false)
