//===- CrossEntropy.cpp - Softmax cross-entropy ---------------------------===//
//
// log p_v = z_v - logsumexp(z), so nll = lse - z_y and
// mean_v(-log p_v) = lse - mean_v(z): one pass for the maximum (and the sum
// of the logits), one for the sum of exponentials, and the loss needs no
// [N, V] temporary.
//
// The row passes use the vectorized exp of VectorMath.h (relative error
// 3e-7) and sum in float over 16 interleaved partial sums (vmath::addToLanes:
// element v in sum v % 16, added in a fixed tree): each adds V / 16 terms, so
// for V = 32K the sum of exponentials is still good to ~1e-6 relative
// (terms are in (0, 1], the largest is 1). They are compiled as baseline,
// AVX2 and AVX-512 copies (IsaVariants.h) without FMA contraction
// (CMakeLists.txt), so every copy gives the same bits. Rows are spread over
// the OpenMP threads; the per-token losses are then added in token order in
// double, so the loss does not depend on the thread count either.
//
//===----------------------------------------------------------------------===//
#include "moert/dense/CrossEntropy.h"

#include "moert/dense/IsaVariants.h"
#include "moert/dense/VectorMath.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace moert {
namespace dense {

namespace {

/// Below this many logits a parallel region costs more than it saves (a
/// fork/join is ~6 us with passive waiting on 2 cores; one AVX-512 core
/// takes ~0.35 ns per logit).
constexpr int64_t kMinParallelCount = int64_t{1} << 15;

/// Rows are processed in pieces of this many logits (a multiple of
/// vmath::kSumLanes) through a stack buffer: each piece is one plain
/// element-wise loop (exp) and one lane sum, two loops that vectorize well,
/// where a single loop mixing both does not.
constexpr int64_t kPiece = 256;

struct RowSums {
  float max;       // max_v z_v
  float sumExp;    // sum_v exp(z_v - max)
  float sumLogits; // sum_v z_v (only when asked for)
};

MOERT_ALWAYS_INLINE RowSums rowSumsBody(const float *row, int64_t vocabSize,
                                        bool withSumLogits) {
  // The maximum does not depend on the order of comparisons (the sign of a
  // zero maximum does not change exp(z - max)): any vector order is fine.
  float rowMax = -std::numeric_limits<float>::infinity();
#pragma omp simd reduction(max : rowMax)
  for (int64_t v = 0; v < vocabSize; ++v)
    rowMax = rowMax < row[v] ? row[v] : rowMax;
  RowSums sums{rowMax, 0.0f, 0.0f};
  if (withSumLogits) {
    float lanes[vmath::kSumLanes] = {};
    vmath::addToLanes(vocabSize, row, lanes);
    sums.sumLogits = vmath::sumLanes(lanes);
  }
  float lanes[vmath::kSumLanes] = {};
  float exps[kPiece];
  for (int64_t begin = 0; begin < vocabSize; begin += kPiece) {
    const int64_t count = std::min(kPiece, vocabSize - begin);
    for (int64_t v = 0; v < count; ++v)
      exps[v] = vmath::exp(row[begin + v] - rowMax);
    vmath::addToLanes(count, exps, lanes);
  }
  sums.sumExp = vmath::sumLanes(lanes);
  return sums;
}

/// grad[v] = weight * (exp(z_v - lse) - uniformTarget).
MOERT_ALWAYS_INLINE void gradRowBody(const float *row, int64_t vocabSize,
                                     float lse, float weight,
                                     float uniformTarget, float *grad) {
  for (int64_t v = 0; v < vocabSize; ++v)
    grad[v] = weight * (vmath::exp(row[v] - lse) - uniformTarget);
}

struct RowPasses {
  RowSums (*rowSums)(const float *row, int64_t vocabSize, bool withSumLogits);
  void (*gradRow)(const float *row, int64_t vocabSize, float lse, float weight,
                  float uniformTarget, float *grad);
};

// The three copies of the row passes (see IsaVariants.h).
#define MOERT_DEFINE_ROW_PASSES(Suffix, Target)                                \
  Target RowSums rowSums##Suffix(const float *row, int64_t vocabSize,          \
                                 bool withSumLogits) {                         \
    return rowSumsBody(row, vocabSize, withSumLogits);                         \
  }                                                                            \
  Target void gradRow##Suffix(const float *row, int64_t vocabSize, float lse,  \
                              float weight, float uniformTarget,               \
                              float *grad) {                                   \
    gradRowBody(row, vocabSize, lse, weight, uniformTarget, grad);             \
  }                                                                            \
  const RowPasses kRowPasses##Suffix = {rowSums##Suffix, gradRow##Suffix};

MOERT_DEFINE_ROW_PASSES(Baseline, )
#ifdef MOERT_X86_ISA_VARIANTS
MOERT_DEFINE_ROW_PASSES(Avx2, MOERT_TARGET_AVX2)
MOERT_DEFINE_ROW_PASSES(Avx512, MOERT_TARGET_AVX512)
#endif
#undef MOERT_DEFINE_ROW_PASSES

const RowPasses &rowPasses(Isa isa) {
  return *MOERT_SELECT_ISA_VARIANT(isa, &kRowPasses);
}

bool isIgnored(int32_t label, const CrossEntropyOptions &options) {
  return static_cast<int64_t>(label) == options.ignoreIndex;
}

/// log(sum exp(row)) from the row sums.
double logSumExp(const RowSums &sums) {
  return static_cast<double>(sums.max) +
         std::log(static_cast<double>(sums.sumExp));
}

int64_t countTokens(int64_t numTokens, const int32_t *labels,
                    const CrossEntropyOptions &options) {
  int64_t counted = 0;
  for (int64_t t = 0; t < numTokens; ++t)
    counted += isIgnored(labels[t], options) ? 0 : 1;
  return counted;
}

} // namespace

int64_t findInvalidLabel(int64_t numTokens, int64_t vocabSize,
                         const int32_t *labels,
                         const CrossEntropyOptions &options) {
  for (int64_t t = 0; t < numTokens; ++t)
    if (!isIgnored(labels[t], options) &&
        (labels[t] < 0 || labels[t] >= vocabSize))
      return t;
  return kAllLabelsValid;
}

namespace detail {

int64_t crossEntropyForwardVariant(Isa isa, int64_t numTokens,
                                   int64_t vocabSize, const float *logits,
                                   const int32_t *labels,
                                   const CrossEntropyOptions &options,
                                   float *loss, int64_t *countedTokens,
                                   float *savedLogSumExp) {
  const int64_t bad = findInvalidLabel(numTokens, vocabSize, labels, options);
  if (bad != kAllLabelsValid)
    return bad;
  const RowPasses &passes = rowPasses(isa);
  const double smoothing = options.labelSmoothing;
  // Per-token terms first, then a sequential sum: the result does not depend
  // on the number of threads.
  std::vector<double> tokenLoss(static_cast<size_t>(numTokens), 0.0);
#pragma omp parallel for schedule(static) if (numTokens * vocabSize >=         \
                                              kMinParallelCount)
  for (int64_t t = 0; t < numTokens; ++t) {
    const float *row = logits + t * vocabSize;
    const RowSums sums = passes.rowSums(row, vocabSize, smoothing != 0.0);
    const double lse = logSumExp(sums);
    if (savedLogSumExp)
      savedLogSumExp[t] = static_cast<float>(lse);
    if (isIgnored(labels[t], options))
      continue;
    const double nll = lse - row[labels[t]];
    const double smoothTerm = smoothing != 0.0
                                  ? lse - static_cast<double>(sums.sumLogits) /
                                              static_cast<double>(vocabSize)
                                  : 0.0;
    tokenLoss[t] = (1.0 - smoothing) * nll + smoothing * smoothTerm;
  }
  const int64_t counted = countTokens(numTokens, labels, options);
  double total = 0.0;
  for (double term : tokenLoss)
    total += term;
  *loss = counted ? static_cast<float>(total / counted) : 0.0f;
  if (countedTokens)
    *countedTokens = counted;
  return kAllLabelsValid;
}

int64_t crossEntropyBackwardVariant(Isa isa, int64_t numTokens,
                                    int64_t vocabSize, float lossGrad,
                                    const float *logits, const int32_t *labels,
                                    const CrossEntropyOptions &options,
                                    const float *savedLogSumExp,
                                    float *logitsGrad) {
  const int64_t bad = findInvalidLabel(numTokens, vocabSize, labels, options);
  if (bad != kAllLabelsValid)
    return bad;
  const RowPasses &passes = rowPasses(isa);
  const int64_t counted = countTokens(numTokens, labels, options);
  const float tokenWeight =
      counted ? lossGrad / static_cast<float>(counted) : 0.0f;
  const float smoothing = static_cast<float>(options.labelSmoothing);
  const float uniformTarget =
      vocabSize ? smoothing / static_cast<float>(vocabSize) : 0.0f;
#pragma omp parallel for schedule(static) if (numTokens * vocabSize >=         \
                                              kMinParallelCount)
  for (int64_t t = 0; t < numTokens; ++t) {
    const float *row = logits + t * vocabSize;
    float *grad = logitsGrad + t * vocabSize;
    if (isIgnored(labels[t], options) || counted == 0) {
      std::fill(grad, grad + vocabSize, 0.0f);
      continue;
    }
    const float lse =
        savedLogSumExp ? savedLogSumExp[t]
                       : static_cast<float>(
                             logSumExp(passes.rowSums(row, vocabSize, false)));
    passes.gradRow(row, vocabSize, lse, tokenWeight, uniformTarget, grad);
    grad[labels[t]] -= tokenWeight * (1.0f - smoothing);
  }
  return kAllLabelsValid;
}

} // namespace detail

int64_t crossEntropyForward(int64_t numTokens, int64_t vocabSize,
                            const float *logits, const int32_t *labels,
                            const CrossEntropyOptions &options, float *loss,
                            int64_t *countedTokens, float *savedLogSumExp) {
  return detail::crossEntropyForwardVariant(bestIsa(), numTokens, vocabSize,
                                            logits, labels, options, loss,
                                            countedTokens, savedLogSumExp);
}

int64_t crossEntropyBackward(int64_t numTokens, int64_t vocabSize,
                             float lossGrad, const float *logits,
                             const int32_t *labels,
                             const CrossEntropyOptions &options,
                             const float *savedLogSumExp, float *logitsGrad) {
  return detail::crossEntropyBackwardVariant(bestIsa(), numTokens, vocabSize,
                                             lossGrad, logits, labels, options,
                                             savedLogSumExp, logitsGrad);
}

} // namespace dense
} // namespace moert
