#include "logreg.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <exception>
#include <limits>
#include <string>
#include <thread>

#include "common/error.h"

#if defined(__GNUC__) || defined(__clang__)
#define LR_INLINE inline __attribute__((always_inline))
#else
#define LR_INLINE inline
#endif
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define LR_AVX2_PATH 1
#endif

namespace vitmsn::logreg {
namespace {

constexpr int kLanes = 8;  // partial sums per dot product / gradient tile width
constexpr int kBlock = 4;  // classes per register block

[[noreturn]] void invalid(const std::string& m) { throw Error(codes::kInvalidArgument, m); }

// z[k] = x·w_{k0+k} for KB classes, x loaded once for the block. Fixed order: 8 lane sums over
// d < D − D mod 8, combined pairwise, then the tail in order.
template <int KB>
LR_INLINE void row_dots(const double* x, const double* W, int64_t D, int64_t k0, double* z) {
  double acc[KB][kLanes] = {};
  const double* w[KB];
  for (int k = 0; k < KB; ++k) w[k] = W + (k0 + k) * D;
  int64_t d = 0;
  for (; d + kLanes <= D; d += kLanes) {
    for (int k = 0; k < KB; ++k) {
      for (int l = 0; l < kLanes; ++l) acc[k][l] += x[d + l] * w[k][d + l];
    }
  }
  for (int k = 0; k < KB; ++k) {
    double s =
        ((acc[k][0] + acc[k][1]) + (acc[k][2] + acc[k][3])) + ((acc[k][4] + acc[k][5]) + (acc[k][6] + acc[k][7]));
    for (int64_t t = d; t < D; ++t) s += x[t] * w[k][t];
    z[k] = s;
  }
}

LR_INLINE void row_logits(const double* x, const double* W, const double* b, int64_t D, int64_t K, double* z) {
  int64_t k = 0;
  for (; k + kBlock <= K; k += kBlock) row_dots<kBlock>(x, W, D, k, z + k);
  switch (K - k) {
    case 3:
      row_dots<3>(x, W, D, k, z + k);
      break;
    case 2:
      row_dots<2>(x, W, D, k, z + k);
      break;
    case 1:
      row_dots<1>(x, W, D, k, z + k);
      break;
    default:
      break;
  }
  for (int64_t c = 0; c < K; ++c) z[c] += b[c];
}

// gW[k0+k][d0 .. d0+8) = Σ_i R[i][k0+k]·X[i][d0 ..] (i ascending): the tile of X is read once per
// block of classes.
template <int KB>
LR_INLINE void grad_tile(const double* X, const double* R, int64_t N, int64_t D, int64_t K, int64_t k0, int64_t d0,
                         double* gW) {
  double acc[KB][kLanes] = {};
  for (int64_t i = 0; i < N; ++i) {
    const double* x = X + i * D + d0;
    const double* r = R + i * K + k0;
    for (int k = 0; k < KB; ++k) {
      const double rk = r[k];
      for (int l = 0; l < kLanes; ++l) acc[k][l] += rk * x[l];
    }
  }
  for (int k = 0; k < KB; ++k) {
    double* g = gW + (k0 + k) * D + d0;
    for (int l = 0; l < kLanes; ++l) g[l] = acc[k][l];
  }
}

// The same for the last D mod 8 columns, one class at a time.
LR_INLINE void grad_tail(const double* X, const double* R, int64_t N, int64_t D, int64_t K, int64_t d0, double* gW) {
  const int64_t w = D - d0;
  for (int64_t k = 0; k < K; ++k) {
    double acc[kLanes] = {};
    for (int64_t i = 0; i < N; ++i) {
      const double rk = R[i * K + k];
      const double* x = X + i * D + d0;
      for (int64_t l = 0; l < w; ++l) acc[l] += rk * x[l];
    }
    for (int64_t l = 0; l < w; ++l) gW[k * D + d0 + l] = acc[l];
  }
}

LR_INLINE double loss_grad_impl(const double* X, const int32_t* y, int64_t N, int64_t D, int64_t K, const double* W,
                                const double* b, double inv_c, double* gW, double* gb, double* P) {
  double f = 0;
  for (int64_t i = 0; i < N; ++i) {
    double* p = P + i * K;
    row_logits(X + i * D, W, b, D, K, p);
    double mx = -std::numeric_limits<double>::infinity();
    for (int64_t k = 0; k < K; ++k) mx = std::max(mx, p[k]);
    double sum = 0;
    for (int64_t k = 0; k < K; ++k) {
      const double e = std::exp(p[k] - mx);
      p[k] = e;
      sum += e;
    }
    const int32_t yi = y[i];
    f += std::log(sum) - std::log(p[yi]);  // logsumexp − z_y
    const double inv = 1 / sum;
    for (int64_t k = 0; k < K; ++k) p[k] *= inv;
    p[yi] -= 1;
  }
  for (int64_t k = 0; k < K; ++k) gb[k] = 0;
  for (int64_t i = 0; i < N; ++i) {
    for (int64_t k = 0; k < K; ++k) gb[k] += P[i * K + k];
  }
  int64_t d0 = 0;
  for (; d0 + kLanes <= D; d0 += kLanes) {
    int64_t k = 0;
    for (; k + kBlock <= K; k += kBlock) grad_tile<kBlock>(X, P, N, D, K, k, d0, gW);
    switch (K - k) {
      case 3:
        grad_tile<3>(X, P, N, D, K, k, d0, gW);
        break;
      case 2:
        grad_tile<2>(X, P, N, D, K, k, d0, gW);
        break;
      case 1:
        grad_tile<1>(X, P, N, D, K, k, d0, gW);
        break;
      default:
        break;
    }
  }
  if (d0 < D) grad_tail(X, P, N, D, K, d0, gW);
  const int64_t nW = K * D;
  double reg[4] = {0, 0, 0, 0};
  int64_t j = 0;
  for (; j + 4 <= nW; j += 4) {
    for (int l = 0; l < 4; ++l) {
      reg[l] += W[j + l] * W[j + l];
      gW[j + l] += W[j + l] * inv_c;
    }
  }
  for (; j < nW; ++j) {
    reg[0] += W[j] * W[j];
    gW[j] += W[j] * inv_c;
  }
  return f + 0.5 * inv_c * ((reg[0] + reg[1]) + (reg[2] + reg[3]));
}

LR_INLINE void scores_impl(const double* X, int64_t N, int64_t D, int64_t K, const double* W, const double* b,
                           double* Z) {
  for (int64_t i = 0; i < N; ++i) row_logits(X + i * D, W, b, D, K, Z + i * K);
}

double loss_grad_generic(const double* X, const int32_t* y, int64_t N, int64_t D, int64_t K, const double* W,
                         const double* b, double inv_c, double* gW, double* gb, double* P) {
  return loss_grad_impl(X, y, N, D, K, W, b, inv_c, gW, gb, P);
}
void scores_generic(const double* X, int64_t N, int64_t D, int64_t K, const double* W, const double* b, double* Z) {
  scores_impl(X, N, D, K, W, b, Z);
}

#ifdef LR_AVX2_PATH
__attribute__((target("avx2,fma"))) double loss_grad_avx2(const double* X, const int32_t* y, int64_t N, int64_t D,
                                                          int64_t K, const double* W, const double* b, double inv_c,
                                                          double* gW, double* gb, double* P) {
  return loss_grad_impl(X, y, N, D, K, W, b, inv_c, gW, gb, P);
}
__attribute__((target("avx2,fma"))) void scores_avx2(const double* X, int64_t N, int64_t D, int64_t K, const double* W,
                                                     const double* b, double* Z) {
  scores_impl(X, N, D, K, W, b, Z);
}
bool use_avx2() {
  static const bool yes = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return yes;
}
#endif

void scores(const double* X, int64_t N, int64_t D, int64_t K, const double* W, const double* b, double* Z) {
#ifdef LR_AVX2_PATH
  if (use_avx2()) return scores_avx2(X, N, D, K, W, b, Z);
#endif
  scores_generic(X, N, D, K, W, b, Z);
}

double dot(const double* a, const double* b, int64_t n) {
  double s[4] = {0, 0, 0, 0};
  int64_t j = 0;
  for (; j + 4 <= n; j += 4) {
    for (int l = 0; l < 4; ++l) s[l] += a[j + l] * b[j + l];
  }
  for (; j < n; ++j) s[0] += a[j] * b[j];
  return (s[0] + s[1]) + (s[2] + s[3]);
}

double max_abs(const std::vector<double>& a) {
  double m = 0;
  for (double v : a) m = std::max(m, std::fabs(v));
  return m;
}

// L-BFGS on θ = [W (K·D), b (K)]: lib/probe/logreg.ts's lbfgs(), step for step.
Fit lbfgs(const double* X, const int32_t* y, int64_t N, int64_t D, int64_t K, double C, double tol, int64_t max_iter,
          const double* init_W, const double* init_b) {
  const int64_t nW = K * D;
  const int64_t n = nW + K;
  const double inv_c = 1 / C;
  std::vector<double> theta(n, 0.0);
  if (init_W) std::copy(init_W, init_W + nW, theta.begin());
  if (init_b) std::copy(init_b, init_b + K, theta.begin() + nW);
  std::vector<double> g(n), P(N * K);
  auto eval_at = [&](const std::vector<double>& t, std::vector<double>& grad) {
    return loss_grad(X, y, N, D, K, t.data(), t.data() + nW, inv_c, grad.data(), grad.data() + nW, P.data());
  };
  double f = eval_at(theta, g);
  const size_t m = 10;
  std::vector<std::vector<double>> S, Y;
  std::vector<double> rho;
  std::vector<double> alpha(m), dir(n), t_new(n), g_new(n);
  const double gtol = tol * static_cast<double>(N);
  int64_t it = 0;
  double gmax = max_abs(g);
  int flat = 0;
  while (gmax > gtol && it < max_iter && flat < 20) {
    dir = g;
    for (size_t jj = S.size(); jj-- > 0;) {
      alpha[jj] = rho[jj] * dot(S[jj].data(), dir.data(), n);
      const double a = alpha[jj];
      const double* yj = Y[jj].data();
      for (int64_t q = 0; q < n; ++q) dir[q] -= a * yj[q];
    }
    double gamma = 1 / std::max(1.0, std::sqrt(dot(g.data(), g.data(), n)));
    if (!S.empty()) gamma = dot(S.back().data(), Y.back().data(), n) / dot(Y.back().data(), Y.back().data(), n);
    for (int64_t q = 0; q < n; ++q) dir[q] *= gamma;
    for (size_t jj = 0; jj < S.size(); ++jj) {
      const double beta = rho[jj] * dot(Y[jj].data(), dir.data(), n);
      const double c = alpha[jj] - beta;
      const double* sj = S[jj].data();
      for (int64_t q = 0; q < n; ++q) dir[q] += c * sj[q];
    }
    for (int64_t q = 0; q < n; ++q) dir[q] = -dir[q];
    double slope = dot(g.data(), dir.data(), n);
    if (!(slope < 0)) {  // not a descent direction (rounding): restart from steepest descent
      S.clear();
      Y.clear();
      rho.clear();
      for (int64_t q = 0; q < n; ++q) dir[q] = -g[q];
      slope = -dot(g.data(), g.data(), n);
    }
    double step = 1, f_new = 0;
    bool accepted = false;
    for (int ls = 0; ls < 60; ++ls) {
      for (int64_t q = 0; q < n; ++q) t_new[q] = theta[q] + step * dir[q];
      f_new = eval_at(t_new, g_new);
      if (f_new <= f + 1e-4 * step * slope) {
        accepted = true;
        break;
      }
      if (f_new <= f + 8e-16 * std::fabs(f) && std::fabs(dot(g_new.data(), dir.data(), n)) < std::fabs(slope)) {
        accepted = true;
        break;
      }
      const double denom = 2 * (f_new - f - step * slope);
      double next = denom > 0 ? (-slope * step * step) / denom : step / 2;
      next = std::min(std::max(next, 0.1 * step), 0.5 * step);
      step = next;
    }
    if (!accepted) break;
    std::vector<double> s(n), yv(n);
    for (int64_t q = 0; q < n; ++q) {
      s[q] = t_new[q] - theta[q];
      yv[q] = g_new[q] - g[q];
    }
    const double sy = dot(s.data(), yv.data(), n);
    if (sy > 1e-12 * std::sqrt(dot(s.data(), s.data(), n) * dot(yv.data(), yv.data(), n))) {
      if (S.size() == m) {
        S.erase(S.begin());
        Y.erase(Y.begin());
        rho.erase(rho.begin());
      }
      S.push_back(std::move(s));
      Y.push_back(std::move(yv));
      rho.push_back(1 / sy);
    }
    flat = f - f_new <= 4e-16 * std::fabs(f) ? flat + 1 : 0;
    theta.swap(t_new);
    g.swap(g_new);
    f = f_new;
    gmax = max_abs(g);
    ++it;
  }
  Fit fit;
  fit.W.assign(theta.begin(), theta.begin() + nW);
  fit.b.assign(theta.begin() + nW, theta.end());
  double mean = 0;
  for (int64_t k = 0; k < K; ++k) mean += fit.b[k];
  mean /= static_cast<double>(K);
  for (int64_t k = 0; k < K; ++k) fit.b[k] -= mean;
  fit.objective = f;
  fit.iterations = it;
  fit.converged = gmax <= gtol;
  fit.grad_max_abs = gmax / static_cast<double>(N);
  return fit;
}

void check_shape(int64_t N, int64_t D, int64_t K) {
  if (N < 1 || D < 1 || K < 1) invalid("logistic regression: N, D and K must be positive");
  if (static_cast<double>(N) * static_cast<double>(D) > 1e12 ||
      static_cast<double>(K) * static_cast<double>(D) > 1e12) {
    invalid("logistic regression: problem too large");
  }
}

void check_labels(const int32_t* y, int64_t n, int64_t K, const char* what) {
  for (int64_t i = 0; i < n; ++i) {
    if (y[i] < 0 || y[i] >= K) {
      invalid(std::string("logistic regression: ") + what + "[" + std::to_string(i) + "] = " + std::to_string(y[i]) +
              " is not a class index in [0, " + std::to_string(K) + ")");
    }
  }
}

}  // namespace

double loss_grad(const double* X, const int32_t* y, int64_t N, int64_t D, int64_t K, const double* W, const double* b,
                 double inv_c, double* gW, double* gb, double* P) {
#ifdef LR_AVX2_PATH
  if (use_avx2()) return loss_grad_avx2(X, y, N, D, K, W, b, inv_c, gW, gb, P);
#endif
  return loss_grad_generic(X, y, N, D, K, W, b, inv_c, gW, gb, P);
}

std::vector<Fit> fit_path(const double* X, const int32_t* y, int64_t N, int64_t D, int64_t K,
                          const std::vector<double>& Cs, const Options& opts, const double* init_W,
                          const double* init_b) {
  check_shape(N, D, K);
  check_labels(y, N, K, "y");
  for (double C : Cs) {
    if (!(C > 0) || !std::isfinite(C)) invalid("C must be a positive number, got " + std::to_string(C));
  }
  if (!(opts.tol >= 0) || !std::isfinite(opts.tol)) invalid("tol must be a non-negative number");
  if (opts.max_iter < 0) invalid("maxIter must be a non-negative integer");
  std::vector<Fit> fits;
  fits.reserve(Cs.size());
  for (double C : Cs) {
    const double* wi = fits.empty() ? init_W : fits.back().W.data();
    const double* bi = fits.empty() ? init_b : fits.back().b.data();
    fits.push_back(lbfgs(X, y, N, D, K, C, opts.tol, opts.max_iter, wi, bi));
  }
  return fits;
}

std::vector<TaskResult> fit_tasks(const std::vector<Task>& tasks, const Options& opts, int threads) {
  for (const Task& t : tasks) {
    check_shape(t.N, t.D, t.K);
    if (static_cast<int64_t>(t.X.size()) != t.N * t.D || static_cast<int64_t>(t.y.size()) != t.N) {
      invalid("logistic regression: X must hold N·D values and y N labels");
    }
    if (t.Xtest.size() != t.ytest.size() * static_cast<size_t>(t.D)) {
      invalid("logistic regression: Xtest must hold D values per ytest label");
    }
    check_labels(t.ytest.data(), static_cast<int64_t>(t.ytest.size()), t.K, "ytest");
  }
  std::vector<TaskResult> out(tasks.size());
  std::vector<std::exception_ptr> errors(tasks.size());
  std::atomic<size_t> next{0};
  auto work = [&]() {
    for (size_t j; (j = next.fetch_add(1)) < tasks.size();) {
      try {
        const Task& t = tasks[j];
        TaskResult r;
        r.fits = fit_path(t.X.data(), t.y.data(), t.N, t.D, t.K, t.Cs, opts);
        const int64_t nt = static_cast<int64_t>(t.ytest.size());
        if (nt > 0) {
          std::vector<double> Z(nt * t.K);
          for (const Fit& fit : r.fits) {
            scores(t.Xtest.data(), nt, t.D, t.K, fit.W.data(), fit.b.data(), Z.data());
            int64_t ok = 0;
            for (int64_t i = 0; i < nt; ++i) {
              int64_t best = 0;
              for (int64_t k = 1; k < t.K; ++k) {
                if (Z[i * t.K + k] > Z[i * t.K + best]) best = k;
              }
              ok += best == t.ytest[i];
            }
            r.correct.push_back(ok);
          }
        }
        out[j] = std::move(r);
      } catch (...) {
        errors[j] = std::current_exception();
      }
    }
  };
  int hw = static_cast<int>(std::thread::hardware_concurrency());
  if (hw <= 0) hw = 1;
  int n = threads <= 0 ? hw : std::min(threads, hw);
  n = static_cast<int>(std::min<size_t>(static_cast<size_t>(std::max(n, 1)), std::max<size_t>(tasks.size(), 1)));
  std::vector<std::thread> pool;
  for (int t = 1; t < n; ++t) pool.emplace_back(work);
  work();
  for (std::thread& t : pool) t.join();
  for (const std::exception_ptr& e : errors) {
    if (e) std::rethrow_exception(e);
  }
  return out;
}

}  // namespace vitmsn::logreg
