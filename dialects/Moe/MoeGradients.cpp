//===- MoeGradients.cpp - Reverse-mode rules of the moe ops ---------------===//
//
// DifferentiableOpInterface implementations: each forward op emits the
// backward op(s) of the dialect that compute its operand gradients.
//
//===----------------------------------------------------------------------===//
#include "dialects/Moe/MoeOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinAttributes.h"

using namespace mlir;
using namespace mlir::moe;

#include "dialects/Moe/MoeInterfaces.cpp.inc"

namespace {

/// A zero tensor of `type`, for a result whose gradient is zero but whose
/// backward op needs an operand.
Value zerosLike(OpBuilder &builder, Location loc, Type type) {
  auto tensor = cast<RankedTensorType>(type);
  return arith::ConstantOp::create(
      builder, loc, tensor,
      DenseElementsAttr::get(tensor,
                             builder.getZeroAttr(tensor.getElementType())));
}

/// All operand gradients null: nothing flows back.
LogicalResult noGradients(Operation *op, SmallVectorImpl<Value> &grads) {
  grads.assign(op->getNumOperands(), Value());
  return success();
}

} // namespace

LogicalResult EmbeddingOp::buildGradients(OpBuilder &builder,
                                          ArrayRef<Value> resultGrads,
                                          SmallVectorImpl<Value> &grads) {
  Value dy = resultGrads[0];
  if (!dy)
    return noGradients(*this, grads);
  Value dTable =
      EmbeddingGradOp::create(builder, getLoc(), getTable().getType(), dy,
                              getTokens(), getScaledAttr());
  grads.assign({Value(), dTable});
  if (Value positions = getPositions())
    grads.push_back(
        PositionGradOp::create(builder, getLoc(), positions.getType(), dy));
  return success();
}

LogicalResult LinearOp::buildGradients(OpBuilder &builder,
                                       ArrayRef<Value> resultGrads,
                                       SmallVectorImpl<Value> &grads) {
  Value dy = resultGrads[0];
  if (!dy)
    return noGradients(*this, grads);
  auto linearGrad = LinearGradOp::create(
      builder, getLoc(), getInput().getType(), getWeight().getType(), dy,
      getInput(), getWeight(), getTransposeWeightAttr());
  grads.assign({linearGrad.getInputGrad(), linearGrad.getWeightGrad()});
  if (Value bias = getBias())
    grads.push_back(BiasGradOp::create(builder, getLoc(), bias.getType(), dy));
  return success();
}

LogicalResult LayerNormOp::buildGradients(OpBuilder &builder,
                                          ArrayRef<Value> resultGrads,
                                          SmallVectorImpl<Value> &grads) {
  Value dy = resultGrads[0];
  if (!dy)
    return noGradients(*this, grads);
  auto grad = LayerNormGradOp::create(
      builder, getLoc(), getInput().getType(), getScale().getType(),
      getBias().getType(), dy, getInput(), getScale(), getEpsilonAttr());
  grads.assign({grad.getInputGrad(), grad.getScaleGrad(), grad.getBiasGrad()});
  return success();
}

LogicalResult ActivationOp::buildGradients(OpBuilder &builder,
                                           ArrayRef<Value> resultGrads,
                                           SmallVectorImpl<Value> &grads) {
  Value dy = resultGrads[0];
  if (!dy)
    return noGradients(*this, grads);
  grads.assign({ActivationGradOp::create(
      builder, getLoc(), getInput().getType(), getKindAttr(), dy, getInput())});
  return success();
}

LogicalResult AddOp::buildGradients(OpBuilder &builder,
                                    ArrayRef<Value> resultGrads,
                                    SmallVectorImpl<Value> &grads) {
  grads.assign(2, resultGrads[0]);
  return success();
}

LogicalResult DropoutOp::buildGradients(OpBuilder &builder,
                                        ArrayRef<Value> resultGrads,
                                        SmallVectorImpl<Value> &grads) {
  Value dy = resultGrads[0];
  if (!dy)
    return noGradients(*this, grads);
  // The mask is a function of (seed, step, stream, element): the same op on
  // the gradient applies the same mask and the same 1 / (1 - rate) scale.
  grads.assign({DropoutOp::create(builder, getLoc(), dy.getType(), dy,
                                  getRateAttr(), getStreamAttr())});
  return success();
}

LogicalResult AttentionOp::buildGradients(OpBuilder &builder,
                                          ArrayRef<Value> resultGrads,
                                          SmallVectorImpl<Value> &grads) {
  Value dy = resultGrads[0];
  if (!dy)
    return noGradients(*this, grads);
  auto grad = AttentionGradOp::create(
      builder, getLoc(), getQuery().getType(), getKey().getType(),
      getValue().getType(), dy, getQuery(), getKey(), getValue(), getKeyMask(),
      getNumHeadsAttr(), getCausalAttr());
  grads.assign({grad.getQueryGrad(), grad.getKeyGrad(), grad.getValueGrad()});
  if (getKeyMask())
    grads.push_back(Value());
  return success();
}

LogicalResult CrossEntropyOp::buildGradients(OpBuilder &builder,
                                             ArrayRef<Value> resultGrads,
                                             SmallVectorImpl<Value> &grads) {
  Value dLoss = resultGrads[0];
  if (!dLoss)
    return noGradients(*this, grads);
  grads.assign(
      {CrossEntropyGradOp::create(
           builder, getLoc(), getLogits().getType(), dLoss, getLogits(),
           getLabels(), getLabelSmoothingAttr(), getIgnoreIndexAttr()),
       Value()});
  return success();
}

LogicalResult GateOp::buildGradients(OpBuilder &builder,
                                     ArrayRef<Value> resultGrads,
                                     SmallVectorImpl<Value> &grads) {
  // Only the combine weights and the aux loss are differentiable outputs;
  // indices, slots and counts are discrete.
  Value dWeights = resultGrads[2];
  Value dAux = resultGrads[4];
  if (!dWeights && !dAux)
    return noGradients(*this, grads);
  Location loc = getLoc();
  if (!dWeights)
    dWeights = zerosLike(builder, loc, getWeights().getType());
  if (!dAux)
    dAux = zerosLike(builder, loc, getAuxLoss().getType());
  auto grad = GateGradOp::create(
      builder, loc, getInput().getType(), getWeight().getType(), dWeights, dAux,
      getInput(), getWeight(), getIndices(), getLocations(), getConfigAttr(),
      getCapacityAttr(), getStreamAttr(), getEvalAttr());
  grads.assign({grad.getInputGrad(), grad.getWeightGrad()});
  return success();
}

LogicalResult DispatchOp::buildGradients(OpBuilder &builder,
                                         ArrayRef<Value> resultGrads,
                                         SmallVectorImpl<Value> &grads) {
  Value dBuffer = resultGrads[0];
  if (!dBuffer)
    return noGradients(*this, grads);
  grads.assign({DispatchGradOp::create(builder, getLoc(), getInput().getType(),
                                       dBuffer, getIndices(), getLocations()),
                Value(), Value()});
  return success();
}

LogicalResult ExpertFfnOp::buildGradients(OpBuilder &builder,
                                          ArrayRef<Value> resultGrads,
                                          SmallVectorImpl<Value> &grads) {
  Value dy = resultGrads[0];
  if (!dy)
    return noGradients(*this, grads);
  auto grad = ExpertFfnGradOp::create(
      builder, getLoc(), getInput().getType(), getW1().getType(),
      getB1().getType(), getW2().getType(), getB2().getType(),
      getActivationAttr(), dy, getInput(), getW1(), getB1(), getW2(), getB2());
  grads.assign({grad.getInputGrad(), grad.getW1Grad(), grad.getB1Grad(),
                grad.getW2Grad(), grad.getB2Grad()});
  return success();
}

LogicalResult CombineOp::buildGradients(OpBuilder &builder,
                                        ArrayRef<Value> resultGrads,
                                        SmallVectorImpl<Value> &grads) {
  Value dy = resultGrads[0];
  if (!dy)
    return noGradients(*this, grads);
  auto grad = CombineGradOp::create(builder, getLoc(), getInput().getType(),
                                    getWeights().getType(), dy, getInput(),
                                    getIndices(), getLocations(), getWeights());
  grads.assign({grad.getInputGrad(), Value(), Value(), grad.getWeightsGrad()});
  return success();
}
