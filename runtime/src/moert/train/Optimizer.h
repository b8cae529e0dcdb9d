//===- Optimizer.h - AdamW, global-norm clipping, LR schedule -------------===//
//
// The kernels of moe.sum_squares, moe.clip_by_global_norm, moe.lr_schedule
// and moe.adamw. sumSquares and adamwUpdate are vectorized (AVX2 / AVX-512
// variants picked at run time) and split over the OpenMP threads for large
// counts; both give the same bits for every thread count and every variant.
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_TRAIN_OPTIMIZER_H
#define MOERT_TRAIN_OPTIMIZER_H

#include "moert/dense/IsaVariants.h"

#include <cstdint>

namespace moert {
namespace train {

/// sum_i x[i]^2, accumulated in double: 16 interleaved partial sums (element
/// i in sum i % 16) per block of 16384 elements, added in a fixed tree, then
/// the blocks' sums in order. The order depends only on `count`.
double sumSquares(int64_t count, const float *values);

struct ClipResult {
  float norm = 0.0f; // sqrt(sumSquares)
  float scale =
      1.0f; // min(1, maxNorm / (norm + 1e-6)); 0 for a non-finite norm
};
/// The global-norm clipping factor for a total sum of squares.
ClipResult clipByGlobalNorm(double sumOfSquares, double maxNorm);

/// Inverse-square-root schedule with linear warmup, for the 1-based `step`:
/// peakLr * step / warmup during warmup, then peakLr * sqrt(warmup / step).
/// Without warmup (warmupSteps = 0) it is peakLr / sqrt(step).
float inverseSqrtLr(int64_t step, double peakLr, int64_t warmupSteps);

struct AdamWConfig {
  double beta1 = 0.9, beta2 = 0.98, epsilon = 1e-8, weightDecay = 0.0;
};

/// One AdamW step on `count` elements, in place:
///   g = grad * gradScale
///   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
///   p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps) + lr * wd * p
/// with the decay computed from the parameter before this step (decoupled
/// weight decay, as torch.optim.AdamW). `step` is 1-based. gradScale = 0
/// (clipByGlobalNorm's factor for a non-finite norm) skips the update:
/// nothing is written.
void adamwUpdate(const AdamWConfig &config, int64_t count, float *param,
                 const float *grad, float *expAvg, float *expAvgSq, float lr,
                 float gradScale, int64_t step);

namespace detail {

/// For tests: the kernels above with the variant compiled for `isa` (which
/// must be in dense::supportedIsas()).
double sumSquaresVariant(dense::Isa isa, int64_t count, const float *values);
void adamwUpdateVariant(dense::Isa isa, const AdamWConfig &config,
                        int64_t count, float *param, const float *grad,
                        float *expAvg, float *expAvgSq, float lr,
                        float gradScale, int64_t step);

} // namespace detail

} // namespace train
} // namespace moert

#endif // MOERT_TRAIN_OPTIMIZER_H
