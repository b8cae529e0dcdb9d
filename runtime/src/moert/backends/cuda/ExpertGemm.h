//===- ExpertGemm.h - moe.expert_ffn's GEMMs in column-major terms -*- C++ -*-=//
//
// The expert FFN runs, for each local expert e of the [E, C, M] buffer,
//   Z = X W1 + b1 (W1 [M, H]),  Hd = act(Z),  Y = Hd W2 + b2 (W2 [H, M])
// and its backward pass
//   dW2 = Hd^T dY,  db2 = colsum(dY),  dHd = dY W2^T,  dZ = dHd act'(Z),
//   dW1 = X^T dZ,   db1 = colsum(dZ),  dX = dZ W1^T.
// The E products of each line have the same shape, so each is one
// cublasSgemmStridedBatched (or cublasGemmStridedBatchedEx) call over the
// experts. cuBLAS is column-major and the tensors are row-major: a
// row-major [r, c] matrix is the column-major [c, r] matrix of its
// transpose, so each product is issued as its transpose (as DenseGemm.h
// does for moe.linear). This file is host code without CUDA; a CPU test
// (tests/MoeMathTest.cpp) runs the descriptors through a plain column-major
// GEMM against train::expertFfnForward / expertFfnBackward.
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_BACKENDS_CUDA_EXPERTGEMM_H
#define MOERT_BACKENDS_CUDA_EXPERTGEMM_H

#include <cstdint>

namespace moert {
namespace cuda {

/// Which tensor of the expert FFN a GEMM operand is. Hidden holds Z or
/// Hd, HiddenGrad dHd or dZ ([E, C, H] each, in the call's workspace).
enum class ExpertOperand : uint8_t {
  Input,
  W1,
  W2,
  Hidden,
  HiddenGrad,
  Output,
  OutputGrad,
  InputGrad,
  W1Grad,
  W2Grad,
};

/// For each expert e: C_e = op(A_e) op(B_e) (column-major, as in
/// ColumnMajorGemm), X_e starting strideX elements after X_{e-1}.
struct ExpertBatchedGemm {
  ExpertOperand a = ExpertOperand::Input, b = ExpertOperand::Input,
                c = ExpertOperand::Output;
  bool transA = false, transB = false;
  int64_t m = 0, n = 0, k = 0;
  int64_t lda = 1, ldb = 1, ldc = 1;
  int64_t strideA = 0, strideB = 0, strideC = 0;
  int64_t batch = 0;
};

struct ExpertDims {
  int64_t experts = 0, capacity = 0, model = 0, hidden = 0;
};

namespace detail {
inline ExpertBatchedGemm expertGemm(const ExpertDims &d, ExpertOperand a,
                                    bool transA, int64_t lda, int64_t strideA,
                                    ExpertOperand b, bool transB, int64_t ldb,
                                    int64_t strideB, ExpertOperand c,
                                    int64_t ldc, int64_t strideC, int64_t m,
                                    int64_t n, int64_t k) {
  ExpertBatchedGemm g;
  g.a = a;
  g.transA = transA;
  g.lda = lda;
  g.strideA = strideA;
  g.b = b;
  g.transB = transB;
  g.ldb = ldb;
  g.strideB = strideB;
  g.c = c;
  g.ldc = ldc;
  g.strideC = strideC;
  g.m = m;
  g.n = n;
  g.k = k;
  g.batch = d.experts;
  return g;
}
} // namespace detail

/// Z [C, H] = X [C, M] W1 [M, H], as Z^T = W1^T X^T.
inline ExpertBatchedGemm expertHiddenGemm(const ExpertDims &d) {
  using O = ExpertOperand;
  const int64_t C = d.capacity, M = d.model, H = d.hidden;
  return detail::expertGemm(d, O::W1, false, H, M * H, O::Input, false, M,
                            C * M, O::Hidden, H, C * H, H, C, M);
}

/// Y [C, M] = Hd [C, H] W2 [H, M], as Y^T = W2^T Hd^T.
inline ExpertBatchedGemm expertOutputGemm(const ExpertDims &d) {
  using O = ExpertOperand;
  const int64_t C = d.capacity, M = d.model, H = d.hidden;
  return detail::expertGemm(d, O::W2, false, M, H * M, O::Hidden, false, H,
                            C * H, O::Output, M, C * M, M, C, H);
}

/// dW2 [H, M] = Hd^T [H, C] dY [C, M], as dW2^T = dY^T Hd.
inline ExpertBatchedGemm expertW2GradGemm(const ExpertDims &d) {
  using O = ExpertOperand;
  const int64_t C = d.capacity, M = d.model, H = d.hidden;
  return detail::expertGemm(d, O::OutputGrad, false, M, C * M, O::Hidden, true,
                            H, C * H, O::W2Grad, M, H * M, M, H, C);
}

/// dHd [C, H] = dY [C, M] W2^T, as dHd^T = W2 dY^T.
inline ExpertBatchedGemm expertHiddenGradGemm(const ExpertDims &d) {
  using O = ExpertOperand;
  const int64_t C = d.capacity, M = d.model, H = d.hidden;
  return detail::expertGemm(d, O::W2, true, M, H * M, O::OutputGrad, false, M,
                            C * M, O::HiddenGrad, H, C * H, H, C, M);
}

/// dW1 [M, H] = X^T [M, C] dZ [C, H], as dW1^T = dZ^T X.
inline ExpertBatchedGemm expertW1GradGemm(const ExpertDims &d) {
  using O = ExpertOperand;
  const int64_t C = d.capacity, M = d.model, H = d.hidden;
  return detail::expertGemm(d, O::HiddenGrad, false, H, C * H, O::Input, true,
                            M, C * M, O::W1Grad, H, M * H, H, M, C);
}

/// dX [C, M] = dZ [C, H] W1^T, as dX^T = W1 dZ^T.
inline ExpertBatchedGemm expertInputGradGemm(const ExpertDims &d) {
  using O = ExpertOperand;
  const int64_t C = d.capacity, M = d.model, H = d.hidden;
  return detail::expertGemm(d, O::W1, true, H, M * H, O::HiddenGrad, false, H,
                            C * H, O::InputGrad, M, C * M, M, C, H);
}

} // namespace cuda
} // namespace moert

#endif // MOERT_BACKENDS_CUDA_EXPERTGEMM_H
