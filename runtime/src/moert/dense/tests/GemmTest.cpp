//===- GemmTest.cpp - The runtime's blocked GEMM --------------------------===//
//
// Values against a naive triple loop for every transpose combination, with
// padded leading dimensions, alpha and beta; and the same bits whatever the
// OpenMP thread count, on shapes cut into several blocks.
//
//===----------------------------------------------------------------------===//
#include "moert/dense/Gemm.h"

#include "GradCheck.h"

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace moert {
namespace dense {
namespace {

using testing::randomFloats;

struct GemmCase {
  bool transA, transB;
  int64_t m, n, k;
  int64_t padA, padB, padC; // extra floats per stored row
  float alpha, beta;
};

/// Operands of one case, stored row-major with the padded strides.
struct Operands {
  int64_t lda, ldb, ldc;
  std::vector<float> a, b, c;

  Operands(const GemmCase &g, std::mt19937 &rng)
      : lda((g.transA ? g.m : g.k) + g.padA),
        ldb((g.transB ? g.k : g.n) + g.padB), ldc(g.n + g.padC),
        a(randomFloats(static_cast<size_t>((g.transA ? g.k : g.m) * lda), rng)),
        b(randomFloats(static_cast<size_t>((g.transB ? g.n : g.k) * ldb), rng)),
        c(randomFloats(static_cast<size_t>(g.m * ldc), rng)) {}

  float opA(const GemmCase &g, int64_t i, int64_t p) const {
    return g.transA ? a[p * lda + i] : a[i * lda + p];
  }
  float opB(const GemmCase &g, int64_t p, int64_t j) const {
    return g.transB ? b[j * ldb + p] : b[p * ldb + j];
  }
};

/// What gemm() must give, in double; padding columns of C stay as they are.
std::vector<double> reference(const GemmCase &g, const Operands &x) {
  std::vector<double> c(x.c.begin(), x.c.end());
  for (int64_t i = 0; i < g.m; ++i)
    for (int64_t j = 0; j < g.n; ++j) {
      double sum = 0.0;
      for (int64_t p = 0; p < g.k; ++p)
        sum += static_cast<double>(x.opA(g, i, p)) * x.opB(g, p, j);
      const double old = g.beta == 0.0f ? 0.0 : g.beta * c[i * x.ldc + j];
      c[i * x.ldc + j] = g.alpha * sum + old;
    }
  return c;
}

void runGemm(const GemmCase &g, const Operands &x, std::vector<float> &c) {
  gemm(g.transA, g.transB, g.m, g.n, g.k, g.alpha, x.a.data(), x.lda,
       x.b.data(), x.ldb, g.beta, c.data(), x.ldc);
}

void expectMatchesReference(const GemmCase &g) {
  std::mt19937 rng(7);
  Operands x(g, rng);
  if (g.beta == 0.0f) // beta = 0: C is not read, NaN or not
    for (int64_t i = 0; i < g.m; ++i)
      for (int64_t j = 0; j < g.n; ++j)
        x.c[i * x.ldc + j] = std::numeric_limits<float>::quiet_NaN();
  const std::vector<double> expected = reference(g, x);
  std::vector<float> c = x.c;
  runGemm(g, x, c);
  // Float accumulation of k products of magnitude <= |alpha|.
  const double tolerance = 1e-6 * (g.k + 4) * (std::fabs(g.alpha) + 1.0);
  for (size_t i = 0; i < c.size(); ++i) {
    if (static_cast<int64_t>(i) % x.ldc >= g.n) {
      ASSERT_EQ(c[i], x.c[i]) << "padding of C written at " << i;
      continue;
    }
    ASSERT_NEAR(c[i], expected[i], tolerance) << "element " << i;
  }
}

TEST(GemmTest, MatchesNaiveLoopForEveryTransposeAndScale) {
  for (bool transA : {false, true})
    for (bool transB : {false, true})
      for (float beta : {0.0f, 1.0f, -0.5f})
        for (float alpha : {1.0f, -1.25f}) {
          SCOPED_TRACE(::testing::Message()
                       << "transA " << transA << " transB " << transB
                       << " alpha " << alpha << " beta " << beta);
          expectMatchesReference(
              {transA, transB, 37, 53, 29, 0, 0, 0, alpha, beta});
          expectMatchesReference(
              {transA, transB, 13, 7, 61, 3, 5, 2, alpha, beta});
          expectMatchesReference(
              {transA, transB, 1, 9, 1, 1, 0, 7, alpha, beta});
        }
}

// Shapes large enough to be cut into blocks: rows (m > n) and columns.
const GemmCase kSplitCases[] = {
    {false, false, 517, 131, 129, 0, 0, 0, 1.0f, 0.0f},
    {true, true, 517, 131, 129, 3, 1, 5, 0.75f, 1.0f},
    {false, true, 131, 700, 100, 2, 0, 1, 1.0f, 1.0f},
    {true, false, 140, 611, 113, 0, 9, 0, -2.0f, 0.0f},
};

TEST(GemmTest, SplitShapesMatchNaiveLoop) {
  for (const GemmCase &g : kSplitCases) {
    const detail::GemmBlocking blocking = detail::gemmBlocking(g.m, g.n, g.k);
    EXPECT_GT(blocking.count, 1) << g.m << "x" << g.n << "x" << g.k;
    EXPECT_EQ(blocking.splitsColumns, g.n > g.m);
    expectMatchesReference(g);
  }
}

TEST(GemmTest, EmptyReductionScalesC) {
  std::vector<float> c = {1.0f, 2.0f, 3.0f, 4.0f};
  gemm(false, false, 2, 2, 0, 1.0f, nullptr, 1, nullptr, 2, 0.5f, c.data(), 2);
  EXPECT_EQ(c, (std::vector<float>{0.5f, 1.0f, 1.5f, 2.0f}));
  gemm(false, false, 2, 2, 0, 1.0f, nullptr, 1, nullptr, 2, 0.0f, c.data(), 2);
  EXPECT_EQ(c, (std::vector<float>(4, 0.0f)));
}

#ifdef _OPENMP
TEST(GemmTest, SameBitsForEveryThreadCount) {
  const int savedThreads = omp_get_max_threads();
  for (const GemmCase &g : kSplitCases) {
    std::mt19937 rng(11);
    Operands x(g, rng);
    std::vector<float> oneThread = x.c;
    omp_set_num_threads(1);
    runGemm(g, x, oneThread);
    for (int threads : {2, 3}) {
      omp_set_num_threads(threads);
      std::vector<float> c = x.c;
      runGemm(g, x, c);
      EXPECT_EQ(c, oneThread)
          << threads << " threads, " << g.m << "x" << g.n << "x" << g.k;
    }
    // Called from inside a team: the blocks run in order on one thread.
    omp_set_num_threads(2);
    std::vector<float> inTeam = x.c;
#pragma omp parallel
    {
#pragma omp single
      runGemm(g, x, inTeam);
    }
    EXPECT_EQ(inTeam, oneThread) << "inside a parallel region";
  }
  omp_set_num_threads(savedThreads);
}
#endif

} // namespace
} // namespace dense
} // namespace moert
