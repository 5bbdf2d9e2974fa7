// The native test executables' shared harness: count checks, print failures (and, with
// VITMSN_TEST_VERBOSE=1, every check), and end with the plain "N passed, N failed" line that
// test/native*.test.ts (and CI's log reader) look for. Also what several tests need alike: the
// expected-error checks, deterministic random data, relative L2 error.
//
// Timings are not tests: they live in the bench_* programs.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <functional>
#include <string>
#include <vector>

#include "common/error.h"

inline int g_passed = 0;
inline int g_failed = 0;
inline const bool g_verbose = std::getenv("VITMSN_TEST_VERBOSE") != nullptr;

// One check; `detail` (measured values, messages) is printed with a failure, or always when verbose.
inline void check(bool ok, const std::string& what, const std::string& detail = "") {
  (ok ? g_passed : g_failed)++;
  if (!ok || g_verbose)
    std::printf("%s %s%s%s\n", ok ? "  ok" : "FAIL:", what.c_str(), detail.empty() ? "" : "  ", detail.c_str());
  std::fflush(stdout);
}

// Runs a group of checks; an exception escaping it is one failure of that group, not the end of
// the program.
inline void run_case(const std::string& name, const std::function<void()>& body) {
  try {
    body();
  } catch (const std::exception& e) {
    check(false, name, std::string("unexpected exception: ") + e.what());
  }
}

// f() must throw vitmsn::Error with `code` and a message containing `needle` ("" accepts any).
template <class F>
void expect_error(const std::string& what, const char* code, const std::string& needle, F&& f) {
  try {
    f();
    check(false, what, "no error thrown");
  } catch (const vitmsn::Error& e) {
    const bool ok = e.code() == code && std::string(e.what()).find(needle) != std::string::npos;
    check(ok, what, "got " + e.code() + " \"" + e.what() + "\" (want " + code + " containing \"" + needle + "\")");
  } catch (const std::exception& e) {
    check(false, what, std::string("wrong exception type: ") + e.what());
  }
}

// f() must not throw.
template <class F>
void expect_no_error(const std::string& what, F&& f) {
  try {
    f();
    check(true, what);
  } catch (const std::exception& e) {
    check(false, what, std::string("threw ") + e.what());
  }
}

// Deterministic data (splitmix64), no global state: uniform floats in [lo, hi).
struct Rng {
  uint64_t s;
  explicit Rng(uint64_t seed) : s(seed) {}
  uint64_t next() {
    uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  float uniform(float lo = -1.0f, float hi = 1.0f) {
    return lo + (hi - lo) * static_cast<float>((next() >> 40) * (1.0 / 16777216.0));
  }
  std::vector<float> vec(size_t n, float lo = -1.0f, float hi = 1.0f) {
    std::vector<float> v(n);
    for (float& x : v) x = uniform(lo, hi);
    return v;
  }
};

// ‖got − want‖₂ / ‖want‖₂ (absolute when want is all zeros); NaN where want has none gives +inf.
inline double rel_l2(const float* got, const float* want, size_t n) {
  double num = 0.0, den = 0.0;
  for (size_t i = 0; i < n; ++i) {
    if (std::isnan(got[i]) != std::isnan(want[i])) return INFINITY;
    const double d = static_cast<double>(got[i]) - want[i];
    num += d * d;
    den += static_cast<double>(want[i]) * want[i];
  }
  if (std::isnan(num)) return INFINITY;
  return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

// main()'s last statement: `return finish();`
inline int finish() {
  std::printf("%d passed, %d failed\n", g_passed, g_failed);
  return g_failed == 0 ? 0 : 1;
}
