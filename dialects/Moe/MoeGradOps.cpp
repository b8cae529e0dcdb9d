//===- MoeGradOps.cpp - Verifiers of the backward ops ---------------------===//
//
// Type equalities (gradient has the type of its primal) are ODS traits; the
// rules here relate the shapes that differ.
//
//===----------------------------------------------------------------------===//
#include "dialects/Moe/MoeOps.h"

#include "llvm/ADT/STLExtras.h"

using namespace mlir;
using namespace mlir::moe;

namespace {

ArrayRef<int64_t> dims(Value value) {
  return cast<RankedTensorType>(value.getType()).getShape();
}

std::string shapeText(ArrayRef<int64_t> shape) {
  if (shape.empty())
    return "scalar";
  std::string text;
  llvm::raw_string_ostream os(text);
  llvm::interleave(shape, os, "x");
  return text;
}

SmallVector<int64_t> withLast(ArrayRef<int64_t> leading, int64_t last) {
  SmallVector<int64_t> shape(leading.begin(), leading.end());
  shape.push_back(last);
  return shape;
}

LogicalResult expectShape(Operation *op, StringRef what, Value value,
                          ArrayRef<int64_t> expected) {
  if (dims(value) == expected)
    return success();
  return op->emitOpError() << "expects " << what << " of shape "
                           << shapeText(expected) << ", found "
                           << shapeText(dims(value));
}

LogicalResult expectRank(Operation *op, StringRef what, Value value,
                         size_t rank) {
  if (dims(value).size() == rank)
    return success();
  return op->emitOpError() << "expects " << what << " of rank " << rank
                           << ", found rank " << dims(value).size();
}

LogicalResult expectRankAtLeast(Operation *op, StringRef what, Value value,
                                size_t rank) {
  if (dims(value).size() >= rank)
    return success();
  return op->emitOpError() << "expects " << what << " of rank >= " << rank
                           << ", found " << shapeText(dims(value));
}

/// `[tokens..., k]` routing tensors against `[tokens..., M]` activations.
LogicalResult expectRouting(Operation *op, ArrayRef<int64_t> tokens,
                            ValueRange routing) {
  ArrayRef<int64_t> first = dims(routing.front());
  if (first.size() != tokens.size() + 1 || first.drop_back() != tokens)
    return op->emitOpError()
           << "expects indices of shape " << shapeText(tokens)
           << "xk (the token dimensions), found " << shapeText(first);
  for (Value other : routing.drop_front())
    if (dims(other) != first)
      return op->emitOpError()
             << "expects routing tensors of one shape, found "
             << shapeText(first) << " and " << shapeText(dims(other));
  return success();
}

} // namespace

LogicalResult LinearGradOp::verify() {
  if (failed(expectRank(*this, "weight", getWeight(), 2)) ||
      failed(expectRankAtLeast(*this, "input", getInput(), 1)))
    return failure();
  ArrayRef<int64_t> w = dims(getWeight());
  int64_t in = getTransposeWeight() ? w[1] : w[0];
  int64_t out = getTransposeWeight() ? w[0] : w[1];
  if (dims(getInput()).back() != in)
    return emitOpError() << "expects input features " << in
                         << " (from the weight), found "
                         << dims(getInput()).back();
  return expectShape(*this, "result_grad", getResultGrad(),
                     withLast(dims(getInput()).drop_back(), out));
}

LogicalResult BiasGradOp::verify() {
  if (failed(expectRankAtLeast(*this, "result_grad", getResultGrad(), 1)))
    return failure();
  return expectShape(*this, "bias_grad", getBiasGrad(),
                     {dims(getResultGrad()).back()});
}

LogicalResult EmbeddingGradOp::verify() {
  if (failed(expectRank(*this, "table_grad", getTableGrad(), 2)))
    return failure();
  return expectShape(*this, "result_grad", getResultGrad(),
                     withLast(dims(getTokens()), dims(getTableGrad())[1]));
}

LogicalResult PositionGradOp::verify() {
  if (failed(expectRankAtLeast(*this, "result_grad", getResultGrad(), 2)) ||
      failed(expectRank(*this, "positions_grad", getPositionsGrad(), 2)))
    return failure();
  ArrayRef<int64_t> dy = dims(getResultGrad());
  ArrayRef<int64_t> pos = dims(getPositionsGrad());
  int64_t seqLen = dy[dy.size() - 2];
  if (pos[1] != dy.back() || pos[0] < seqLen)
    return emitOpError() << "expects positions_grad of shape Px" << dy.back()
                         << " with P >= " << seqLen << ", found "
                         << shapeText(pos);
  return success();
}

LogicalResult GateGradOp::verify() {
  if (failed(expectRankAtLeast(*this, "input", getInput(), 2)) ||
      failed(expectRank(*this, "weight", getWeight(), 2)))
    return failure();
  ArrayRef<int64_t> in = dims(getInput());
  ArrayRef<int64_t> wg = dims(getWeight());
  if (wg[0] != in.back())
    return emitOpError() << "expects gate weight of shape " << in.back()
                         << "xE, found " << shapeText(wg);
  int64_t topK = getConfig().getTopK();
  if (topK > wg[1])
    return emitOpError() << "gating top_k = " << topK
                         << " exceeds the number of experts " << wg[1];
  if (failed(expectShape(*this, "weights_grad", getWeightsGrad(),
                         withLast(in.drop_back(), topK))) ||
      failed(expectRouting(*this, in.drop_back(),
                           {getWeightsGrad(), getIndices(), getLocations()})))
    return failure();
  int64_t tokens = 1;
  for (int64_t d : in.drop_back())
    tokens *= d;
  int64_t expected = getConfig().getCapacity(tokens, wg[1], !getEval());
  if (getCapacityAttr().getInt() != expected)
    return emitOpError() << "capacity " << getCapacityAttr().getInt()
                         << " does not match the gating configuration ("
                         << expected << ")";
  return success();
}

LogicalResult DispatchGradOp::verify() {
  if (failed(expectRank(*this, "result_grad", getResultGrad(), 3)) ||
      failed(expectRankAtLeast(*this, "input_grad", getInputGrad(), 2)))
    return failure();
  ArrayRef<int64_t> dx = dims(getInputGrad());
  if (dx.back() != dims(getResultGrad())[2])
    return emitOpError() << "expects input_grad of width "
                         << dims(getResultGrad())[2] << ", found "
                         << shapeText(dx);
  return expectRouting(*this, dx.drop_back(), {getIndices(), getLocations()});
}

LogicalResult CombineGradOp::verify() {
  if (failed(expectRank(*this, "input", getInput(), 3)) ||
      failed(expectRankAtLeast(*this, "result_grad", getResultGrad(), 2)))
    return failure();
  ArrayRef<int64_t> dy = dims(getResultGrad());
  if (dy.back() != dims(getInput())[2])
    return emitOpError() << "expects result_grad of width "
                         << dims(getInput())[2] << ", found " << shapeText(dy);
  return expectRouting(*this, dy.drop_back(),
                       {getIndices(), getLocations(), getWeights()});
}

//===----------------------------------------------------------------------===//
// Optimizer ops
//===----------------------------------------------------------------------===//

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
