//===- ExpertFfn.h - Batched per-expert MLP (moe.expert_ffn) --------------===//
//
// For each expert e of the [E, C, M] capacity buffer:
//   out[e] = act(in[e] W1[e] + b1[e]) W2[e] + b2[e]
// with W1 [E, M, H], b1 [E, H], W2 [E, H, M], b2 [E, M]. Every GEMM goes
// through cblas_sgemm, one pair per expert; the E GEMMs of a layer have the
// same shape, which is what a grouped GEMM on the GPU batches.
//
// The activations are the vectorized passes of dense/Activation.h
// (exact-erf GELU to 3e-7 (1 + |x|) of libm), not libm. Bias gradients
// are float sums (blocked, see ExpertFfn.cpp). Threading: experts are spread
// over the OpenMP threads when there are enough of them, else each GEMM is;
// the GEMMs are dense::gemm's fixed blocks either way, so results are the
// same bits for every thread count. Each calling thread keeps up to 3*C*H
// floats of scratch between calls.
//
// `compute` (bf16 / f16; default f32) emulates the experts' GEMMs on
// reduced-precision inputs with fp32 accumulation: the input, W1, W2 and
// the output gradient are rounded to that format (copies, scratch of the
// call), and so are the activated hidden layer before the second GEMM (and
// dW2) and the hidden gradient dZ before dW1 and dX. Biases, activations,
// bias gradients and all outputs stay fp32.
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_TRAIN_EXPERTFFN_H
#define MOERT_TRAIN_EXPERTFFN_H

#include "moert/Half.h"
#include "moert/dense/Activation.h"

#include <cstdint>

namespace moert {
namespace train {

struct ExpertFfnShape {
  int64_t numExperts = 0; // E (local experts under expert parallelism)
  int64_t capacity = 0;   // C
  int64_t modelDim = 0;   // M
  int64_t hiddenDim = 0;  // H
  dense::ActivationKind activation = dense::ActivationKind::Gelu;
  ComputeType compute = ComputeType::F32; // input precision of the GEMMs
};

/// Whether the kernels run this shape's experts in parallel, one expert per
/// OpenMP thread at a time (enough experts for the current thread count and
/// enough work), rather than one after the other with each GEMM spread over
/// the threads. Exposed for benchmarks that time the same schedule with bare
/// GEMMs.
bool expertFfnSpreadsExperts(const ExpertFfnShape &shape);

/// Forward. `hidden` is scratch of E*C*H floats (the activated hidden
/// layer); it may be null, then the kernel uses its own per-thread scratch.
void expertFfnForward(const ExpertFfnShape &shape, const float *input,
                      const float *w1, const float *b1, const float *w2,
                      const float *b2, float *output, float *hidden = nullptr);

/// Backward: overwrites every non-null gradient. The hidden pre-activation
/// is recomputed from `input` (one GEMM per expert) instead of being kept
/// from the forward pass, trading a GEMM for E*C*H floats of memory.
void expertFfnBackward(const ExpertFfnShape &shape, const float *outputGrad,
                       const float *input, const float *w1, const float *b1,
                       const float *w2, float *inputGrad, float *w1Grad,
                       float *b1Grad, float *w2Grad, float *b2Grad);

} // namespace train
} // namespace moert

#endif // MOERT_TRAIN_EXPERTFFN_H
