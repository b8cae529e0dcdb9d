//===- DenseKernels.cpp - The CPU kernels of the dense ops ------------------===//
//
// Adapters from instructions (buffers + attributes, named after the dialect
// ops) to the runtime's CPU kernels. Shapes come from the buffer types,
// which the compiler and the plan loader verified; what depends on data
// (token ids, labels, routing) is checked by the kernels themselves and
// reported as errors. backends/cuda/ has the file of the same name.
//
//===----------------------------------------------------------------------===//
#include "moert/backends/cpu/CpuKernels.h"
#include "moert/backends/cpu/KernelUtil.h"

#include "moert/dense/Activation.h"
#include "moert/dense/Attention.h"
#include "moert/dense/CrossEntropy.h"
#include "moert/dense/Dropout.h"
#include "moert/dense/Elementwise.h"
#include "moert/dense/Embedding.h"
#include "moert/dense/LayerNorm.h"
#include "moert/dense/Linear.h"

#include <algorithm>
#include <cstring>
#include <vector>

namespace moert {
namespace cpu {

namespace {

/// moe.embedding, and moe.embedding_at (`at`: the last operand is the
/// position offset of the first token).
Status embedding(KernelCall &call, bool at) {
  const TensorType &tokens = call.operandType(0);
  const TensorType &table = call.operandType(1);
  int64_t position = 0;
  if (Expected<std::string> spelled = call.stringAttr("position");
      spelled.ok()) {
    if (*spelled == "none")
      position = 0;
    else if (*spelled == "sinusoidal")
      position = 1;
    else if (*spelled == "learned")
      position = 2;
    else
      return invalidArgument("position '" + *spelled +
                             "' is not none, sinusoidal or learned");
  } else {
    MOERT_ASSIGN_OR_RETURN(position, call.intAttr("position"));
  }
  dense::EmbeddingShape shape;
  shape.batch = leadingElements(tokens);
  shape.seqLen = lastDim(tokens);
  shape.vocabSize = table.shape[0];
  shape.modelDim = table.shape[1];
  const float *positions = nullptr;
  if (call.numOperands() == (at ? 4u : 3u)) {
    shape.numPositions = call.operandType(2).shape[0];
    positions = call.operand<float>(2);
  }
  if (at) {
    shape.positionOffset =
        *call.operand<int32_t>(call.numOperands() - 1);
    if (shape.positionOffset < 0 ||
        (positions &&
         shape.positionOffset + shape.seqLen > shape.numPositions))
      return outOfRange(
          "position offset " + std::to_string(shape.positionOffset) +
          " for " + std::to_string(shape.seqLen) + " tokens: expected >= 0" +
          (positions ? " and at most " +
                           std::to_string(shape.numPositions - shape.seqLen) +
                           " (the positions table has " +
                           std::to_string(shape.numPositions) + " rows)"
                     : std::string()));
  }
  int64_t bad = dense::embeddingForward(
      shape, static_cast<dense::PositionKind>(position), call.flag("scaled"),
      call.operand<int32_t>(0), call.operand<float>(1), positions,
      call.result<float>(0));
  if (bad != dense::kAllTokensValid)
    return outOfRange("token #" + std::to_string(bad) + " has id " +
                      std::to_string(call.operand<int32_t>(0)[bad]) +
                      ", outside the vocabulary [0, " +
                      std::to_string(shape.vocabSize) + ")");
  return Status::success();
}

Status runEmbedding(KernelCall &call) { return embedding(call, false); }
Status runEmbeddingAt(KernelCall &call) { return embedding(call, true); }

Status runCacheUpdate(KernelCall &call) {
  const TensorType &cache = call.operandType(0), &rows = call.operandType(1);
  const int64_t batch = cache.shape[0], length = cache.shape[1],
                width = cache.shape[2], count = rows.shape[1];
  const int64_t offset = *call.operand<int32_t>(2);
  if (offset < 0 || offset + count > length)
    return outOfRange("position offset " + std::to_string(offset) + " for " +
                      std::to_string(count) +
                      " rows: expected >= 0 and at most " +
                      std::to_string(length - count) + " (the cache holds " +
                      std::to_string(length) + " positions)");
  const size_t element = static_cast<size_t>(dtypeSize(cache.dtype));
  const auto *from = call.operand<uint8_t>(0);
  const auto *fresh = call.operand<uint8_t>(1);
  auto *to = call.result<uint8_t>(0);
  const size_t rowBytes = static_cast<size_t>(width) * element;
  if (to != from)
    std::memcpy(to, from, static_cast<size_t>(cache.byteSize()));
  for (int64_t b = 0; b < batch; ++b)
    std::memcpy(to + (b * length + offset) * rowBytes,
                fresh + b * count * rowBytes,
                static_cast<size_t>(count) * rowBytes);
  return Status::success();
}

Status runEmbeddingGrad(KernelCall &call) {
  const TensorType &tokens = call.operandType(1);
  const TensorType &table = call.resultType(0);
  dense::EmbeddingShape shape;
  shape.batch = leadingElements(tokens);
  shape.seqLen = lastDim(tokens);
  shape.vocabSize = table.shape[0];
  shape.modelDim = table.shape[1];
  int64_t bad = dense::embeddingBackward(
      shape, call.flag("scaled"), call.operand<float>(0),
      call.operand<int32_t>(1), call.result<float>(0), nullptr);
  if (bad != dense::kAllTokensValid)
    return outOfRange("token #" + std::to_string(bad) +
                      " is outside the vocabulary");
  return Status::success();
}

Status runPositionGrad(KernelCall &call) {
  const TensorType &dy = call.operandType(0);
  const TensorType &out = call.resultType(0);
  int64_t m = lastDim(dy), seqLen = dy.shape[dy.shape.size() - 2];
  int64_t batch = leadingElements(dy) / seqLen;
  float *grad = call.result<float>(0);
  std::memset(grad, 0, static_cast<size_t>(out.byteSize()));
  const float *src = call.operand<float>(0);
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t s = 0; s < seqLen; ++s)
      for (int64_t j = 0; j < m; ++j)
        grad[s * m + j] += src[(b * seqLen + s) * m + j];
  return Status::success();
}

dense::LinearShape linearShape(const TensorType &input,
                               const TensorType &weight, bool transpose) {
  dense::LinearShape shape;
  shape.rows = leadingElements(input);
  shape.inFeatures = lastDim(input);
  shape.outFeatures = transpose ? weight.shape[0] : weight.shape[1];
  shape.transposeWeight = transpose;
  return shape;
}

Status runLinear(KernelCall &call) {
  dense::LinearShape shape = linearShape(
      call.operandType(0), call.operandType(1), call.flag("transpose_weight"));
  MOERT_ASSIGN_OR_RETURN(shape.compute, computeType(call));
  dense::linearForward(shape, call.operand<float>(0), call.operand<float>(1),
                       call.numOperands() == 3 ? call.operand<float>(2)
                                               : nullptr,
                       call.result<float>(0));
  return Status::success();
}

Status runLinearGrad(KernelCall &call) {
  dense::LinearShape shape = linearShape(
      call.operandType(1), call.operandType(2), call.flag("transpose_weight"));
  MOERT_ASSIGN_OR_RETURN(shape.compute, computeType(call));
  dense::linearBackward(shape, call.operand<float>(0), call.operand<float>(1),
                        call.operand<float>(2), call.result<float>(0),
                        call.result<float>(1), nullptr);
  return Status::success();
}

Status runBiasGrad(KernelCall &call) {
  const TensorType &dy = call.operandType(0);
  dense::sumRows(leadingElements(dy), lastDim(dy), call.operand<float>(0),
                 call.result<float>(0));
  return Status::success();
}

Status runLayerNorm(KernelCall &call) {
  const TensorType &x = call.operandType(0);
  MOERT_ASSIGN_OR_RETURN(double eps, call.floatAttr("epsilon"));
  dense::layerNormForward(leadingElements(x), lastDim(x),
                          static_cast<float>(eps), call.operand<float>(0),
                          call.operand<float>(1), call.operand<float>(2),
                          call.result<float>(0), nullptr, nullptr);
  return Status::success();
}

Status runLayerNormGrad(KernelCall &call) {
  const TensorType &x = call.operandType(1);
  MOERT_ASSIGN_OR_RETURN(double eps, call.floatAttr("epsilon"));
  dense::layerNormBackward(leadingElements(x), lastDim(x),
                           static_cast<float>(eps), call.operand<float>(0),
                           call.operand<float>(1), call.operand<float>(2),
                           nullptr, nullptr, call.result<float>(0),
                           call.result<float>(1), call.result<float>(2));
  return Status::success();
}

Status runActivation(KernelCall &call) {
  MOERT_ASSIGN_OR_RETURN(dense::ActivationKind kind,
                         activationKind(call, "kind"));
  dense::activationForward(kind, call.operandType(0).numElements(),
                           call.operand<float>(0), call.result<float>(0));
  return Status::success();
}

Status runActivationGrad(KernelCall &call) {
  MOERT_ASSIGN_OR_RETURN(dense::ActivationKind kind,
                         activationKind(call, "kind"));
  dense::activationBackward(kind, call.operandType(1).numElements(),
                            call.operand<float>(0), call.operand<float>(1),
                            call.result<float>(0));
  return Status::success();
}

Status runAdd(KernelCall &call) {
  dense::add(call.operandType(0).numElements(), call.operand<float>(0),
             call.operand<float>(1), call.result<float>(0));
  return Status::success();
}

/// Dropout and its gradient draw the same mask. With `shard_axes`, the
/// operand is this rank's token shard of a batch-major tensor, whose
/// logical elements start at (shard index) x (local elements).
Status runDropoutMask(KernelCall &call, bool backward) {
  MOERT_ASSIGN_OR_RETURN(double rate, call.floatAttr("rate"));
  MOERT_ASSIGN_OR_RETURN(int64_t stream, call.intAttr("stream"));
  MOERT_ASSIGN_OR_RETURN(GroupPosition shard, call.shardPosition());
  dense::DropoutParams params;
  params.rate = rate;
  params.seed = call.context().seed;
  params.stream = static_cast<uint32_t>(stream);
  params.step = call.context().step;
  params.training = call.context().training;
  int64_t count = call.operandType(0).numElements();
  dense::DropoutLayout layout =
      dense::contiguousDropoutLayout(count, shard.index * count);
  if (backward)
    dense::dropoutBackward(params, layout, call.operand<float>(0),
                           call.result<float>(0));
  else
    dense::dropoutForward(params, layout, call.operand<float>(0),
                          call.result<float>(0));
  return Status::success();
}

Status runDropout(KernelCall &call) { return runDropoutMask(call, false); }
Status runDropoutGrad(KernelCall &call) { return runDropoutMask(call, true); }

Status runPaddingMask(KernelCall &call) {
  MOERT_ASSIGN_OR_RETURN(int64_t padId, call.intAttr("pad_id"));
  dense::paddingMask(call.operandType(0).numElements(),
                     call.operand<int32_t>(0), padId, call.result<uint8_t>(0));
  return Status::success();
}

Expected<dense::AttentionShape> attentionShape(const KernelCall &call,
                                               size_t queryOperand) {
  const TensorType &q = call.operandType(queryOperand);
  const TensorType &k = call.operandType(queryOperand + 1);
  MOERT_ASSIGN_OR_RETURN(int64_t heads, call.intAttr("num_heads"));
  dense::AttentionShape shape;
  shape.batch = q.shape[0];
  shape.queryLen = q.shape[1];
  shape.keyLen = k.shape[1];
  shape.modelDim = q.shape[2];
  shape.numHeads = heads;
  shape.causal = call.flag("causal");
  MOERT_ASSIGN_OR_RETURN(shape.compute, computeType(call));
  return shape;
}

Status runAttention(KernelCall &call) {
  MOERT_ASSIGN_OR_RETURN(dense::AttentionShape shape, attentionShape(call, 0));
  dense::attentionForward(shape, call.operand<float>(0), call.operand<float>(1),
                          call.operand<float>(2),
                          call.numOperands() == 4 ? call.operand<uint8_t>(3)
                                                  : nullptr,
                          call.result<float>(0), nullptr);
  return Status::success();
}

Status runAttentionGrad(KernelCall &call) {
  MOERT_ASSIGN_OR_RETURN(dense::AttentionShape shape, attentionShape(call, 1));
  dense::attentionBackward(
      shape, call.operand<float>(0), call.operand<float>(1),
      call.operand<float>(2), call.operand<float>(3),
      call.numOperands() == 5 ? call.operand<uint8_t>(4) : nullptr, nullptr,
      call.result<float>(0), call.result<float>(1), call.result<float>(2));
  return Status::success();
}

Expected<dense::CrossEntropyOptions> crossEntropyOptions(KernelCall &call) {
  dense::CrossEntropyOptions options;
  MOERT_ASSIGN_OR_RETURN(options.labelSmoothing,
                         call.floatAttr("label_smoothing"));
  MOERT_ASSIGN_OR_RETURN(options.ignoreIndex, call.intAttr("ignore_index"));
  return options;
}

Status badLabel(const int32_t *labels, int64_t index, int64_t vocab) {
  return outOfRange("label #" + std::to_string(index) + " is " +
                    std::to_string(labels[index]) +
                    ", outside the vocabulary [0, " + std::to_string(vocab) +
                    ") and not the ignore index");
}

Status runCrossEntropy(KernelCall &call) {
  MOERT_ASSIGN_OR_RETURN(dense::CrossEntropyOptions options,
                         crossEntropyOptions(call));
  const TensorType &logits = call.operandType(0);
  int64_t vocab = lastDim(logits), tokens = leadingElements(logits);
  int64_t bad = dense::crossEntropyForward(
      tokens, vocab, call.operand<float>(0), call.operand<int32_t>(1), options,
      call.result<float>(0), nullptr, nullptr);
  if (bad != dense::kAllLabelsValid)
    return badLabel(call.operand<int32_t>(1), bad, vocab);
  return Status::success();
}

Status runCrossEntropyGrad(KernelCall &call) {
  MOERT_ASSIGN_OR_RETURN(dense::CrossEntropyOptions options,
                         crossEntropyOptions(call));
  const TensorType &logits = call.operandType(1);
  int64_t vocab = lastDim(logits), tokens = leadingElements(logits);
  int64_t bad = dense::crossEntropyBackward(
      tokens, vocab, *call.operand<float>(0), call.operand<float>(1),
      call.operand<int32_t>(2), options, nullptr, call.result<float>(0));
  if (bad != dense::kAllLabelsValid)
    return badLabel(call.operand<int32_t>(2), bad, vocab);
  return Status::success();
}

} // namespace

void registerDenseKernels(exec::KernelRegistry &registry) {
  registry.add(Op::embedding, {runEmbedding});
  registry.add(Op::embedding_at, {runEmbeddingAt});
  registry.add(Op::cache_update, {runCacheUpdate});
  registry.add(Op::embedding_grad, {runEmbeddingGrad});
  registry.add(Op::position_grad, {runPositionGrad});
  registry.add(Op::linear, {runLinear});
  registry.add(Op::linear_grad, {runLinearGrad});
  registry.add(Op::bias_grad, {runBiasGrad});
  registry.add(Op::layer_norm, {runLayerNorm});
  registry.add(Op::layer_norm_grad, {runLayerNormGrad});
  registry.add(Op::activation, {runActivation});
  registry.add(Op::activation_grad, {runActivationGrad});
  registry.add(Op::add, {runAdd});
  registry.add(Op::dropout, {runDropout});
  registry.add(Op::dropout_grad, {runDropoutGrad});
  registry.add(Op::padding_mask, {runPaddingMask});
  registry.add(Op::attention, {runAttention});
  registry.add(Op::attention_grad, {runAttentionGrad});
  registry.add(Op::cross_entropy, {runCrossEntropy});
  registry.add(Op::cross_entropy_grad, {runCrossEntropyGrad});
}

} // namespace cpu
} // namespace moert
