//===- ExpertGemmBench.cpp - Expert FFN kernels vs raw OpenBLAS sgemm -----===//
//
// Times the expert FFN forward + backward kernels against exactly the GEMMs
// they perform issued directly to cblas_sgemm (per expert: 2 forward; 1
// recompute + 4 backward), on the same shapes, in the same run. The ratio
// raw / kernel says how much of the GEMM speed the kernel keeps (target
// >= 0.8); the bias, activation and reduction work is the difference. Also
// reports the machine's sgemm peak on a 1024^3 product.
//
//===----------------------------------------------------------------------===//
#include "moert/train/ExpertFfn.h"

#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <vector>

using namespace moert;

namespace {

template <typename F> double medianSeconds(int repeats, F &&run) {
  run(); // warm up
  std::vector<double> times;
  for (int i = 0; i < repeats; ++i) {
    auto start = std::chrono::steady_clock::now();
    run();
    times.push_back(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
            .count());
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

void gemm(bool ta, bool tb, int m, int n, int k, const float *a, const float *b,
          float *c) {
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans,
              tb ? CblasTrans : CblasNoTrans, m, n, k, 1.0f, a, ta ? m : k, b,
              tb ? k : n, 0.0f, c, n);
}

std::vector<float> randomVector(size_t n, std::mt19937 &rng) {
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (float &x : v)
    x = dist(rng);
  return v;
}

} // namespace

int main() {
  std::mt19937 rng(1);
  {
    const int n = 1024;
    auto a = randomVector(n * n, rng), b = randomVector(n * n, rng),
         c = std::vector<float>(n * n);
    double t = medianSeconds(
        5, [&] { gemm(false, false, n, n, n, a.data(), b.data(), c.data()); });
    std::printf("sgemm peak (1024^3): %.1f GFLOP/s\n",
                2.0 * n * n * n / t / 1e9);
  }
  std::printf("%-28s %12s %12s %8s %10s\n", "shape E,C,M,H", "kernel ms",
              "raw sgemm ms", "ratio", "GFLOP/s");
  struct Shape {
    int e, c, m, h;
  } shapes[] = {{8, 64, 128, 512}, {8, 256, 256, 1024}, {4, 512, 512, 2048}};
  for (const Shape &s : shapes) {
    train::ExpertFfnShape shape{s.e, s.c, s.m, s.h,
                                dense::ActivationKind::Gelu};
    auto x = randomVector(s.e * s.c * s.m, rng),
         w1 = randomVector(s.e * s.m * s.h, rng),
         b1 = randomVector(s.e * s.h, rng),
         w2 = randomVector(s.e * s.h * s.m, rng),
         b2 = randomVector(s.e * s.m, rng),
         dy = randomVector(s.e * s.c * s.m, rng);
    std::vector<float> y(x.size()), dx(x.size()), dw1(w1.size()),
        db1(b1.size()), dw2(w2.size()), db2(b2.size());
    double kernel = medianSeconds(7, [&] {
      train::expertFfnForward(shape, x.data(), w1.data(), b1.data(), w2.data(),
                              b2.data(), y.data());
      train::expertFfnBackward(shape, dy.data(), x.data(), w1.data(), b1.data(),
                               w2.data(), dx.data(), dw1.data(), db1.data(),
                               dw2.data(), db2.data());
    });
    std::vector<float> hidden(s.c * s.h), hidden2(s.c * s.h);
    double raw = medianSeconds(7, [&] {
      for (int e = 0; e < s.e; ++e) {
        const float *xe = x.data() + e * s.c * s.m;
        const float *w1e = w1.data() + e * s.m * s.h;
        const float *w2e = w2.data() + e * s.h * s.m;
        const float *dye = dy.data() + e * s.c * s.m;
        gemm(false, false, s.c, s.h, s.m, xe, w1e, hidden.data()); // fwd 1
        gemm(false, false, s.c, s.m, s.h, hidden.data(), w2e,
             y.data() + e * s.c * s.m);                            // fwd 2
        gemm(false, false, s.c, s.h, s.m, xe, w1e, hidden.data()); // recompute
        gemm(true, false, s.h, s.m, s.c, hidden.data(), dye,
             dw2.data() + e * s.h * s.m);                           // dW2
        gemm(false, true, s.c, s.h, s.m, dye, w2e, hidden2.data()); // dA
        gemm(true, false, s.m, s.h, s.c, xe, hidden2.data(),
             dw1.data() + e * s.m * s.h); // dW1
        gemm(false, true, s.c, s.m, s.h, hidden2.data(), w1e,
             dx.data() + e * s.c * s.m); // dX
      }
    });
    double flops = 7.0 * 2.0 * s.e * double(s.c) * s.m * s.h;
    char label[64];
    std::snprintf(label, sizeof(label), "%d,%d,%d,%d", s.e, s.c, s.m, s.h);
    std::printf("%-28s %12.3f %12.3f %8.2f %10.1f\n", label, kernel * 1e3,
                raw * 1e3, raw / kernel, flops / kernel / 1e9);
  }
  return 0;
}
