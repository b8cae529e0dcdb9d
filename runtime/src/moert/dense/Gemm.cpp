//===- Gemm.cpp - The runtime's GEMM: fixed blocks over OpenMP threads ----===//
//
// See Gemm.h. The blocking constants were measured on 2 cores (AMD EPYC,
// OpenBLAS 0.3.21) against OpenBLAS's own threading on the demo model's
// shapes and the expert benchmark's.
//
//===----------------------------------------------------------------------===//
#include "moert/dense/Gemm.h"

#include "moert/BlasThreads.h"

#include <cblas.h>

#include <algorithm>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace moert {
namespace dense {

namespace {

/// Below this many multiply-adds a product stays one call. Waking the
/// OpenMP team costs under 1 us when its threads spin (the default wait
/// policy) but ~45 us with OMP_WAIT_POLICY=PASSIVE on this virtual machine,
/// as much as 2^22 multiply-adds on one core: measured on the demo model's
/// training step, thresholds of 2^19 to 2^23 differ by noise with passive
/// waiting, 2^20 is among the fastest with spinning workers.
constexpr int64_t kMinSplitWork = int64_t{1} << 20;
/// Blocks have at least this many rows or columns. Every block packs the
/// operand it shares with the others again; while that operand is small it
/// is packed from cache (the demo's backward linear GEMMs ran 15% faster
/// with blocks of 64 rows than of 128)...
constexpr int64_t kMinBlockDim = 64;
/// ... but once it exceeds ~1 MB, blocks of 64 made products of 2^30
/// multiply-adds up to 10% slower than OpenBLAS's own threading, blocks of
/// 128 3-5%.
constexpr int64_t kLargeSharedOperand = int64_t{1} << 18; // floats
constexpr int64_t kMinBlockDimLargeShared = 128;
/// Products split in more than two blocks keep at least this many
/// multiply-adds per block, and products of kHugeWork and more blocks of 256
/// rows or columns: run in order on one thread (inside a team), blocks of 64
/// rows cost 5-15% over one call, of 128 1-7%, of 256 0-3% (single-threaded
/// OpenBLAS, expert FFN shapes).
constexpr int64_t kMinBlockWork = int64_t{1} << 23;
constexpr int64_t kHugeWork = int64_t{1} << 28;
constexpr int64_t kMinBlockDimHuge = 256;
/// At most this many blocks: enough for 16 threads.
constexpr int64_t kMaxBlocks = 16;
/// Block sizes are multiples of this (whole 64-byte lines of C when
/// columns are split; a multiple of OpenBLAS's register tiles).
constexpr int64_t kBlockAlign = 16;

void sgemm(bool transA, bool transB, int64_t m, int64_t n, int64_t k,
           float alpha, const float *a, int64_t lda, const float *b,
           int64_t ldb, float beta, float *c, int64_t ldc) {
  cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans,
              transB ? CblasTrans : CblasNoTrans, static_cast<int>(m),
              static_cast<int>(n), static_cast<int>(k), alpha, a,
              static_cast<int>(lda), b, static_cast<int>(ldb), beta, c,
              static_cast<int>(ldc));
}

} // namespace

namespace detail {

GemmBlocking gemmBlocking(int64_t m, int64_t n, int64_t k) {
  GemmBlocking blocking;
  blocking.splitsColumns = n > m;
  const int64_t dim = blocking.splitsColumns ? n : m;
  blocking.size = dim;
  const int64_t work = m * n * k;
  if (work < kMinSplitWork)
    return blocking;
  const int64_t shared = (blocking.splitsColumns ? m : n) * k;
  const int64_t minBlockDim = work >= kHugeWork ? kMinBlockDimHuge
                              : shared > kLargeSharedOperand
                                  ? kMinBlockDimLargeShared
                                  : kMinBlockDim;
  const int64_t wanted = std::min({kMaxBlocks, dim / minBlockDim,
                                   std::max<int64_t>(2, work / kMinBlockWork)});
  if (wanted < 2)
    return blocking;
  blocking.size = ((dim + wanted - 1) / wanted + kBlockAlign - 1) /
                  kBlockAlign * kBlockAlign;
  blocking.count = (dim + blocking.size - 1) / blocking.size;
  return blocking;
}

} // namespace detail

void gemm(bool transA, bool transB, int64_t m, int64_t n, int64_t k,
          float alpha, const float *a, int64_t lda, const float *b, int64_t ldb,
          float beta, float *c, int64_t ldc) {
  useSingleThreadedBlas();
  if (m <= 0 || n <= 0)
    return;
  if (k <= 0) { // BLAS may reject k = 0 with its leading dimensions
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j)
        c[i * ldc + j] = beta == 0.0f ? 0.0f : beta * c[i * ldc + j];
    return;
  }
  const detail::GemmBlocking blocking = detail::gemmBlocking(m, n, k);
  auto runBlock = [&](int64_t block) {
    const int64_t begin = block * blocking.size;
    if (blocking.splitsColumns) {
      const int64_t cols = std::min(n, begin + blocking.size) - begin;
      sgemm(transA, transB, m, cols, k, alpha, a, lda,
            transB ? b + begin * ldb : b + begin, ldb, beta, c + begin, ldc);
    } else {
      const int64_t rows = std::min(m, begin + blocking.size) - begin;
      sgemm(transA, transB, rows, n, k, alpha,
            transA ? a + begin : a + begin * lda, lda, b, ldb, beta,
            c + begin * ldc, ldc);
    }
  };
#ifdef _OPENMP
  if (blocking.count > 1 && omp_get_max_threads() > 1 && !omp_in_parallel()) {
#pragma omp parallel for schedule(static)
    for (int64_t block = 0; block < blocking.count; ++block)
      runBlock(block);
    return;
  }
#endif
  for (int64_t block = 0; block < blocking.count; ++block)
    runBlock(block);
}

} // namespace dense
} // namespace moert
