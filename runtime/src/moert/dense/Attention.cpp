//===- Attention.cpp - Multi-head scaled dot-product attention ------------===//
//
// One (batch, head) pair at a time: the head's columns are a strided view of
// the [S, D] matrices (leading dimension D), so the GEMMs read q, k, v in
// place without gathering heads. The pairs are independent and write disjoint
// output columns, which makes an OpenMP loop over them race-free and
// deterministic. With at least as many pairs as threads, the team runs one
// pair per thread; with fewer pairs (one long sequence, few heads), the pairs
// run in order and each GEMM is spread over the threads. The GEMMs go through
// gemm (Gemm.h), whose blocks do not depend on the schedule, so both give the
// same bits.
//
//===----------------------------------------------------------------------===//
#include "moert/dense/Attention.h"

#include "moert/dense/Gemm.h"
#include "moert/dense/ParallelChunks.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace moert {
namespace dense {

namespace {

// Views of one (batch, head) pair.
struct HeadView {
  int64_t queryOffset; // of element [b, 0, h * dh] in a [B, Sq, D] tensor
  int64_t keyOffset;   // of element [b, 0, h * dh] in a [B, Sk, D] tensor
  int64_t probsOffset; // of tile [b, h] in [B, H, Sq, Sk]
  int64_t batchIndex;
};

HeadView headView(const AttentionShape &shape, int64_t pair) {
  const int64_t b = pair / shape.numHeads, h = pair % shape.numHeads;
  const int64_t headDim = shape.modelDim / shape.numHeads;
  return {b * shape.queryLen * shape.modelDim + h * headDim,
          b * shape.keyLen * shape.modelDim + h * headDim,
          pair * shape.queryLen * shape.keyLen, b};
}

// probs[Sq, Sk] = softmax(scale * q k^T) with the masks, for one head.
void computeProbs(const AttentionShape &shape, const HeadView &view,
                  const float *query, const float *key, const uint8_t *keyMask,
                  float *probs) {
  const int64_t sq = shape.queryLen, sk = shape.keyLen, d = shape.modelDim;
  const int64_t headDim = d / shape.numHeads;
  const float scale = 1.0f / std::sqrt(static_cast<float>(headDim));
  gemm(/*transA=*/false, /*transB=*/true, sq, sk, headDim, scale,
       query + view.queryOffset, d, key + view.keyOffset, d, 0.0f, probs, sk);
  const uint8_t *mask = keyMask ? keyMask + view.batchIndex * sk : nullptr;
  for (int64_t i = 0; i < sq; ++i) {
    float *row = probs + i * sk;
    const int64_t visibleEnd = shape.causal ? std::min(sk, i + 1) : sk;
    auto visible = [&](int64_t j) {
      return j < visibleEnd && (!mask || mask[j]);
    };
    // Subtracting the row maximum keeps exp() in range for any logits.
    float rowMax = -std::numeric_limits<float>::infinity();
    for (int64_t j = 0; j < sk; ++j)
      if (visible(j))
        rowMax = std::max(rowMax, row[j]);
    if (rowMax == -std::numeric_limits<float>::infinity()) {
      std::fill(row, row + sk, 0.0f); // fully masked row: zeros by definition
      continue;
    }
    double sum = 0.0;
    for (int64_t j = 0; j < sk; ++j) {
      const float e = visible(j) ? std::exp(row[j] - rowMax) : 0.0f;
      row[j] = e;
      sum += e;
    }
    const float inverse = static_cast<float>(1.0 / sum);
    for (int64_t j = 0; j < sk; ++j)
      row[j] *= inverse;
  }
}

// Whether to spread (batch, head) pairs over an OpenMP team.
bool parallelOverPairs(int64_t numPairs) {
  const int threads = detail::maxTeamThreads();
  return threads > 1 && numPairs >= threads;
}

bool shapeIsEmpty(const AttentionShape &shape) {
  return shape.batch == 0 || shape.queryLen == 0 || shape.modelDim == 0;
}

} // namespace

int64_t attentionProbsSize(const AttentionShape &shape) {
  return shape.batch * shape.numHeads * shape.queryLen * shape.keyLen;
}

void attentionForward(const AttentionShape &shape, const float *query,
                      const float *key, const float *value,
                      const uint8_t *keyMask, float *output,
                      float *savedProbs) {
  if (shapeIsEmpty(shape))
    return;
  const int64_t sq = shape.queryLen, sk = shape.keyLen, d = shape.modelDim;
  const int64_t headDim = d / shape.numHeads;
  const int64_t numPairs = shape.batch * shape.numHeads;
  if (sk == 0) { // nothing to attend to: every row is fully masked
    std::fill(output, output + shape.batch * sq * d, 0.0f);
    return;
  }
  const ComputeType compute = shape.compute;
  RoundedCopy q(compute, shape.batch * sq * d, query);
  RoundedCopy k(compute, shape.batch * sk * d, key);
  RoundedCopy v(compute, shape.batch * sk * d, value);
  const bool team = parallelOverPairs(numPairs);
#pragma omp parallel if (team)
  {
    std::vector<float> scratch(savedProbs ? 0 : static_cast<size_t>(sq * sk));
    std::vector<float> rounded(
        compute == ComputeType::F32 ? 0 : static_cast<size_t>(sq * sk));
#pragma omp for schedule(static)
    for (int64_t pair = 0; pair < numPairs; ++pair) {
      const HeadView view = headView(shape, pair);
      float *probs =
          savedProbs ? savedProbs + view.probsOffset : scratch.data();
      computeProbs(shape, view, q.get(), k.get(), keyMask, probs);
      const float *pv = probs;
      if (compute != ComputeType::F32) {
        roundArrayToCompute(compute, sq * sk, probs, rounded.data());
        pv = rounded.data();
      }
      gemm(/*transA=*/false, /*transB=*/false, sq, headDim, sk, 1.0f, pv, sk,
           v.get() + view.keyOffset, d, 0.0f, output + view.queryOffset, d);
    }
  }
}

void attentionBackward(const AttentionShape &shape, const float *outputGrad,
                       const float *query, const float *key, const float *value,
                       const uint8_t *keyMask, const float *savedProbs,
                       float *queryGrad, float *keyGrad, float *valueGrad) {
  const int64_t sq = shape.queryLen, sk = shape.keyLen, d = shape.modelDim;
  if (shapeIsEmpty(shape) || sk == 0) {
    std::fill(queryGrad, queryGrad + shape.batch * sq * d, 0.0f);
    std::fill(keyGrad, keyGrad + shape.batch * sk * d, 0.0f);
    std::fill(valueGrad, valueGrad + shape.batch * sk * d, 0.0f);
    return;
  }
  const int64_t headDim = d / shape.numHeads;
  const float scale = 1.0f / std::sqrt(static_cast<float>(headDim));
  const int64_t numPairs = shape.batch * shape.numHeads;
  const ComputeType compute = shape.compute;
  const bool reduced = compute != ComputeType::F32;
  RoundedCopy q(compute, shape.batch * sq * d, query);
  RoundedCopy k(compute, shape.batch * sk * d, key);
  RoundedCopy v(compute, shape.batch * sk * d, value);
  RoundedCopy dO(compute, shape.batch * sq * d, outputGrad);
  const bool team = parallelOverPairs(numPairs);
#pragma omp parallel if (team)
  {
    std::vector<float> probsScratch(savedProbs ? 0
                                               : static_cast<size_t>(sq * sk));
    std::vector<float> scoreGrad(static_cast<size_t>(sq * sk));
    std::vector<float> rounded(reduced ? static_cast<size_t>(sq * sk) : 0);
#pragma omp for schedule(static)
    for (int64_t pair = 0; pair < numPairs; ++pair) {
      const HeadView view = headView(shape, pair);
      const float *probs;
      if (savedProbs) {
        probs = savedProbs + view.probsOffset;
      } else {
        computeProbs(shape, view, q.get(), k.get(), keyMask,
                     probsScratch.data());
        probs = probsScratch.data();
      }
      const float *dOut = dO.get() + view.queryOffset;
      // dV = P^T dO
      const float *pv = probs;
      if (reduced) {
        roundArrayToCompute(compute, sq * sk, probs, rounded.data());
        pv = rounded.data();
      }
      gemm(/*transA=*/true, /*transB=*/false, sk, headDim, sq, 1.0f, pv, sk,
           dOut, d, 0.0f, valueGrad + view.keyOffset, d);
      // dP = dO V^T
      float *dS = scoreGrad.data();
      gemm(/*transA=*/false, /*transB=*/true, sq, sk, headDim, 1.0f, dOut, d,
           v.get() + view.keyOffset, d, 0.0f, dS, sk);
      // Softmax backward: dS = P * (dP - sum_j dP_j P_j). Masked entries and
      // fully masked rows have P = 0, hence dS = 0.
      for (int64_t i = 0; i < sq; ++i) {
        const float *p = probs + i * sk;
        float *row = dS + i * sk;
        double dot = 0.0;
        for (int64_t j = 0; j < sk; ++j)
          dot += static_cast<double>(row[j]) * p[j];
        const float rowDot = static_cast<float>(dot);
        for (int64_t j = 0; j < sk; ++j)
          row[j] = p[j] * (row[j] - rowDot);
      }
      if (reduced)
        roundArrayToCompute(compute, sq * sk, dS, dS);
      // dQ = scale * dS K, dK = scale * dS^T Q
      gemm(/*transA=*/false, /*transB=*/false, sq, headDim, sk, scale, dS, sk,
           k.get() + view.keyOffset, d, 0.0f, queryGrad + view.queryOffset, d);
      gemm(/*transA=*/true, /*transB=*/false, sk, headDim, sq, scale, dS, sk,
           q.get() + view.queryOffset, d, 0.0f, keyGrad + view.keyOffset, d);
    }
  }
}

} // namespace dense
} // namespace moert
