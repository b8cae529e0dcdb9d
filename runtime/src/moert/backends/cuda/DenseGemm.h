//===- DenseGemm.h - moe.linear's GEMMs in column-major terms ---*- C++ -*-===//
//
// cuBLAS and cuBLASLt are column-major; the runtime's tensors are
// row-major. A row-major [r, c] matrix is the column-major [c, r] matrix
// holding its transpose, so each GEMM of a linear layer (dense/Linear.cpp)
// is issued as its transpose:
//   y = x W         ->  y^T = W^T x^T   (C = op(A) op(B) with A = W, B = x)
// and so on for the input and weight gradients. The mapping is host code
// without CUDA, checked on the CPU (tests/DenseMathTest.cpp runs it through
// a plain column-major GEMM against dense::linearForward/Backward).
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_BACKENDS_CUDA_DENSEGEMM_H
#define MOERT_BACKENDS_CUDA_DENSEGEMM_H

#include <cstdint>

namespace moert {
namespace cuda {

/// Which tensor of a linear layer a GEMM operand is.
enum class LinearOperand : uint8_t { Input, Weight, OutputGrad };

/// C[m, n] (column-major, leading dimension ldc) = op(A) op(B), op(A) of
/// [m, k] and op(B) of [k, n]; A stored column-major [transA ? k : m,
/// transA ? m : k] with leading dimension lda, likewise B.
struct ColumnMajorGemm {
  LinearOperand a = LinearOperand::Weight, b = LinearOperand::Input;
  bool transA = false, transB = false;
  int64_t m = 0, n = 0, k = 0;
  int64_t lda = 1, ldb = 1, ldc = 1;
};

/// y[rows, N] = x[rows, K] W, W [K, N] or (transposeWeight) [N, K].
inline ColumnMajorGemm linearForwardGemm(int64_t rows, int64_t inFeatures,
                                         int64_t outFeatures,
                                         bool transposeWeight) {
  ColumnMajorGemm g;
  // y^T [N, rows] = W^T [N, K] x^T [K, rows]. Row-major W [K, N] is the
  // column-major [N, K] W^T (no transpose, ld N); row-major W [N, K] is the
  // column-major [K, N] W, transposed (ld K).
  g.a = LinearOperand::Weight;
  g.b = LinearOperand::Input;
  g.transA = transposeWeight;
  g.transB = false;
  g.m = outFeatures;
  g.n = rows;
  g.k = inFeatures;
  g.lda = transposeWeight ? inFeatures : outFeatures;
  g.ldb = inFeatures;
  g.ldc = outFeatures;
  return g;
}

/// dx[rows, K] = dy[rows, N] W^T (W [K, N]) or dy W (W [N, K]).
inline ColumnMajorGemm linearInputGradGemm(int64_t rows, int64_t inFeatures,
                                           int64_t outFeatures,
                                           bool transposeWeight) {
  ColumnMajorGemm g;
  // dx^T [K, rows] = W [K, N] dy^T [N, rows] (W [K, N]: column-major [N, K],
  // transposed, ld N), or W^T dy^T (W [N, K]: column-major [K, N], ld K).
  g.a = LinearOperand::Weight;
  g.b = LinearOperand::OutputGrad;
  g.transA = !transposeWeight;
  g.transB = false;
  g.m = inFeatures;
  g.n = rows;
  g.k = outFeatures;
  g.lda = transposeWeight ? inFeatures : outFeatures;
  g.ldb = outFeatures;
  g.ldc = inFeatures;
  return g;
}

/// dW [K, N] = x^T dy, or (transposeWeight) dW [N, K] = dy^T x.
inline ColumnMajorGemm linearWeightGradGemm(int64_t rows, int64_t inFeatures,
                                            int64_t outFeatures,
                                            bool transposeWeight) {
  ColumnMajorGemm g;
  if (!transposeWeight) {
    // dW^T [N, K] = dy^T [N, rows] x [rows, K] (x: column-major [K, rows],
    // transposed).
    g.a = LinearOperand::OutputGrad;
    g.b = LinearOperand::Input;
    g.m = outFeatures;
    g.n = inFeatures;
    g.lda = outFeatures;
    g.ldb = inFeatures;
    g.ldc = outFeatures;
  } else {
    // dW^T [K, N] = x^T [K, rows] dy [rows, N].
    g.a = LinearOperand::Input;
    g.b = LinearOperand::OutputGrad;
    g.m = inFeatures;
    g.n = outFeatures;
    g.lda = inFeatures;
    g.ldb = outFeatures;
    g.ldc = inFeatures;
  }
  g.transA = false;
  g.transB = true;
  g.k = rows;
  return g;
}

} // namespace cuda
} // namespace moert

#endif // MOERT_BACKENDS_CUDA_DENSEGEMM_H
