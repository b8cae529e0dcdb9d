//===- LayerNorm.cpp - Layer normalisation over the last dimension --------===//
//
// Row statistics are computed in double with two passes (mean, then the
// centred sum of squares) so that rows with a large mean do not lose the
// variance to cancellation.
//
//===----------------------------------------------------------------------===//
#include "moert/dense/LayerNorm.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace moert {
namespace dense {

namespace {

struct RowStats {
  float mean;
  float rstd;
};

RowStats computeRowStats(const float *row, int64_t dim, float epsilon) {
  if (dim == 0)
    return {0.0f, 1.0f / std::sqrt(epsilon)};
  double sum = 0.0;
  for (int64_t i = 0; i < dim; ++i)
    sum += row[i];
  const double mean = sum / static_cast<double>(dim);
  double squares = 0.0;
  for (int64_t i = 0; i < dim; ++i) {
    const double centred = row[i] - mean;
    squares += centred * centred;
  }
  const double variance = squares / static_cast<double>(dim);
  return {static_cast<float>(mean),
          static_cast<float>(1.0 / std::sqrt(variance + epsilon))};
}

} // namespace

void layerNormForward(int64_t rows, int64_t dim, float epsilon,
                      const float *input, const float *scale, const float *bias,
                      float *output, float *savedMean, float *savedRstd) {
#pragma omp parallel for schedule(static) if (rows * dim > 16384)
  for (int64_t r = 0; r < rows; ++r) {
    const float *x = input + r * dim;
    float *y = output + r * dim;
    const RowStats stats = computeRowStats(x, dim, epsilon);
    for (int64_t i = 0; i < dim; ++i)
      y[i] = (x[i] - stats.mean) * stats.rstd * scale[i] + bias[i];
    if (savedMean)
      savedMean[r] = stats.mean;
    if (savedRstd)
      savedRstd[r] = stats.rstd;
  }
}

void layerNormBackward(int64_t rows, int64_t dim, float epsilon,
                       const float *outputGrad, const float *input,
                       const float *scale, const float *savedMean,
                       const float *savedRstd, float *inputGrad,
                       float *scaleGrad, float *biasGrad) {
  // Statistics for every row, reused by the two loops below.
  std::vector<RowStats> stats(static_cast<size_t>(rows));
  if (savedMean && savedRstd) {
    for (int64_t r = 0; r < rows; ++r)
      stats[r] = {savedMean[r], savedRstd[r]};
  } else {
#pragma omp parallel for schedule(static) if (rows * dim > 16384)
    for (int64_t r = 0; r < rows; ++r)
      stats[r] = computeRowStats(input + r * dim, dim, epsilon);
  }

  if (inputGrad) {
    // With g = dy * scale and xhat the normalised input:
    //   dx = rstd * (g - mean(g) - xhat * mean(g * xhat)).
#pragma omp parallel for schedule(static) if (rows * dim > 16384)
    for (int64_t r = 0; r < rows; ++r) {
      const float *x = input + r * dim;
      const float *dy = outputGrad + r * dim;
      float *dx = inputGrad + r * dim;
      const RowStats s = stats[r];
      double sumG = 0.0, sumGXhat = 0.0;
      for (int64_t i = 0; i < dim; ++i) {
        const double g = static_cast<double>(dy[i]) * scale[i];
        sumG += g;
        sumGXhat += g * ((x[i] - s.mean) * s.rstd);
      }
      const float meanG = dim ? static_cast<float>(sumG / dim) : 0.0f;
      const float meanGXhat = dim ? static_cast<float>(sumGXhat / dim) : 0.0f;
      for (int64_t i = 0; i < dim; ++i) {
        const float xhat = (x[i] - s.mean) * s.rstd;
        dx[i] = s.rstd * (dy[i] * scale[i] - meanG - xhat * meanGXhat);
      }
    }
  }

  if (scaleGrad || biasGrad) {
    // Column blocks per thread, rows in order: a fixed summation order.
    constexpr int64_t kBlock = 64;
    const int64_t numBlocks = (dim + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static) if (rows * dim > 16384)
    for (int64_t block = 0; block < numBlocks; ++block) {
      const int64_t begin = block * kBlock;
      const int64_t end = std::min(dim, begin + kBlock);
      double scaleAcc[kBlock] = {}, biasAcc[kBlock] = {};
      for (int64_t r = 0; r < rows; ++r) {
        const float *x = input + r * dim;
        const float *dy = outputGrad + r * dim;
        const RowStats s = stats[r];
        for (int64_t i = begin; i < end; ++i) {
          scaleAcc[i - begin] += dy[i] * ((x[i] - s.mean) * s.rstd);
          biasAcc[i - begin] += dy[i];
        }
      }
      for (int64_t i = begin; i < end; ++i) {
        if (scaleGrad)
          scaleGrad[i] = static_cast<float>(scaleAcc[i - begin]);
        if (biasGrad)
          biasGrad[i] = static_cast<float>(biasAcc[i - begin]);
      }
    }
  }
}

} // namespace dense
} // namespace moert
