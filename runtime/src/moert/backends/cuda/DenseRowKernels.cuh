//===- DenseRowKernels.cuh - Row and column kernels -----------*- CUDA -*-===//
//-*-===//
//
// The device code of the embedding, layer norm, bias and cross-entropy
// kernels and of the unfused attention's softmax rows (DenseKernels.cu
// launches them). Kept apart from the CUDA runtime so that the CPU test
// tests/DenseRowKernelsEmulationTest.cpp runs this very code on the host
// (tests/DenseCudaEmulation.h) against the CPU kernels.
//
// Reductions have a fixed order: the same bits on every run. Where the CPU
// rounds each operation of an element-wise formula on its own, the kernels
// do too (mulRn/addRn), so those results are the CPU's bits.
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_BACKENDS_CUDA_DENSEROWKERNELS_CUH
#define MOERT_BACKENDS_CUDA_DENSEROWKERNELS_CUH

#include "moert/backends/cuda/DenseBlock.cuh"
#include "moert/backends/cuda/DenseMath.h"

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace moert {
namespace cuda {
namespace dense_rows {

using namespace dense_device;
using dense_math::addRn;
using dense_math::mulRn;
using dense_math::subRn;

/// pe[seqLen, dim]: the sinusoidal encoding of positions first ..
/// first + seqLen - 1, with `first` read on the device (*first, clamped at
/// 0; null: 0).
__global__ void sinusoidTableKernel(int64_t seqLen, int64_t dim, float *pe,
                                    const int32_t *first) {
  const int64_t base = first && *first > 0 ? *first : 0;
  const int64_t count = seqLen * dim;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < count;
       i += int64_t{gridDim.x} * blockDim.x)
    pe[i] = dense_math::sinusoidalPosition(base + i / dim, i % dim, dim);
}

/// One block per token (grid-stride): the row of the table, scaled, plus
/// the position row. A bad id writes the position row alone and is
/// recorded (the CPU reports it and writes nothing). moe.embedding_at:
/// `first` (read on the device) is the position of each sequence's first
/// token; with `numPositions` > 0 the position rows are those of a learned
/// table of that many rows from row *first on (else `positions` already
/// holds the rows of the tokens' positions); an offset below 0 or past the
/// table is recorded and nothing is written.
__global__ void embeddingForwardKernel(int64_t numTokens, int64_t seqLen,
                                       int64_t dim, int64_t vocab, float factor,
                                       const int32_t *tokens,
                                       const float *table,
                                       const float *positions, float *output,
                                       DeviceErrorRecord *errors,
                                       const int32_t *first,
                                       int64_t numPositions) {
  const int64_t offset = first ? *first : 0;
  if (offset < 0 || (numPositions > 0 && offset + seqLen > numPositions)) {
    if (blockIdx.x == 0 && threadIdx.x == 0)
      recordError(errors, kPositionOutOfRange,
                  static_cast<uint32_t>(static_cast<int32_t>(offset)));
    return;
  }
  const int64_t rowBase = numPositions > 0 ? offset : 0;
  for (int64_t t = blockIdx.x; t < numTokens; t += gridDim.x) {
    const int32_t id = tokens[t];
    const bool valid = id >= 0 && id < vocab;
    if (!valid && threadIdx.x == 0)
      recordError(errors, kTokenOutOfVocabulary, t);
    const float *row = table + (valid ? int64_t{id} * dim : 0);
    const float *pe =
        positions ? positions + (rowBase + t % seqLen) * dim : nullptr;
    float *out = output + t * dim;
    for (int64_t d = threadIdx.x; d < dim; d += blockDim.x) {
      float value = valid ? mulRn(row[d], factor) : 0.0f;
      if (pe)
        value = addRn(value, pe[d]);
      out[d] = value;
    }
  }
}

/// moe.cache_update after the copy of the cache into `cache`: rows
/// [B, L, W] (`rowWords` 4-byte words per position) into positions *first ..
/// *first + L - 1 of [B, T, W]; an offset with no room is recorded and
/// nothing is written.
__global__ void cacheUpdateKernel(int64_t batch, int64_t length, int64_t count,
                                  int64_t rowWords, const int32_t *first,
                                  const uint32_t *rows, uint32_t *cache,
                                  DeviceErrorRecord *errors) {
  const int64_t offset = *first;
  if (offset < 0 || offset + count > length) {
    if (blockIdx.x == 0 && threadIdx.x == 0)
      recordError(errors, kCacheOffsetOutOfRange,
                  static_cast<uint32_t>(static_cast<int32_t>(offset)));
    return;
  }
  const int64_t total = batch * count * rowWords;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < total;
       i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t b = i / (count * rowWords), rest = i % (count * rowWords);
    cache[(b * length + offset) * rowWords + rest] = rows[i];
  }
}

/// keys[t] = token id (vocab for a bad id, sorted last and skipped),
/// positions[t] = t.
__global__ void embeddingGradKeysKernel(int64_t count, int64_t vocab,
                                        const int32_t *tokens, uint32_t *keys,
                                        int32_t *positions,
                                        DeviceErrorRecord *errors) {
  for (int64_t t = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; t < count;
       t += int64_t{gridDim.x} * blockDim.x) {
    const int32_t id = tokens[t];
    const bool valid = id >= 0 && id < vocab;
    if (!valid)
      recordError(errors, kTokenOutOfVocabulary, t);
    keys[t] = valid ? static_cast<uint32_t>(id) : static_cast<uint32_t>(vocab);
    positions[t] = static_cast<int32_t>(t);
  }
}

/// Block (x = sorted position i, y = column chunk): when i starts a group
/// of equal ids, its threads add the group's gradient rows for their
/// columns in token order.
__global__ void
embeddingGradSumKernel(int64_t count, int64_t dim, int64_t vocab, float factor,
                       const uint32_t *keys, const int32_t *positions,
                       const float *outputGrad, float *tableGrad) {
  const int64_t i = blockIdx.x;
  const uint32_t id = keys[i];
  if (id >= vocab || (i > 0 && keys[i - 1] == id))
    return;
  const int64_t d = blockIdx.y * int64_t{blockDim.x} + threadIdx.x;
  if (d >= dim)
    return;
  float sum = 0.0f;
  for (int64_t j = i; j < count && keys[j] == id; ++j)
    sum =
        addRn(sum, mulRn(outputGrad[int64_t{positions[j]} * dim + d], factor));
  tableGrad[int64_t{id} * dim + d] = sum;
}

/// grad[s, :] = sum over the batch of dy[b, s, :], in batch order (the
/// CPU's order); rows of the result beyond the sequence stay zero.
__global__ void positionGradKernel(int64_t batch, int64_t seqLen, int64_t rows,
                                   int64_t dim, const float *outputGrad,
                                   float *grad) {
  const int64_t count = rows * dim;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < count;
       i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t s = i / dim, d = i % dim;
    float sum = 0.0f;
    for (int64_t b = 0; b < batch; ++b)
      sum = addRn(sum, outputGrad[(b * seqLen + s) * dim + d]);
    grad[i] = sum;
  }
}

__global__ void columnPartialSumsKernel(int64_t rows, int64_t cols,
                                        int64_t chunkRows, const float *matrix,
                                        double *partial) {
  const int64_t c = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
  if (c >= cols)
    return;
  const int64_t begin = blockIdx.y * chunkRows;
  const int64_t end = std::min(rows, begin + chunkRows);
  double sum = 0.0;
  for (int64_t r = begin; r < end; ++r)
    sum += matrix[r * cols + c];
  partial[blockIdx.y * cols + c] = sum;
}

__global__ void columnTotalsKernel(int64_t chunks, int64_t cols,
                                   const double *partial, float *sums) {
  for (int64_t c = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; c < cols;
       c += int64_t{gridDim.x} * blockDim.x) {
    double sum = 0.0;
    for (int64_t chunk = 0; chunk < chunks; ++chunk)
      sum += partial[chunk * cols + c];
    sums[c] = static_cast<float>(sum);
  }
}

struct RowStatistics {
  float mean, rstd;
};

/// Mean and 1 / sqrt(var + eps) of a row, for every thread of the block.
__device__ inline RowStatistics rowStatistics(const float *x, int64_t dim,
                                              float epsilon, float *shared) {
  if (dim == 0)
    return {0.0f, 1.0f / sqrtf(epsilon)};
  float sum = 0.0f;
  for (int64_t i = threadIdx.x; i < dim; i += blockDim.x)
    sum += x[i];
  const float mean = blockSum(sum, shared) / static_cast<float>(dim);
  float squares = 0.0f;
  for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) {
    const float centred = x[i] - mean;
    squares += centred * centred;
  }
  const float variance = blockSum(squares, shared) / static_cast<float>(dim);
  return {mean, 1.0f / sqrtf(variance + epsilon)};
}

__global__ void layerNormForwardKernel(int64_t rows, int64_t dim, float epsilon,
                                       const float *input, const float *scale,
                                       const float *bias, float *output) {
  __shared__ float shared[32];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const float *x = input + r * dim;
    const RowStatistics s = rowStatistics(x, dim, epsilon, shared);
    float *y = output + r * dim;
    for (int64_t i = threadIdx.x; i < dim; i += blockDim.x)
      y[i] =
          addRn(mulRn(mulRn(subRn(x[i], s.mean), s.rstd), scale[i]), bias[i]);
  }
}

/// dx per row: with g = dy * scale and xhat the normalised input,
/// dx = rstd * (g - mean(g) - xhat * mean(g * xhat)) (dense/LayerNorm.cpp).
/// Saves the row statistics for the column sums.
__global__ void layerNormInputGradKernel(int64_t rows, int64_t dim,
                                         float epsilon, const float *outputGrad,
                                         const float *input, const float *scale,
                                         float *inputGrad, float2 *stats) {
  __shared__ float shared[32];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const float *x = input + r * dim;
    const float *dy = outputGrad + r * dim;
    const RowStatistics s = rowStatistics(x, dim, epsilon, shared);
    float sumG = 0.0f, sumGXhat = 0.0f;
    for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) {
      const float g = mulRn(dy[i], scale[i]);
      sumG += g;
      sumGXhat += g * mulRn(subRn(x[i], s.mean), s.rstd);
    }
    sumG = blockSum(sumG, shared);
    sumGXhat = blockSum(sumGXhat, shared);
    const float meanG = dim ? sumG / static_cast<float>(dim) : 0.0f;
    const float meanGXhat = dim ? sumGXhat / static_cast<float>(dim) : 0.0f;
    float *dx = inputGrad + r * dim;
    for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) {
      const float xhat = mulRn(subRn(x[i], s.mean), s.rstd);
      dx[i] = mulRn(s.rstd, subRn(subRn(mulRn(dy[i], scale[i]), meanG),
                                  mulRn(xhat, meanGXhat)));
    }
    if (threadIdx.x == 0)
      stats[r] = make_float2(s.mean, s.rstd);
  }
}

/// The CPU's blocking of the scale and bias gradients: float sums over
/// blocks of 32 rows, then the blocks in order in double.
constexpr int64_t kLayerNormRowBlock = 32;

__global__ void
layerNormColumnPartialKernel(int64_t rows, int64_t dim, int64_t numBlocks,
                             const float *outputGrad, const float *input,
                             const float2 *stats, float *partial) {
  const int64_t c = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
  if (c >= dim)
    return;
  for (int64_t block = blockIdx.y; block < numBlocks; block += gridDim.y) {
    const int64_t end = std::min(rows, (block + 1) * kLayerNormRowBlock);
    float scaleSum = 0.0f, biasSum = 0.0f;
    for (int64_t r = block * kLayerNormRowBlock; r < end; ++r) {
      const float dy = outputGrad[r * dim + c];
      const float2 s = stats[r];
      const float xhat = mulRn(subRn(input[r * dim + c], s.x), s.y);
      scaleSum = addRn(scaleSum, mulRn(dy, xhat));
      biasSum = addRn(biasSum, dy);
    }
    partial[(block * 2) * dim + c] = scaleSum;
    partial[(block * 2 + 1) * dim + c] = biasSum;
  }
}

__global__ void layerNormColumnTotalsKernel(int64_t numBlocks, int64_t dim,
                                            const float *partial,
                                            float *scaleGrad, float *biasGrad) {
  for (int64_t c = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; c < dim;
       c += int64_t{gridDim.x} * blockDim.x) {
    double scaleSum = 0.0, biasSum = 0.0;
    for (int64_t block = 0; block < numBlocks; ++block) {
      scaleSum += partial[(block * 2) * dim + c];
      biasSum += partial[(block * 2 + 1) * dim + c];
    }
    scaleGrad[c] = static_cast<float>(scaleSum);
    biasGrad[c] = static_cast<float>(biasSum);
  }
}

/// probs[h, i, :] = softmax of the visible scores of row (h, i) of batch
/// element `b`; zeros for a fully masked row. The sum is in double and the
/// row scaled by its float inverse, as dense/Attention.cpp does.
__global__ void maskedSoftmaxKernel(int64_t rows, int64_t queryLen,
                                    int64_t keyLen, bool causal,
                                    const uint8_t *batchMask, float *probs) {
  __shared__ float sharedMax[32];
  __shared__ double sharedSum[32];
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const int64_t i = row % queryLen;
    float *p = probs + row * keyLen;
    const int64_t visibleEnd = causal ? std::min(keyLen, i + 1) : keyLen;
    float localMax = -INFINITY;
    for (int64_t j = threadIdx.x; j < visibleEnd; j += blockDim.x)
      if (!batchMask || batchMask[j])
        localMax = fmaxf(localMax, p[j]);
    const float rowMax = blockMax(localMax, sharedMax, -INFINITY);
    double localSum = 0.0;
    for (int64_t j = threadIdx.x; j < keyLen; j += blockDim.x) {
      const bool visible = j < visibleEnd && (!batchMask || batchMask[j]);
      const float e =
          visible && rowMax != -INFINITY ? expf(p[j] - rowMax) : 0.0f;
      p[j] = e;
      localSum += e;
    }
    const double sum = blockSum(localSum, sharedSum);
    const float inverse = sum > 0.0 ? static_cast<float>(1.0 / sum) : 0.0f;
    for (int64_t j = threadIdx.x; j < keyLen; j += blockDim.x)
      p[j] *= inverse; // each thread rescales the elements it wrote
  }
}

/// dS = P (dP - sum_j dP_j P_j) per row, the dot in double.
__global__ void softmaxBackwardKernel(int64_t rows, int64_t keyLen,
                                      const float *probs, float *scoreGrad) {
  __shared__ double shared[32];
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const float *p = probs + row * keyLen;
    float *d = scoreGrad + row * keyLen;
    double dot = 0.0;
    for (int64_t j = threadIdx.x; j < keyLen; j += blockDim.x)
      dot += static_cast<double>(d[j]) * p[j];
    const float rowDot = static_cast<float>(blockSum(dot, shared));
    for (int64_t j = threadIdx.x; j < keyLen; j += blockDim.x)
      d[j] = p[j] * (d[j] - rowDot);
  }
}

struct CrossEntropyParams {
  int64_t tokens, vocab;
  int64_t ignoreIndex;
  float smoothing;
};

__device__ inline bool labelIgnored(int32_t label, int64_t ignoreIndex) {
  return int64_t{label} == ignoreIndex;
}

struct SoftmaxRow {
  float max, sumExp, sumLogits;
};

/// Max, sum of exp(z - max) and (when asked) the sum of the logits of a
/// row, for every thread of the block.
__device__ inline SoftmaxRow softmaxRow(const float *row, int64_t vocab,
                                        bool withSumLogits, float *shared) {
  float localMax = -INFINITY, localSum = 0.0f;
  for (int64_t v = threadIdx.x; v < vocab; v += blockDim.x) {
    localMax = fmaxf(localMax, row[v]);
    localSum += row[v];
  }
  SoftmaxRow r;
  r.max = blockMax(localMax, shared, -INFINITY);
  r.sumLogits = withSumLogits ? blockSum(localSum, shared) : 0.0f;
  float sumExp = 0.0f;
  for (int64_t v = threadIdx.x; v < vocab; v += blockDim.x)
    sumExp += expf(row[v] - r.max);
  r.sumExp = blockSum(sumExp, shared);
  return r;
}

/// tokenLoss[t] = (1 - ls) (lse - z_y) + ls (lse - mean(z)), 0 for ignored
/// (and recorded bad) labels.
__global__ void crossEntropyTokenKernel(CrossEntropyParams p,
                                        const float *logits,
                                        const int32_t *labels,
                                        double *tokenLoss,
                                        DeviceErrorRecord *errors) {
  __shared__ float shared[32];
  for (int64_t t = blockIdx.x; t < p.tokens; t += gridDim.x) {
    const float *row = logits + t * p.vocab;
    const SoftmaxRow s = softmaxRow(row, p.vocab, p.smoothing != 0.0f, shared);
    if (threadIdx.x != 0)
      continue;
    const int32_t label = labels[t];
    double term = 0.0;
    if (!labelIgnored(label, p.ignoreIndex)) {
      if (label < 0 || label >= p.vocab) {
        recordError(errors, kLabelOutOfRange, t);
      } else {
        const double lse =
            static_cast<double>(s.max) + log(static_cast<double>(s.sumExp));
        const double nll = lse - row[label];
        const double smooth = p.smoothing != 0.0f
                                  ? lse - static_cast<double>(s.sumLogits) /
                                              static_cast<double>(p.vocab)
                                  : 0.0;
        const double smoothing = p.smoothing;
        term = (1.0 - smoothing) * nll + smoothing * smooth;
      }
    }
    tokenLoss[t] = term;
  }
}

/// One block: loss = sum(tokenLoss) / counted (0 when nothing counts).
__global__ void crossEntropyLossKernel(CrossEntropyParams p,
                                       const int32_t *labels,
                                       const double *tokenLoss, float *loss) {
  __shared__ double sharedSum[32];
  __shared__ long long sharedCount[32];
  double sum = 0.0;
  long long counted = 0;
  for (int64_t t = threadIdx.x; t < p.tokens; t += blockDim.x) {
    sum += tokenLoss[t];
    counted += labelIgnored(labels[t], p.ignoreIndex) ? 0 : 1;
  }
  sum = blockSum(sum, sharedSum);
  counted = blockSum(counted, sharedCount);
  if (threadIdx.x == 0)
    *loss =
        counted ? static_cast<float>(sum / static_cast<double>(counted)) : 0.0f;
}

/// counted = number of labels that are not ignored.
__global__ void countLabelsKernel(CrossEntropyParams p, const int32_t *labels,
                                  long long *counted) {
  __shared__ long long shared[32];
  long long count = 0;
  for (int64_t t = threadIdx.x; t < p.tokens; t += blockDim.x)
    count += labelIgnored(labels[t], p.ignoreIndex) ? 0 : 1;
  count = blockSum(count, shared);
  if (threadIdx.x == 0)
    *counted = count;
}

/// dlogits[t, v] = dloss / n (p_v - ls / V) - dloss / n (1 - ls) [v = y];
/// zero rows for ignored or bad labels, or when nothing counts.
__global__ void
crossEntropyGradKernel(CrossEntropyParams p, const float *lossGrad,
                       const float *logits, const int32_t *labels,
                       const long long *counted, float *logitsGrad,
                       DeviceErrorRecord *errors) {
  __shared__ float shared[32];
  const long long n = *counted;
  const float weight = n ? *lossGrad / static_cast<float>(n) : 0.0f;
  const float uniformTarget =
      p.vocab ? p.smoothing / static_cast<float>(p.vocab) : 0.0f;
  const float labelTarget = mulRn(weight, 1.0f - p.smoothing);
  for (int64_t t = blockIdx.x; t < p.tokens; t += gridDim.x) {
    const float *row = logits + t * p.vocab;
    float *grad = logitsGrad + t * p.vocab;
    const int32_t label = labels[t];
    const bool ignored = labelIgnored(label, p.ignoreIndex);
    const bool bad = !ignored && (label < 0 || label >= p.vocab);
    if (bad && threadIdx.x == 0)
      recordError(errors, kLabelOutOfRange, t);
    if (ignored || bad || n == 0) {
      for (int64_t v = threadIdx.x; v < p.vocab; v += blockDim.x)
        grad[v] = 0.0f;
      continue;
    }
    const SoftmaxRow s = softmaxRow(row, p.vocab, false, shared);
    const float lse = static_cast<float>(static_cast<double>(s.max) +
                                         log(static_cast<double>(s.sumExp)));
    for (int64_t v = threadIdx.x; v < p.vocab; v += blockDim.x) {
      float g = mulRn(weight, subRn(expf(row[v] - lse), uniformTarget));
      if (v == label)
        g = subRn(g, labelTarget);
      grad[v] = g;
    }
  }
}

} // namespace dense_rows
} // namespace cuda
} // namespace moert

#endif // MOERT_BACKENDS_CUDA_DENSEROWKERNELS_CUH
