//===- CrossEntropy.h - Softmax cross-entropy (moe.cross_entropy) ---------===//
//
// logits [N, V], labels [N] (int32). Tokens whose label is `ignoreIndex` do
// not count; with n counted tokens and ls the label smoothing:
//   loss = 1/n * sum_t [(1 - ls) * (-log p_t[y_t]) + ls * mean_v(-log p_t[v])]
// which equals torch.nn.functional.cross_entropy(label_smoothing=ls,
// ignore_index=..., reduction="mean").
// The gradient is dlogits[t] = dloss / n * (p_t - (1 - ls) onehot(y_t) - ls/V).
//
// No counted token (n = 0, e.g. an all-padding batch): we define loss = 0 and
// a zero gradient instead of PyTorch's 0/0 = NaN, so an empty micro-batch is
// harmless.
//
// A label that is neither ignoreIndex nor in [0, V) is an error: the kernels
// return its index and write nothing.
//
// The softmax uses the vectorized float exp of VectorMath.h and float sums
// (16 interleaved partial sums per row); rows run on the OpenMP threads.
// Results are the same for every thread count and instruction-set variant.
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_DENSE_CROSSENTROPY_H
#define MOERT_DENSE_CROSSENTROPY_H

#include "moert/dense/IsaVariants.h"

#include <cstdint>

namespace moert {
namespace dense {

struct CrossEntropyOptions {
  double labelSmoothing = 0.0;
  int64_t ignoreIndex = -100;
};

/// Returned when every label is valid.
constexpr int64_t kAllLabelsValid = -1;

/// Flat index of the first label that is neither ignored nor in [0, V).
int64_t findInvalidLabel(int64_t numTokens, int64_t vocabSize,
                         const int32_t *labels,
                         const CrossEntropyOptions &options);

/// Writes the scalar loss. `countedTokens` (may be null) receives n;
/// `savedLogSumExp` ([N], may be null) keeps log(sum_v exp(logits)) per token
/// for the backward pass. Per-token terms are summed in double in token order
/// (each row's log-sum-exp is computed in float, see CrossEntropy.cpp).
int64_t crossEntropyForward(int64_t numTokens, int64_t vocabSize,
                            const float *logits, const int32_t *labels,
                            const CrossEntropyOptions &options, float *loss,
                            int64_t *countedTokens, float *savedLogSumExp);

/// Overwrites logitsGrad ([N, V]); `savedLogSumExp` may be null (recomputed).
int64_t crossEntropyBackward(int64_t numTokens, int64_t vocabSize,
                             float lossGrad, const float *logits,
                             const int32_t *labels,
                             const CrossEntropyOptions &options,
                             const float *savedLogSumExp, float *logitsGrad);

namespace detail {

/// For tests: the kernels above with the row passes compiled for `isa`
/// (which must be in supportedIsas()).
int64_t crossEntropyForwardVariant(Isa isa, int64_t numTokens,
                                   int64_t vocabSize, const float *logits,
                                   const int32_t *labels,
                                   const CrossEntropyOptions &options,
                                   float *loss, int64_t *countedTokens,
                                   float *savedLogSumExp);
int64_t crossEntropyBackwardVariant(Isa isa, int64_t numTokens,
                                    int64_t vocabSize, float lossGrad,
                                    const float *logits, const int32_t *labels,
                                    const CrossEntropyOptions &options,
                                    const float *savedLogSumExp,
                                    float *logitsGrad);

} // namespace detail

} // namespace dense
} // namespace moert

#endif // MOERT_DENSE_CROSSENTROPY_H
