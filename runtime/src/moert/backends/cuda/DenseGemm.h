//===- DenseGemm.h - moe.linear's GEMMs in column-major terms ---*- C++ -*-===//
//
// cuBLAS and cuBLASLt are column-major; the runtime's tensors are
// row-major. A row-major [r, c] matrix is the column-major [c, r] matrix
// holding its transpose, so each GEMM of a linear layer (dense/Linear.cpp)
// is issued as its transpose:
//   y = x W         ->  y^T = W^T x^T   (C = op(A) op(B) with A = W, B = x)
// and so on for the input and weight gradients. The mapping is host code
// without CUDA, checked on the CPU (tests/DenseMathTest.cpp runs it through
// a plain column-major GEMM against dense::linearForward/Backward, and the
// attention GEMMs against dense::attentionForward/Backward).
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

//===----------------------------------------------------------------------===//
// Attention without fusion (head dimensions beyond the fused kernels' tiles)
//
// The GEMMs of dense/Attention.cpp for one batch element, batched over the
// heads: head h of a row-major [S, D] matrix is the [S, dh] block at column
// h dh (row stride D); the scores and their gradient are [H, Sq, Sk].
//===----------------------------------------------------------------------===//

/// Which matrix of one batch element an attention GEMM operand is.
enum class AttentionOperand : uint8_t {
  Query,
  Key,
  Value,
  OutputGrad,
  Probs,     // [H, Sq, Sk]: scores, then probabilities
  ScoreGrad, // [H, Sq, Sk]: dP, then dS
  Output,
  QueryGrad,
  KeyGrad,
  ValueGrad,
};

/// For each head h: C_h = alpha op(A_h) op(B_h), column-major as in
/// ColumnMajorGemm, X_h starting strideX elements after X_{h-1}.
struct HeadBatchedGemm {
  AttentionOperand a = AttentionOperand::Query, b = AttentionOperand::Query,
                   c = AttentionOperand::Query;
  bool transA = false, transB = false;
  int64_t m = 0, n = 0, k = 0;
  int64_t lda = 1, ldb = 1, ldc = 1;
  int64_t strideA = 0, strideB = 0, strideC = 0;
  float alpha = 1.0f;
};

struct AttentionGemmDims {
  int64_t queryLen = 0, keyLen = 0, modelDim = 0, heads = 1;
  int64_t headDim() const { return modelDim / heads; }
  int64_t tile() const { return queryLen * keyLen; }
};

namespace detail {
inline HeadBatchedGemm headGemm(AttentionOperand a, bool transA, int64_t lda,
                                int64_t strideA, AttentionOperand b,
                                bool transB, int64_t ldb, int64_t strideB,
                                AttentionOperand c, int64_t ldc,
                                int64_t strideC, int64_t m, int64_t n,
                                int64_t k, float alpha) {
  HeadBatchedGemm g;
  g.a = a;
  g.transA = transA;
  g.lda = lda;
  g.strideA = strideA;
  g.b = b;
  g.transB = transB;
  g.ldb = ldb;
  g.strideB = strideB;
  g.c = c;
  g.ldc = ldc;
  g.strideC = strideC;
  g.m = m;
  g.n = n;
  g.k = k;
  g.alpha = alpha;
  return g;
}
} // namespace detail

/// Scores S [Sq, Sk] = scale Q K^T, as S^T = K Q^T (into Probs).
inline HeadBatchedGemm attentionScoresGemm(const AttentionGemmDims &d,
                                           float scale) {
  using A = AttentionOperand;
  return detail::headGemm(A::Key, true, d.modelDim, d.headDim(), A::Query,
                          false, d.modelDim, d.headDim(), A::Probs, d.keyLen,
                          d.tile(), d.keyLen, d.queryLen, d.headDim(), scale);
}

/// O [Sq, dh] = P V, as O^T = V^T P^T.
inline HeadBatchedGemm attentionOutputGemm(const AttentionGemmDims &d) {
  using A = AttentionOperand;
  return detail::headGemm(A::Value, false, d.modelDim, d.headDim(), A::Probs,
                          false, d.keyLen, d.tile(), A::Output, d.modelDim,
                          d.headDim(), d.headDim(), d.queryLen, d.keyLen, 1.0f);
}

/// dV [Sk, dh] = P^T dO, as dV^T = dO^T P.
inline HeadBatchedGemm attentionValueGradGemm(const AttentionGemmDims &d) {
  using A = AttentionOperand;
  return detail::headGemm(A::OutputGrad, false, d.modelDim, d.headDim(),
                          A::Probs, true, d.keyLen, d.tile(), A::ValueGrad,
                          d.modelDim, d.headDim(), d.headDim(), d.keyLen,
                          d.queryLen, 1.0f);
}

/// dP [Sq, Sk] = dO V^T, as dP^T = V dO^T (into ScoreGrad).
inline HeadBatchedGemm attentionProbsGradGemm(const AttentionGemmDims &d) {
  using A = AttentionOperand;
  return detail::headGemm(A::Value, true, d.modelDim, d.headDim(),
                          A::OutputGrad, false, d.modelDim, d.headDim(),
                          A::ScoreGrad, d.keyLen, d.tile(), d.keyLen,
                          d.queryLen, d.headDim(), 1.0f);
}

/// dQ [Sq, dh] = scale dS K, as dQ^T = K^T dS^T.
inline HeadBatchedGemm attentionQueryGradGemm(const AttentionGemmDims &d,
                                              float scale) {
  using A = AttentionOperand;
  return detail::headGemm(A::Key, false, d.modelDim, d.headDim(), A::ScoreGrad,
                          false, d.keyLen, d.tile(), A::QueryGrad, d.modelDim,
                          d.headDim(), d.headDim(), d.queryLen, d.keyLen,
                          scale);
}

/// dK [Sk, dh] = scale dS^T Q, as dK^T = Q^T dS.
inline HeadBatchedGemm attentionKeyGradGemm(const AttentionGemmDims &d,
                                            float scale) {
  using A = AttentionOperand;
  return detail::headGemm(A::Query, false, d.modelDim, d.headDim(),
                          A::ScoreGrad, true, d.keyLen, d.tile(), A::KeyGrad,
                          d.modelDim, d.headDim(), d.headDim(), d.keyLen,
                          d.queryLen, scale);
}

} // namespace cuda
} // namespace moert

#endif // MOERT_BACKENDS_CUDA_DENSEGEMM_H
