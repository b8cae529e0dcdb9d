//===- CrossEntropy.cpp - Softmax cross-entropy ---------------------------===//
//
// log p_v = z_v - logsumexp(z), so nll = lse - z_y and
// mean_v(-log p_v) = lse - mean_v(z): one pass for the max, one for the sum
// of exponentials, and the loss needs no [N, V] temporary.
//
//===----------------------------------------------------------------------===//
#include "moert/dense/CrossEntropy.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace moert {
namespace dense {

namespace {

bool isIgnored(int32_t label, const CrossEntropyOptions &options) {
  return static_cast<int64_t>(label) == options.ignoreIndex;
}

// log(sum exp(row)) with the maximum subtracted first, accumulated in double.
double logSumExp(const float *row, int64_t vocabSize) {
  float rowMax = row[0];
  for (int64_t v = 1; v < vocabSize; ++v)
    rowMax = std::max(rowMax, row[v]);
  double sum = 0.0;
  for (int64_t v = 0; v < vocabSize; ++v)
    sum += std::exp(static_cast<double>(row[v]) - rowMax);
  return rowMax + std::log(sum);
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

int64_t crossEntropyForward(int64_t numTokens, int64_t vocabSize,
                            const float *logits, const int32_t *labels,
                            const CrossEntropyOptions &options, float *loss,
                            int64_t *countedTokens, float *savedLogSumExp) {
  const int64_t bad = findInvalidLabel(numTokens, vocabSize, labels, options);
  if (bad != kAllLabelsValid)
    return bad;
  const double smoothing = options.labelSmoothing;
  // Per-token terms first, then a sequential sum: the result does not depend
  // on the number of threads.
  std::vector<double> tokenLoss(static_cast<size_t>(numTokens), 0.0);
#pragma omp parallel for schedule(static) if (numTokens * vocabSize > 65536)
  for (int64_t t = 0; t < numTokens; ++t) {
    const float *row = logits + t * vocabSize;
    const double lse = logSumExp(row, vocabSize);
    if (savedLogSumExp)
      savedLogSumExp[t] = static_cast<float>(lse);
    if (isIgnored(labels[t], options))
      continue;
    const double nll = lse - row[labels[t]];
    double smoothTerm = 0.0;
    if (smoothing != 0.0) {
      double sumLogits = 0.0;
      for (int64_t v = 0; v < vocabSize; ++v)
        sumLogits += row[v];
      smoothTerm = lse - sumLogits / static_cast<double>(vocabSize);
    }
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

int64_t crossEntropyBackward(int64_t numTokens, int64_t vocabSize,
                             float lossGrad, const float *logits,
                             const int32_t *labels,
                             const CrossEntropyOptions &options,
                             const float *savedLogSumExp, float *logitsGrad) {
  const int64_t bad = findInvalidLabel(numTokens, vocabSize, labels, options);
  if (bad != kAllLabelsValid)
    return bad;
  const int64_t counted = countTokens(numTokens, labels, options);
  const float tokenWeight =
      counted ? lossGrad / static_cast<float>(counted) : 0.0f;
  const float smoothing = static_cast<float>(options.labelSmoothing);
  const float uniformTarget =
      vocabSize ? smoothing / static_cast<float>(vocabSize) : 0.0f;
#pragma omp parallel for schedule(static) if (numTokens * vocabSize > 65536)
  for (int64_t t = 0; t < numTokens; ++t) {
    const float *row = logits + t * vocabSize;
    float *grad = logitsGrad + t * vocabSize;
    if (isIgnored(labels[t], options) || counted == 0) {
      std::fill(grad, grad + vocabSize, 0.0f);
      continue;
    }
    const float lse = savedLogSumExp
                          ? savedLogSumExp[t]
                          : static_cast<float>(logSumExp(row, vocabSize));
    for (int64_t v = 0; v < vocabSize; ++v)
      grad[v] = tokenWeight * (std::exp(row[v] - lse) - uniformTarget);
    grad[labels[t]] -= tokenWeight * (1.0f - smoothing);
  }
  return kAllLabelsValid;
}

} // namespace dense
} // namespace moert
