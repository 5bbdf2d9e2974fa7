// Optional per-op wall-clock timing of the CPU backend (VITMSN_CPU_PROFILE=1): every op's time is
// summed per op kind and shape and printed to stderr when the backend goes away (the model's
// dispose, or process exit). For finding where a forward's time goes without perf; off by default,
// and then it costs one branch per op.
#pragma once
#include "common/knobs.h"
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>

namespace vitmsn {
namespace cpu {

class OpProfile {
 public:
  static bool enabled_by_env() { return knobs::flag(knobs::Knob::kCpuProfile); }
  ~OpProfile() {
    if (totals_.empty()) return;
    double all = 0;
    for (auto& [k, v] : totals_) all += v.ms;
    std::fprintf(stderr, "[vitmsn cpu profile] %-32s %8s %10s %6s\n", "op", "calls", "ms", "share");
    for (auto& [k, v] : totals_)
      std::fprintf(stderr, "[vitmsn cpu profile] %-32s %8ld %10.3f %5.1f%%\n", k.c_str(), v.calls, v.ms,
                   100 * v.ms / all);
    std::fprintf(stderr, "[vitmsn cpu profile] %-32s %8s %10.3f\n", "total", "", all);
  }
  // Runs fn() and adds its wall time to `what`.
  template <class Fn>
  void time(const std::string& what, Fn&& fn) {
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    std::lock_guard<std::mutex> lock(mu_);
    Total& t = totals_[what];
    t.calls++, t.ms += ms;
  }

 private:
  struct Total {
    long calls = 0;
    double ms = 0;
  };
  std::mutex mu_;
  std::map<std::string, Total> totals_;
};

}  // namespace cpu
}  // namespace vitmsn
