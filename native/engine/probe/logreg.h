// L2-regularised multinomial logistic regression, scikit-learn's objective (the C++ port of
// lib/probe/logreg.ts's direct solver, which stays the reference):
//
//   f(W, b) = Σ_i [ logsumexp_k(z_ik) − z_{i,y_i} ] + 1/(2C)·||W||²,   z_ik = x_i·w_k + b_k
//
// W is [K, D] row-major, b [K] unpenalised. L-BFGS (10 pairs) from zero or a warm start, the same
// backtracking Armijo line search, stopping rules and re-centring of b as the TypeScript solver;
// float64 throughout. Deterministic: every sum has a fixed order that does not depend on the thread
// count (threads only run independent fits). The loss + gradient evaluation is two small GEMMs,
// register-blocked over classes so each row of X is loaded once per block of classes; on x86-64
// with AVX2 + FMA a second compilation of the same kernels is used (results may then differ from
// another machine's in the last bits, never from run to run).
#pragma once
#include <cstdint>
#include <vector>

namespace vitmsn::logreg {

struct Options {
  double tol = 1e-8;  // stop when max |∇f| ≤ tol·N
  int64_t max_iter = 10000;
};

struct Fit {
  std::vector<double> W;  // [K, D]
  std::vector<double> b;  // [K], Σ b = 0
  double objective = 0;   // f(W, b), the sum form
  int64_t iterations = 0;
  bool converged = false;
  double grad_max_abs = 0;  // max |∇f| / N
};

// f and its gradient into gW [K·D], gb [K]; P is scratch [N·K]. Labels must lie in [0, K).
double loss_grad(const double* X, const int32_t* y, int64_t N, int64_t D, int64_t K, const double* W, const double* b,
                 double inv_c, double* gW, double* gb, double* P);

// One fit per C in the order given, each warm-started from the previous solution (the first from
// `init_W`/`init_b` when given, else zero). Throws vitmsn::Error(ERR_INVALID_ARGUMENT) on bad input.
std::vector<Fit> fit_path(const double* X, const int32_t* y, int64_t N, int64_t D, int64_t K,
                          const std::vector<double>& Cs, const Options& opts, const double* init_W = nullptr,
                          const double* init_b = nullptr);

// An independent path fit (one CV fold, or the final fit), with optional held-out rows to score.
struct Task {
  std::vector<double> X;   // [N, D]
  std::vector<int32_t> y;  // [N]
  int64_t N = 0, D = 0, K = 0;
  std::vector<double> Cs;
  std::vector<double> Xtest;   // [Ntest, D] (may be empty)
  std::vector<int32_t> ytest;  // [Ntest]
};

struct TaskResult {
  std::vector<Fit> fits;         // one per C
  std::vector<int64_t> correct;  // per C: held-out rows whose argmax (first maximum) equals ytest
};

// Runs the tasks on up to `threads` threads (≤ 0: the hardware's; never more than tasks). Results
// are in task order and identical for any thread count.
std::vector<TaskResult> fit_tasks(const std::vector<Task>& tasks, const Options& opts, int threads);

}  // namespace vitmsn::logreg
