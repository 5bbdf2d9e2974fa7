// The linear probe's solver (engine/logreg): the loss gradient against central finite differences
// on awkward shapes (D = 1, K = 2, N = 1, D not a multiple of 4 or 8, K not a multiple of 4), the
// L-BFGS result at a stationary point, and fit_tasks() giving bit-identical results on 1 and 2
// threads.
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "common/error.h"
#include "engine/probe/logreg.h"
#include "tests/harness.h"

using vitmsn::logreg::Fit;

namespace {

Rng g_rng(12345);
double rnd() { return g_rng.uniform(); }  // in [-1, 1)

struct Problem {
  int64_t N, D, K;
  std::vector<double> X, W, b;
  std::vector<int32_t> y;
};

Problem make(int64_t N, int64_t D, int64_t K, double scale) {
  Problem p{N, D, K, {}, {}, {}, {}};
  for (int64_t i = 0; i < N * D; ++i) p.X.push_back(rnd());
  for (int64_t i = 0; i < K * D; ++i) p.W.push_back(scale * rnd());
  for (int64_t k = 0; k < K; ++k) p.b.push_back(scale * rnd());
  for (int64_t i = 0; i < N; ++i) p.y.push_back(static_cast<int32_t>((i * 7 + 3) % K));
  return p;
}

double f_at(const Problem& p, const std::vector<double>& W, const std::vector<double>& b, double inv_c) {
  std::vector<double> gW(p.K * p.D), gb(p.K), P(p.N * p.K);
  return vitmsn::logreg::loss_grad(p.X.data(), p.y.data(), p.N, p.D, p.K, W.data(), b.data(), inv_c, gW.data(),
                                   gb.data(), P.data());
}

// A plain float64 reference of f (no blocking): the kernel's value must agree to rounding.
double f_ref(const Problem& p, double inv_c) {
  double f = 0, reg = 0;
  for (int64_t i = 0; i < p.N; ++i) {
    std::vector<double> z(p.K);
    double mx = -1e300;
    for (int64_t k = 0; k < p.K; ++k) {
      double s = p.b[k];
      for (int64_t d = 0; d < p.D; ++d) s += p.X[i * p.D + d] * p.W[k * p.D + d];
      z[k] = s;
      mx = std::max(mx, s);
    }
    double sum = 0;
    for (double v : z) sum += std::exp(v - mx);
    f += std::log(sum) + mx - z[p.y[i]];
  }
  for (double w : p.W) reg += w * w;
  return f + 0.5 * inv_c * reg;
}

void check_gradient(int64_t N, int64_t D, int64_t K) {
  const std::string name = "N=" + std::to_string(N) + " D=" + std::to_string(D) + " K=" + std::to_string(K);
  Problem p = make(N, D, K, 0.7);
  const double inv_c = 0.37;
  std::vector<double> gW(K * D), gb(K), P(N * K);
  const double f = vitmsn::logreg::loss_grad(p.X.data(), p.y.data(), N, D, K, p.W.data(), p.b.data(), inv_c, gW.data(),
                                             gb.data(), P.data());
  const double fr = f_ref(p, inv_c);
  check(std::fabs(f - fr) <= 1e-12 * std::max(1.0, std::fabs(fr)),
        name + ": f " + std::to_string(f) + " vs reference " + std::to_string(fr));
  const double h = 1e-5;
  double worst = 0;
  auto fd = [&](std::vector<double>& v, int64_t j, std::vector<double>& W, std::vector<double>& b) {
    const double keep = v[j];
    v[j] = keep + h;
    const double fp = f_at(p, W, b, inv_c);
    v[j] = keep - h;
    const double fm = f_at(p, W, b, inv_c);
    v[j] = keep;
    return (fp - fm) / (2 * h);
  };
  std::vector<double> W = p.W, b = p.b;
  for (int64_t j = 0; j < K * D; ++j)
    worst = std::max(worst, std::fabs(fd(W, j, W, b) - gW[j]) / std::max(1.0, std::fabs(gW[j])));
  for (int64_t k = 0; k < K; ++k)
    worst = std::max(worst, std::fabs(fd(b, k, W, b) - gb[k]) / std::max(1.0, std::fabs(gb[k])));
  check(worst < 1e-6, name + ": gradient vs finite differences, worst relative error " + std::to_string(worst));
}

}  // namespace

int main() {
  const int64_t shapes[][3] = {
      {1, 1, 2},  {5, 1, 2},   {1, 7, 3},    {9, 3, 2},  {13, 5, 5},    {4, 8, 4},  {17, 9, 7},
      {6, 15, 9}, {11, 16, 6}, {23, 33, 10}, {3, 12, 1}, {40, 100, 13}, {2, 17, 8},
  };
  for (const auto& s : shapes) check_gradient(s[0], s[1], s[2]);

  // A fit reaches a stationary point; warm-started path values agree with cold single fits.
  {
    Problem p = make(60, 13, 5, 0);
    vitmsn::logreg::Options o;
    o.tol = 1e-10;
    std::vector<Fit> path = vitmsn::logreg::fit_path(p.X.data(), p.y.data(), p.N, p.D, p.K, {0.1, 1, 10}, o);
    check(path.size() == 3, "path: one fit per C");
    for (size_t j = 0; j < path.size(); ++j) {
      check(path[j].converged && path[j].grad_max_abs <= 1e-10,
            "path fit " + std::to_string(j) + " converged, grad " + std::to_string(path[j].grad_max_abs));
      double sb = 0;
      for (double v : path[j].b) sb += v;
      check(std::fabs(sb) < 1e-12, "intercepts re-centred");
    }
    std::vector<Fit> cold = vitmsn::logreg::fit_path(p.X.data(), p.y.data(), p.N, p.D, p.K, {10}, o);
    double diff = 0, norm = 0;
    for (size_t j = 0; j < cold[0].W.size(); ++j) {
      diff += (cold[0].W[j] - path[2].W[j]) * (cold[0].W[j] - path[2].W[j]);
      norm += cold[0].W[j] * cold[0].W[j];
    }
    check(std::sqrt(diff / norm) < 1e-7, "warm and cold starts reach the same optimum");
    check(std::fabs(cold[0].objective - path[2].objective) <= 1e-12 * std::fabs(cold[0].objective), "same objective");
  }

  // fit_tasks: identical results on 1 and 2 threads; held-out scoring; bad labels are errors.
  {
    std::vector<vitmsn::logreg::Task> tasks;
    for (int t = 0; t < 3; ++t) {
      Problem p = make(30 + t * 7, 11, 4, 0);
      Problem q = make(9, 11, 4, 0);
      tasks.push_back({p.X, p.y, p.N, p.D, p.K, {0.03, 1, 30}, q.X, q.y});
    }
    vitmsn::logreg::Options o;
    o.tol = 1e-6;
    auto r1 = vitmsn::logreg::fit_tasks(tasks, o, 1);
    auto r2 = vitmsn::logreg::fit_tasks(tasks, o, 2);
    bool same = r1.size() == 3 && r2.size() == 3;
    for (size_t t = 0; same && t < 3; ++t) {
      same = r1[t].correct == r2[t].correct && r1[t].correct.size() == 3;
      for (size_t j = 0; same && j < 3; ++j)
        same = r1[t].fits[j].W == r2[t].fits[j].W && r1[t].fits[j].b == r2[t].fits[j].b;
    }
    check(same, "fit_tasks: bit-identical on 1 and 2 threads");
    tasks[1].ytest[0] = 4;
    bool threw = false;
    try {
      vitmsn::logreg::fit_tasks(tasks, o, 2);
    } catch (const vitmsn::Error& e) {
      threw = e.code() == "ERR_INVALID_ARGUMENT";
    }
    check(threw, "a label outside [0, K) is ERR_INVALID_ARGUMENT");
  }
  return finish();
}
