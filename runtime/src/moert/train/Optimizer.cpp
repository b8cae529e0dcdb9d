//===- Optimizer.cpp - AdamW, global-norm clipping, LR schedule -----------===//
//
// AdamW and the sums of squares are memory-bound passes over every
// parameter (~7 and 1 floats of traffic per parameter). Both are written as
// loops the compiler vectorizes, compiled as baseline, AVX2 and AVX-512 copies
// (dense/IsaVariants.h), and split over the OpenMP threads above a size
// where that pays. This file is compiled without FMA contraction and with
// -fno-math-errno (see CMakeLists.txt): every copy then computes exactly the
// scalar expression, so AdamW gives the same bits on every CPU and for every
// thread count.
//
//===----------------------------------------------------------------------===//
#include "moert/train/Optimizer.h"

#include "moert/dense/IsaVariants.h"
#include "moert/dense/ParallelChunks.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace moert {
namespace train {

namespace {

/// Below these many elements a parallel region costs more than it saves (a
/// fork/join is ~6 us with passive waiting on 2 cores; one AVX-512 core
/// updates ~32 thousand parameters in 15 us and sums the squares of ~256
/// thousand in 25 us).
constexpr int64_t kMinParallelAdamW = int64_t{1} << 15;
constexpr int64_t kMinParallelSumSquares = int64_t{1} << 18;

//===----------------------------------------------------------------------===//
// Sum of squares
//===----------------------------------------------------------------------===//

/// Partial sums per block of this many elements: the blocks, not the
/// threads, fix the summation order.
constexpr int64_t kSumBlock = int64_t{1} << 14;

/// Double accumulators, element i going to lane i % kSumLanes whatever the
/// vector width: 2 AVX-512, 4 AVX2 or 8 SSE2 registers of doubles.
constexpr int64_t kSumLanes = 16;

/// sum x[i]^2 over one block. Each square is exact in double (24-bit
/// significands), so a fused multiply-add rounds like the separate ones and
/// the result depends on nothing but the values and the block layout.
MOERT_ALWAYS_INLINE double sumSquaresBlockBody(int64_t count,
                                               const float *values) {
  double lanes[kSumLanes] = {};
  int64_t i = 0;
  for (; i + kSumLanes <= count; i += kSumLanes)
    for (int64_t lane = 0; lane < kSumLanes; ++lane) {
      const double v = values[i + lane];
      lanes[lane] += v * v;
    }
  for (int64_t lane = 0; i < count; ++i, ++lane) {
    const double v = values[i];
    lanes[lane] += v * v;
  }
  for (int64_t width = kSumLanes / 2; width > 0; width /= 2)
    for (int64_t lane = 0; lane < width; ++lane)
      lanes[lane] += lanes[lane + width];
  return lanes[0];
}

double sumSquaresBlockBaseline(int64_t count, const float *values) {
  return sumSquaresBlockBody(count, values);
}

#ifdef MOERT_X86_ISA_VARIANTS
MOERT_TARGET_AVX2 double sumSquaresBlockAvx2(int64_t count,
                                             const float *values) {
  return sumSquaresBlockBody(count, values);
}

MOERT_TARGET_AVX512 double sumSquaresBlockAvx512(int64_t count,
                                                 const float *values) {
  return sumSquaresBlockBody(count, values);
}
#endif

using SumSquaresBlock = double (*)(int64_t, const float *);

double sumSquaresWith(SumSquaresBlock block, int64_t count,
                      const float *values) {
  if (count <= kSumBlock)
    return block(count, values);
  const int64_t numBlocks = (count + kSumBlock - 1) / kSumBlock;
  std::vector<double> partial(static_cast<size_t>(numBlocks));
#pragma omp parallel for schedule(static) if (count >= kMinParallelSumSquares)
  for (int64_t b = 0; b < numBlocks; ++b) {
    const int64_t begin = b * kSumBlock;
    partial[b] = block(std::min(kSumBlock, count - begin), values + begin);
  }
  double sum = 0.0;
  for (double p : partial)
    sum += p;
  return sum;
}

//===----------------------------------------------------------------------===//
// AdamW
//===----------------------------------------------------------------------===//

/// Step-dependent constants of one AdamW update.
struct AdamWStep {
  float b1, b2, stepSize, rootCorrection2, decay, eps, gradScale;
};

MOERT_ALWAYS_INLINE void adamwBody(const AdamWStep &s, int64_t count,
                                   float *param, const float *grad,
                                   float *expAvg, float *expAvgSq) {
  for (int64_t i = 0; i < count; ++i) {
    const float g = grad[i] * s.gradScale;
    const float m = s.b1 * expAvg[i] + (1.0f - s.b1) * g;
    const float v = s.b2 * expAvgSq[i] + (1.0f - s.b2) * g * g;
    expAvg[i] = m;
    expAvgSq[i] = v;
    const float p = param[i];
    param[i] = p - s.decay * p -
               s.stepSize * m / (std::sqrt(v) / s.rootCorrection2 + s.eps);
  }
}

void adamwBaseline(const AdamWStep &s, int64_t count, float *param,
                   const float *grad, float *expAvg, float *expAvgSq) {
  adamwBody(s, count, param, grad, expAvg, expAvgSq);
}

#ifdef MOERT_X86_ISA_VARIANTS
MOERT_TARGET_AVX2 void adamwAvx2(const AdamWStep &s, int64_t count,
                                 float *param, const float *grad, float *expAvg,
                                 float *expAvgSq) {
  adamwBody(s, count, param, grad, expAvg, expAvgSq);
}

MOERT_TARGET_AVX512 void adamwAvx512(const AdamWStep &s, int64_t count,
                                     float *param, const float *grad,
                                     float *expAvg, float *expAvgSq) {
  adamwBody(s, count, param, grad, expAvg, expAvgSq);
}
#endif

using AdamWPass = void (*)(const AdamWStep &, int64_t, float *, const float *,
                           float *, float *);

void adamwWith(AdamWPass pass, const AdamWConfig &c, int64_t count,
               float *param, const float *grad, float *expAvg, float *expAvgSq,
               float lr, float gradScale, int64_t step) {
  // Factor 0 is clipByGlobalNorm's answer to a non-finite gradient norm (an
  // fp16 overflow): the step is skipped, parameters and moments stay as
  // they are (multiplying an inf gradient by 0 would write NaN into them).
  if (gradScale == 0.0f)
    return;
  const double t = static_cast<double>(std::max<int64_t>(step, 1));
  AdamWStep s;
  s.b1 = static_cast<float>(c.beta1);
  s.b2 = static_cast<float>(c.beta2);
  const float correction1 = static_cast<float>(1.0 - std::pow(c.beta1, t));
  const float correction2 = static_cast<float>(1.0 - std::pow(c.beta2, t));
  s.stepSize = lr / correction1;
  s.rootCorrection2 = std::sqrt(correction2);
  s.decay = lr * static_cast<float>(c.weightDecay);
  s.eps = static_cast<float>(c.epsilon);
  s.gradScale = gradScale;
  dense::detail::forEachChunk(
      count, kMinParallelAdamW, [&](int64_t begin, int64_t end) {
        pass(s, end - begin, param + begin, grad + begin, expAvg + begin,
             expAvgSq + begin);
      });
}

} // namespace

double sumSquares(int64_t count, const float *values) {
  static const SumSquaresBlock block =
      MOERT_SELECT_ISA_VARIANT(dense::bestIsa(), sumSquaresBlock);
  return sumSquaresWith(block, count, values);
}

ClipResult clipByGlobalNorm(double sumOfSquares, double maxNorm) {
  ClipResult result;
  double norm = std::sqrt(sumOfSquares);
  result.norm = static_cast<float>(norm);
  if (!std::isfinite(norm)) {
    // A NaN/inf gradient must not reach the weights: the update becomes a
    // no-op on the gradient term (the step is effectively skipped).
    result.scale = 0.0f;
    return result;
  }
  result.scale = static_cast<float>(std::min(1.0, maxNorm / (norm + 1e-6)));
  return result;
}

float inverseSqrtLr(int64_t step, double peakLr, int64_t warmupSteps) {
  double t = static_cast<double>(std::max<int64_t>(step, 1));
  if (warmupSteps <= 0)
    return static_cast<float>(peakLr / std::sqrt(t));
  double warmup = static_cast<double>(warmupSteps);
  if (t < warmup)
    return static_cast<float>(peakLr * t / warmup);
  return static_cast<float>(peakLr * std::sqrt(warmup / t));
}

void adamwUpdate(const AdamWConfig &c, int64_t count, float *param,
                 const float *grad, float *expAvg, float *expAvgSq, float lr,
                 float gradScale, int64_t step) {
  static const AdamWPass pass =
      MOERT_SELECT_ISA_VARIANT(dense::bestIsa(), adamw);
  adamwWith(pass, c, count, param, grad, expAvg, expAvgSq, lr, gradScale, step);
}

namespace detail {

double sumSquaresVariant(dense::Isa isa, int64_t count, const float *values) {
  return sumSquaresWith(MOERT_SELECT_ISA_VARIANT(isa, sumSquaresBlock), count,
                        values);
}

void adamwUpdateVariant(dense::Isa isa, const AdamWConfig &c, int64_t count,
                        float *param, const float *grad, float *expAvg,
                        float *expAvgSq, float lr, float gradScale,
                        int64_t step) {
  adamwWith(MOERT_SELECT_ISA_VARIANT(isa, adamw), c, count, param, grad, expAvg,
            expAvgSq, lr, gradScale, step);
}

} // namespace detail

} // namespace train
} // namespace moert
