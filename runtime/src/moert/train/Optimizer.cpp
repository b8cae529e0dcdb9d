//===- Optimizer.cpp - AdamW, global-norm clipping, LR schedule -----------===//
#include "moert/train/Optimizer.h"

#include <algorithm>
#include <cmath>

namespace moert {
namespace train {

double sumSquares(int64_t count, const float *values) {
  double sum = 0.0;
  for (int64_t i = 0; i < count; ++i)
    sum += static_cast<double>(values[i]) * static_cast<double>(values[i]);
  return sum;
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
  const double t = static_cast<double>(std::max<int64_t>(step, 1));
  const float b1 = static_cast<float>(c.beta1),
              b2 = static_cast<float>(c.beta2);
  const float correction1 = static_cast<float>(1.0 - std::pow(c.beta1, t));
  const float correction2 = static_cast<float>(1.0 - std::pow(c.beta2, t));
  const float stepSize = lr / correction1;
  const float rootCorrection2 = std::sqrt(correction2);
  const float decay = lr * static_cast<float>(c.weightDecay);
  const float eps = static_cast<float>(c.epsilon);
#pragma omp parallel for schedule(static) if (count > (1 << 16))
  for (int64_t i = 0; i < count; ++i) {
    float g = grad[i] * gradScale;
    float m = b1 * expAvg[i] + (1.0f - b1) * g;
    float v = b2 * expAvgSq[i] + (1.0f - b2) * g * g;
    expAvg[i] = m;
    expAvgSq[i] = v;
    float p = param[i];
    param[i] =
        p - decay * p - stepSize * m / (std::sqrt(v) / rootCorrection2 + eps);
  }
}

} // namespace train
} // namespace moert
