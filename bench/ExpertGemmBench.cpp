//===- ExpertGemmBench.cpp - Expert FFN kernels vs raw OpenBLAS sgemm -----===//
//
//   moe-bench-experts [--repeats N] [--quick] [--peak] [--shape E,C,M,H]...
//
// Times the expert FFN forward + backward kernels against exactly the GEMMs
// they perform (per expert: 2 forward; 1 recompute + 4 backward), on the same
// shapes, in the same run. Two raw baselines:
// - "seq": the experts one after the other, each GEMM one cblas_sgemm call on
//   all OpenBLAS threads (OpenBLAS's own threading, which the runtime does not
//   use: it runs OpenBLAS single-threaded, see dense/Gemm.h);
// - "same": the GEMMs in the kernel's own schedule, through dense::gemm
//   (experts spread over the OpenMP threads when the kernel does that, see
//   expertFfnSpreadsExperts; else in order, each GEMM's blocks spread), so
//   raw / kernel isolates the cost of the bias, activation and reduction work
//   around the GEMMs.
// A ratio raw / kernel of 1 means the kernel is as fast as its bare GEMMs
// (target >= 0.8). Also reports the machine's sgemm peak with OpenBLAS's own
// threading (the best median rate of 1024^3 and 2048^3 products; --peak
// prints only that). Times are medians of --repeats rounds after one warm-up
// round; a round runs the kernel and "same" once each, interleaved, so load
// from other processes hits both alike. OpenBLAS's threads busy-spin for
// ~0.1 s after a threaded call (and after the library starts them), which
// would slow an OpenMP team that runs meanwhile: the kernels are timed first,
// after a pause, and the threaded OpenBLAS runs (peak, "seq") last.
// --quick runs tiny shapes once (a smoke test; its numbers mean nothing).
//
//===----------------------------------------------------------------------===//
#include "moert/BlasThreads.h"
#include "moert/dense/Gemm.h"
#include "moert/dense/ParallelChunks.h"
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
#include <thread>
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

/// C = op(A) op(B), row-major, dense: one call of the runtime's GEMM or,
/// with `direct`, one cblas_sgemm call.
void gemm(bool direct, bool ta, bool tb, int m, int n, int k, const float *a,
          const float *b, float *c) {
  if (direct)
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans,
                tb ? CblasTrans : CblasNoTrans, m, n, k, 1.0f, a, ta ? m : k, b,
                tb ? k : n, 0.0f, c, n);
  else
    dense::gemm(ta, tb, m, n, k, 1.0f, a, ta ? m : k, b, tb ? k : n, 0.0f, c,
                n);
}

/// Lets OpenBLAS's idle threads stop spinning (THREAD_TIMEOUT: 2^28 cycles,
/// ~0.1 s) before the OpenMP teams are timed.
void waitForIdleBlasThreads() {
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
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
/// `hiddenGrad` scratch of C*H floats (`direct`: see gemm).
void rawExpertGemms(bool direct, const Shape &s, Buffers &b, int e,
                    float *hidden, float *hiddenGrad) {
  const size_t in = size_t(e) * s.c * s.m, wt = size_t(e) * s.m * s.h;
  const float *x = b.x.data() + in, *dy = b.dy.data() + in;
  const float *w1 = b.w1.data() + wt, *w2 = b.w2.data() + wt;
  gemm(direct, false, false, s.c, s.h, s.m, x, w1, hidden); // fwd 1
  gemm(direct, false, false, s.c, s.m, s.h, hidden, w2, b.y.data() + in);
  gemm(direct, false, false, s.c, s.h, s.m, x, w1, hidden); // recompute
  gemm(direct, true, false, s.h, s.m, s.c, hidden, dy, b.dw2.data() + wt);
  gemm(direct, false, true, s.c, s.h, s.m, dy, w2, hiddenGrad); // dA
  gemm(direct, true, false, s.m, s.h, s.c, x, hiddenGrad, b.dw1.data() + wt);
  gemm(direct, false, true, s.c, s.m, s.h, hiddenGrad, w1, b.dx.data() + in);
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
  const int threads = dense::detail::maxTeamThreads();
  useSingleThreadedBlas();

  // The runtime's threading: the kernels and "same".
  struct Row {
    Shape shape;
    bool spread;
    double kernel, same, sequential;
  };
  std::vector<Row> rows;
  if (!peakOnly)
    waitForIdleBlasThreads();
  for (const Shape &s : peakOnly ? std::vector<Shape>{} : shapes) {
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
    const size_t hiddenSize = size_t(s.c) * s.h;
    std::vector<float> scratch(2 * hiddenSize * threads);
    auto runSame = [&] {
#pragma omp parallel for schedule(static) if (spread)
      for (int e = 0; e < s.e; ++e) {
        int t = 0;
#ifdef _OPENMP
        t = omp_get_thread_num();
#endif
        float *h = scratch.data() + 2 * hiddenSize * t;
        rawExpertGemms(/*direct=*/false, s, b, e, h, h + hiddenSize);
      }
    };
    std::vector<double> t = interleavedMedians(repeats, {runKernel, runSame});
    rows.push_back({s, spread, t[0], t[1], 0.0});
  }

  // OpenBLAS's own threading: the peak and "seq".
  openblas_set_num_threads(threads);
  // The peak: the best of the median rates of square products (larger ones
  // amortize OpenBLAS's packing better).
  double peak = 0.0;
  int peakSize = 0;
  for (int n : quick ? std::vector<int>{64} : std::vector<int>{1024, 2048}) {
    auto a = randomVector(size_t(n) * n, rng), b = randomVector(a.size(), rng),
         c = std::vector<float>(a.size());
    double t = interleavedMedians(std::max(repeats, 5), {[&] {
                                    gemm(/*direct=*/true, false, false, n, n, n,
                                         a.data(), b.data(), c.data());
                                  }})[0];
    if (2.0 * n * n * n / t / 1e9 > peak) {
      peak = 2.0 * n * n * n / t / 1e9;
      peakSize = n;
    }
  }
  for (Row &row : rows) {
    const Shape &s = row.shape;
    Buffers b(s, rng);
    std::vector<float> hidden(size_t(s.c) * s.h), hiddenGrad(hidden.size());
    row.sequential = interleavedMedians(
        repeats, {[&] {
          for (int e = 0; e < s.e; ++e)
            rawExpertGemms(
                /*direct=*/true, s, b, e, hidden.data(), hiddenGrad.data());
        }})[0];
  }
  openblas_set_num_threads(1);

  std::printf("sgemm peak: %.1f GFLOP/s (%d^3, %d BLAS threads)\n", peak,
              peakSize, threads);
  if (peakOnly)
    return 0;
  std::printf("%-20s %6s %10s %10s %10s %8s %8s %8s\n", "E,C,M,H", "spread",
              "kernel ms", "seq ms", "same ms", "seq/k", "same/k", "GFLOP/s");
  for (const Row &row : rows) {
    const Shape &s = row.shape;
    double flops = 7.0 * 2.0 * s.e * double(s.c) * s.m * s.h;
    char label[64];
    std::snprintf(label, sizeof(label), "%d,%d,%d,%d", s.e, s.c, s.m, s.h);
    std::printf("%-20s %6s %10.3f %10.3f %10.3f %8.2f %8.2f %8.1f\n", label,
                row.spread ? "yes" : "no", row.kernel * 1e3,
                row.sequential * 1e3, row.same * 1e3,
                row.sequential / row.kernel, row.same / row.kernel,
                flops / row.kernel / 1e9);
  }
  return 0;
}
