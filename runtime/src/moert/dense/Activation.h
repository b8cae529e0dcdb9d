//===- Activation.h - Pointwise nonlinearities (moe.activation) -----------===//
//
// relu, gelu (exact, with erf), gelu_tanh (the tanh approximation) and silu,
// with their derivatives. The enum mirrors the dialect's ActivationKind so a
// plan can pass the integer through unchanged.
//
// The math is the branch-free float code of VectorMath.h, not libm, so the
// passes vectorize (AVX-512 / AVX2 / baseline picked at run time, see
// IsaVariants.h). Against libm in double: gelu and its derivative within
// 3e-7 (1 + |x|) (Phi to 3e-7 absolute), gelu_tanh and silu within 1e-6
// (1 + |x|). Large counts are split over the OpenMP threads; each element's
// result does not depend on the thread count.
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_DENSE_ACTIVATION_H
#define MOERT_DENSE_ACTIVATION_H

#include "moert/dense/IsaVariants.h"

#include <cstdint>

namespace moert {
namespace dense {

/// Same values as mlir::moe::ActivationKind.
enum class ActivationKind : int32_t {
  Relu = 0,
  Gelu = 1,
  GeluTanh = 2,
  Silu = 3,
};

/// Name as written in the IR ("relu", "gelu", "gelu_tanh", "silu").
const char *activationName(ActivationKind kind);

/// output[i] = act(input[i]); output may alias input.
void activationForward(ActivationKind kind, int64_t count, const float *input,
                       float *output);

/// inputGrad[i] = outputGrad[i] * act'(input[i]); inputGrad may alias
/// outputGrad. relu'(0) is taken as 0 (as PyTorch does).
void activationBackward(ActivationKind kind, int64_t count,
                        const float *outputGrad, const float *input,
                        float *inputGrad);

namespace detail {

/// Single-threaded element-wise passes of one instruction-set variant: for
/// kernels that run their own threads (the expert FFN) and for tests.
struct ActivationPasses {
  /// out[i] = act(in[i]); out may alias in.
  void (*forward)(ActivationKind kind, int64_t count, const float *in,
                  float *out);
  /// activated[i] = act(z[i]), then z[i] = act'(z[i]) (one erf and exp per
  /// element for both).
  void (*forwardWithDerivative)(ActivationKind kind, int64_t count, float *z,
                                float *activated);
  /// inGrad[i] = outGrad[i] * act'(in[i]); inGrad may alias outGrad.
  void (*backward)(ActivationKind kind, int64_t count, const float *outGrad,
                   const float *in, float *inGrad);
};

/// The passes compiled for `isa`, which must be in supportedIsas().
const ActivationPasses &activationPasses(Isa isa);

/// The passes of bestIsa(): what the kernels use.
const ActivationPasses &activationPasses();

} // namespace detail

} // namespace dense
} // namespace moert

#endif // MOERT_DENSE_ACTIVATION_H
