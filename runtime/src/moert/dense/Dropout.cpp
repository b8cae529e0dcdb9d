//===- Dropout.cpp - Inverted dropout with a counter-based mask -----------===//
#include "moert/dense/Dropout.h"

#include "moert/Random.h"

#include <algorithm>
#include <cmath>
#include <cstring>

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

// Elements per bulk generation: the bits fill 8 KiB of stack, and a chunk's
// input and output stay in L1 while it is processed.
constexpr int64_t kChunk = 2048;

// Above this many elements the chunks are split across threads. One thread
// does about two elements per nanosecond (AVX-512), so a smaller tensor
// takes under ~30 us, of the order of waking sleeping threads.
constexpr int64_t kParallelFrom = 65536;

/// out[k] = bits[k] >= keepFrom ? in[k] * keptScale : +0.0f, without a
/// branch: the product is ANDed with an all-ones or all-zeros word, which
/// gives exactly +0.0f for a dropped element whatever in[k] is (inf and NaN
/// included), so the loop vectorizes and random masks cost no mispredicted
/// branches. `out` may alias `in`, but only exactly: element k reads in[k]
/// before writing out[k].
void applyMask(const uint32_t *bits, uint32_t keepFrom, float keptScale,
               int64_t count, const float *in, float *out) {
#pragma omp simd
  for (int64_t k = 0; k < count; ++k) {
    const float scaled = in[k] * keptScale;
    uint32_t word;
    std::memcpy(&word, &scaled, sizeof(word));
    word &= bits[k] >= keepFrom ? 0xffffffffu : 0u;
    std::memcpy(out + k, &word, sizeof(word));
  }
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
  const uint64_t threshold = keepThreshold(params.rate);
  // A rate just below 1 can round up to a threshold of 2^32, which no 32-bit
  // value reaches.
  if (params.rate >= 1.0 || threshold > 0xffffffffu) {
    std::fill(output, output + count, 0.0f);
    return;
  }
  const uint32_t keepFrom = static_cast<uint32_t>(threshold);
  const float keptScale = static_cast<float>(1.0 / (1.0 - params.rate));
  const RandomStream source = randomStream(params);
  // Each row is a contiguous run of logical indices, cut into chunks whose
  // random bits are generated in bulk (one Philox block per 4 elements) into
  // a buffer on the stack. The (row, chunk) pairs form one flat loop so that
  // a contiguous layout, which is a single row, still splits across threads.
  const int64_t chunksPerRow = (layout.cols + kChunk - 1) / kChunk;
  const int64_t chunks = layout.rows * chunksPerRow;
#pragma omp parallel for schedule(static) if (count > kParallelFrom)
  for (int64_t chunk = 0; chunk < chunks; ++chunk) {
    const int64_t row = chunk / chunksPerRow;
    const int64_t col = (chunk % chunksPerRow) * kChunk;
    const int64_t length = std::min(kChunk, layout.cols - col);
    const uint64_t logicalIndex = static_cast<uint64_t>(
        layout.logicalOffset + row * layout.logicalRowStride + col);
    alignas(64) uint32_t bits[kChunk];
    randomBitsRange(source, logicalIndex, length, bits);
    const int64_t first = row * layout.cols + col;
    applyMask(bits, keepFrom, keptScale, length, input + first, output + first);
  }
}

void dropoutBackward(const DropoutParams &params, const DropoutLayout &layout,
                     const float *outputGrad, float *inputGrad) {
  dropoutForward(params, layout, outputGrad, inputGrad);
}

} // namespace dense
} // namespace moert
