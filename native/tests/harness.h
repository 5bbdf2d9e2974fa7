// The native test executables' shared harness: count checks, print failures, and end with the
// plain "N passed, N failed" line that test/native*.test.ts (and CI's log reader) look for.
#pragma once
#include <cstdio>
#include <string>

inline int g_passed = 0;
inline int g_failed = 0;

inline void check(bool ok, const std::string& what) {
  if (ok) {
    ++g_passed;
  } else {
    ++g_failed;
    std::printf("FAIL: %s\n", what.c_str());
  }
}

// main()'s last statement: `return finish();`
inline int finish() {
  std::printf("%d passed, %d failed\n", g_passed, g_failed);
  return g_failed == 0 ? 0 : 1;
}
