//===- MoeMath.h - Per-element code of the CUDA MoE and optimizer kernels -===//
//
// What each GPU thread of MoeKernels.cu and OptimizerKernels.cu computes,
// as plain functions compiled for the host and the GPU (MOERT_HOST_DEVICE),
// so that CPU tests (tests/MoeMathTest.cpp) run this very code against the
// CPU kernels (moert/kernels/DispatchCombine.h, moert/train/Optimizer.h)
// without a GPU.
//
// Operations whose rounding the CPU kernels fix are written so that nvcc
// cannot contract them into an FMA (dense_math::mulRn/addRn), with the
// CPU's order of operations; these give the CPU's bits:
//   - dispatch (a copy), combine (y = sum over kept choices j in order of
//     w_j * b_j, from 0), the dispatch gradient (the same sum without
//     weights), the buffer gradient of combine (w * dy);
//   - sum_squares (16 interleaved double lanes per block of 16384 elements,
//     a fixed tree, the blocks in order: train::sumSquares' order), the
//     clipping factor, the learning-rate schedule and the AdamW update.
// The combine-weight gradient is a dot product in double whose summation
// order differs from the CPU's; rounded to float it differs only where the
// double sums straddle a float rounding boundary.
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_BACKENDS_CUDA_MOEMATH_H
#define MOERT_BACKENDS_CUDA_MOEMATH_H

#include "moert/HostDevice.h"
#include "moert/backends/cuda/DenseMath.h"
#include "moert/exec/DeviceErrors.h"

#include <cmath>
#include <cstdint>

namespace moert {
namespace cuda {
namespace moe_math {

using dense_math::addRn;
using dense_math::mulRn;
using dense_math::subRn;

//===----------------------------------------------------------------------===//
// Routing (moe.dispatch / moe.combine and their gradients)
//===----------------------------------------------------------------------===//

/// The error code (exec::DeviceErrorCode) of routing entry (expert, slot)
/// for a buffer of `numExperts` x `capacity` slots, 0 when it is valid. A
/// dropped choice (slot -1) is valid whatever its expert id.
MOERT_HOST_DEVICE inline unsigned routingEntryError(int32_t expert,
                                                    int32_t slot,
                                                    int64_t numExperts,
                                                    int64_t capacity) {
  if (slot == -1)
    return exec::kNoDeviceError;
  if (expert < 0 || expert >= numExperts)
    return exec::kExpertOutOfRange;
  if (slot < 0 || slot >= capacity)
    return exec::kSlotOutOfRange;
  return exec::kNoDeviceError;
}

/// Whether routing entry i is kept and valid (the kernels skip invalid
/// entries after recording the error, so they never address memory out of
/// the buffer).
MOERT_HOST_DEVICE inline bool routingEntryUsable(int32_t expert, int32_t slot,
                                                 int64_t numExperts,
                                                 int64_t capacity) {
  return slot != -1 &&
         routingEntryError(expert, slot, numExperts, capacity) == 0;
}

/// Row offset of buffer slot (expert, slot) in an [E, C, M] buffer.
MOERT_HOST_DEVICE inline int64_t slotRowOffset(int32_t expert, int32_t slot,
                                               int64_t capacity,
                                               int64_t modelDim) {
  return (static_cast<int64_t>(expert) * capacity + slot) * modelDim;
}

struct RoutingView {
  const int32_t *experts = nullptr; // [S, k]
  const int32_t *slots = nullptr;   // [S, k]
  int64_t topK = 1, numExperts = 0, capacity = 0, modelDim = 0;
};

/// combine: y[s, m] = sum over kept choices j (in order) of
/// weights[s, j] * buffer[e_j, c_j, m], starting from 0.
MOERT_HOST_DEVICE inline float combineElement(const RoutingView &r,
                                              const float *weights,
                                              const float *buffer, int64_t s,
                                              int64_t m) {
  float sum = 0.0f;
  for (int64_t j = 0; j < r.topK; ++j) {
    const int32_t e = r.experts[s * r.topK + j], c = r.slots[s * r.topK + j];
    if (!routingEntryUsable(e, c, r.numExperts, r.capacity))
      continue;
    sum = addRn(sum, mulRn(weights[s * r.topK + j],
                           buffer[slotRowOffset(e, c, r.capacity, r.modelDim) +
                                  m]));
  }
  return sum;
}

/// dispatch gradient: dx[s, m] = sum over kept choices j (in order) of
/// dbuffer[e_j, c_j, m], starting from 0.
MOERT_HOST_DEVICE inline float dispatchGradElement(const RoutingView &r,
                                                   const float *bufferGrad,
                                                   int64_t s, int64_t m) {
  float sum = 0.0f;
  for (int64_t j = 0; j < r.topK; ++j) {
    const int32_t e = r.experts[s * r.topK + j], c = r.slots[s * r.topK + j];
    if (!routingEntryUsable(e, c, r.numExperts, r.capacity))
      continue;
    sum = addRn(sum,
                bufferGrad[slotRowOffset(e, c, r.capacity, r.modelDim) + m]);
  }
  return sum;
}

//===----------------------------------------------------------------------===//
// sum_squares: train::sumSquares' order
//===----------------------------------------------------------------------===//

constexpr int64_t kSumSquaresBlock = int64_t{1} << 14;
constexpr int kSumSquaresLanes = 16;

/// Lane `lane` of the block of `count` (<= kSumSquaresBlock) values: the
/// sum in double of values[i]^2 for i = lane, lane + 16, ... in order.
MOERT_HOST_DEVICE inline double sumSquaresLane(const float *values,
                                               int64_t count, int lane) {
  double sum = 0.0;
  for (int64_t i = lane; i < count; i += kSumSquaresLanes) {
    const double v = values[i];
    sum += v * v; // exact product: an FMA gives the same sum
  }
  return sum;
}

/// The fixed tree over the 16 lanes (in place; the result is lanes[0]).
MOERT_HOST_DEVICE inline double sumSquaresTree(double *lanes) {
  for (int width = kSumSquaresLanes / 2; width > 0; width /= 2)
    for (int lane = 0; lane < width; ++lane)
      lanes[lane] += lanes[lane + width];
  return lanes[0];
}

//===----------------------------------------------------------------------===//
// Clipping, schedule, AdamW: train/Optimizer.cpp's formulas
//===----------------------------------------------------------------------===//

struct ClipFactor {
  float norm = 0.0f, scale = 1.0f;
};

MOERT_HOST_DEVICE inline ClipFactor clipFactor(double sumOfSquares,
                                               double maxNorm) {
  ClipFactor result;
  const double norm = std::sqrt(sumOfSquares);
  result.norm = static_cast<float>(norm);
  if (!std::isfinite(norm)) {
    result.scale = 0.0f;
    return result;
  }
  const double ratio = maxNorm / (norm + 1e-6);
  result.scale = static_cast<float>(ratio < 1.0 ? ratio : 1.0);
  return result;
}

MOERT_HOST_DEVICE inline float inverseSqrtLr(int64_t step, double peakLr,
                                             int64_t warmupSteps) {
  const double t = static_cast<double>(step > 1 ? step : 1);
  if (warmupSteps <= 0)
    return static_cast<float>(peakLr / std::sqrt(t));
  const double warmup = static_cast<double>(warmupSteps);
  if (t < warmup)
    return static_cast<float>(peakLr * t / warmup);
  return static_cast<float>(peakLr * std::sqrt(warmup / t));
}

/// The per-step constants of AdamW (computed once per thread block; a
/// trivial type, so it can live in shared memory).
struct AdamWStep {
  float b1, b2, oneMinusB1, oneMinusB2, stepSize, rootCorrection2, decay, eps,
      gradScale;
};

MOERT_HOST_DEVICE inline AdamWStep adamwStep(double beta1, double beta2,
                                             double epsilon,
                                             double weightDecay, float lr,
                                             float gradScale, int64_t step) {
  AdamWStep s{};
  const double t = static_cast<double>(step > 1 ? step : 1);
  s.b1 = static_cast<float>(beta1);
  s.b2 = static_cast<float>(beta2);
  s.oneMinusB1 = 1.0f - s.b1;
  s.oneMinusB2 = 1.0f - s.b2;
  const float correction1 = static_cast<float>(1.0 - std::pow(beta1, t));
  const float correction2 = static_cast<float>(1.0 - std::pow(beta2, t));
  s.stepSize = lr / correction1;
  s.rootCorrection2 = std::sqrt(correction2);
  s.decay = mulRn(lr, static_cast<float>(weightDecay));
  s.eps = static_cast<float>(epsilon);
  s.gradScale = gradScale;
  return s;
}

/// One element of the update, in place.
MOERT_HOST_DEVICE inline void adamwElement(const AdamWStep &s, float &param,
                                           float grad, float &expAvg,
                                           float &expAvgSq) {
  const float g = mulRn(grad, s.gradScale);
  const float m = addRn(mulRn(s.b1, expAvg), mulRn(s.oneMinusB1, g));
  const float v = addRn(mulRn(s.b2, expAvgSq), mulRn(mulRn(s.oneMinusB2, g), g));
  expAvg = m;
  expAvgSq = v;
  const float p = param;
  const float denominator = addRn(std::sqrt(v) / s.rootCorrection2, s.eps);
  param = subRn(subRn(p, mulRn(s.decay, p)), mulRn(s.stepSize, m) / denominator);
}

} // namespace moe_math
} // namespace cuda
} // namespace moert

#endif // MOERT_BACKENDS_CUDA_MOEMATH_H
