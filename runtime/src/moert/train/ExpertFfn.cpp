//===- ExpertFfn.cpp - Batched per-expert MLP (moe.expert_ffn) ------------===//
#include "moert/train/ExpertFfn.h"

#include "moert/dense/Linear.h"

#include <cblas.h>

#include <vector>

namespace moert {
namespace train {

namespace {

/// C[m, n] = A[m, k] B[k, n] (+ C if accumulate), row-major.
void gemm(bool transA, bool transB, int64_t m, int64_t n, int64_t k,
          const float *a, const float *b, float *c, bool accumulate = false) {
  cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans,
              transB ? CblasTrans : CblasNoTrans, static_cast<int>(m),
              static_cast<int>(n), static_cast<int>(k), 1.0f, a,
              static_cast<int>(transA ? m : k), b,
              static_cast<int>(transB ? k : n), accumulate ? 1.0f : 0.0f, c,
              static_cast<int>(n));
}

/// rows[r, :] += bias for every row.
void addBias(int64_t rows, int64_t cols, const float *bias, float *matrix) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c)
      matrix[r * cols + c] += bias[c];
}

} // namespace

void expertFfnForward(const ExpertFfnShape &s, const float *input,
                      const float *w1, const float *b1, const float *w2,
                      const float *b2, float *output, float *hidden) {
  const int64_t c = s.capacity, m = s.modelDim, h = s.hiddenDim;
  std::vector<float> ownHidden;
  if (!hidden) {
    ownHidden.resize(static_cast<size_t>(s.numExperts * c * h));
    hidden = ownHidden.data();
  }
  std::vector<float> preActivation(static_cast<size_t>(c * h));
  for (int64_t e = 0; e < s.numExperts; ++e) {
    const float *x = input + e * c * m;
    float *z = preActivation.data();
    float *a = hidden + e * c * h;
    gemm(false, false, c, h, m, x, w1 + e * m * h, z);
    addBias(c, h, b1 + e * h, z);
    dense::activationForward(s.activation, c * h, z, a);
    float *y = output + e * c * m;
    gemm(false, false, c, m, h, a, w2 + e * h * m, y);
    addBias(c, m, b2 + e * m, y);
  }
}

void expertFfnBackward(const ExpertFfnShape &s, const float *outputGrad,
                       const float *input, const float *w1, const float *b1,
                       const float *w2, float *inputGrad, float *w1Grad,
                       float *b1Grad, float *w2Grad, float *b2Grad) {
  const int64_t c = s.capacity, m = s.modelDim, h = s.hiddenDim;
  std::vector<float> z(static_cast<size_t>(c * h)),
      a(static_cast<size_t>(c * h)), dA(static_cast<size_t>(c * h)),
      dZ(static_cast<size_t>(c * h));
  for (int64_t e = 0; e < s.numExperts; ++e) {
    const float *x = input + e * c * m;
    const float *dy = outputGrad + e * c * m;
    const float *w1e = w1 + e * m * h;
    const float *w2e = w2 + e * h * m;
    // Recompute the hidden layer.
    gemm(false, false, c, h, m, x, w1e, z.data());
    addBias(c, h, b1 + e * h, z.data());
    dense::activationForward(s.activation, c * h, z.data(), a.data());
    // Second layer: dW2 = A^T dY, db2 = sum dY, dA = dY W2^T.
    if (w2Grad)
      gemm(true, false, h, m, c, a.data(), dy, w2Grad + e * h * m);
    if (b2Grad)
      dense::sumRows(c, m, dy, b2Grad + e * m);
    gemm(false, true, c, h, m, dy, w2e, dA.data());
    // Through the activation, then the first layer.
    dense::activationBackward(s.activation, c * h, dA.data(), z.data(),
                              dZ.data());
    if (w1Grad)
      gemm(true, false, m, h, c, x, dZ.data(), w1Grad + e * m * h);
    if (b1Grad)
      dense::sumRows(c, h, dZ.data(), b1Grad + e * h);
    if (inputGrad)
      gemm(false, true, c, m, h, dZ.data(), w1e, inputGrad + e * c * m);
  }
}

} // namespace train
} // namespace moert
