//===- ExpertGemmBench.cpp - Expert FFN kernels vs raw OpenBLAS sgemm -----===//
//
//   moe-bench-experts [--repeats N] [--quick] [--peak] [--shape E,C,M,H]...
//
// Times the expert FFN forward + backward kernels against exactly the GEMMs
// they perform issued directly to cblas_sgemm (per expert: 2 forward; 1
// recompute + 4 backward), on the same shapes, in the same run. Two raw
// baselines:
// - "seq": the experts one after the other, each GEMM on all BLAS threads
//   (what calling sgemm per expert gives);
// - "same": the GEMMs in the kernel's own schedule (experts spread over the
//   OpenMP threads with single-threaded BLAS when the kernel does that,
//   see expertFfnSpreadsExperts), so raw / kernel isolates the cost of the
//   bias, activation and reduction work around the GEMMs.
// A ratio raw / kernel of 1 means the kernel is as fast as its bare GEMMs
// (target >= 0.8). Also reports the machine's sgemm peak (the best median
// rate of 1024^3 and 2048^3 products; --peak prints only that). Times are
// medians of --repeats rounds after one warm-up round; a round runs the kernel
// and the baseline with the same threading once each, interleaved, so load from
// other processes hits both alike.
// --quick runs tiny shapes once (a smoke test; its numbers mean nothing).
//
//===----------------------------------------------------------------------===//
#include "moert/dense/BlasThreads.h"
#include "moert/train/ExpertFfn.h"

#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

using namespace moert;

namespace {

/// Median seconds of each function over `repeats` rounds (after one
/// warm-up round); every round calls each function once, in turn.
std::vector<double>
interleavedMedians(int repeats,
                   const std::vector<std::function<void()>> &runs) {
  for (const auto &run : runs)
    run();
  std::vector<std::vector<double>> times(runs.size());
  for (int i = 0; i < repeats; ++i)
    for (size_t f = 0; f < runs.size(); ++f) {
      auto start = std::chrono::steady_clock::now();
      runs[f]();
      times[f].push_back(std::chrono::duration<double>(
                             std::chrono::steady_clock::now() - start)
                             .count());
    }
  std::vector<double> medians;
  for (auto &t : times) {
    std::sort(t.begin(), t.end());
    medians.push_back(t[t.size() / 2]);
  }
  return medians;
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

struct Shape {
  int e, c, m, h;
};

struct Buffers {
  std::vector<float> x, w1, b1, w2, b2, dy, y, dx, dw1, db1, dw2, db2;
  Buffers(const Shape &s, std::mt19937 &rng)
      : x(randomVector(size_t(s.e) * s.c * s.m, rng)),
        w1(randomVector(size_t(s.e) * s.m * s.h, rng)),
        b1(randomVector(size_t(s.e) * s.h, rng)),
        w2(randomVector(size_t(s.e) * s.h * s.m, rng)),
        b2(randomVector(size_t(s.e) * s.m, rng)),
        dy(randomVector(x.size(), rng)), y(x.size()), dx(x.size()),
        dw1(w1.size()), db1(b1.size()), dw2(w2.size()), db2(b2.size()) {}
};

/// The seven GEMMs of one expert's forward + backward, into `hidden` and
/// `hiddenGrad` scratch of C*H floats.
void rawExpertGemms(const Shape &s, Buffers &b, int e, float *hidden,
                    float *hiddenGrad) {
  const size_t in = size_t(e) * s.c * s.m, wt = size_t(e) * s.m * s.h;
  const float *x = b.x.data() + in, *dy = b.dy.data() + in;
  const float *w1 = b.w1.data() + wt, *w2 = b.w2.data() + wt;
  gemm(false, false, s.c, s.h, s.m, x, w1, hidden);                // fwd 1
  gemm(false, false, s.c, s.m, s.h, hidden, w2, b.y.data() + in);  // fwd 2
  gemm(false, false, s.c, s.h, s.m, x, w1, hidden);                // recompute
  gemm(true, false, s.h, s.m, s.c, hidden, dy, b.dw2.data() + wt); // dW2
  gemm(false, true, s.c, s.h, s.m, dy, w2, hiddenGrad);            // dA
  gemm(true, false, s.m, s.h, s.c, x, hiddenGrad, b.dw1.data() + wt); // dW1
  gemm(false, true, s.c, s.m, s.h, hiddenGrad, w1, b.dx.data() + in); // dX
}

bool parseArgs(int argc, char **argv, int &repeats, bool &quick, bool &peakOnly,
               std::vector<Shape> &shapes) {
  const char *usage = "usage: moe-bench-experts [--repeats N] [--quick] "
                      "[--peak] [--shape E,C,M,H]...\n";
  for (int i = 1; i < argc; ++i) {
    const bool hasValue = i + 1 < argc;
    if (!std::strcmp(argv[i], "--quick")) {
      quick = true;
    } else if (!std::strcmp(argv[i], "--peak")) {
      peakOnly = true;
    } else if (!std::strcmp(argv[i], "--repeats") && hasValue) {
      repeats = std::atoi(argv[++i]);
      if (repeats < 1) {
        std::fprintf(stderr,
                     "moe-bench-experts: --repeats expects a positive "
                     "integer, found '%s'\n",
                     argv[i]);
        return false;
      }
    } else if (!std::strcmp(argv[i], "--shape") && hasValue) {
      Shape s;
      char extra;
      if (std::sscanf(argv[++i], "%d,%d,%d,%d%c", &s.e, &s.c, &s.m, &s.h,
                      &extra) != 4 ||
          s.e < 1 || s.c < 1 || s.m < 1 || s.h < 1) {
        std::fprintf(stderr,
                     "moe-bench-experts: --shape expects four positive "
                     "integers E,C,M,H, found '%s'\n",
                     argv[i]);
        return false;
      }
      shapes.push_back(s);
    } else {
      std::fprintf(stderr, "%smoe-bench-experts: unexpected argument '%s'\n",
                   usage, argv[i]);
      return false;
    }
  }
  return true;
}

} // namespace

int main(int argc, char **argv) {
  int repeats = 7;
  bool quick = false, peakOnly = false;
  std::vector<Shape> shapes;
  if (!parseArgs(argc, argv, repeats, quick, peakOnly, shapes))
    return 2;
  if (quick)
    repeats = 1;
  if (shapes.empty())
    shapes = quick ? std::vector<Shape>{{4, 8, 16, 32}, {1, 8, 16, 32}}
                   : std::vector<Shape>{{8, 64, 128, 512},
                                        {8, 256, 256, 1024},
                                        {4, 512, 512, 2048},
                                        {1, 1024, 512, 2048}};
  std::mt19937 rng(1);
  // The peak: the best of the median rates of square products (larger ones
  // amortize OpenBLAS's packing better).
  double peak = 0.0;
  int peakSize = 0;
  for (int n : quick ? std::vector<int>{64} : std::vector<int>{1024, 2048}) {
    auto a = randomVector(size_t(n) * n, rng), b = randomVector(a.size(), rng),
         c = std::vector<float>(a.size());
    double t = interleavedMedians(std::max(repeats, 5), {[&] {
                                    gemm(false, false, n, n, n, a.data(),
                                         b.data(), c.data());
                                  }})[0];
    if (2.0 * n * n * n / t / 1e9 > peak) {
      peak = 2.0 * n * n * n / t / 1e9;
      peakSize = n;
    }
  }
  std::printf("sgemm peak: %.1f GFLOP/s (%d^3, %d BLAS threads)\n", peak,
              peakSize, openblas_get_num_threads());
  if (peakOnly)
    return 0;
  std::printf("%-20s %6s %10s %10s %10s %8s %8s %8s\n", "E,C,M,H", "spread",
              "kernel ms", "seq ms", "same ms", "seq/k", "same/k", "GFLOP/s");
  for (const Shape &s : shapes) {
    train::ExpertFfnShape shape{s.e, s.c, s.m, s.h,
                                dense::ActivationKind::Gelu};
    const bool spread = train::expertFfnSpreadsExperts(shape);
    Buffers b(s, rng);
    auto runKernel = [&] {
      train::expertFfnForward(shape, b.x.data(), b.w1.data(), b.b1.data(),
                              b.w2.data(), b.b2.data(), b.y.data());
      train::expertFfnBackward(
          shape, b.dy.data(), b.x.data(), b.w1.data(), b.b1.data(), b.w2.data(),
          b.dx.data(), b.dw1.data(), b.db1.data(), b.dw2.data(), b.db2.data());
    };
    std::vector<float> hidden(size_t(s.c) * s.h), hiddenGrad(hidden.size());
    auto runSequential = [&] {
      for (int e = 0; e < s.e; ++e)
        rawExpertGemms(s, b, e, hidden.data(), hiddenGrad.data());
    };
    const int threads = dense::detail::maxTeamThreads();
    std::vector<float> scratch(2 * hidden.size() * threads);
    auto runSpread = [&] {
      dense::detail::SingleThreadedBlasScope singleThreadedBlas(true);
#pragma omp parallel for schedule(static)
      for (int e = 0; e < s.e; ++e) {
        int t = 0;
#ifdef _OPENMP
        t = omp_get_thread_num();
#endif
        float *h = scratch.data() + 2 * hidden.size() * t;
        rawExpertGemms(s, b, e, h, h + hidden.size());
      }
    };
    // Runs with the same threading are interleaved; the other schedule is
    // timed in a block of its own: OpenBLAS threads keep spinning for a
    // while after a threaded GEMM and would slow an OpenMP team that
    // follows right after it.
    double kernel, sequential, same;
    if (spread) {
      std::vector<double> t =
          interleavedMedians(repeats, {runKernel, runSpread});
      kernel = t[0];
      same = t[1];
      sequential = interleavedMedians(repeats, {runSequential})[0];
    } else {
      std::vector<double> t =
          interleavedMedians(repeats, {runKernel, runSequential});
      kernel = t[0];
      same = sequential = t[1];
    }
    double flops = 7.0 * 2.0 * s.e * double(s.c) * s.m * s.h;
    char label[64];
    std::snprintf(label, sizeof(label), "%d,%d,%d,%d", s.e, s.c, s.m, s.h);
    std::printf("%-20s %6s %10.3f %10.3f %10.3f %8.2f %8.2f %8.1f\n", label,
                spread ? "yes" : "no", kernel * 1e3, sequential * 1e3,
                same * 1e3, sequential / kernel, same / kernel,
                flops / kernel / 1e9);
  }
  return 0;
}
