//===- Linear.h - Affine map over the last dimension (moe.linear) ---------===//
//
// y[rows, N] = x[rows, K] W + b, with W either [K, N] or, for
// `transposeWeight`, [N, K] (so the output projection can share the embedding
// table). All leading dimensions of the op are folded into `rows`. Every GEMM
// goes through the runtime's gemm (Gemm.h). Unchecked: the caller guarantees
// the shapes (see Checked.h for the validating entry points).
//
// `compute` (bf16 / f16; default f32) emulates a reduced-precision GEMM
// with fp32 accumulation: the GEMM inputs (input, weight, output gradient)
// are rounded to that format first, as a GPU GEMM reads bf16/fp16 operands;
// the bias and the outputs stay fp32. The rounded copies are scratch of
// the call.
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_DENSE_LINEAR_H
#define MOERT_DENSE_LINEAR_H

#include "moert/Half.h"

#include <cstdint>

namespace moert {
namespace dense {

struct LinearShape {
  int64_t rows = 0;        // product of the leading dimensions of the input
  int64_t inFeatures = 0;  // K
  int64_t outFeatures = 0; // N
  bool transposeWeight = false;
  ComputeType compute = ComputeType::F32; // input precision of the GEMMs
};

/// output = input W (+ bias). `bias` may be null.
void linearForward(const LinearShape &shape, const float *input,
                   const float *weight, const float *bias, float *output);

/// Gradients of linearForward. Each output pointer may be null to skip that
/// gradient. They are overwritten, not accumulated into:
///   inputGrad  [rows, K]          = outputGrad W^T
///   weightGrad [K, N] (or [N, K]) = input^T outputGrad (or outputGrad^T input)
///   biasGrad   [N]                = sum over rows of outputGrad
void linearBackward(const LinearShape &shape, const float *outputGrad,
                    const float *input, const float *weight, float *inputGrad,
                    float *weightGrad, float *biasGrad);

/// Sum over rows of a [rows, cols] matrix (the gradient of a broadcast bias).
/// Accumulates in double, rows in order, so the result does not depend on the
/// thread count.
void sumRows(int64_t rows, int64_t cols, const float *matrix, float *sums);

} // namespace dense
} // namespace moert

#endif // MOERT_DENSE_LINEAR_H
