//===- Checked.h - Shape-validating entry points of the dense kernels -----===//
//
// The raw kernels trust their sizes; these entry points take each tensor as
// a pointer plus its shape, check every cross-operand rule of the
// corresponding moe op (and the data-dependent ones: token ids, labels),
// and only then run the kernel. A failed check writes nothing and returns a
// moert::Status naming the op, the operand, what was expected and what was
// found: InvalidArgument for shapes and attributes, OutOfRange for token ids
// and labels outside the vocabulary.
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_DENSE_CHECKED_H
#define MOERT_DENSE_CHECKED_H

#include "moert/Status.h"
#include "moert/dense/Activation.h"
#include "moert/dense/CrossEntropy.h"
#include "moert/dense/Dropout.h"
#include "moert/dense/Embedding.h"

#include <cstdint>
#include <string>
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

/// "[2, 3, 4]", for messages.
std::string shapeToString(const std::vector<int64_t> &shape);

namespace checked {

/// moe.linear. `bias` may be null.
Status linear(const ConstFloatRef &input, const ConstFloatRef &weight,
              const ConstFloatRef *bias, bool transposeWeight,
              const FloatRef &output);
/// moe.linear_grad and moe.bias_grad in one call; null outputs are skipped.
Status linearGrad(const ConstFloatRef &outputGrad, const ConstFloatRef &input,
                  const ConstFloatRef &weight, bool transposeWeight,
                  const FloatRef *inputGrad, const FloatRef *weightGrad,
                  const FloatRef *biasGrad);

/// moe.layer_norm / moe.layer_norm_grad (statistics recomputed).
Status layerNorm(const ConstFloatRef &input, const ConstFloatRef &scale,
                 const ConstFloatRef &bias, double epsilon,
                 const FloatRef &output);
Status layerNormGrad(const ConstFloatRef &outputGrad,
                     const ConstFloatRef &input, const ConstFloatRef &scale,
                     double epsilon, const FloatRef &inputGrad,
                     const FloatRef &scaleGrad, const FloatRef &biasGrad);

/// moe.activation / moe.activation_grad.
Status activation(ActivationKind kind, const ConstFloatRef &input,
                  const FloatRef &output);
Status activationGrad(ActivationKind kind, const ConstFloatRef &outputGrad,
                      const ConstFloatRef &input, const FloatRef &inputGrad);

/// moe.embedding. `positions` is required for Learned and ignored otherwise.
Status embedding(const ConstTokenRef &tokens, const ConstFloatRef &table,
                 const ConstFloatRef *positions, PositionKind position,
                 bool scaled, const FloatRef &output);
/// moe.embedding_grad (and moe.position_grad when positionsGrad is given).
Status embeddingGrad(const ConstFloatRef &outputGrad,
                     const ConstTokenRef &tokens, bool scaled,
                     const FloatRef &tableGrad, const FloatRef *positionsGrad);

/// moe.attention / moe.attention_grad. `keyMask` may be null.
Status attention(const ConstFloatRef &query, const ConstFloatRef &key,
                 const ConstFloatRef &value, const ConstMaskRef *keyMask,
                 int64_t numHeads, bool causal, const FloatRef &output);
Status attentionGrad(const ConstFloatRef &outputGrad,
                     const ConstFloatRef &query, const ConstFloatRef &key,
                     const ConstFloatRef &value, const ConstMaskRef *keyMask,
                     int64_t numHeads, bool causal, const FloatRef &queryGrad,
                     const FloatRef &keyGrad, const FloatRef &valueGrad);

/// moe.cross_entropy / moe.cross_entropy_grad.
Status crossEntropy(const ConstFloatRef &logits, const ConstTokenRef &labels,
                    const CrossEntropyOptions &options, float *loss);
Status crossEntropyGrad(float lossGrad, const ConstFloatRef &logits,
                        const ConstTokenRef &labels,
                        const CrossEntropyOptions &options,
                        const FloatRef &logitsGrad);

/// moe.dropout on a whole (unpartitioned) tensor; also its gradient.
Status dropout(const DropoutParams &params, const ConstFloatRef &input,
               const FloatRef &output);

/// moe.padding_mask and moe.add.
Status paddingMask(const ConstTokenRef &tokens, int64_t padId,
                   const MaskRef &mask);
Status add(const ConstFloatRef &lhs, const ConstFloatRef &rhs,
           const FloatRef &output);

} // namespace checked
} // namespace dense
} // namespace moert

#endif // MOERT_DENSE_CHECKED_H
