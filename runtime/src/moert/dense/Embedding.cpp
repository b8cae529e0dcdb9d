//===- Embedding.cpp - Token embedding with positions ---------------------===//
//
// The scatter-add of the backward pass is parallelised over blocks of the
// model dimension: every thread visits all tokens in order for its columns,
// so no two threads touch the same element and no atomics are needed.
//
//===----------------------------------------------------------------------===//
#include "moert/dense/Embedding.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace moert {
namespace dense {

namespace {
constexpr int64_t kColumnBlock = 64;
} // namespace

int64_t findInvalidToken(int64_t count, const int32_t *tokens,
                         int64_t vocabSize) {
  for (int64_t i = 0; i < count; ++i)
    if (tokens[i] < 0 || tokens[i] >= vocabSize)
      return i;
  return kAllTokensValid;
}

void sinusoidalPositions(int64_t seqLen, int64_t modelDim, float *pe,
                         int64_t first) {
  for (int64_t row = 0; row < seqLen; ++row) {
    const int64_t s = first + row;
    for (int64_t d = 0; d < modelDim; ++d) {
      // Columns 2i and 2i+1 share the frequency 1 / 10000^(2i / M).
      const int64_t evenIndex = d - (d % 2);
      const double angle =
          static_cast<double>(s) /
          std::pow(10000.0, static_cast<double>(evenIndex) / modelDim);
      pe[row * modelDim + d] =
          static_cast<float>(d % 2 == 0 ? std::sin(angle) : std::cos(angle));
    }
  }
}

int64_t embeddingForward(const EmbeddingShape &shape, PositionKind position,
                         bool scaled, const int32_t *tokens, const float *table,
                         const float *positions, float *output) {
  const int64_t numTokens = shape.batch * shape.seqLen;
  const int64_t dim = shape.modelDim;
  const int64_t bad = findInvalidToken(numTokens, tokens, shape.vocabSize);
  if (bad != kAllTokensValid)
    return bad;

  std::vector<float> sinusoid;
  const float *positionRows = nullptr;
  if (position == PositionKind::Sinusoidal) {
    sinusoid.resize(static_cast<size_t>(shape.seqLen * dim));
    sinusoidalPositions(shape.seqLen, dim, sinusoid.data(),
                        shape.positionOffset);
    positionRows = sinusoid.data();
  } else if (position == PositionKind::Learned) {
    positionRows = positions + shape.positionOffset * dim;
  }
  const float factor = scaled ? std::sqrt(static_cast<float>(dim)) : 1.0f;

#pragma omp parallel for schedule(static) if (numTokens * dim > 65536)
  for (int64_t t = 0; t < numTokens; ++t) {
    const float *row = table + static_cast<int64_t>(tokens[t]) * dim;
    float *out = output + t * dim;
    if (positionRows) {
      const float *pe = positionRows + (t % shape.seqLen) * dim;
      for (int64_t d = 0; d < dim; ++d)
        out[d] = row[d] * factor + pe[d];
    } else {
      for (int64_t d = 0; d < dim; ++d)
        out[d] = row[d] * factor;
    }
  }
  return kAllTokensValid;
}

int64_t embeddingBackward(const EmbeddingShape &shape, bool scaled,
                          const float *outputGrad, const int32_t *tokens,
                          float *tableGrad, float *positionsGrad) {
  const int64_t numTokens = shape.batch * shape.seqLen;
  const int64_t dim = shape.modelDim;
  const int64_t bad = findInvalidToken(numTokens, tokens, shape.vocabSize);
  if (bad != kAllTokensValid)
    return bad;

  const float factor = scaled ? std::sqrt(static_cast<float>(dim)) : 1.0f;
  const int64_t numBlocks = (dim + kColumnBlock - 1) / kColumnBlock;
  if (tableGrad) {
    std::fill(tableGrad, tableGrad + shape.vocabSize * dim, 0.0f);
#pragma omp parallel for schedule(static) if (numTokens * dim > 65536)
    for (int64_t block = 0; block < numBlocks; ++block) {
      const int64_t begin = block * kColumnBlock;
      const int64_t end = std::min(dim, begin + kColumnBlock);
      for (int64_t t = 0; t < numTokens; ++t) {
        float *dst = tableGrad + static_cast<int64_t>(tokens[t]) * dim;
        const float *src = outputGrad + t * dim;
        for (int64_t d = begin; d < end; ++d)
          dst[d] += src[d] * factor;
      }
    }
  }
  if (positionsGrad) {
    std::fill(positionsGrad, positionsGrad + shape.numPositions * dim, 0.0f);
    const int64_t rows = std::min(shape.seqLen, shape.numPositions);
#pragma omp parallel for schedule(static) if (numTokens * dim > 65536)
    for (int64_t s = 0; s < rows; ++s) {
      float *dst = positionsGrad + s * dim;
      for (int64_t b = 0; b < shape.batch; ++b) {
        const float *src = outputGrad + (b * shape.seqLen + s) * dim;
        for (int64_t d = 0; d < dim; ++d)
          dst[d] += src[d];
      }
    }
  }
  return kAllTokensValid;
}

} // namespace dense
} // namespace moert
