//===- LayerNorm.h - Layer normalisation over the last dimension ----------===//
//
// y = (x - mean) / sqrt(var + eps) * scale + bias per row of [rows, dim], with
// the biased variance (as moe.layer_norm and torch.nn.functional.layer_norm).
//
// Memory choice: the forward pass can save the per-row mean and 1/std
// (2 floats per row, negligible next to the activations); the backward pass
// uses them when given and recomputes them from the input otherwise, which
// is what moe.layer_norm_grad (that only receives the input) needs.
//
// Row statistics and row sums are vectorized float sums (16 interleaved
// partial sums); rows run on the OpenMP threads. Results are the same for
// every thread count and instruction-set variant (see LayerNorm.cpp).
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_DENSE_LAYERNORM_H
#define MOERT_DENSE_LAYERNORM_H

#include "moert/dense/IsaVariants.h"

#include <cstdint>

namespace moert {
namespace dense {

/// `savedMean` and `savedRstd` ([rows] each) may be null.
void layerNormForward(int64_t rows, int64_t dim, float epsilon,
                      const float *input, const float *scale, const float *bias,
                      float *output, float *savedMean, float *savedRstd);

/// Gradients of layerNormForward; `savedMean`/`savedRstd` are either both the
/// forward's statistics or both null (recomputed). Any gradient pointer may be
/// null. Outputs are overwritten. scaleGrad and biasGrad are sums over rows
/// in a fixed order (float within blocks of 32 rows, then the blocks in
/// double): deterministic for any thread count.
void layerNormBackward(int64_t rows, int64_t dim, float epsilon,
                       const float *outputGrad, const float *input,
                       const float *scale, const float *savedMean,
                       const float *savedRstd, float *inputGrad,
                       float *scaleGrad, float *biasGrad);

namespace detail {

/// For tests: the kernels above with the row passes compiled for `isa`
/// (which must be in supportedIsas()).
void layerNormForwardVariant(Isa isa, int64_t rows, int64_t dim, float epsilon,
                             const float *input, const float *scale,
                             const float *bias, float *output, float *savedMean,
                             float *savedRstd);
void layerNormBackwardVariant(Isa isa, int64_t rows, int64_t dim, float epsilon,
                              const float *outputGrad, const float *input,
                              const float *scale, const float *savedMean,
                              const float *savedRstd, float *inputGrad,
                              float *scaleGrad, float *biasGrad);

} // namespace detail

} // namespace dense
} // namespace moert

#endif // MOERT_DENSE_LAYERNORM_H
