//===- Kernels.cpp - The CPU kernel of every dialect op -------------------===//
//
// Adapters from instructions (buffers + attributes, named after the dialect
// ops) to the runtime's kernels. Shapes come from the buffer types, which
// the compiler verified; what depends on data (token ids, labels, routing)
// is checked by the kernels themselves and reported as errors.
//
//===----------------------------------------------------------------------===//
#include "moert/exec/Executor.h"
#include "moert/exec/KernelTable.h"

#include "moert/GateCapacity.h"
#include "moert/dense/Activation.h"
#include "moert/dense/Attention.h"
#include "moert/dense/CrossEntropy.h"
#include "moert/dense/Dropout.h"
#include "moert/dense/Elementwise.h"
#include "moert/dense/Embedding.h"
#include "moert/dense/LayerNorm.h"
#include "moert/dense/Linear.h"
#include "moert/kernels/DispatchCombine.h"
#include "moert/kernels/Gate.h"
#include "moert/train/ExpertFfn.h"
#include "moert/train/Optimizer.h"

#include <algorithm>
#include <cstring>
#include <unordered_map>

namespace moert {
namespace exec {

namespace {

/// Product of all but the last dimension (the rows of a [..., N] tensor).
int64_t leadingElements(const TensorType &type) {
  int64_t rows = 1;
  for (size_t i = 0; i + 1 < type.shape.size(); ++i)
    rows *= type.shape[i];
  return rows;
}
int64_t lastDim(const TensorType &type) {
  return type.shape.empty() ? 1 : type.shape.back();
}

Expected<dense::ActivationKind> activationKind(const KernelCall &call,
                                               const std::string &name) {
  // Plans spell enums as the dialect does ("gelu"); numbers are accepted
  // too (the dialect's enum values).
  if (Expected<std::string> spelled = call.stringAttr(name); spelled.ok()) {
    static const char *const kNames[] = {"relu", "gelu", "gelu_tanh", "silu"};
    for (int kind = 0; kind < 4; ++kind)
      if (*spelled == kNames[kind])
        return static_cast<dense::ActivationKind>(kind);
    return invalidArgument("activation '" + *spelled +
                           "' is not relu, gelu, gelu_tanh or silu");
  }
  MOERT_ASSIGN_OR_RETURN(int64_t kind, call.intAttr(name));
  if (kind < 0 || kind > 3)
    return invalidArgument("activation kind " + std::to_string(kind) +
                           " is not one of relu(0), gelu(1), gelu_tanh(2), "
                           "silu(3)");
  return static_cast<dense::ActivationKind>(kind);
}

//===----------------------------------------------------------------------===//
// Dense
//===----------------------------------------------------------------------===//

Status runEmbedding(KernelCall &call) {
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
  if (call.numOperands() == 3) {
    shape.numPositions = call.operandType(2).shape[0];
    positions = call.operand<float>(2);
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
  dense::linearForward(shape, call.operand<float>(0), call.operand<float>(1),
                       call.numOperands() == 3 ? call.operand<float>(2)
                                               : nullptr,
                       call.result<float>(0));
  return Status::success();
}

Status runLinearGrad(KernelCall &call) {
  dense::LinearShape shape = linearShape(
      call.operandType(1), call.operandType(2), call.flag("transpose_weight"));
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

//===----------------------------------------------------------------------===//
// Mixture of experts
//===----------------------------------------------------------------------===//

Expected<GateConfig> gateConfig(const KernelCall &call) {
  GateConfig config;
  MOERT_ASSIGN_OR_RETURN(config.topK, call.intAttr("top_k"));
  MOERT_ASSIGN_OR_RETURN(config.capacityFactor,
                         call.floatAttr("capacity_factor"));
  MOERT_ASSIGN_OR_RETURN(config.evalCapacityFactor,
                         call.floatAttr("eval_capacity_factor"));
  MOERT_ASSIGN_OR_RETURN(config.minCapacity, call.intAttr("min_capacity"));
  config.dropTokens = call.flag("drop_tokens");
  config.useRts = call.flag("use_rts");
  config.laterChoiceNoise = call.flag("second_sampling");
  MOERT_ASSIGN_OR_RETURN(std::string noise, call.stringAttr("noise"));
  if (noise == "none")
    config.noise = GateNoise::None;
  else if (noise == "jitter")
    config.noise = GateNoise::Jitter;
  else if (noise == "rsample")
    config.noise = GateNoise::RSample;
  else
    return invalidArgument("gate noise '" + noise +
                           "' is not none, jitter or rsample");
  MOERT_ASSIGN_OR_RETURN(double jitter, call.floatAttr("jitter_eps"));
  config.jitterEps = static_cast<float>(jitter);
  config.training = call.context().training && !call.flag("eval");
  // Plans written before gating groups existed have no "groups": one group.
  if (call.instruction().attrs.count("groups")) {
    MOERT_ASSIGN_OR_RETURN(config.groups, call.intAttr("groups"));
  }
  return config;
}

/// `numTokens`: the tokens of the gate's input on this rank.
Expected<GateRandomness> gateRandomness(const KernelCall &call,
                                        int64_t numTokens) {
  MOERT_ASSIGN_OR_RETURN(int64_t stream, call.intAttr("stream"));
  GateRandomness randomness;
  randomness.source.seed = call.context().seed;
  randomness.source.stream = static_cast<uint32_t>(stream);
  randomness.source.step = call.context().step;
  // With `shard_axes`, the tokens are this rank's shard of the batch.
  MOERT_ASSIGN_OR_RETURN(GroupPosition shard, call.shardPosition());
  randomness.firstGlobalToken = shard.index * numTokens;
  return randomness;
}

GateShape gateShape(const TensorType &x, const TensorType &weight) {
  GateShape shape;
  shape.numTokens = leadingElements(x);
  shape.modelDim = lastDim(x);
  shape.numExperts = weight.shape[1];
  return shape;
}

Status runGate(KernelCall &call) {
  MOERT_ASSIGN_OR_RETURN(GateConfig config, gateConfig(call));
  MOERT_ASSIGN_OR_RETURN(
      GateRandomness randomness,
      gateRandomness(call, leadingElements(call.operandType(0))));
  GateShape shape = gateShape(call.operandType(0), call.operandType(1));
  std::vector<float> gates(
      static_cast<size_t>(shape.numTokens * shape.numExperts));
  int64_t capacity = 0;
  GateOutputs out;
  out.experts = call.result<int32_t>(0);
  out.slots = call.result<int32_t>(1);
  out.weights = call.result<float>(2);
  out.gates = gates.data();
  out.expertCounts = call.result<int32_t>(3);
  out.auxLoss = call.result<float>(4);
  out.capacity = &capacity;
  MOERT_RETURN_IF_ERROR(gateForward(config, shape, randomness,
                                    call.operand<float>(0),
                                    call.operand<float>(1), out));
  // The compiler sized the dispatch buffers for this capacity: groups times
  // the per-group capacity (moert::groupedExpertCapacity), which is also
  // what the gate reports.
  MOERT_ASSIGN_OR_RETURN(int64_t planned, call.intAttr("capacity"));
  if (capacity > planned)
    return internalError("the gate assigned " + std::to_string(capacity) +
                         " slots per expert (" + std::to_string(config.groups) +
                         " group(s) of " +
                         std::to_string(capacity / config.groups) +
                         "), the plan has " + std::to_string(planned));
  return Status::success();
}

Status runGateGrad(KernelCall &call) {
  MOERT_ASSIGN_OR_RETURN(GateConfig config, gateConfig(call));
  MOERT_ASSIGN_OR_RETURN(
      GateRandomness randomness,
      gateRandomness(call, leadingElements(call.operandType(2))));
  GateShape shape = gateShape(call.operandType(2), call.operandType(3));
  // The softmax gates are recomputed (same input, weight and noise) rather
  // than kept from the forward pass.
  GateResult recomputed(shape, config.topK);
  GateOutputs out = recomputed.outputs();
  MOERT_RETURN_IF_ERROR(gateRoute(config, shape, randomness,
                                  call.operand<float>(2),
                                  call.operand<float>(3), out)
                            .status());
  GateSavedState saved;
  saved.gates = recomputed.gates.data();
  saved.experts = call.operand<int32_t>(4);
  saved.slots = call.operand<int32_t>(5);
  return gateBackward(config, shape, randomness, call.operand<float>(2),
                      call.operand<float>(3), saved, call.operand<float>(0),
                      *call.operand<float>(1), call.result<float>(0),
                      call.result<float>(1));
}

DispatchShape dispatchShape(const TensorType &tokens, const TensorType &routing,
                            const TensorType &buffer) {
  DispatchShape shape;
  shape.numTokens = leadingElements(tokens);
  shape.modelDim = lastDim(tokens);
  shape.numExperts = buffer.shape[0];
  shape.capacity = buffer.shape[1];
  shape.topK = lastDim(routing);
  return shape;
}

Status runDispatch(KernelCall &call) {
  DispatchShape shape = dispatchShape(call.operandType(0), call.operandType(1),
                                      call.resultType(0));
  return dispatchTokens(shape,
                        {call.operand<int32_t>(1), call.operand<int32_t>(2)},
                        call.operand<float>(0), call.result<float>(0));
}

Status runDispatchGrad(KernelCall &call) {
  DispatchShape shape = dispatchShape(call.resultType(0), call.operandType(1),
                                      call.operandType(0));
  return dispatchTokensBackward(
      shape, {call.operand<int32_t>(1), call.operand<int32_t>(2)},
      call.operand<float>(0), call.result<float>(0));
}

Status runCombine(KernelCall &call) {
  DispatchShape shape = dispatchShape(call.resultType(0), call.operandType(1),
                                      call.operandType(0));
  return combineTokens(
      shape, {call.operand<int32_t>(1), call.operand<int32_t>(2)},
      call.operand<float>(3), call.operand<float>(0), call.result<float>(0));
}

Status runCombineGrad(KernelCall &call) {
  DispatchShape shape = dispatchShape(call.operandType(0), call.operandType(2),
                                      call.operandType(1));
  return combineTokensBackward(
      shape, {call.operand<int32_t>(2), call.operand<int32_t>(3)},
      call.operand<float>(4), call.operand<float>(1), call.operand<float>(0),
      call.result<float>(0), call.result<float>(1));
}

Expected<train::ExpertFfnShape> expertShape(const KernelCall &call,
                                            size_t inputOperand) {
  const TensorType &input = call.operandType(inputOperand);
  const TensorType &w1 = call.operandType(inputOperand + 1);
  train::ExpertFfnShape shape;
  shape.numExperts = input.shape[0];
  shape.capacity = input.shape[1];
  shape.modelDim = input.shape[2];
  shape.hiddenDim = w1.shape[2];
  MOERT_ASSIGN_OR_RETURN(shape.activation, activationKind(call, "activation"));
  return shape;
}

Status runExpertFfn(KernelCall &call) {
  MOERT_ASSIGN_OR_RETURN(train::ExpertFfnShape shape, expertShape(call, 0));
  train::expertFfnForward(shape, call.operand<float>(0), call.operand<float>(1),
                          call.operand<float>(2), call.operand<float>(3),
                          call.operand<float>(4), call.result<float>(0));
  return Status::success();
}

Status runExpertFfnGrad(KernelCall &call) {
  MOERT_ASSIGN_OR_RETURN(train::ExpertFfnShape shape, expertShape(call, 1));
  train::expertFfnBackward(
      shape, call.operand<float>(0), call.operand<float>(1),
      call.operand<float>(2), call.operand<float>(3), call.operand<float>(4),
      call.result<float>(0), call.result<float>(1), call.result<float>(2),
      call.result<float>(3), call.result<float>(4));
  return Status::success();
}

//===----------------------------------------------------------------------===//
// Optimizer
//===----------------------------------------------------------------------===//

Status runSumSquares(KernelCall &call) {
  *call.result<float>(0) = static_cast<float>(train::sumSquares(
      call.operandType(0).numElements(), call.operand<float>(0)));
  return Status::success();
}

Status runClip(KernelCall &call) {
  MOERT_ASSIGN_OR_RETURN(double maxNorm, call.floatAttr("max_norm"));
  train::ClipResult clip =
      train::clipByGlobalNorm(*call.operand<float>(0), maxNorm);
  *call.result<float>(0) = clip.norm;
  *call.result<float>(1) = clip.scale;
  return Status::success();
}

Status runLrSchedule(KernelCall &call) {
  MOERT_ASSIGN_OR_RETURN(double peak, call.floatAttr("peak_lr"));
  MOERT_ASSIGN_OR_RETURN(int64_t warmup, call.intAttr("warmup_steps"));
  *call.result<float>(0) =
      train::inverseSqrtLr(*call.operand<int64_t>(0), peak, warmup);
  return Status::success();
}

Status runAdamW(KernelCall &call) {
  train::AdamWConfig config;
  MOERT_ASSIGN_OR_RETURN(config.beta1, call.floatAttr("beta1"));
  MOERT_ASSIGN_OR_RETURN(config.beta2, call.floatAttr("beta2"));
  MOERT_ASSIGN_OR_RETURN(config.epsilon, call.floatAttr("epsilon"));
  MOERT_ASSIGN_OR_RETURN(config.weightDecay, call.floatAttr("weight_decay"));
  const TensorType &param = call.operandType(0);
  size_t bytes = static_cast<size_t>(param.byteSize());
  float *newParam = call.result<float>(0);
  float *newExpAvg = call.result<float>(1);
  float *newExpAvgSq = call.result<float>(2);
  // The plan usually updates in place (result buffer == operand buffer);
  // otherwise the state is copied to the result buffers first.
  auto copyUnlessSame = [bytes](float *to, const float *from) {
    if (to != from)
      std::memcpy(to, from, bytes);
  };
  copyUnlessSame(newParam, call.operand<float>(0));
  copyUnlessSame(newExpAvg, call.operand<float>(2));
  copyUnlessSame(newExpAvgSq, call.operand<float>(3));
  train::adamwUpdate(config, param.numElements(), newParam,
                     call.operand<float>(1), newExpAvg, newExpAvgSq,
                     *call.operand<float>(4), *call.operand<float>(5),
                     *call.operand<int64_t>(6));
  return Status::success();
}

//===----------------------------------------------------------------------===//
// Data movement
//===----------------------------------------------------------------------===//

/// Writes `value` to every element (splat constants of the step).
Status runFill(KernelCall &call) {
  MOERT_ASSIGN_OR_RETURN(double value, call.floatAttr("value"));
  const TensorType &type = call.resultType(0);
  int64_t n = type.numElements();
  switch (type.dtype) {
  case DType::F32:
    std::fill_n(call.result<float>(0), n, static_cast<float>(value));
    break;
  case DType::I32:
    std::fill_n(call.result<int32_t>(0), n, static_cast<int32_t>(value));
    break;
  case DType::I64:
    std::fill_n(call.result<int64_t>(0), n, static_cast<int64_t>(value));
    break;
  case DType::Bool:
    std::fill_n(call.result<uint8_t>(0), n, value != 0.0 ? 1 : 0);
    break;
  }
  return Status::success();
}

const KernelTable &kernelTable() {
  static const KernelTable table = [] {
    KernelTable kernels = {
        {"moe.embedding", {runEmbedding, 2, 3, 1}},
        {"moe.embedding_grad", {runEmbeddingGrad, 2, 2, 1}},
        {"moe.position_grad", {runPositionGrad, 1, 1, 1}},
        {"moe.linear", {runLinear, 2, 3, 1}},
        {"moe.linear_grad", {runLinearGrad, 3, 3, 2}},
        {"moe.bias_grad", {runBiasGrad, 1, 1, 1}},
        {"moe.layer_norm", {runLayerNorm, 3, 3, 1}},
        {"moe.layer_norm_grad", {runLayerNormGrad, 3, 3, 3}},
        {"moe.activation", {runActivation, 1, 1, 1}},
        {"moe.activation_grad", {runActivationGrad, 2, 2, 1}},
        {"moe.add", {runAdd, 2, 2, 1}},
        {"moe.dropout", {runDropout, 1, 1, 1}},
        {"moe.padding_mask", {runPaddingMask, 1, 1, 1}},
        {"moe.attention", {runAttention, 3, 4, 1}},
        {"moe.attention_grad", {runAttentionGrad, 4, 5, 3}},
        {"moe.cross_entropy", {runCrossEntropy, 2, 2, 1}},
        {"moe.cross_entropy_grad", {runCrossEntropyGrad, 3, 3, 1}},
        {"moe.gate", {runGate, 2, 2, 5}},
        {"moe.gate_grad", {runGateGrad, 6, 6, 2}},
        {"moe.dispatch", {runDispatch, 3, 3, 1}},
        {"moe.dispatch_grad", {runDispatchGrad, 3, 3, 1}},
        {"moe.combine", {runCombine, 4, 4, 1}},
        {"moe.combine_grad", {runCombineGrad, 5, 5, 2}},
        {"moe.expert_ffn", {runExpertFfn, 5, 5, 1}},
        {"moe.expert_ffn_grad", {runExpertFfnGrad, 6, 6, 5}},
        {"moe.sum_squares", {runSumSquares, 1, 1, 1}},
        {"moe.clip_by_global_norm", {runClip, 1, 1, 2}},
        {"moe.lr_schedule", {runLrSchedule, 1, 1, 1}},
        {"moe.adamw", {runAdamW, 7, 7, 3}},
        {"moe.fill", {runFill, 0, 0, 1}},
        {"moe.dropout_grad", {runDropoutGrad, 1, 1, 1}},
    };
    addPartitionKernels(kernels);
    addCollectiveKernels(kernels);
    return kernels;
  }();
  return table;
}

} // namespace

const KernelInfo *lookupKernel(const std::string &name) {
  const auto &table = kernelTable();
  auto it = table.find(name);
  return it == table.end() ? nullptr : &it->second;
}

} // namespace exec
} // namespace moert
