//===- Dropout.h - Inverted dropout with a counter-based mask -------------===//
//
// In training, element i is kept with probability 1 - rate and scaled by
// 1 / (1 - rate), else zeroed; in evaluation the op is the identity. Whether
// logical element i is kept is a function of (seed, stream, step, i) only
// (the runtime's Philox generator, moert/Random.h), so a partitioned tensor
// gets exactly the mask of the unpartitioned one as long as each shard names
// its logical indices through a DropoutLayout.
//
// The backward pass is the same function applied to the output gradient
// (what moe-differentiate emits: the same dropout op on dy).
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_DENSE_DROPOUT_H
#define MOERT_DENSE_DROPOUT_H

#include <cstdint>

namespace moert {
namespace dense {

struct DropoutParams {
  double rate = 0.0; // in [0, 1]; 1 drops everything
  uint64_t seed = 0;
  uint32_t stream = 0; // one per dropout op of the model
  uint32_t step = 0;
  bool training = true;
};

/// Logical index of local element (r, c) of a [rows, cols] buffer:
/// logicalOffset + r * logicalRowStride + c. A contiguous slice has
/// rows = 1; a shard of the last dimension of a [R, N] tensor has
/// cols = N / shards, logicalRowStride = N and logicalOffset = its first
/// column.
struct DropoutLayout {
  int64_t rows = 0;
  int64_t cols = 0;
  int64_t logicalOffset = 0;
  int64_t logicalRowStride = 0;
};

/// Layout of `count` contiguous elements starting at logical `offset`.
DropoutLayout contiguousDropoutLayout(int64_t count, int64_t offset = 0);

/// Whether logical element `index` survives (always true outside training).
bool dropoutKeeps(const DropoutParams &params, uint64_t index);

/// output = mask * input / (1 - rate); output may alias input.
void dropoutForward(const DropoutParams &params, const DropoutLayout &layout,
                    const float *input, float *output);

/// inputGrad = mask * outputGrad / (1 - rate), the same mask as forward.
void dropoutBackward(const DropoutParams &params, const DropoutLayout &layout,
                     const float *outputGrad, float *inputGrad);

} // namespace dense
} // namespace moert

#endif // MOERT_DENSE_DROPOUT_H
