//===- LayerNorm.cpp - Layer normalisation over the last dimension --------===//
//
// Row statistics take two passes (mean, then the centred sum of squares) so
// that rows with a large mean do not lose the variance to cancellation. They
// are float sums over 16 interleaved partial sums (vmath::addToLanes: element
// i in sum i % 16, added in a fixed tree): each adds dim / 16 terms, which
// keeps the rounding error near 1e-7 relative for every model width we train,
// while the loops vectorize. The per-row passes are compiled as baseline,
// AVX2 and AVX-512 copies (IsaVariants.h) without FMA contraction
// (CMakeLists.txt), so every copy gives the same bits.
//
// Backward runs over fixed blocks of rows, in parallel: each block forms dx
// for its rows and its own column partial sums of the scale and bias
// gradients; the blocks' partial sums are then added in block order in
// double. The summation order depends only on the shape, never on the thread
// count.
//
//===----------------------------------------------------------------------===//
#include "moert/dense/LayerNorm.h"

#include "moert/dense/IsaVariants.h"
#include "moert/dense/ParallelChunks.h"
#include "moert/dense/VectorMath.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace moert {
namespace dense {

namespace {

/// Below this many elements a parallel region costs more than it saves (a
/// fork/join is ~6 us with passive waiting on 2 cores; one AVX-512 core
/// takes ~0.3 ns per element forward, ~0.65 ns backward; measured in the
/// demo step, 256 x 128 backward is faster on one thread than on two).
constexpr int64_t kMinParallelForward = int64_t{1} << 16;
constexpr int64_t kMinParallelBackward = int64_t{1} << 16;

/// Rows per block of the backward pass (and of its column partial sums).
constexpr int64_t kRowBlock = 32;

/// Rows are reduced in pieces of this many elements (a multiple of
/// vmath::kSumLanes) through stack buffers: a plain element-wise loop fills
/// the buffer, a lane sum adds it; each of the two vectorizes well.
constexpr int64_t kPiece = 256;

struct RowStats {
  float mean;
  float rstd;
};

MOERT_ALWAYS_INLINE RowStats rowStatsBody(const float *row, int64_t dim,
                                          float epsilon) {
  if (dim == 0)
    return {0.0f, 1.0f / std::sqrt(epsilon)};
  float lanes[vmath::kSumLanes] = {};
  vmath::addToLanes(dim, row, lanes);
  const float mean = vmath::sumLanes(lanes) / static_cast<float>(dim);
  std::fill(lanes, lanes + vmath::kSumLanes, 0.0f);
  float squares[kPiece];
  for (int64_t begin = 0; begin < dim; begin += kPiece) {
    const int64_t count = std::min(kPiece, dim - begin);
    for (int64_t i = 0; i < count; ++i) {
      const float centred = row[begin + i] - mean;
      squares[i] = centred * centred;
    }
    vmath::addToLanes(count, squares, lanes);
  }
  const float variance = vmath::sumLanes(lanes) / static_cast<float>(dim);
  return {mean, 1.0f / std::sqrt(variance + epsilon)};
}

MOERT_ALWAYS_INLINE void forwardRowBody(const float *x, int64_t dim,
                                        float epsilon, const float *scale,
                                        const float *bias, float *y,
                                        RowStats *stats) {
  const RowStats s = rowStatsBody(x, dim, epsilon);
  for (int64_t i = 0; i < dim; ++i)
    y[i] = (x[i] - s.mean) * s.rstd * scale[i] + bias[i];
  *stats = s;
}

/// With g = dy * scale and xhat the normalised input:
///   dx = rstd * (g - mean(g) - xhat * mean(g * xhat)).
/// Also adds dy * xhat and dy to the column sums (when given).
MOERT_ALWAYS_INLINE void backwardRowBody(const float *x, const float *dy,
                                         int64_t dim, float epsilon,
                                         const float *scale,
                                         const RowStats *saved, float *dx,
                                         float *scaleSums, float *biasSums) {
  const RowStats s = saved ? *saved : rowStatsBody(x, dim, epsilon);
  if (dx) {
    float sumG[vmath::kSumLanes] = {}, sumGXhat[vmath::kSumLanes] = {};
    float g[kPiece], gXhat[kPiece];
    for (int64_t begin = 0; begin < dim; begin += kPiece) {
      const int64_t count = std::min(kPiece, dim - begin);
      for (int64_t i = 0; i < count; ++i) {
        const int64_t c = begin + i;
        g[i] = dy[c] * scale[c];
        gXhat[i] = g[i] * ((x[c] - s.mean) * s.rstd);
      }
      vmath::addToLanes(count, g, sumG);
      vmath::addToLanes(count, gXhat, sumGXhat);
    }
    const float meanG =
        dim ? vmath::sumLanes(sumG) / static_cast<float>(dim) : 0.0f;
    const float meanGXhat =
        dim ? vmath::sumLanes(sumGXhat) / static_cast<float>(dim) : 0.0f;
    for (int64_t i = 0; i < dim; ++i) {
      const float xhat = (x[i] - s.mean) * s.rstd;
      dx[i] = s.rstd * (dy[i] * scale[i] - meanG - xhat * meanGXhat);
    }
  }
  if (scaleSums)
    for (int64_t i = 0; i < dim; ++i)
      scaleSums[i] += dy[i] * ((x[i] - s.mean) * s.rstd);
  if (biasSums)
    for (int64_t i = 0; i < dim; ++i)
      biasSums[i] += dy[i];
}

struct RowPasses {
  RowStats (*rowStats)(const float *row, int64_t dim, float epsilon);
  void (*forwardRow)(const float *x, int64_t dim, float epsilon,
                     const float *scale, const float *bias, float *y,
                     RowStats *stats);
  void (*backwardRow)(const float *x, const float *dy, int64_t dim,
                      float epsilon, const float *scale, const RowStats *saved,
                      float *dx, float *scaleSums, float *biasSums);
};

// The three copies of the row passes (see IsaVariants.h).
#define MOERT_DEFINE_ROW_PASSES(Suffix, Target)                                \
  Target RowStats rowStats##Suffix(const float *row, int64_t dim,              \
                                   float epsilon) {                            \
    return rowStatsBody(row, dim, epsilon);                                    \
  }                                                                            \
  Target void forwardRow##Suffix(const float *x, int64_t dim, float epsilon,   \
                                 const float *scale, const float *bias,        \
                                 float *y, RowStats *stats) {                  \
    forwardRowBody(x, dim, epsilon, scale, bias, y, stats);                    \
  }                                                                            \
  Target void backwardRow##Suffix(                                             \
      const float *x, const float *dy, int64_t dim, float epsilon,             \
      const float *scale, const RowStats *saved, float *dx, float *scaleSums,  \
      float *biasSums) {                                                       \
    backwardRowBody(x, dy, dim, epsilon, scale, saved, dx, scaleSums,          \
                    biasSums);                                                 \
  }                                                                            \
  const RowPasses kRowPasses##Suffix = {rowStats##Suffix, forwardRow##Suffix,  \
                                        backwardRow##Suffix};

MOERT_DEFINE_ROW_PASSES(Baseline, )
#ifdef MOERT_X86_ISA_VARIANTS
MOERT_DEFINE_ROW_PASSES(Avx2, MOERT_TARGET_AVX2)
MOERT_DEFINE_ROW_PASSES(Avx512, MOERT_TARGET_AVX512)
#endif
#undef MOERT_DEFINE_ROW_PASSES

const RowPasses &rowPasses(Isa isa) {
  return *MOERT_SELECT_ISA_VARIANT(isa, &kRowPasses);
}

} // namespace

namespace detail {

void layerNormForwardVariant(Isa isa, int64_t rows, int64_t dim, float epsilon,
                             const float *input, const float *scale,
                             const float *bias, float *output, float *savedMean,
                             float *savedRstd) {
  const RowPasses &passes = rowPasses(isa);
  const int64_t minParallelRows =
      (kMinParallelForward + std::max<int64_t>(dim, 1) - 1) /
      std::max<int64_t>(dim, 1);
  forEachChunk(rows, minParallelRows, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      RowStats stats;
      passes.forwardRow(input + r * dim, dim, epsilon, scale, bias,
                        output + r * dim, &stats);
      if (savedMean)
        savedMean[r] = stats.mean;
      if (savedRstd)
        savedRstd[r] = stats.rstd;
    }
  });
}

void layerNormBackwardVariant(Isa isa, int64_t rows, int64_t dim, float epsilon,
                              const float *outputGrad, const float *input,
                              const float *scale, const float *savedMean,
                              const float *savedRstd, float *inputGrad,
                              float *scaleGrad, float *biasGrad) {
  const RowPasses &passes = rowPasses(isa);
  const bool saved = savedMean && savedRstd;
  const int64_t numBlocks = (rows + kRowBlock - 1) / kRowBlock;
  // Column partial sums of every block: [block][scale | bias][dim].
  const bool columnSums = scaleGrad || biasGrad;
  std::vector<float> partial(
      columnSums ? static_cast<size_t>(numBlocks * 2 * dim) : 0, 0.0f);
#pragma omp parallel for schedule(static) if (rows * dim >=                    \
                                              kMinParallelBackward)
  for (int64_t block = 0; block < numBlocks; ++block) {
    float *scaleSums = scaleGrad ? partial.data() + block * 2 * dim : nullptr;
    float *biasSums =
        biasGrad ? partial.data() + (block * 2 + 1) * dim : nullptr;
    const int64_t end = std::min(rows, (block + 1) * kRowBlock);
    for (int64_t r = block * kRowBlock; r < end; ++r) {
      RowStats stats;
      if (saved)
        stats = {savedMean[r], savedRstd[r]};
      passes.backwardRow(input + r * dim, outputGrad + r * dim, dim, epsilon,
                         scale, saved ? &stats : nullptr,
                         inputGrad ? inputGrad + r * dim : nullptr, scaleSums,
                         biasSums);
    }
  }
  if (!columnSums)
    return;
  std::vector<double> total(static_cast<size_t>(2 * dim), 0.0);
  for (int64_t block = 0; block < numBlocks; ++block)
    for (int64_t i = 0; i < 2 * dim; ++i)
      total[i] += partial[block * 2 * dim + i];
  for (int64_t i = 0; i < dim; ++i) {
    if (scaleGrad)
      scaleGrad[i] = static_cast<float>(total[i]);
    if (biasGrad)
      biasGrad[i] = static_cast<float>(total[dim + i]);
  }
}

} // namespace detail

void layerNormForward(int64_t rows, int64_t dim, float epsilon,
                      const float *input, const float *scale, const float *bias,
                      float *output, float *savedMean, float *savedRstd) {
  detail::layerNormForwardVariant(bestIsa(), rows, dim, epsilon, input, scale,
                                  bias, output, savedMean, savedRstd);
}

void layerNormBackward(int64_t rows, int64_t dim, float epsilon,
                       const float *outputGrad, const float *input,
                       const float *scale, const float *savedMean,
                       const float *savedRstd, float *inputGrad,
                       float *scaleGrad, float *biasGrad) {
  detail::layerNormBackwardVariant(bestIsa(), rows, dim, epsilon, outputGrad,
                                   input, scale, savedMean, savedRstd,
                                   inputGrad, scaleGrad, biasGrad);
}

} // namespace dense
} // namespace moert
