//===- Linear.cpp - Affine map over the last dimension --------------------===//
//
// The three GEMMs of a linear layer (forward, input gradient, weight
// gradient) on row-major data, through the runtime's gemm (Gemm.h); the bias
// is folded into the forward GEMM by pre-filling the output and using
// beta = 1. A reduced-precision `compute` rounds the GEMM operands into
// scratch copies first (RoundedCopy, Half.h); the GEMMs are the same.
//
//===----------------------------------------------------------------------===//
#include "moert/dense/Linear.h"

#include "moert/dense/Gemm.h"

#include <algorithm>
#include <vector>

namespace moert {
namespace dense {

void linearForward(const LinearShape &shape, const float *input,
                   const float *weight, const float *bias, float *output) {
  const int64_t rows = shape.rows, k = shape.inFeatures, n = shape.outFeatures;
  if (rows == 0 || n == 0)
    return;
  float beta = 0.0f;
  if (bias) {
#pragma omp parallel for schedule(static) if (rows * n > 65536)
    for (int64_t r = 0; r < rows; ++r)
      std::copy(bias, bias + n, output + r * n);
    beta = 1.0f;
  }
  if (k == 0) {
    if (!bias)
      std::fill(output, output + rows * n, 0.0f);
    return;
  }
  RoundedCopy x(shape.compute, rows * k, input);
  RoundedCopy w(shape.compute, k * n, weight);
  // W is [K, N] (ldb = N) or [N, K] read transposed (ldb = K).
  gemm(/*transA=*/false, shape.transposeWeight, rows, n, k, 1.0f, x.get(), k,
       w.get(), shape.transposeWeight ? k : n, beta, output, n);
}

void sumRows(int64_t rows, int64_t cols, const float *matrix, float *sums) {
  // Each thread owns a block of columns and walks all rows in order, so the
  // summation order (and hence the result) is fixed.
  constexpr int64_t kBlock = 64;
  const int64_t numBlocks = (cols + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static) if (rows * cols > 65536)
  for (int64_t block = 0; block < numBlocks; ++block) {
    const int64_t begin = block * kBlock;
    const int64_t end = std::min(cols, begin + kBlock);
    double acc[kBlock] = {};
    for (int64_t r = 0; r < rows; ++r) {
      const float *row = matrix + r * cols;
      for (int64_t c = begin; c < end; ++c)
        acc[c - begin] += row[c];
    }
    for (int64_t c = begin; c < end; ++c)
      sums[c] = static_cast<float>(acc[c - begin]);
  }
}

void linearBackward(const LinearShape &shape, const float *outputGrad,
                    const float *input, const float *weight, float *inputGrad,
                    float *weightGrad, float *biasGrad) {
  const int64_t rows = shape.rows, k = shape.inFeatures, n = shape.outFeatures;
  const bool transposed = shape.transposeWeight;
  // Degenerate sizes: BLAS would reject zero leading dimensions, and an empty
  // reduction must still produce zero gradients.
  if (rows == 0 || k == 0 || n == 0) {
    if (inputGrad)
      std::fill(inputGrad, inputGrad + rows * k, 0.0f);
    if (weightGrad)
      std::fill(weightGrad, weightGrad + k * n, 0.0f);
    if (biasGrad) {
      if (rows == 0)
        std::fill(biasGrad, biasGrad + n, 0.0f);
      else
        sumRows(rows, n, outputGrad, biasGrad);
    }
    return;
  }
  // The bias gradient below sums the fp32 output gradient.
  RoundedCopy dy(inputGrad || weightGrad ? shape.compute : ComputeType::F32,
                 rows * n, outputGrad);
  if (inputGrad) {
    RoundedCopy w(shape.compute, k * n, weight);
    // dx[rows, K] = dy[rows, N] * W^T; with W stored [N, K] that is dy * W.
    gemm(/*transA=*/false, /*transB=*/!transposed, rows, k, n, 1.0f, dy.get(),
         n, w.get(), transposed ? k : n, 0.0f, inputGrad, k);
  }
  if (weightGrad) {
    RoundedCopy x(shape.compute, rows * k, input);
    if (transposed) // dW[N, K] = dy^T x
      gemm(/*transA=*/true, /*transB=*/false, n, k, rows, 1.0f, dy.get(), n,
           x.get(), k, 0.0f, weightGrad, k);
    else // dW[K, N] = x^T dy
      gemm(/*transA=*/true, /*transB=*/false, k, n, rows, 1.0f, x.get(), k,
           dy.get(), n, 0.0f, weightGrad, n);
  }
  if (biasGrad)
    sumRows(rows, n, outputGrad, biasGrad);
}

} // namespace dense
} // namespace moert
