// Times the CPU attention kernels alone (explicit vs flash, per ISA path; on the avx512 path also
// the AMX bf16 kernel where it runs) at ViT shapes, after checking each against the explicit one.
// Information only; not a test.
//
// usage: bench_attention [reps] [threads]   (defaults 30, 2; best and median ms of reps calls)
// Rounds alternate the kernels call by call, so machine noise lands on both alike.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "backend/backend.h"
#include "cpu/attention.h"
#include "cpu/attention_amx.h"
#include "cpu/cpu_features.h"
#include "cpu/thread_pool.h"

using namespace vitmsn;

int main(int argc, char** argv) {
  const int reps = argc > 1 ? std::atoi(argv[1]) : 30;
  const int threads = argc > 2 ? std::atoi(argv[2]) : 2;
  cpu::ThreadPool pool(threads);
  struct Shape {
    const char* what;
    int64_t B, T, H, Dh;
  } shapes[] = {{"ViT-S b1", 1, 197, 6, 64},
                {"ViT-S b8", 8, 197, 6, 64},
                {"ViT-B b1", 1, 197, 12, 64},
                {"ViT-B b8", 8, 197, 12, 64}};
  std::printf("attention kernels, %d thread(s), best / median of %d calls each, ms (GFLOP/s of 4·B·H·T²·Dh)\n",
              pool.size(), reps);
  for (cpu::Isa isa : {cpu::Isa::kAvx512, cpu::Isa::kAvx2, cpu::Isa::kScalar, cpu::Isa::kNeon}) {
    if (!cpu::isa_supported(isa)) continue;
    for (const Shape& s : shapes) {
      const int64_t HD = s.H * s.Dh;
      std::vector<float> qkv(static_cast<size_t>(s.B * s.T * 3 * HD));
      for (size_t i = 0; i < qkv.size(); ++i) qkv[i] = 2.0f * std::sin(0.37f * static_cast<float>(i));
      std::vector<float> out_e(static_cast<size_t>(s.B * s.T * HD)), out_f(out_e.size()), out_x(out_e.size());
      cpu::AttentionArgs a;
      a.qkv = qkv.data(), a.B = s.B, a.T = s.T, a.H = s.H, a.Dh = s.Dh, a.scale = 1.0f / std::sqrt(float(s.Dh));
      cpu::AttentionArgs ae = a, af = a, ax = a;
      ae.out = out_e.data(), af.out = out_f.data(), ax.out = out_x.data();
      const bool amx = cpu::attention_amx_usable(isa, a);
      const int n = isa == cpu::Isa::kScalar || isa == cpu::Isa::kNeon ? std::max(3, reps / 5) : reps;
      std::vector<double> te, tf, tx;
      auto time = [&](const cpu::AttentionArgs& args, cpu::AttentionKernel k, std::vector<double>& ts) {
        const auto t0 = std::chrono::steady_clock::now();
        cpu::attention(args, pool, isa, k);
        ts.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() * 1e3);
      };
      for (int i = 0; i < 2; ++i) {  // warm-up
        cpu::attention(ae, pool, isa, cpu::AttentionKernel::kExplicit);
        cpu::attention(af, pool, isa, cpu::AttentionKernel::kFlash);
        if (amx) cpu::attention(ax, pool, isa, cpu::AttentionKernel::kAmxBf16);
      }
      for (int i = 0; i < n; ++i) {
        if (i % 2) {
          time(ae, cpu::AttentionKernel::kExplicit, te);
          time(af, cpu::AttentionKernel::kFlash, tf);
          if (amx) time(ax, cpu::AttentionKernel::kAmxBf16, tx);
        } else {
          if (amx) time(ax, cpu::AttentionKernel::kAmxBf16, tx);
          time(af, cpu::AttentionKernel::kFlash, tf);
          time(ae, cpu::AttentionKernel::kExplicit, te);
        }
      }
      auto rel = [&](const std::vector<float>& got) {
        double num = 0, den = 0;
        for (size_t i = 0; i < out_e.size(); ++i) {
          num += (double(got[i]) - out_e[i]) * (double(got[i]) - out_e[i]);
          den += double(out_e[i]) * out_e[i];
        }
        return std::sqrt(num / den);
      };
      std::sort(te.begin(), te.end());
      std::sort(tf.begin(), tf.end());
      std::sort(tx.begin(), tx.end());
      const double flops = 4.0 * s.B * s.H * s.T * s.T * s.Dh;
      std::printf(
          "  %-7s %-9s explicit %7.3f / %7.3f (%5.1f)   flash %7.3f / %7.3f (%5.1f)   flash/explicit %.2f   rel diff %.1e\n",
          cpu::isa_name(isa), s.what, te[0], te[te.size() / 2], flops / te[0] * 1e-6, tf[0], tf[tf.size() / 2],
          flops / tf[0] * 1e-6, tf[tf.size() / 2] / te[te.size() / 2], rel(out_f));
      if (amx) {
        std::printf("  %-7s %-9s AMX bf16 %7.3f / %7.3f (%5.1f)   flash/AMX (medians) %.2f   rel diff %.1e (bf16)\n",
                    cpu::isa_name(isa), s.what, tx[0], tx[tx.size() / 2], flops / tx[0] * 1e-6,
                    tf[tf.size() / 2] / tx[tx.size() / 2], rel(out_x));
      }
    }
  }
  return 0;
}
