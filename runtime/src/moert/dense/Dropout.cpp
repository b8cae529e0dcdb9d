//===- Dropout.cpp - Inverted dropout with a counter-based mask -----------===//
#include "moert/dense/Dropout.h"

#include "moert/Random.h"

#include <algorithm>
#include <cmath>

namespace moert {
namespace dense {

namespace {

// Keep iff bits * 2^-32 >= rate, i.e. bits >= ceil(rate * 2^32); a threshold
// of 2^32 (rate = 1) keeps nothing. Comparing all 32 bits (rather than the
// 24-bit float uniform01) keeps the drop probability exact to 2^-32.
uint64_t keepThreshold(double rate) {
  const double scaled = std::ceil(std::clamp(rate, 0.0, 1.0) * 4294967296.0);
  return static_cast<uint64_t>(scaled);
}

RandomStream randomStream(const DropoutParams &params) {
  return {params.seed, params.stream, params.step};
}

} // namespace

DropoutLayout contiguousDropoutLayout(int64_t count, int64_t offset) {
  return {1, count, offset, count};
}

bool dropoutKeeps(const DropoutParams &params, uint64_t index) {
  if (!params.training)
    return true;
  return randomBits(randomStream(params), index) >= keepThreshold(params.rate);
}

void dropoutForward(const DropoutParams &params, const DropoutLayout &layout,
                    const float *input, float *output) {
  const int64_t count = layout.rows * layout.cols;
  if (!params.training || params.rate <= 0.0) {
    if (output != input)
      std::copy(input, input + count, output);
    return;
  }
  if (params.rate >= 1.0) {
    std::fill(output, output + count, 0.0f);
    return;
  }
  const uint64_t threshold = keepThreshold(params.rate);
  const float keptScale = static_cast<float>(1.0 / (1.0 - params.rate));
  const RandomStream source = randomStream(params);
  // A flat loop (not rows x cols) so a contiguous layout, which is a single
  // row, still splits across threads.
#pragma omp parallel for schedule(static) if (count > 32768)
  for (int64_t e = 0; e < count; ++e) {
    const int64_t r = e / layout.cols, c = e % layout.cols;
    const uint64_t logicalIndex = static_cast<uint64_t>(
        layout.logicalOffset + r * layout.logicalRowStride + c);
    const uint32_t bits = randomBits(source, logicalIndex);
    output[e] = bits >= threshold ? input[e] * keptScale : 0.0f;
  }
}

void dropoutBackward(const DropoutParams &params, const DropoutLayout &layout,
                     const float *outputGrad, float *inputGrad) {
  dropoutForward(params, layout, outputGrad, inputGrad);
}

} // namespace dense
} // namespace moert
