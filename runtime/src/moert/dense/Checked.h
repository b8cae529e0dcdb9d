//===- Checked.h - Shape-validating entry points of the dense kernels -----===//
//
// The raw kernels trust their sizes; these entry points take each tensor as
// a pointer plus its shape, check every cross-operand rule of the
// corresponding moe op (and the data-dependent ones: token ids, labels),
// and only then run the kernel. A failed check writes nothing and returns a
// message naming the op, the operand, what was expected and what was found.
//
// KernelStatus is deliberately tiny: the runtime's shared Status type
// (moert/Status.h) did not exist when this was written. It converts to that
// type with one line (ok() / message()).
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_DENSE_CHECKED_H
#define MOERT_DENSE_CHECKED_H

#include "moert/dense/Activation.h"
#include "moert/dense/CrossEntropy.h"
#include "moert/dense/Dropout.h"
#include "moert/dense/Embedding.h"

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace moert {
namespace dense {

/// A contiguous row-major tensor: data and shape, nothing owned.
template <typename T> struct TensorRef {
  T *data = nullptr;
  std::vector<int64_t> shape;

  int64_t numElements() const {
    int64_t count = 1;
    for (int64_t dim : shape)
      count *= dim;
    return count;
  }
};
using ConstFloatRef = TensorRef<const float>;
using FloatRef = TensorRef<float>;
using ConstTokenRef = TensorRef<const int32_t>;
using ConstMaskRef = TensorRef<const uint8_t>;
using MaskRef = TensorRef<uint8_t>;

/// Success, or the reason a checked entry point refused to run.
class [[nodiscard]] KernelStatus {
public:
  static KernelStatus success() { return KernelStatus(); }
  static KernelStatus failure(std::string message) {
    KernelStatus status;
    status.message_ = std::move(message);
    status.ok_ = false;
    return status;
  }
  bool ok() const { return ok_; }
  const std::string &message() const { return message_; }

private:
  bool ok_ = true;
  std::string message_;
};

/// "[2, 3, 4]", for messages.
std::string shapeToString(const std::vector<int64_t> &shape);

namespace checked {

/// moe.linear. `bias` may be null.
KernelStatus linear(const ConstFloatRef &input, const ConstFloatRef &weight,
                    const ConstFloatRef *bias, bool transposeWeight,
                    const FloatRef &output);
/// moe.linear_grad and moe.bias_grad in one call; null outputs are skipped.
KernelStatus linearGrad(const ConstFloatRef &outputGrad,
                        const ConstFloatRef &input, const ConstFloatRef &weight,
                        bool transposeWeight, const FloatRef *inputGrad,
                        const FloatRef *weightGrad, const FloatRef *biasGrad);

/// moe.layer_norm / moe.layer_norm_grad (statistics recomputed).
KernelStatus layerNorm(const ConstFloatRef &input, const ConstFloatRef &scale,
                       const ConstFloatRef &bias, double epsilon,
                       const FloatRef &output);
KernelStatus layerNormGrad(const ConstFloatRef &outputGrad,
                           const ConstFloatRef &input,
                           const ConstFloatRef &scale, double epsilon,
                           const FloatRef &inputGrad, const FloatRef &scaleGrad,
                           const FloatRef &biasGrad);

/// moe.activation / moe.activation_grad.
KernelStatus activation(ActivationKind kind, const ConstFloatRef &input,
                        const FloatRef &output);
KernelStatus activationGrad(ActivationKind kind,
                            const ConstFloatRef &outputGrad,
                            const ConstFloatRef &input,
                            const FloatRef &inputGrad);

/// moe.embedding. `positions` is required for Learned and ignored otherwise.
KernelStatus embedding(const ConstTokenRef &tokens, const ConstFloatRef &table,
                       const ConstFloatRef *positions, PositionKind position,
                       bool scaled, const FloatRef &output);
/// moe.embedding_grad (and moe.position_grad when positionsGrad is given).
KernelStatus embeddingGrad(const ConstFloatRef &outputGrad,
                           const ConstTokenRef &tokens, bool scaled,
                           const FloatRef &tableGrad,
                           const FloatRef *positionsGrad);

/// moe.attention / moe.attention_grad. `keyMask` may be null.
KernelStatus attention(const ConstFloatRef &query, const ConstFloatRef &key,
                       const ConstFloatRef &value, const ConstMaskRef *keyMask,
                       int64_t numHeads, bool causal, const FloatRef &output);
KernelStatus attentionGrad(const ConstFloatRef &outputGrad,
                           const ConstFloatRef &query, const ConstFloatRef &key,
                           const ConstFloatRef &value,
                           const ConstMaskRef *keyMask, int64_t numHeads,
                           bool causal, const FloatRef &queryGrad,
                           const FloatRef &keyGrad, const FloatRef &valueGrad);

/// moe.cross_entropy / moe.cross_entropy_grad.
KernelStatus crossEntropy(const ConstFloatRef &logits,
                          const ConstTokenRef &labels,
                          const CrossEntropyOptions &options, float *loss);
KernelStatus crossEntropyGrad(float lossGrad, const ConstFloatRef &logits,
                              const ConstTokenRef &labels,
                              const CrossEntropyOptions &options,
                              const FloatRef &logitsGrad);

/// moe.dropout on a whole (unpartitioned) tensor; also its gradient.
KernelStatus dropout(const DropoutParams &params, const ConstFloatRef &input,
                     const FloatRef &output);

/// moe.padding_mask and moe.add.
KernelStatus paddingMask(const ConstTokenRef &tokens, int64_t padId,
                         const MaskRef &mask);
KernelStatus add(const ConstFloatRef &lhs, const ConstFloatRef &rhs,
                 const FloatRef &output);

} // namespace checked
} // namespace dense
} // namespace moert

#endif // MOERT_DENSE_CHECKED_H
