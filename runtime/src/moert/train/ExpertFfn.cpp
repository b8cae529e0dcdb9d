//===- ExpertFfn.cpp - Batched per-expert MLP (moe.expert_ffn) ------------===//
//
// Per expert the work is two GEMMs forward and five backward (one of them
// recomputing the hidden pre-activation); everything else is kept to single
// passes over the [C, H] hidden block:
// - bias adds cost nothing extra: the GEMM output is first filled with the
//   bias rows and the GEMM accumulates onto them (beta = 1), which replaces
//   the zero fill a beta = 0 GEMM does anyway;
// - the activation is one in-place pass forward; backward one pass computes
//   the activation and its derivative together (GELU's erf and exp once per
//   element), and one pass forms dZ = dA * act'(Z) and its column sums (the
//   b1 gradient);
// - the element-wise math is the dense activations' single-threaded passes
//   (dense/Activation.h: branch-free float, AVX2 / AVX-512 copies picked at
//   run time).
// Experts are independent: with at least as many experts as threads, each
// thread runs whole experts (no fork/join per GEMM); otherwise experts run in
// order and each GEMM is spread over the threads. The GEMMs go through
// dense::gemm either way, whose blocks do not depend on the schedule, so
// both give the same bits.
//
//===----------------------------------------------------------------------===//
#include "moert/train/ExpertFfn.h"

#include "moert/dense/Gemm.h"
#include "moert/dense/ParallelChunks.h"

#include <algorithm>
#include <vector>

namespace moert {
namespace train {

namespace {

using dense::ActivationKind;

/// C[m, n] = A[m, k] B[k, n] (+ C if accumulate), row-major.
void gemm(bool transA, bool transB, int64_t m, int64_t n, int64_t k,
          const float *a, const float *b, float *c, bool accumulate = false) {
  dense::gemm(transA, transB, m, n, k, 1.0f, a, transA ? m : k, b,
              transB ? k : n, accumulate ? 1.0f : 0.0f, c, n);
}

/// matrix[r, :] = row for every r: the starting value of a GEMM that adds
/// a bias.
void fillRows(int64_t rows, int64_t cols, const float *row, float *matrix) {
  for (int64_t r = 0; r < rows; ++r)
    std::copy(row, row + cols, matrix + r * cols);
}

/// sums[c] = sum over rows of matrix[r, c], in float. Rows are summed in
/// blocks whose partial sums are then added, which keeps the rounding error
/// near (block + rows / block) ulps instead of growing with every row.
constexpr int64_t kRowBlock = 128;

void sumRows(int64_t rows, int64_t cols, const float *matrix, float *sums) {
  std::fill(sums, sums + cols, 0.0f);
  std::vector<float> partial(static_cast<size_t>(cols));
  for (int64_t begin = 0; begin < rows; begin += kRowBlock) {
    const int64_t end = std::min(rows, begin + kRowBlock);
    std::copy(matrix + begin * cols, matrix + (begin + 1) * cols,
              partial.begin());
    for (int64_t r = begin + 1; r < end; ++r) {
      const float *row = matrix + r * cols;
      for (int64_t c = 0; c < cols; ++c)
        partial[c] += row[c];
    }
    for (int64_t c = 0; c < cols; ++c)
      sums[c] += partial[c];
  }
}

/// grad[i] *= derivative[i] (dZ = dA * act'(Z)), and sums[c] = the column
/// sums of the product (the bias gradient), blocked as in sumRows.
void scaleAndSumRows(int64_t rows, int64_t cols, const float *derivative,
                     float *grad, float *sums) {
  std::fill(sums, sums + cols, 0.0f);
  std::vector<float> partial(static_cast<size_t>(cols));
  for (int64_t begin = 0; begin < rows; begin += kRowBlock) {
    const int64_t end = std::min(rows, begin + kRowBlock);
    std::fill(partial.begin(), partial.end(), 0.0f);
    for (int64_t r = begin; r < end; ++r) {
      float *row = grad + r * cols;
      const float *d = derivative + r * cols;
      for (int64_t c = 0; c < cols; ++c) {
        row[c] *= d[c];
        partial[c] += row[c];
      }
    }
    for (int64_t c = 0; c < cols; ++c)
      sums[c] += partial[c];
  }
}

/// The activation of a [C, H] block in one pass: in place when `activated`
/// is null, else activated = act(z) and z = act'(z). Single-threaded: the
/// caller may already run one expert per thread.
void activationPass(ActivationKind kind, int64_t count, float *z,
                    float *activated) {
  const dense::detail::ActivationPasses &passes =
      dense::detail::activationPasses();
  if (activated)
    passes.forwardWithDerivative(kind, count, z, activated);
  else
    passes.forward(kind, count, z, z);
}

/// Rounds a block to the GEMM input precision (no-op for f32). Runs on the
/// calling thread: the caller may already run one expert per thread.
void roundInPlace(ComputeType type, int64_t count, float *values) {
  if (type == ComputeType::F32)
    return;
  for (int64_t i = 0; i < count; ++i)
    values[i] = roundToCompute(type, values[i]);
}

//===----------------------------------------------------------------------===//
// Scheduling
//===----------------------------------------------------------------------===//

/// Scratch of the calling thread, grown on demand and kept: the kernels run
/// every step with the same shapes, so after the first step no call
/// allocates (large allocations would otherwise be fresh pages each time).
float *threadScratch(size_t floats) {
  thread_local std::vector<float> scratch;
  if (scratch.size() < floats)
    scratch.resize(floats);
  return scratch.data();
}

/// Below this many multiply-adds per call a parallel region costs more
/// than it saves (a fork/join is ~5 us with passive waiting on 2 cores).
constexpr int64_t kMinSpreadWork = int64_t{1} << 18;

/// Runs perExpert(e) for every expert: spread over the OpenMP threads if
/// expertFfnSpreadsExperts, in order (each GEMM threaded) otherwise.
template <typename F>
void forEachExpert(const ExpertFfnShape &shape, F &&perExpert) {
  if (!expertFfnSpreadsExperts(shape)) {
    for (int64_t e = 0; e < shape.numExperts; ++e)
      perExpert(e);
    return;
  }
#pragma omp parallel for schedule(static)
  for (int64_t e = 0; e < shape.numExperts; ++e)
    perExpert(e);
}

} // namespace

bool expertFfnSpreadsExperts(const ExpertFfnShape &s) {
  const int64_t threads = dense::detail::maxTeamThreads();
  const int64_t work = s.numExperts * s.capacity * s.modelDim * s.hiddenDim;
  // An uneven split (E % threads != 0) still pays when every thread gets
  // several experts.
  return threads > 1 && s.numExperts >= threads && work >= kMinSpreadWork &&
         (s.numExperts % threads == 0 || s.numExperts >= 4 * threads);
}

void expertFfnForward(const ExpertFfnShape &s, const float *input,
                      const float *w1, const float *b1, const float *w2,
                      const float *b2, float *output, float *hidden) {
  const int64_t c = s.capacity, m = s.modelDim, h = s.hiddenDim;
  const int64_t numExperts = s.numExperts;
  RoundedCopy x(s.compute, numExperts * c * m, input);
  RoundedCopy w1r(s.compute, numExperts * m * h, w1);
  RoundedCopy w2r(s.compute, numExperts * h * m, w2);
  forEachExpert(s, [&](int64_t e) {
    float *a =
        hidden ? hidden + e * c * h : threadScratch(static_cast<size_t>(c * h));
    fillRows(c, h, b1 + e * h, a);
    gemm(false, false, c, h, m, x.get() + e * c * m, w1r.get() + e * m * h, a,
         /*accumulate=*/true);
    activationPass(s.activation, c * h, a, nullptr);
    roundInPlace(s.compute, c * h, a);
    float *y = output + e * c * m;
    fillRows(c, m, b2 + e * m, y);
    gemm(false, false, c, m, h, a, w2r.get() + e * h * m, y,
         /*accumulate=*/true);
  });
}

void expertFfnBackward(const ExpertFfnShape &s, const float *outputGrad,
                       const float *input, const float *w1, const float *b1,
                       const float *w2, float *inputGrad, float *w1Grad,
                       float *b1Grad, float *w2Grad, float *b2Grad) {
  const int64_t c = s.capacity, m = s.modelDim, h = s.hiddenDim;
  const size_t block = static_cast<size_t>(c * h);
  const int64_t numExperts = s.numExperts;
  RoundedCopy xr(s.compute, numExperts * c * m, input);
  RoundedCopy dyr(s.compute, numExperts * c * m, outputGrad);
  RoundedCopy w1r(s.compute, numExperts * m * h, w1);
  RoundedCopy w2r(s.compute, numExperts * h * m, w2);
  forEachExpert(s, [&](int64_t e) {
    float *scratch = threadScratch(3 * block);
    float *derivative = scratch;       // Z, then act'(Z)
    float *a = scratch + block;        // act(Z)
    float *grad = scratch + 2 * block; // dA, then dZ
    const float *x = xr.get() + e * c * m;
    const float *dy = dyr.get() + e * c * m;
    const float *w1e = w1r.get() + e * m * h;
    const float *w2e = w2r.get() + e * h * m;
    // Recompute the hidden layer, with the derivative the backward needs.
    fillRows(c, h, b1 + e * h, derivative);
    gemm(false, false, c, h, m, x, w1e, derivative, /*accumulate=*/true);
    activationPass(s.activation, c * h, derivative, a);
    roundInPlace(s.compute, c * h, a);
    // Second layer: dW2 = A^T dY, db2 = sum dY (of the fp32 gradient),
    // dA = dY W2^T.
    if (w2Grad)
      gemm(true, false, h, m, c, a, dy, w2Grad + e * h * m);
    if (b2Grad)
      sumRows(c, m, outputGrad + e * c * m, b2Grad + e * m);
    if (!w1Grad && !b1Grad && !inputGrad)
      return;
    gemm(false, true, c, h, m, dy, w2e, grad);
    // Through the activation (dZ and db1 in one pass), then the first layer.
    if (b1Grad) {
      scaleAndSumRows(c, h, derivative, grad, b1Grad + e * h);
    } else {
      for (size_t i = 0; i < block; ++i)
        grad[i] *= derivative[i];
    }
    roundInPlace(s.compute, c * h, grad);
    if (w1Grad)
      gemm(true, false, m, h, c, x, grad, w1Grad + e * m * h);
    if (inputGrad)
      gemm(false, true, c, m, h, grad, w1e, inputGrad + e * c * m);
  });
}

} // namespace train
} // namespace moert
