//===- MoeOps.cpp - Verifiers of the moe dialect's operations -------------===//
//
// Every shape, element type and attribute rule of the dialect is checked here
// (or by ODS constraints), with messages that state the rule and the numbers
// found. Backward and optimizer ops share the rules of their forward ops.
//
//===----------------------------------------------------------------------===//
#include "dialects/Moe/MoeOps.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/OpImplementation.h"
#include "llvm/ADT/STLExtras.h"

using namespace mlir;
using namespace mlir::moe;

#define GET_OP_CLASSES
#include "dialects/Moe/MoeOps.cpp.inc"

namespace {

/// A shape as `2x3x4` (or `scalar`) for diagnostics.
std::string shapeText(ArrayRef<int64_t> shape) {
  if (shape.empty())
    return "scalar";
  std::string text;
  llvm::raw_string_ostream os(text);
  llvm::interleave(shape, os, "x");
  return text;
}

std::string shapeOf(Value value) {
  return shapeText(cast<RankedTensorType>(value.getType()).getShape());
}
ArrayRef<int64_t> dims(Value value) {
  return cast<RankedTensorType>(value.getType()).getShape();
}
Type elementType(Value value) {
  return cast<RankedTensorType>(value.getType()).getElementType();
}

/// The plan is static: every tensor of a moe op must have a static shape.
LogicalResult requireStaticShapes(Operation *op) {
  for (auto [kind, types] :
       {std::make_pair("operand", TypeRange(op->getOperandTypes())),
        std::make_pair("result", TypeRange(op->getResultTypes()))}) {
    for (auto [index, type] : llvm::enumerate(types)) {
      auto tensor = dyn_cast<RankedTensorType>(type);
      if (tensor && !tensor.hasStaticShape())
        return op->emitOpError() << kind << " #" << index
                                 << " must have a static shape, found " << type;
      if (tensor && !boundedTensorBytes(tensor))
        return op->emitOpError()
               << kind << " #" << index << " (" << type
               << ") is too large: its byte size overflows int64 or exceeds "
                  "2^48 bytes (256 TiB)";
    }
  }
  return success();
}

/// Checks that `value` has `rank` dimensions.
LogicalResult requireRank(Operation *op, StringRef what, Value value,
                          int64_t rank) {
  if (static_cast<int64_t>(dims(value).size()) != rank)
    return op->emitOpError()
           << "expects " << what << " of rank " << rank << ", found rank "
           << dims(value).size() << " (" << value.getType() << ")";
  return success();
}

/// Checks that `value` has exactly the shape `expected`.
LogicalResult requireShape(Operation *op, StringRef what, Value value,
                           ArrayRef<int64_t> expected) {
  if (dims(value) != expected)
    return op->emitOpError()
           << "expects " << what << " of shape " << shapeText(expected)
           << ", found " << shapeOf(value);
  return success();
}

/// Checks that all `values` share the element type of the first.
LogicalResult requireSameElementType(Operation *op, ValueRange values) {
  Type first = elementType(values.front());
  for (Value value : values.drop_front())
    if (elementType(value) != first)
      return op->emitOpError()
             << "expects all floating-point operands and results to have "
                "element type "
             << first << ", found " << elementType(value);
  return success();
}

/// Leading (token) dimensions followed by one trailing dimension.
SmallVector<int64_t> withLast(ArrayRef<int64_t> leading, int64_t last) {
  SmallVector<int64_t> shape(leading.begin(), leading.end());
  shape.push_back(last);
  return shape;
}

int64_t product(ArrayRef<int64_t> shape) {
  int64_t result = 1;
  for (int64_t d : shape)
    result *= d;
  return result;
}

/// When the routing tensors come from a `moe.gate`, the expert buffer must
/// have the gate's expert count and capacity.
LogicalResult verifyBufferAgainstGate(Operation *op, Value indices,
                                      Value locations, StringRef bufferName,
                                      ArrayRef<int64_t> bufferShape) {
  auto gate = indices.getDefiningOp<GateOp>();
  if (!gate)
    return success();
  // The gate may not have been verified yet (a use in an unreachable block can
  // precede its definition); compare only against a gate whose capacity and
  // expert count exist, and leave its other errors to its own verifier.
  auto gateWeight = dyn_cast<RankedTensorType>(gate.getWeight().getType());
  if (!gate.getCapacityAttr() || !gateWeight || gateWeight.getRank() != 2)
    return success();
  if (locations.getDefiningOp<GateOp>() != gate)
    return op->emitOpError()
           << "expects indices and locations from the same moe.gate";
  if (bufferShape[0] != gate.getNumExperts())
    return op->emitOpError()
           << "expects " << bufferName << " with " << gate.getNumExperts()
           << " experts (from its moe.gate), found " << bufferShape[0];
  if (bufferShape[1] != gate.getCapacityAttr().getInt())
    return op->emitOpError()
           << "expects " << bufferName << " with capacity "
           << gate.getCapacityAttr().getInt() << " (from its moe.gate), found "
           << bufferShape[1];
  return success();
}

/// Shared checks of the expert weights `[E, M, H]`, `[E, H]`, `[E, H, M]`,
/// `[E, M]` against `numExperts` and `modelDim`.
LogicalResult verifyExpertWeights(Operation *op, int64_t numExperts,
                                  int64_t modelDim, Value w1, Value b1,
                                  Value w2, Value b2) {
  if (failed(requireRank(op, "w1", w1, 3)))
    return failure();
  int64_t hidden = dims(w1)[2];
  if (failed(requireShape(op, "w1", w1, {numExperts, modelDim, hidden})) ||
      failed(requireShape(op, "b1", b1, {numExperts, hidden})) ||
      failed(requireShape(op, "w2", w2, {numExperts, hidden, modelDim})) ||
      failed(requireShape(op, "b2", b2, {numExperts, modelDim})))
    return failure();
  return success();
}

} // namespace

//===----------------------------------------------------------------------===//
// EmbeddingOp
//===----------------------------------------------------------------------===//

/// Rules shared by moe.embedding and moe.embedding_at: the result is the
/// tokens' shape plus the table's width; a learned `positions` table
/// exactly when the position kind is learned, as wide as the table and with
/// at least a row per token position.
static LogicalResult verifyEmbedding(Operation *op, Value tokens, Value table,
                                     Value positions, PositionKind position,
                                     Value result) {
  if (failed(requireStaticShapes(op)) ||
      failed(requireRank(op, "table", table, 2)))
    return failure();
  if (dims(tokens).empty())
    return op->emitOpError() << "expects tokens of rank >= 1, found a scalar";
  int64_t modelDim = dims(table)[1];
  if (failed(
          requireShape(op, "result", result, withLast(dims(tokens), modelDim))))
    return failure();
  SmallVector<Value> floats = {table, result};
  bool learned = position == PositionKind::learned;
  if (learned != static_cast<bool>(positions))
    return op->emitOpError()
           << (learned ? "with learned positions expects a 'positions' table"
                       : "has a 'positions' table but position is '")
           << (learned ? "" : stringifyPositionKind(position))
           << (learned ? "" : "'");
  if (positions) {
    if (failed(requireRank(op, "positions", positions, 2)))
      return failure();
    int64_t seqLen = dims(tokens).back();
    if (dims(positions)[1] != modelDim)
      return op->emitOpError()
             << "expects positions of width " << modelDim
             << " (the table's), found " << dims(positions)[1];
    if (dims(positions)[0] < seqLen)
      return op->emitOpError() << "expects at least " << seqLen
                               << " positions (the sequence length), found "
                               << dims(positions)[0];
    floats.push_back(positions);
  }
  return requireSameElementType(op, floats);
}

LogicalResult EmbeddingOp::verify() {
  return verifyEmbedding(*this, getTokens(), getTable(), getPositions(),
                         getPosition(), getResult());
}

//===----------------------------------------------------------------------===//
// LinearOp
//===----------------------------------------------------------------------===//

/// Rules shared by moe.linear and moe.linear_grad: the output shape
/// `[..., N]` that `input` and `weight` give, or failure.
static FailureOr<SmallVector<int64_t>>
verifyLinear(Operation *op, Value input, Value weight, bool transposeWeight) {
  if (failed(requireStaticShapes(op)) ||
      failed(requireRank(op, "weight", weight, 2)))
    return failure();
  ArrayRef<int64_t> in = dims(input);
  if (in.empty())
    return op->emitOpError() << "expects input of rank >= 1, found a scalar";
  ArrayRef<int64_t> w = dims(weight);
  int64_t inFeatures = transposeWeight ? w[1] : w[0];
  int64_t outFeatures = transposeWeight ? w[0] : w[1];
  if (in.back() != inFeatures)
    return op->emitOpError()
           << "expects input features " << in.back() << " to match weight "
           << (transposeWeight ? "dimension 1" : "dimension 0") << " ("
           << inFeatures << "), weight is " << shapeOf(weight);
  return withLast(in.drop_back(), outFeatures);
}

LogicalResult LinearOp::verify() {
  FailureOr<SmallVector<int64_t>> output =
      verifyLinear(*this, getInput(), getWeight(), getTransposeWeight());
  if (failed(output))
    return failure();
  SmallVector<Value> floats = {getInput(), getWeight(), getResult()};
  if (Value bias = getBias()) {
    if (failed(requireShape(*this, "bias", bias, {output->back()})))
      return failure();
    floats.push_back(bias);
  }
  if (failed(requireShape(*this, "result", getResult(), *output)))
    return failure();
  return requireSameElementType(*this, floats);
}

//===----------------------------------------------------------------------===//
// LayerNormOp
//===----------------------------------------------------------------------===//

/// Rules shared by moe.layer_norm and moe.layer_norm_grad.
static LogicalResult verifyLayerNorm(Operation *op, Value input, Value scale,
                                     Value bias, FloatAttr epsilon) {
  ArrayRef<int64_t> in = dims(input);
  if (in.empty())
    return op->emitOpError() << "expects input of rank >= 1, found a scalar";
  if (failed(requireShape(op, "scale", scale, {in.back()})) ||
      failed(requireShape(op, "bias", bias, {in.back()})))
    return failure();
  if (!(epsilon.getValueAsDouble() > 0.0))
    return op->emitOpError()
           << "expects epsilon > 0, found " << epsilon.getValueAsDouble();
  return success();
}

LogicalResult LayerNormOp::verify() {
  if (failed(requireStaticShapes(*this)) ||
      failed(verifyLayerNorm(*this, getInput(), getScale(), getBias(),
                             getEpsilonAttr())))
    return failure();
  if (getResult().getType() != getInput().getType())
    return emitOpError() << "expects the result type " << getResult().getType()
                         << " to equal the input type " << getInput().getType();
  return requireSameElementType(
      *this, {getInput(), getScale(), getBias(), getResult()});
}

//===----------------------------------------------------------------------===//
// DropoutOp
//===----------------------------------------------------------------------===//

LogicalResult DropoutOp::verify() {
  double rate = getRate().convertToDouble();
  if (!(rate >= 0.0 && rate < 1.0))
    return emitOpError() << "expects rate in [0, 1), found " << rate;
  if (getStreamAttr().getInt() < 0)
    return emitOpError() << "expects stream >= 0, found "
                         << getStreamAttr().getInt();
  return requireStaticShapes(*this);
}

//===----------------------------------------------------------------------===//
// PaddingMaskOp
//===----------------------------------------------------------------------===//

LogicalResult PaddingMaskOp::verify() {
  if (failed(requireStaticShapes(*this)))
    return failure();
  int64_t padId = getPadIdAttr().getInt();
  if (padId < 0)
    return emitOpError() << "expects pad_id >= 0 (a token id), found " << padId;
  // A pad id outside the vocabulary masks nothing: every padded position
  // would be attended to. The vocabulary is the row count of the embedding
  // table the same tokens are looked up in.
  for (Operation *user : getTokens().getUsers()) {
    auto embedding = dyn_cast<EmbeddingOp>(user);
    if (!embedding || embedding.getTokens() != getTokens())
      continue;
    auto table = dyn_cast<RankedTensorType>(embedding.getTable().getType());
    if (!table || table.getRank() != 2 || table.isDynamicDim(0))
      continue;
    if (padId >= table.getDimSize(0))
      return emitOpError() << "expects pad_id in [0, " << table.getDimSize(0)
                           << ") (the vocabulary of the embedding table these "
                              "tokens index), found "
                           << padId;
  }
  return requireShape(*this, "result", getResult(), dims(getTokens()));
}

//===----------------------------------------------------------------------===//
// AttentionOp
//===----------------------------------------------------------------------===//

/// Rules shared by moe.attention and moe.attention_grad.
static LogicalResult verifyAttention(Operation *op, Value query, Value key,
                                     Value value, Value keyMask,
                                     IntegerAttr numHeads, bool causal) {
  if (failed(requireRank(op, "query", query, 3)) ||
      failed(requireRank(op, "key", key, 3)) ||
      failed(requireRank(op, "value", value, 3)))
    return failure();
  ArrayRef<int64_t> q = dims(query);
  ArrayRef<int64_t> k = dims(key);
  if (k[0] != q[0] || k[2] != q[2])
    return op->emitOpError()
           << "expects key of shape " << q[0] << "x?x" << q[2]
           << " (batch and width of the query), found " << shapeOf(key);
  if (failed(requireShape(op, "value", value, k)))
    return failure();
  int64_t heads = numHeads.getInt();
  if (heads < 1)
    return op->emitOpError() << "expects num_heads >= 1, found " << heads;
  if (q[2] % heads != 0)
    return op->emitOpError() << "expects the width " << q[2]
                             << " to be divisible by num_heads " << heads;
  if (causal && q[1] != k[1])
    return op->emitOpError()
           << "causal attention expects as many queries as keys, found " << q[1]
           << " queries and " << k[1] << " keys";
  if (keyMask && failed(requireShape(op, "key_mask", keyMask, {k[0], k[1]})))
    return failure();
  return requireSameElementType(op, {query, key, value});
}

LogicalResult AttentionOp::verify() {
  if (failed(requireStaticShapes(*this)) ||
      failed(verifyAttention(*this, getQuery(), getKey(), getValue(),
                             getKeyMask(), getNumHeadsAttr(), getCausal())))
    return failure();
  if (getResult().getType() != getQuery().getType())
    return emitOpError() << "expects the result type " << getResult().getType()
                         << " to equal the query type " << getQuery().getType();
  return success();
}

//===----------------------------------------------------------------------===//
// CrossEntropyOp
//===----------------------------------------------------------------------===//

/// Rules shared by moe.cross_entropy and moe.cross_entropy_grad.
static LogicalResult verifyCrossEntropy(Operation *op, Value logits,
                                        Value labels, FloatAttr smoothing) {
  ArrayRef<int64_t> shape = dims(logits);
  if (shape.size() < 2)
    return op->emitOpError()
           << "expects logits of rank >= 2 ([..., vocab]), found "
           << shapeOf(logits);
  if (failed(requireShape(op, "labels", labels, shape.drop_back())))
    return failure();
  double value = smoothing.getValueAsDouble();
  if (!(value >= 0.0 && value < 1.0))
    return op->emitOpError()
           << "expects label_smoothing in [0, 1), found " << value;
  return success();
}

LogicalResult CrossEntropyOp::verify() {
  if (failed(requireStaticShapes(*this)))
    return failure();
  return verifyCrossEntropy(*this, getLogits(), getLabels(),
                            getLabelSmoothingAttr());
}

//===----------------------------------------------------------------------===//
// GateOp
//===----------------------------------------------------------------------===//

int64_t GateOp::getNumExperts() { return dims(getWeight())[1]; }
int64_t GateOp::getNumTokens() { return product(dims(getInput()).drop_back()); }

/// Rules shared by moe.gate and moe.moe_layer: the gate weight is `[M, E]`,
/// top_k does not exceed E, and a capacity exists for the token count.
static LogicalResult verifyRouting(Operation *op, Value input, Value gateWeight,
                                   GatingAttr config) {
  ArrayRef<int64_t> in = dims(input);
  if (in.size() < 2)
    return op->emitOpError() << "expects input of rank >= 2 ([tokens..., "
                                "model]), found "
                             << shapeOf(input);
  if (failed(requireRank(op, "gate weight", gateWeight, 2)))
    return failure();
  ArrayRef<int64_t> wg = dims(gateWeight);
  if (wg[0] != in.back())
    return op->emitOpError()
           << "expects gate weight of shape " << in.back()
           << "xE (model width of the input), found " << shapeOf(gateWeight);
  int64_t numExperts = wg[1];
  if (numExperts < 1)
    return op->emitOpError()
           << "expects at least one expert, found " << numExperts;
  if (config.getTopK() > numExperts)
    return op->emitOpError() << "gating top_k = " << config.getTopK()
                             << " exceeds the number of experts " << numExperts;
  int64_t numTokens = product(in.drop_back());
  if (numTokens < 1)
    return op->emitOpError()
           << "expects at least one token, found " << shapeOf(input);
  if (numTokens % config.getGroups() != 0)
    return op->emitOpError() << "gating groups = " << config.getGroups()
                             << " does not divide the " << numTokens
                             << " tokens of input " << shapeOf(input);
  return requireSameElementType(op, {input, gateWeight});
}

/// The capacity rule of moe.gate and moe.gate_grad: the `capacity`
/// attribute is the configured slots per expert, `groups` times the
/// capacity of one group.
static LogicalResult verifyGateCapacity(Operation *op, GatingAttr config,
                                        int64_t capacity, int64_t numTokens,
                                        int64_t numExperts, bool eval) {
  bool training = !eval;
  int64_t expected = config.getCapacity(numTokens, numExperts, training);
  if (capacity == expected)
    return success();
  InFlightDiagnostic diag = op->emitOpError();
  diag << "capacity " << capacity
       << " does not match the gating configuration: " << numTokens
       << " tokens";
  int64_t groups = config.getGroups();
  if (groups > 1)
    diag << " in " << groups << " groups";
  diag << ", " << numExperts << " experts and top_k = " << config.getTopK()
       << " give ";
  if (groups > 1)
    diag << groups << " x "
         << config.getGroupCapacity(numTokens, numExperts, training) << " = ";
  diag << expected << " in " << (eval ? "eval" : "training") << " mode";
  return diag;
}

LogicalResult GateOp::verify() {
  if (failed(requireStaticShapes(*this)) ||
      failed(verifyRouting(*this, getInput(), getWeight(), getConfig())))
    return failure();
  int64_t topK = getConfig().getTopK();
  SmallVector<int64_t> perChoice = withLast(dims(getInput()).drop_back(), topK);
  if (failed(requireShape(*this, "indices", getIndices(), perChoice)) ||
      failed(requireShape(*this, "locations", getLocations(), perChoice)) ||
      failed(requireShape(*this, "weights", getWeights(), perChoice)) ||
      failed(requireShape(*this, "expert_counts", getExpertCounts(),
                          {getNumExperts()})))
    return failure();
  if (failed(verifyGateCapacity(*this, getConfig(), getCapacityAttr().getInt(),
                                getNumTokens(), getNumExperts(), getEval())))
    return failure();
  if (getStreamAttr().getInt() < 0)
    return emitOpError() << "expects stream >= 0, found "
                         << getStreamAttr().getInt();
  return success();
}

//===----------------------------------------------------------------------===//
// DispatchOp
//===----------------------------------------------------------------------===//

/// Checks the routing tensors `[tokens..., k]` against the token shape.
static LogicalResult verifyRoutingTensors(Operation *op,
                                          ArrayRef<int64_t> tokenShape,
                                          ValueRange routing) {
  ArrayRef<int64_t> idx = dims(routing.front());
  if (idx.size() != tokenShape.size() + 1 || idx.drop_back() != tokenShape)
    return op->emitOpError()
           << "expects indices of shape " << shapeText(tokenShape)
           << "xk (the token dimensions), found " << shapeOf(routing.front());
  for (Value other : routing.drop_front())
    if (dims(other) != idx)
      return op->emitOpError()
             << "expects indices, locations and weights of one shape, found "
             << shapeOf(routing.front()) << " and " << shapeOf(other);
  return success();
}

LogicalResult DispatchOp::verify() {
  if (failed(requireStaticShapes(*this)))
    return failure();
  ArrayRef<int64_t> in = dims(getInput());
  if (in.size() < 2)
    return emitOpError() << "expects input of rank >= 2 ([tokens..., model]), "
                            "found "
                         << shapeOf(getInput());
  if (failed(verifyRoutingTensors(*this, in.drop_back(),
                                  {getIndices(), getLocations()})) ||
      failed(requireRank(*this, "result", getResult(), 3)))
    return failure();
  ArrayRef<int64_t> buffer = dims(getResult());
  if (buffer[2] != in.back())
    return emitOpError() << "expects result of shape ExCx" << in.back()
                         << " (model width of the input), found "
                         << shapeOf(getResult());
  if (failed(verifyBufferAgainstGate(*this, getIndices(), getLocations(),
                                     "result", buffer)))
    return failure();
  return requireSameElementType(*this, {getInput(), getResult()});
}

//===----------------------------------------------------------------------===//
// ExpertFfnOp
//===----------------------------------------------------------------------===//

/// Rules shared by moe.expert_ffn and moe.expert_ffn_grad: an [E, C, M]
/// buffer and expert weights of one element type that match it.
static LogicalResult verifyExpertFfn(Operation *op, Value input, Value w1,
                                     Value b1, Value w2, Value b2) {
  if (failed(requireStaticShapes(op)) ||
      failed(requireRank(op, "input", input, 3)))
    return failure();
  ArrayRef<int64_t> in = dims(input);
  if (failed(verifyExpertWeights(op, in[0], in[2], w1, b1, w2, b2)))
    return failure();
  return requireSameElementType(op, {input, w1, b1, w2, b2});
}

LogicalResult ExpertFfnOp::verify() {
  if (failed(verifyExpertFfn(*this, getInput(), getW1(), getB1(), getW2(),
                             getB2())))
    return failure();
  if (getResult().getType() != getInput().getType())
    return emitOpError() << "expects the result type " << getResult().getType()
                         << " to equal the input type " << getInput().getType();
  return success();
}

//===----------------------------------------------------------------------===//
// CombineOp
//===----------------------------------------------------------------------===//

LogicalResult CombineOp::verify() {
  if (failed(requireStaticShapes(*this)) ||
      failed(requireRank(*this, "input", getInput(), 3)))
    return failure();
  ArrayRef<int64_t> buffer = dims(getInput());
  ArrayRef<int64_t> out = dims(getResult());
  if (out.size() < 2 || out.back() != buffer[2])
    return emitOpError() << "expects result of shape [tokens...]x" << buffer[2]
                         << " (model width of the input), found "
                         << shapeOf(getResult());
  if (failed(
          verifyRoutingTensors(*this, out.drop_back(),
                               {getIndices(), getLocations(), getWeights()})))
    return failure();
  if (failed(verifyBufferAgainstGate(*this, getIndices(), getLocations(),
                                     "input", buffer)))
    return failure();
  return requireSameElementType(*this, {getInput(), getResult()});
}

//===----------------------------------------------------------------------===//
// MoeLayerOp
//===----------------------------------------------------------------------===//

int64_t MoeLayerOp::getNumExperts() { return dims(getGateWeight())[1]; }
int64_t MoeLayerOp::getNumTokens() {
  return product(dims(getInput()).drop_back());
}
int64_t MoeLayerOp::inferCapacity() {
  return getConfig().getCapacity(getNumTokens(), getNumExperts(), !getEval());
}

LogicalResult MoeLayerOp::verify() {
  if (failed(requireStaticShapes(*this)) ||
      failed(verifyRouting(*this, getInput(), getGateWeight(), getConfig())))
    return failure();
  int64_t numExperts = dims(getGateWeight())[1];
  if (failed(verifyExpertWeights(*this, numExperts, dims(getInput()).back(),
                                 getW1(), getB1(), getW2(), getB2())))
    return failure();
  if (getResult().getType() != getInput().getType())
    return emitOpError() << "expects the result type " << getResult().getType()
                         << " to equal the input type " << getInput().getType();
  if (failed(requireShape(*this, "expert_counts", getExpertCounts(),
                          {numExperts})))
    return failure();
  if (getStreamAttr().getInt() < 0)
    return emitOpError() << "expects stream >= 0, found "
                         << getStreamAttr().getInt();
  return requireSameElementType(
      *this, {getInput(), getGateWeight(), getW1(), getB1(), getW2(), getB2()});
}

//===----------------------------------------------------------------------===//
// Backward ops
//
// Type equalities (a gradient has the type of its primal) are ODS traits;
// the forward rules are shared with the forward ops.
//===----------------------------------------------------------------------===//

LogicalResult LinearGradOp::verify() {
  FailureOr<SmallVector<int64_t>> output =
      verifyLinear(*this, getInput(), getWeight(), getTransposeWeight());
  if (failed(output))
    return failure();
  if (failed(requireShape(*this, "result_grad", getResultGrad(), *output)))
    return failure();
  return requireSameElementType(*this,
                                {getResultGrad(), getInput(), getWeight()});
}

LogicalResult BiasGradOp::verify() {
  if (failed(requireStaticShapes(*this)))
    return failure();
  if (dims(getResultGrad()).empty())
    return emitOpError() << "expects result_grad of rank >= 1, found a scalar";
  if (failed(requireShape(*this, "bias_grad", getBiasGrad(),
                          {dims(getResultGrad()).back()})))
    return failure();
  return requireSameElementType(*this, {getResultGrad(), getBiasGrad()});
}

LogicalResult LayerNormGradOp::verify() {
  if (failed(requireStaticShapes(*this)))
    return failure();
  return verifyLayerNorm(*this, getInput(), getScale(), getScale(),
                         getEpsilonAttr());
}

LogicalResult ActivationGradOp::verify() { return requireStaticShapes(*this); }

LogicalResult AttentionGradOp::verify() {
  if (failed(requireStaticShapes(*this)))
    return failure();
  return verifyAttention(*this, getQuery(), getKey(), getValue(), getKeyMask(),
                         getNumHeadsAttr(), getCausal());
}

LogicalResult CrossEntropyGradOp::verify() {
  if (failed(requireStaticShapes(*this)))
    return failure();
  return verifyCrossEntropy(*this, getLogits(), getLabels(),
                            getLabelSmoothingAttr());
}

LogicalResult EmbeddingGradOp::verify() {
  if (failed(requireStaticShapes(*this)) ||
      failed(requireRank(*this, "table_grad", getTableGrad(), 2)))
    return failure();
  return requireShape(*this, "result_grad", getResultGrad(),
                      withLast(dims(getTokens()), dims(getTableGrad())[1]));
}

LogicalResult PositionGradOp::verify() {
  if (failed(requireStaticShapes(*this)) ||
      failed(requireRank(*this, "positions_grad", getPositionsGrad(), 2)))
    return failure();
  ArrayRef<int64_t> dy = dims(getResultGrad());
  ArrayRef<int64_t> positions = dims(getPositionsGrad());
  if (dy.size() < 2)
    return emitOpError() << "expects result_grad of rank >= 2, found "
                         << shapeOf(getResultGrad());
  int64_t seqLen = dy[dy.size() - 2];
  if (positions[1] != dy.back() || positions[0] < seqLen)
    return emitOpError() << "expects positions_grad of shape Px" << dy.back()
                         << " with P >= " << seqLen << ", found "
                         << shapeText(positions);
  return success();
}

LogicalResult GateGradOp::verify() {
  if (failed(requireStaticShapes(*this)) ||
      failed(verifyRouting(*this, getInput(), getWeight(), getConfig())))
    return failure();
  ArrayRef<int64_t> tokenDims = dims(getInput()).drop_back();
  int64_t numExperts = dims(getWeight())[1];
  if (failed(requireShape(*this, "weights_grad", getWeightsGrad(),
                          withLast(tokenDims, getConfig().getTopK()))) ||
      failed(verifyRoutingTensors(
          *this, tokenDims, {getIndices(), getLocations(), getWeightsGrad()})))
    return failure();
  return verifyGateCapacity(*this, getConfig(), getCapacityAttr().getInt(),
                            product(tokenDims), numExperts, getEval());
}

LogicalResult DispatchGradOp::verify() {
  if (failed(requireStaticShapes(*this)) ||
      failed(requireRank(*this, "result_grad", getResultGrad(), 3)))
    return failure();
  ArrayRef<int64_t> dx = dims(getInputGrad());
  if (dx.size() < 2 || dx.back() != dims(getResultGrad())[2])
    return emitOpError() << "expects input_grad of shape [tokens...]x"
                         << dims(getResultGrad())[2] << ", found "
                         << shapeOf(getInputGrad());
  if (failed(verifyRoutingTensors(*this, dx.drop_back(),
                                  {getIndices(), getLocations()})) ||
      failed(verifyBufferAgainstGate(*this, getIndices(), getLocations(),
                                     "result_grad", dims(getResultGrad()))))
    return failure();
  return requireSameElementType(*this, {getResultGrad(), getInputGrad()});
}

LogicalResult CombineGradOp::verify() {
  if (failed(requireStaticShapes(*this)) ||
      failed(requireRank(*this, "input", getInput(), 3)))
    return failure();
  ArrayRef<int64_t> dy = dims(getResultGrad());
  if (dy.size() < 2 || dy.back() != dims(getInput())[2])
    return emitOpError() << "expects result_grad of shape [tokens...]x"
                         << dims(getInput())[2] << ", found "
                         << shapeOf(getResultGrad());
  if (failed(
          verifyRoutingTensors(*this, dy.drop_back(),
                               {getIndices(), getLocations(), getWeights()})) ||
      failed(verifyBufferAgainstGate(*this, getIndices(), getLocations(),
                                     "input", dims(getInput()))))
    return failure();
  return requireSameElementType(*this, {getResultGrad(), getInput()});
}

LogicalResult ExpertFfnGradOp::verify() {
  return verifyExpertFfn(*this, getInput(), getW1(), getB1(), getW2(), getB2());
}

//===----------------------------------------------------------------------===//
// Optimizer ops
//===----------------------------------------------------------------------===//

LogicalResult SumSquaresOp::verify() { return requireStaticShapes(*this); }

LogicalResult ConvertOp::verify() {
  Type from = getInput().getType().getElementType();
  Type to = getResult().getType().getElementType();
  if (from == to)
    return emitOpError() << "converts " << from
                         << " to itself; expected two different element "
                            "types among f32, bf16 and f16";
  if (!from.isF32() && !to.isF32())
    return emitOpError() << "expects f32 on one side, found " << from << " -> "
                         << to;
  return requireStaticShapes(*this);
}

LogicalResult ClipByGlobalNormOp::verify() {
  double maxNorm = getMaxNorm().convertToDouble();
  if (!(maxNorm > 0.0))
    return emitOpError() << "expects max_norm > 0, found " << maxNorm;
  return success();
}

LogicalResult LrScheduleOp::verify() {
  double peak = getPeakLr().convertToDouble();
  if (!(peak > 0.0))
    return emitOpError() << "expects peak_lr > 0, found " << peak;
  if (getWarmupStepsAttr().getInt() < 0)
    return emitOpError() << "expects warmup_steps >= 0, found "
                         << getWarmupStepsAttr().getInt();
  return success();
}

LogicalResult AdamWOp::verify() {
  if (failed(requireStaticShapes(*this)))
    return failure();
  auto inUnitInterval = [](double x) { return x >= 0.0 && x < 1.0; };
  double beta1 = getBeta1().convertToDouble();
  double beta2 = getBeta2().convertToDouble();
  if (!inUnitInterval(beta1) || !inUnitInterval(beta2))
    return emitOpError() << "expects beta1 and beta2 in [0, 1), found " << beta1
                         << " and " << beta2;
  if (!(getEpsilon().convertToDouble() > 0.0))
    return emitOpError() << "expects epsilon > 0, found "
                         << getEpsilon().convertToDouble();
  if (!(getWeightDecay().convertToDouble() >= 0.0))
    return emitOpError() << "expects weight_decay >= 0, found "
                         << getWeightDecay().convertToDouble();
  return success();
}

//===----------------------------------------------------------------------===//
// Incremental decoding
//===----------------------------------------------------------------------===//

LogicalResult EmbeddingAtOp::verify() {
  return verifyEmbedding(*this, getTokens(), getTable(), getPositions(),
                         getPosition(), getResult());
}

LogicalResult CacheUpdateOp::verify() {
  if (failed(requireStaticShapes(*this)) ||
      failed(requireRank(*this, "cache", getCache(), 3)) ||
      failed(requireRank(*this, "rows", getRows(), 3)) ||
      failed(requireShape(*this, "result", getResult(), dims(getCache()))) ||
      failed(
          requireSameElementType(*this, {getCache(), getRows(), getResult()})))
    return failure();
  ArrayRef<int64_t> cache = dims(getCache()), rows = dims(getRows());
  if (rows[0] != cache[0] || rows[2] != cache[2])
    return emitOpError() << "expects rows of shape " << cache[0] << "xLx"
                         << cache[2] << " (the cache's batch and width), found "
                         << shapeOf(getRows());
  if (rows[1] > cache[1])
    return emitOpError() << "expects at most " << cache[1]
                         << " rows per sequence (the cache's length), found "
                         << rows[1];
  return success();
}
