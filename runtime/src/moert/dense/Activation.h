//===- Activation.h - Pointwise nonlinearities (moe.activation) -----------===//
//
// relu, gelu (exact, with erf), gelu_tanh (the tanh approximation) and silu,
// with their derivatives. The enum mirrors the dialect's ActivationKind so a
// plan can pass the integer through unchanged.
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_DENSE_ACTIVATION_H
#define MOERT_DENSE_ACTIVATION_H

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

} // namespace dense
} // namespace moert

#endif // MOERT_DENSE_ACTIVATION_H
