//===- Gemm.h - The runtime's GEMM: fixed blocks over OpenMP threads ------===//
//
// gemm() threads a product itself, OpenBLAS runs single-threaded (see
// BlasThreads.h): it cuts C into blocks of rows or columns and runs one
// single-threaded sgemm per block over the OpenMP threads (in order when
// already inside a parallel region). The blocks depend on the shape only,
// never on the thread count, and K is never split, so every element comes
// from the same sgemm call whatever OMP_NUM_THREADS is: results are bitwise
// identical across thread counts (a threaded OpenBLAS call is not: it rounds
// differently with 1 and 2 threads).
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_DENSE_GEMM_H
#define MOERT_DENSE_GEMM_H

#include <cstdint>

namespace moert {
namespace dense {

/// C[m, n] = alpha * op(A) op(B) + beta * C, all row-major: op(A) is
/// [m, k] (A stored [k, m] when transA), op(B) is [k, n] (B stored [n, k]
/// when transB). lda, ldb, ldc are the row strides of the stored matrices.
/// With beta = 0, C is not read. Safe to call inside a parallel region.
void gemm(bool transA, bool transB, int64_t m, int64_t n, int64_t k,
          float alpha, const float *a, int64_t lda, const float *b, int64_t ldb,
          float beta, float *c, int64_t ldc);

namespace detail {

/// The blocks gemm() cuts C into: `count` blocks of `size` rows (or
/// columns, when `splitsColumns`), the last one possibly shorter.
struct GemmBlocking {
  bool splitsColumns = false;
  int64_t size = 0;
  int64_t count = 1;
};

/// A function of the shape only (exposed for tests).
GemmBlocking gemmBlocking(int64_t m, int64_t n, int64_t k);

} // namespace detail
} // namespace dense
} // namespace moert

#endif // MOERT_DENSE_GEMM_H
